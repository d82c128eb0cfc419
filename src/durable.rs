//! Files the agent must neither lose nor half-write nor show to others: the
//! outbox, dead letters, the state and the last good config hold Kea's
//! configs, and so its database passwords and TSIG secrets. A file is
//! written as a temp file created with its final mode (whatever the umask),
//! fsynced, renamed over, and its directory fsynced: a crash leaves the old
//! file or the new one, never half of one. Folders are owner/group-only.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Files of the state dir: the agent's user and Kea's group.
pub const FILE_MODE: u32 = 0o640;
/// Files holding a whole Kea config kept for a rollback: the agent's user alone.
pub const SECRET_MODE: u32 = 0o600;
/// Folders of the state dir.
pub const DIR_MODE: u32 = 0o750;

/// Creates `dir` and its missing parents as [`DIR_MODE`]; a folder that
/// exists and is open to others is closed to them when it is ours.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o007 != 0 {
        let closed = std::fs::Permissions::from_mode(mode & 0o7770);
        if let Err(error) = std::fs::set_permissions(dir, closed) {
            tracing::warn!(dir = %dir.display(), %error, "folder is open to every user and cannot be closed (chmod o-rwx it)");
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` durably with `mode`.
pub fn write(path: &Path, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, mode, |file| file.write_all(bytes)).map(|_| ())
}

/// Writes `path` durably with `mode` through `write` (streamed: a config of
/// tens of MB is not held twice). Returns the file's size. On failure (disk
/// full, say) no temp file is left behind and the old file stays.
pub fn write_with(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)?;
    // A temp file left by a crash keeps its old mode: set it again.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    let mut file = BufWriter::with_capacity(1 << 16, file);
    let written = write(&mut file).and_then(|()| {
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        file.metadata().map(|m| m.len())
    });
    let renamed = written.and_then(|size| std::fs::rename(&temp, path).map(|()| size));
    match renamed {
        Ok(size) => {
            sync_dir(dir)?;
            Ok(size)
        }
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            Err(error)
        }
    }
}

/// fsyncs a directory, so a rename or removal in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn files_and_folders_get_their_modes_whatever_the_umask() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state/outbox");
        create_dir(&state).expect("create");
        assert_eq!(mode(&state), DIR_MODE);
        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        create_dir(&open).expect("create");
        assert_eq!(mode(&open), 0o770, "closed to others");
        let file = state.join("event.json");
        write(&file, FILE_MODE, b"{}").expect("write");
        assert_eq!(mode(&file), FILE_MODE);
        write(&file, SECRET_MODE, b"{\"a\":1}").expect("rewrite");
        assert_eq!(mode(&file), SECRET_MODE);
        assert_eq!(std::fs::read(&file).expect("read"), b"{\"a\":1}");
        let names: Vec<String> = std::fs::read_dir(&state)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["event.json"], "no temp file left");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("state.json");
        write(&file, FILE_MODE, b"old").expect("write");
        let failed = write_with(&file, FILE_MODE, |out| {
            out.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&file).expect("read"), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}
