//! Reads a Kea config file the way Kea does and turns it into standard JSON.
//!
//! Kea's config dialect is JSON plus `#`, `//` and `/* */` comments, extraneous commas
//! (accepted with a warning), a few number forms JSON lacks (`.5`, `+1`, `0100`) and
//! `<?include "path"?>` directives that splice another file's tokens in place. The
//! rules mirror Kea 2.2's flex lexer (`src/bin/dhcp4/dhcp4_lexer.ll`) and bison grammar;
//! where the sources were unclear, `kea-dhcp4 -t` decided.
//!
//! Deliberate differences from Kea: strings must be UTF-8 (Kea passes any bytes);
//! `\u00XX` means U+00XX as in JSON (Kea stores the single byte 0xXX); duplicate map
//! keys pass through (Kea's grammar refuses them, later validation will too); an include
//! cycle is named as such (Kea runs into its depth limit).
//!
//! The reader streams: a byte lexer per file (`lexer.rs`), a stack of included files
//! (`include.rs`), a grammar check that writes the output as it goes (`grammar.rs`,
//! `emit.rs`). No value tree is built, so a 30 MB config costs about its size twice.

mod emit;
mod error;
mod grammar;
mod include;
mod lexer;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};

pub use error::{DialectError, DialectWarning, IncludeTrail, Location};

use emit::Emitter;
use grammar::Grammar;
use include::IncludeStack;

/// Kea 2.2 refuses an include when more than 10 are already open
/// (`if (states_.size() > 10) fatal("Too many nested include.")`), i.e. a chain
/// main -> d1 -> ... -> d11 is accepted and a 12th nested include is refused;
/// checked with `kea-dhcp4 -t`.
pub const MAX_NESTED_INCLUDES: usize = 11;

/// Layout of the output JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// No whitespace at all.
    #[default]
    Compact,
    /// serde_json's pretty layout: 2-space indent, one element per line.
    Pretty,
}

/// A config file turned into standard JSON, with the files it was built from.
#[derive(Debug, Clone)]
pub struct Expanded {
    /// Standard JSON text, equal to what Kea would build from the file.
    pub json: String,
    /// Every file read: the top-level one first (for [`expand_str`], its name), then each
    /// include once, in order of first opening, as opened (relative paths joined to the
    /// include base).
    pub files: Vec<PathBuf>,
    /// SHA-256 (lowercase hex) of exactly the bytes read: every file's path and
    /// content in the order opened. Equal digests mean Kea would read the same.
    pub sha256: String,
    /// What Kea would warn about (extraneous commas), in file order.
    pub warnings: Vec<DialectWarning>,
}

impl Expanded {
    /// Parses the JSON text into a value tree.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

/// Reads the Kea config file at `path` (used as given) and expands it; relative include
/// paths resolve against `include_base`, Kea's working directory (`/` under systemd).
pub fn expand_file(
    path: &Path,
    include_base: &Path,
    style: Style,
) -> Result<Expanded, DialectError> {
    let text = fs::read(path).map_err(|source| DialectError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    expand(path, Cow::Owned(text), include_base, style)
}

/// Same on in-memory text (name used in messages and as `files[0]`); includes still
/// read from disk.
pub fn expand_str(
    name: &Path,
    text: &[u8],
    include_base: &Path,
    style: Style,
) -> Result<Expanded, DialectError> {
    expand(name, Cow::Borrowed(text), include_base, style)
}

fn expand(
    name: &Path,
    text: Cow<'_, [u8]>,
    include_base: &Path,
    style: Style,
) -> Result<Expanded, DialectError> {
    // Output is about as long as the input; reserving it avoids regrowth copies.
    let mut grammar = Grammar::new(Emitter::new(text.len()));
    let mut sources = IncludeStack::new(name, text, include_base);
    sources.run(|token, at| grammar.token(token, at))?;
    let (json, extra_commas) = grammar.finish();
    let json = match style {
        Style::Compact => json,
        Style::Pretty => emit::pretty(&json),
    };
    let warnings = extra_commas
        .into_iter()
        .map(|at| DialectWarning {
            at: Location {
                path: sources.opened_path(at.source).to_path_buf(),
                line: at.line,
                col: at.col,
            },
            message: "extraneous comma".to_string(),
        })
        .collect();
    let (files, sha256) = sources.into_files();
    Ok(Expanded {
        json,
        files,
        sha256,
        warnings,
    })
}
