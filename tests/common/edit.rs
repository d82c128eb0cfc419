//! The ways people, editors and tools replace a config file's content, one [`Editor`]
//! each, for tests that pick them at random (tests/faults.rs, tests/soak.rs).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

/// One way to write a file's new content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Editor {
    /// Truncate, write, close (`echo > file`, most scripts).
    InPlace,
    /// Truncate, write the first half, pause, write the rest (a slow writer).
    PausedHalfway,
    /// Write a temp file beside it, rename it over (deployment tools, `install`).
    RenameOver,
    /// `sed -i` (GNU: its own temp file, then rename).
    SedInPlace,
    /// `cp` from another directory over it (truncate and write the same inode).
    CpOver,
    /// Remove it, pause, write it anew.
    RemoveRecreate,
    /// Vim: `.swp` beside it, the `4913` probe, the old file renamed to `file~`, the new
    /// one written, then backup and swap removed.
    VimLike,
    /// Emacs: a `.#file` lock symlink, the old file renamed to `file~` (kept), the new
    /// one written.
    EmacsLike,
}

impl Editor {
    pub const ALL: [Editor; 8] = [
        Editor::InPlace,
        Editor::PausedHalfway,
        Editor::RenameOver,
        Editor::SedInPlace,
        Editor::CpOver,
        Editor::RemoveRecreate,
        Editor::VimLike,
        Editor::EmacsLike,
    ];

    /// Makes `path` hold `text`, the way this editor does.
    pub fn write(self, path: &Path, text: &str) {
        match self {
            Editor::InPlace => write(path, text),
            Editor::PausedHalfway => {
                let (head, rest) = text.split_at(text.len() / 2);
                let mut file = fs::File::create(path)
                    .unwrap_or_else(|e| panic!("truncate {}: {e}", path.display()));
                file.write_all(head.as_bytes())
                    .and_then(|()| file.flush())
                    .expect("write the first half");
                sleep(Duration::from_millis(200));
                file.write_all(rest.as_bytes()).expect("write the rest");
            }
            Editor::RenameOver => {
                let temp = beside(path, ".tmp-new");
                write(&temp, text);
                rename(&temp, path);
            }
            Editor::SedInPlace => {
                // Replace every line with the new file: `1r NEW` queues it, `d` drops the old.
                let elsewhere = tempfile::tempdir().expect("temp dir");
                let new = elsewhere.path().join("new");
                write(&new, text);
                let script = format!("1r {}", new.display());
                run("sed", &["-i", "-e", &script, "-e", "d"], path);
            }
            Editor::CpOver => {
                let elsewhere = tempfile::tempdir().expect("temp dir");
                let new = elsewhere.path().join("new.conf");
                write(&new, text);
                run("cp", &[&new.to_string_lossy()], path);
            }
            Editor::RemoveRecreate => {
                fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
                sleep(Duration::from_millis(150));
                write(path, text);
            }
            Editor::VimLike => {
                let swap = swap_file(path);
                write(&swap, "b0VIM 9.0\0\0swap");
                let probe = path.with_file_name("4913");
                write(&probe, "");
                remove(&probe);
                let backup = beside(path, "~");
                rename(path, &backup);
                write(path, text);
                remove(&backup);
                remove(&swap);
            }
            Editor::EmacsLike => {
                let lock = path.with_file_name(format!(".#{}", file_name(path)));
                let _ = std::os::unix::fs::symlink("root@localhost.1234:1", &lock);
                rename(path, &beside(path, "~"));
                write(path, text);
                remove(&lock);
            }
        }
    }

    /// Whether the file is briefly missing or incomplete while this editor writes it.
    pub fn has_a_gap(self) -> bool {
        matches!(
            self,
            Editor::PausedHalfway | Editor::RemoveRecreate | Editor::VimLike | Editor::EmacsLike
        )
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `path` with `suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    path.with_file_name(format!("{}{suffix}", file_name(path)))
}

/// Vim's swap file for `path`: `.NAME.swp` beside it.
fn swap_file(path: &Path) -> PathBuf {
    path.with_file_name(format!(".{}.swp", file_name(path)))
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn rename(from: &Path, to: &Path) {
    fs::rename(from, to)
        .unwrap_or_else(|e| panic!("rename {} to {}: {e}", from.display(), to.display()));
}

fn remove(path: &Path) {
    fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}

/// Runs `program ARGS PATH`, which must succeed.
fn run(program: &str, args: &[&str], path: &Path) {
    let status = Command::new(program)
        .args(args)
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        status.success(),
        "{program} {args:?} {}: {status}",
        path.display()
    );
}
