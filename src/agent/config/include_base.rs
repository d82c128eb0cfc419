//! The include base: the directory Kea resolves relative `<?include?>` paths
//! (and, up to 2.6.2, relative socket names) against, which is the working
//! directory of the running daemon, not the config file's directory.

use super::ServiceConfig;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Kea daemon options that take a value (`kea-dhcp4 -h`); `-c` is the config file.
const OPTIONS_WITH_VALUE: &[u8] = b"cpPtT";

impl ServiceConfig {
    /// The include base: configured, else the working directory of the
    /// running Kea daemon serving this config file, else "/" (systemd's).
    pub fn resolve_include_base(&self) -> PathBuf {
        self.include_base_and_why().0
    }

    /// The include base and where it comes from, for `check` to say.
    pub fn include_base_and_why(&self) -> (PathBuf, String) {
        if let Some(base) = &self.include_base {
            return (base.clone(), "include_base in the agent config".into());
        }
        let binary = self.service.daemon_binary();
        match running_daemon_cwd(Path::new("/proc"), binary, &self.config_file) {
            Some(cwd) => (
                cwd,
                format!(
                    "the working directory of the running {binary}, which Kea resolves relative \
                     <?include?> paths against; set include_base to override"
                ),
            ),
            None => (
                PathBuf::from("/"),
                format!(
                    "no {binary} runs on this file, and systemd starts Kea in /; set include_base \
                     if Kea runs elsewhere"
                ),
            ),
        }
    }
}

/// Scans `proc_root` for a `binary` process started with `-c config_file`
/// (compared canonicalized) and returns its working directory.
pub(super) fn running_daemon_cwd(
    proc_root: &Path,
    binary: &str,
    config_file: &Path,
) -> Option<PathBuf> {
    let wanted = canonical(config_file);
    let entries = std::fs::read_dir(proc_root).ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let Some(arg) = config_file_arg(&cmdline, binary) else {
            continue;
        };
        let cwd = std::fs::read_link(entry.path().join("cwd"));
        // A relative -c was relative to the daemon's working directory.
        let started_with = match (&cwd, arg.is_absolute()) {
            (_, true) => arg,
            (Ok(cwd), false) => cwd.join(arg),
            (Err(_), false) => continue,
        };
        if canonical(&started_with) != wanted {
            continue;
        }
        match cwd {
            Ok(cwd) => {
                tracing::debug!(pid = ?name, cwd = %cwd.display(), "include base from the running {binary}");
                return Some(cwd);
            }
            Err(error) => {
                tracing::info!(pid = ?name, %error, "cannot read the working directory of {binary} (the kernel hides it from processes without Kea's capabilities); assuming / as include base, as under systemd; set include_base to override");
                return None;
            }
        }
    }
    None
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The `-c` value of a NUL-separated command line whose program is `binary`.
pub(super) fn config_file_arg(cmdline: &[u8], binary: &str) -> Option<PathBuf> {
    let mut args = cmdline.split(|b| *b == 0).filter(|arg| !arg.is_empty());
    let program = Path::new(OsStr::from_bytes(args.next()?));
    if program.file_name()? != OsStr::new(binary) {
        return None;
    }
    while let Some(arg) = args.next() {
        if arg == b"--" {
            break;
        }
        let Some(flags) = arg.strip_prefix(b"-") else {
            continue;
        };
        // getopt style: flags may be grouped (-dc FILE), a value attached (-cFILE).
        for (i, flag) in flags.iter().enumerate() {
            if !OPTIONS_WITH_VALUE.contains(flag) {
                continue;
            }
            let attached = &flags[i + 1..];
            let value = if attached.is_empty() {
                args.next()?
            } else {
                attached
            };
            if *flag == b'c' {
                return Some(PathBuf::from(OsStr::from_bytes(value)));
            }
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{config_file_arg, running_daemon_cwd};
    use std::path::{Path, PathBuf};

    #[test]
    fn config_file_arg_reads_getopt_forms() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (
                b"/usr/sbin/kea-dhcp4\0-c\0/etc/kea/kea-dhcp4.conf\0",
                Some("/etc/kea/kea-dhcp4.conf"),
            ),
            (b"kea-dhcp4\0-d\0-c\0rel.conf\0", Some("rel.conf")),
            (b"kea-dhcp4\0-cx.conf\0", Some("x.conf")),
            (b"kea-dhcp4\0-dc\0x.conf\0", Some("x.conf")),
            (b"kea-dhcp4\0-p\0-c\0-c\0x.conf\0", Some("x.conf")),
            (b"kea-dhcp4\0-t\0x.conf\0", None),
            (b"kea-dhcp6\0-c\0x.conf\0", None),
            (b"/usr/bin/vim\0-c\0x.conf\0", None),
            (b"kea-dhcp4\0-c\0", None),
            (b"", None),
        ];
        for (cmdline, expected) in cases {
            assert_eq!(
                config_file_arg(cmdline, "kea-dhcp4"),
                expected.map(PathBuf::from),
                "{}",
                String::from_utf8_lossy(cmdline)
            );
        }
    }

    /// A fake /proc: `pid/cmdline` files and `pid/cwd` symlinks.
    fn fake_process(proc_root: &Path, pid: u32, cmdline: &str, cwd: &Path) {
        let dir = proc_root.join(pid.to_string());
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("cmdline"), cmdline.replace(' ', "\0")).expect("cmdline");
        std::os::unix::fs::symlink(cwd, dir.join("cwd")).expect("symlink");
    }

    #[test]
    fn finds_the_working_directory_of_the_daemon_serving_the_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let proc_root = root.path().join("proc");
        let etc = root.path().join("etc");
        let work = root.path().join("work");
        let other = root.path().join("other");
        for dir in [&etc, &work, &other] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let conf = etc.join("kea-dhcp4.conf");
        std::fs::write(&conf, "{}").expect("conf");
        std::fs::write(work.join("kea-dhcp4.conf"), "{}").expect("conf");
        fake_process(&proc_root, 10, "kea-dhcp4 -c other.conf", &other);
        fake_process(&proc_root, 11, "kea-dhcp6 -c ../etc/kea-dhcp4.conf", &work);
        fake_process(&proc_root, 12, "kea-dhcp4 -c ../etc/kea-dhcp4.conf", &work);
        std::fs::create_dir_all(proc_root.join("self")).expect("mkdir");

        assert_eq!(
            running_daemon_cwd(&proc_root, "kea-dhcp4", &conf),
            Some(work.clone())
        );
        assert_eq!(
            running_daemon_cwd(&proc_root, "kea-dhcp4", &work.join("kea-dhcp4.conf")),
            None
        );
        assert_eq!(
            running_daemon_cwd(&root.path().join("no-proc"), "kea-dhcp4", &conf),
            None
        );
    }
}
