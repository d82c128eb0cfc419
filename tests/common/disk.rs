//! A small tmpfs of a test's own, to fill up or freeze under the agent's state dir.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a dir inside its own temp dir; unmounted on drop, a panic too.
pub struct SmallDisk {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (mount's `size=`, e.g. "4m"); panics without root.
    pub fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::Builder::new()
            .prefix("kea-sync-agent-small-disk-")
            .tempdir()
            .expect("temp dir");
        let mount_point = dir.path().join("disk");
        fs::create_dir(&mount_point).expect("create the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount_point)
            .status()
            .expect("run mount(8)");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} ({status}): this test needs root and mount(8)",
            mount_point.display()
        );
        SmallDisk {
            mount_point,
            _dir: dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// Fills the disk to the last byte with one file; returns it.
    pub fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = fs::File::create(&filler).expect("create the filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        while file.write_all(b"x").is_ok() {}
        filler
    }

    /// `chattr -R +i` (or `-i`) on `dir` below the disk: nothing in it can be created,
    /// renamed, removed or written, by root either. (A remount read-only is refused
    /// while a process holds a file open for writing, as the agent does its lock file.)
    pub fn set_immutable(&self, dir: &Path, immutable: bool) {
        assert!(
            dir.starts_with(self.path()),
            "{} is not on the disk",
            dir.display()
        );
        let flag = if immutable { "+i" } else { "-i" };
        let status = Command::new("chattr")
            .args(["-R", flag])
            .arg(dir)
            .status()
            .expect("run chattr(1)");
        assert!(
            status.success(),
            "chattr -R {flag} {}: {status}",
            dir.display()
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Immutable files would outlive the unmount's cleanup otherwise.
        let _ = Command::new("chattr")
            .args(["-R", "-i"])
            .arg(&self.mount_point)
            .status();
        // Lazily: an agent still running keeps its lock file open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}
