//! scripts/install-deps on a host that already runs Kea (issue #12, defect 4): it may stop
//! only what the install it ran started, never a Kea that ran before it.
//!
//! The script is driven through its two test seams: INSTALL_DEPS_FORCE_MISSING makes a
//! package count as missing, INSTALL_DEPS_APT_GET runs a fake apt-get (written here) whose
//! `install` starts what a package's maintainer script would: a process named kea-dhcp4
//! on /etc/kea's config. It also starts a real kea-dhcp4 on a temp-dir config, as a test
//! run in parallel would. Nothing is installed for real.
//!
//! The sets (issue #18): `--for demo` lists and installs only what scripts/demo needs (no
//! PostgreSQL, no Chromium), with the same care.
//!
//! Systemd units are not exercised: where this runs (a container), systemd is not running.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-deps");
const POLICY: &str = "/usr/sbin/policy-rc.d";
/// Kea start-up, a process going away, a socket answering.
const WAIT: Duration = Duration::from_secs(10);
/// The script itself (it waits up to 5 s for a daemon it stops).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);
const SIGKILL: i32 = 9;

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// One install-deps run at a time: a run stops the Kea processes that are new while it
/// installs, and another test's fake package daemon would be one of them.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn kea_dhcp4_binary() -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    ["/usr/sbin", "/usr/local/sbin", "/sbin"]
        .iter()
        .map(PathBuf::from)
        .chain(path_dirs)
        .map(|dir| dir.join("kea-dhcp4"))
        .find(|path| path.is_file())
        .expect("kea-dhcp4 not found: run scripts/install-deps (apt-get install kea-dhcp4-server)")
}

/// A config for a kea-dhcp4 that listens on no interface, with its socket in `dir`.
fn write_kea_config(dir: &Path) -> (PathBuf, PathBuf) {
    let socket = dir.join("kea4.sock");
    let config = dir.join("kea-dhcp4.conf");
    let json = serde_json::json!({"Dhcp4": {
        "interfaces-config": {"interfaces": []},
        "control-socket": {"socket-type": "unix", "socket-name": socket},
        "lease-database": {"type": "memfile", "persist": false},
        "loggers": [{"name": "kea-dhcp4", "severity": "INFO",
                     "output_options": [{"output": dir.join("kea.log")}]}],
    }});
    fs::write(&config, json.to_string()).expect("write the Kea config");
    (config, socket)
}

/// Sends `{"command":"version-get"}` and returns Kea's answer.
fn version_get(socket: &Path) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    stream.write_all(br#"{"command":"version-get"}"#)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    serde_json::from_slice(&reply).map_err(std::io::Error::other)
}

/// Waits (bounded) for the socket to answer version-get with result 0; the answer.
fn wait_answers(socket: &Path, what: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = version_get(socket);
        match reply {
            Ok(reply) if reply["result"] == 0 => return reply,
            _ if Instant::now() >= deadline => {
                panic!(
                    "{what} does not answer version-get on {}: {reply:?}",
                    socket.display()
                )
            }
            _ => sleep(POLL),
        }
    }
}

/// The "pre-existing" Kea: a real kea-dhcp4 in its own temp dir (socket, pid and lock
/// files), killed on drop.
struct Kea {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl Kea {
    fn start() -> Kea {
        let dir = tempfile::Builder::new()
            .prefix("install-deps-kea.")
            .tempdir()
            .expect("temp dir");
        let (config, socket) = write_kea_config(dir.path());
        let child = Command::new(kea_dhcp4_binary())
            .arg("-c")
            .arg(&config)
            .env("KEA_PIDFILE_DIR", dir.path())
            .env("KEA_LOCKFILE_DIR", dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kea-dhcp4");
        let kea = Kea {
            child,
            socket,
            _dir: dir,
        };
        wait_answers(&kea.socket, "the pre-existing kea-dhcp4");
        kea
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics unless the daemon still runs and answers version-get with result 0.
    fn assert_alive_and_answering(&mut self, out: &Run) {
        let status = self
            .child
            .try_wait()
            .expect("poll the pre-existing kea-dhcp4");
        assert!(
            status.is_none(),
            "install-deps stopped the kea-dhcp4 that ran before it (pid {}, {status:?})\n{out}",
            self.pid()
        );
        let reply = version_get(&self.socket).unwrap_or_else(|e| {
            panic!("the pre-existing kea-dhcp4 no longer answers on its socket: {e}\n{out}")
        });
        assert_eq!(reply["result"], 0, "version-get: {reply}\n{out}");
    }
}

impl Drop for Kea {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `pid` is alive (neither gone nor a zombie) with process name `name`.
fn running_as(pid: u32, name: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, s)| s.rsplit_once(") ")) else {
        return false;
    };
    comm == name && !rest.starts_with(['Z', 'X'])
}

fn wait_gone(pid: u32, name: &str) -> bool {
    let deadline = Instant::now() + WAIT;
    while running_as(pid, name) {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(POLL);
    }
    true
}

/// The fake apt-get and everything it starts; on drop, kills what is still running.
struct FakeApt {
    dir: TempDir,
}

/// What the fake apt-get starts; it writes each pid to `<name>.pid` in its dir.
const STARTED: [&str; 2] = ["package-daemon", "bystander"];

impl FakeApt {
    /// `bystander`: also start a real kea-dhcp4 on a temp-dir config during the install.
    fn new(bystander: bool) -> FakeApt {
        let dir = tempfile::Builder::new()
            .prefix("install-deps-apt.")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        // What a package's postinst starts: a daemon named kea-dhcp4 on /etc/kea's config.
        let daemon = d.join("kea-dhcp4");
        fs::write(
            &daemon,
            "#!/bin/sh\n# Stands in for the package's kea-dhcp4 (process name kea-dhcp4).\n\
             trap 'exit 0' TERM\nwhile :; do sleep 0.1; done\n",
        )
        .expect("write the fake daemon");
        make_executable(&daemon);
        if bystander {
            let b = d.join("bystander");
            fs::create_dir(&b).expect("bystander dir");
            write_kea_config(&b);
        }
        let apt = d.join("apt-get");
        let script = format!(
            r#"#!/bin/sh
# Stands in for apt-get: records each call; `install` starts what maintainer scripts
# would when nothing holds them back. FAKE_APT_EXIT: the exit status of `install`.
d='{dir}'
echo "$*" >>"$d/apt-calls"
[ "$1" = install ] || exit 0
if [ -x {POLICY} ]; then
    {POLICY} kea-dhcp4-server start
    echo $? >"$d/policy-during"
    cat {POLICY} >"$d/policy-during-content"
else
    echo absent >"$d/policy-during"
fi
# Waits until pid $1 runs as kea-dhcp4 (the exec done), so install-deps can see it.
wait_exec() {{
    for _ in $(seq 200); do
        [ "$(cat /proc/$1/comm 2>/dev/null)" = kea-dhcp4 ] && return 0
        sleep 0.05
    done
}}
"$d/kea-dhcp4" -c /etc/kea/kea-dhcp4.conf </dev/null >/dev/null 2>&1 &
echo $! >"$d/package-daemon.pid"
wait_exec $!
if [ -d "$d/bystander" ]; then
    cd "$d/bystander"
    KEA_PIDFILE_DIR="$d/bystander" KEA_LOCKFILE_DIR="$d/bystander" \
        {kea} -c "$d/bystander/kea-dhcp4.conf" </dev/null >/dev/null 2>&1 &
    echo $! >"$d/bystander.pid"
    wait_exec $!
fi
exit "${{FAKE_APT_EXIT:-0}}"
"#,
            dir = d.display(),
            kea = kea_dhcp4_binary().display(),
        );
        fs::write(&apt, script).expect("write the fake apt-get");
        make_executable(&apt);
        FakeApt { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("apt-get")
    }

    fn read(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.dir.path().join(name)).ok()
    }

    /// The pid the fake apt-get started for `what` (one of [`STARTED`]).
    fn pid(&self, what: &str, out: &Run) -> u32 {
        self.read(&format!("{what}.pid"))
            .and_then(|pid| pid.trim().parse().ok())
            .unwrap_or_else(|| panic!("the fake apt-get did not start the {what}\n{out}"))
    }

    fn bystander_socket(&self) -> PathBuf {
        self.dir.path().join("bystander/kea4.sock")
    }
}

impl Drop for FakeApt {
    fn drop(&mut self) {
        for what in STARTED {
            let pid = self.read(&format!("{what}.pid"));
            let Some(pid) = pid.and_then(|p| p.trim().parse::<u32>().ok()) else {
                continue;
            };
            if running_as(pid, "kea-dhcp4") {
                // SAFETY: kill(2) on a pid this test's fake apt-get started, checked by name.
                unsafe { kill(pid as i32, SIGKILL) };
            }
        }
    }
}

fn make_executable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod 755");
}

/// An install-deps run: its status and output.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "install-deps: {}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `program args`, with install-deps' seams set to `apt` and `force_missing`, bounded
/// by SCRIPT_TIMEOUT; output goes through files, so a daemon left holding them cannot
/// keep the test waiting.
fn run(
    program: &str,
    args: &[&str],
    apt: &FakeApt,
    force_missing: Option<&str>,
    env: &[(&str, &str)],
) -> Run {
    let out_dir = TempDir::new().expect("temp dir");
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    let mut command = Command::new(program);
    command
        .args(args)
        .env_remove("INSTALL_DEPS_FORCE_MISSING")
        .env("INSTALL_DEPS_APT_GET", apt.path())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("stderr file"));
    if let Some(packages) = force_missing {
        command.env("INSTALL_DEPS_FORCE_MISSING", packages);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("run install-deps");
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll install-deps") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "install-deps still runs after {SCRIPT_TIMEOUT:?}; stdout so far:\n{}",
                fs::read_to_string(&stdout_path).unwrap_or_default()
            );
        }
        sleep(POLL);
    };
    Run {
        status,
        stdout: fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

fn install_deps(apt: &FakeApt, force_missing: Option<&str>) -> Run {
    run(SCRIPT, &[], apt, force_missing, &[])
}

#[test]
fn an_install_stops_what_it_started_and_never_the_kea_that_ran_before() {
    let _serial = serial();
    let mut kea = Kea::start();
    let policy_before = fs::read(POLICY).ok();
    let apt = FakeApt::new(true);

    let out = install_deps(&apt, Some("chromium"));

    let calls = apt.read("apt-calls").unwrap_or_default();
    assert!(
        calls.contains("install -y -q --no-install-recommends chromium"),
        "install-deps did not run the fake apt-get to install the package forced missing \
         (INSTALL_DEPS_APT_GET, INSTALL_DEPS_FORCE_MISSING); its calls: {calls:?}\n{out}"
    );
    assert!(out.status.success(), "{out}");
    assert!(out.stdout.contains("installed chromium\n"), "{out}");

    kea.assert_alive_and_answering(&out);
    assert!(
        !out.stdout.contains(&format!("(pid {})", kea.pid())),
        "install-deps names the pre-existing kea-dhcp4 (pid {})\n{out}",
        kea.pid()
    );

    let package = apt.pid("package-daemon", &out);
    assert!(
        wait_gone(package, "kea-dhcp4"),
        "the kea-dhcp4 the package started (pid {package}) still runs\n{out}"
    );
    let line = format!("stopped kea-dhcp4 (pid {package}) started by the package just installed\n");
    assert!(out.stdout.contains(&line), "no line {line:?}\n{out}");

    // A Kea started meanwhile by someone else (on a temp-dir config) is not the package's.
    let bystander = apt.pid("bystander", &out);
    assert!(
        running_as(bystander, "kea-dhcp4"),
        "install-deps stopped a kea-dhcp4 started during the install on a temp-dir config \
         (pid {bystander})\n{out}"
    );
    wait_answers(
        &apt.bystander_socket(),
        "the kea-dhcp4 started during the install",
    );
    assert!(
        out.stdout
            .contains(&format!("left kea-dhcp4 (pid {bystander}) running")),
        "{out}"
    );

    // The policy-rc.d: ours (exit 101) during the install when there was none, and the
    // host's as it was after.
    let during = apt.read("policy-during").unwrap_or_default();
    if policy_before.is_none() {
        assert_eq!(
            during.trim(),
            "101",
            "no policy-rc.d denied starts during the install\n{out}"
        );
    }
    assert_eq!(
        fs::read(POLICY).ok(),
        policy_before,
        "{POLICY} is not as it was before install-deps\n{out}"
    );
}

#[test]
fn with_nothing_missing_it_touches_nothing() {
    let _serial = serial();
    let mut kea = Kea::start();
    let policy_before = fs::read(POLICY).ok();
    let apt = FakeApt::new(false);

    let out = install_deps(&apt, None);

    assert!(out.status.success(), "{out}");
    assert_eq!(
        apt.read("apt-calls"),
        None,
        "install-deps ran apt-get with nothing forced missing (is this host missing a \
         dependency? run scripts/install-deps once)\n{out}"
    );
    for word in ["installed ", "stopped ", "left ", "disabled "] {
        assert!(
            !out.stdout.lines().any(|line| line.starts_with(word)),
            "{word:?} line with nothing missing\n{out}"
        );
    }
    kea.assert_alive_and_answering(&out);
    assert_eq!(
        fs::read(POLICY).ok(),
        policy_before,
        "{POLICY} changed\n{out}"
    );
}

/// Runs install-deps in a private mount namespace where /usr/sbin is an overlay with no
/// policy-rc.d, so the script writes its own there whatever the host has; reports in
/// `apt`'s dir whether one is left after. Fails, saying what is needed, when the
/// namespace cannot be made: a test that cannot run is not a test that passed.
fn install_deps_without_a_policy(apt: &FakeApt, fake_apt_exit: &str) -> (Run, String) {
    let ns = TempDir::new().expect("temp dir");
    let after = apt.dir.path().join("policy-after");
    let wrapper = format!(
        r#"set -u
ns='{ns}'
mount -t tmpfs tmpfs "$ns" && mkdir "$ns/upper" "$ns/work" &&
    mount -t overlay overlay -o "lowerdir=/usr/sbin,upperdir=$ns/upper,workdir=$ns/work" /usr/sbin &&
    rm -f {POLICY} || exit 97
rc=0
'{SCRIPT}' || rc=$?
if [ -e {POLICY} ]; then cat {POLICY} >'{after}'; else echo absent >'{after}'; fi
exit $rc
"#,
        ns = ns.path().display(),
        after = after.display(),
    );
    let out = run(
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", &wrapper],
        apt,
        Some("chromium"),
        &[("FAKE_APT_EXIT", fake_apt_exit)],
    );
    if out.status.code() == Some(97) || (!out.status.success() && after.symlink_metadata().is_err())
    {
        panic!(
            "cannot make a private mount namespace with an overlay on /usr/sbin: this test \
             needs root, `unshare` (util-linux) and overlayfs\n{out}"
        );
    }
    let after = fs::read_to_string(&after).unwrap_or_default();
    (out, after)
}

#[test]
fn its_policy_rc_d_holds_daemons_back_during_the_install_and_is_gone_after() {
    let _serial = serial();
    for (fake_apt_exit, should_succeed) in [("0", true), ("100", false)] {
        let apt = FakeApt::new(false);
        let (out, after) = install_deps_without_a_policy(&apt, fake_apt_exit);
        let calls = apt.read("apt-calls").unwrap_or_default();
        assert!(
            calls.contains("install -y -q --no-install-recommends chromium"),
            "install-deps did not run the fake apt-get; its calls: {calls:?}\n{out}"
        );
        assert_eq!(
            out.status.success(),
            should_succeed,
            "apt-get exit {fake_apt_exit}: {out}"
        );
        if !should_succeed {
            assert!(
                out.stderr
                    .contains("install-deps: apt-get failed for: chromium"),
                "{out}"
            );
        }
        let during = apt.read("policy-during").unwrap_or_default();
        assert_eq!(
            during.trim(),
            "101",
            "during the install {POLICY} did not deny starts (apt-get exit {fake_apt_exit})\n{out}"
        );
        let content = apt.read("policy-during-content").unwrap_or_default();
        assert!(
            content.contains("install-deps"),
            "not install-deps' policy-rc.d: {content:?}"
        );
        assert_eq!(
            after.trim(),
            "absent",
            "install-deps left its {POLICY} behind (apt-get exit {fake_apt_exit})\n{out}"
        );
        // Even when apt-get fails, what the install started is stopped.
        let package = apt.pid("package-daemon", &out);
        assert!(
            wait_gone(package, "kea-dhcp4"),
            "the package's kea-dhcp4 (pid {package}) still runs (apt-get exit {fake_apt_exit})\n{out}"
        );
        assert!(
            out.stdout
                .contains(&format!("stopped kea-dhcp4 (pid {package})")),
            "{out}"
        );
    }
}

/// `install-deps [--for SET] --list`: the set's packages, one a line.
fn list(args: &[&str]) -> Vec<String> {
    let out = Command::new(SCRIPT)
        .args(args)
        .arg("--list")
        .env_remove("INSTALL_DEPS_FORCE_MISSING")
        .env_remove("INSTALL_DEPS_APT_GET")
        .stdin(Stdio::null())
        .output()
        .expect("run install-deps --list");
    assert!(
        out.status.success(),
        "install-deps {args:?} --list: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_demo_set_is_kea_python_and_a_linker_and_the_tests_set_holds_it() {
    let demo = list(&["--for", "demo"]);
    assert_eq!(
        demo,
        ["kea-dhcp4-server", "python3", "gcc", "libc6-dev"],
        "scripts/install-deps --for demo --list"
    );
    let tests = list(&[]);
    assert_eq!(
        list(&["--for", "tests"]),
        tests,
        "--for tests is the default"
    );
    for package in ["postgresql", "chromium", "kea-dhcp6-server", "debootstrap"] {
        assert!(
            tests.iter().any(|p| p == package),
            "the tests' set lacks {package}: {tests:?}"
        );
    }
    for package in &demo {
        assert!(
            tests.contains(package),
            "the demo needs {package}, the tests' set lacks it: {tests:?}"
        );
    }
}

#[test]
fn for_the_demo_it_installs_only_the_demos_packages_as_carefully() {
    let _serial = serial();
    let mut kea = Kea::start();
    let apt = FakeApt::new(false);

    // The tests' packages forced missing too: `--for demo` must not install them.
    let out = run(
        SCRIPT,
        &["--for", "demo"],
        &apt,
        Some("chromium postgresql kea-dhcp4-server"),
        &[],
    );

    assert!(out.status.success(), "{out}");
    let calls = apt.read("apt-calls").unwrap_or_default();
    let installs: Vec<&str> = calls
        .lines()
        .filter(|call| call.starts_with("install"))
        .collect();
    assert_eq!(
        installs,
        ["install -y -q --no-install-recommends kea-dhcp4-server"],
        "install-deps --for demo: apt-get calls {calls:?}\n{out}"
    );
    assert!(out.stdout.contains("installed kea-dhcp4-server\n"), "{out}");
    for package in ["chromium", "postgresql"] {
        assert!(
            !out.stdout.contains(&format!("installed {package}")),
            "--for demo installed {package}\n{out}"
        );
    }
    // As careful as the full set: the package's daemon stopped, the Kea before left alone.
    let package = apt.pid("package-daemon", &out);
    assert!(
        wait_gone(package, "kea-dhcp4"),
        "the kea-dhcp4 the package started (pid {package}) still runs\n{out}"
    );
    kea.assert_alive_and_answering(&out);
}
