//! Tests of the dialect reader; the Kea behaviours they pin were checked with
//! `kea-dhcp4 -t` (Kea 2.2).

mod examples;
mod includes;
mod lexical;
mod structure;

use std::fs;
use std::path::{Path, PathBuf};

use super::{DialectError, Expanded, Style, expand_file, expand_str};

/// Expands in-memory text named `main.conf`; includes resolve against a missing dir.
fn expand(text: &[u8], style: Style) -> Result<Expanded, DialectError> {
    expand_str(
        Path::new("main.conf"),
        text,
        Path::new("/nonexistent-include-base"),
        style,
    )
}

/// The compact JSON of `text`, which must be accepted.
fn json(text: &str) -> String {
    match expand(text.as_bytes(), Style::Compact) {
        Ok(expanded) => expanded.json,
        Err(e) => panic!("{text:?} was refused: {e}"),
    }
}

/// The error message for `text`, which must be refused.
fn error(text: &[u8]) -> String {
    match expand(text, Style::Compact) {
        Ok(expanded) => panic!(
            "{:?} was accepted as {}",
            String::from_utf8_lossy(text),
            expanded.json
        ),
        Err(e) => e.to_string(),
    }
}

/// A directory of config files for include tests.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = Tree { dir };
        for (name, text) in files {
            tree.write(name, text);
        }
        tree
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&path, text).expect("write");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Expands `main` with the tree's root as include base.
    fn expand(&self, main: &str) -> Result<Expanded, DialectError> {
        expand_file(&self.path(main), self.dir.path(), Style::Compact)
    }

    fn json(&self, main: &str) -> String {
        match self.expand(main) {
            Ok(expanded) => expanded.json,
            Err(e) => panic!("{main} was refused: {e}"),
        }
    }

    fn error(&self, main: &str) -> DialectError {
        match self.expand(main) {
            Ok(expanded) => panic!("{main} was accepted as {}", expanded.json),
            Err(e) => e,
        }
    }
}
