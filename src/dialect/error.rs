//! Errors and warnings of the dialect reader, each pointing at a file, line and column.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::MAX_NESTED_INCLUDES;

/// A position in a config file: 1-based line, 1-based column counted in bytes (as Kea does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as it was opened (include paths joined to the include base).
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in bytes.
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.col)
    }
}

/// Where the file holding an error was included from, innermost `<?include?>` first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncludeTrail(pub Vec<Location>);

impl fmt::Display for IncludeTrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, site) in self.0.iter().enumerate() {
            let sep = if i == 0 {
                " (included from "
            } else {
                ", from "
            };
            write!(f, "{sep}{site}")?;
        }
        if !self.0.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Why a Kea config file could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum DialectError {
    /// The top-level config file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    /// A token Kea's lexer refuses, or tokens that do not form one JSON value.
    #[error("{at}: {message}{included_from}")]
    Syntax {
        at: Location,
        message: String,
        included_from: IncludeTrail,
    },

    /// An `<?include?>` names a file that cannot be opened or read.
    #[error(
        "{at}: cannot read include \"{written}\" (resolved to {}): {source}{included_from}",
        resolved.display()
    )]
    Include {
        at: Location,
        written: String,
        resolved: PathBuf,
        source: io::Error,
        included_from: IncludeTrail,
    },

    /// One `<?include?>` more than Kea's nesting limit.
    #[error(
        "{at}: too many nested includes (Kea allows {MAX_NESTED_INCLUDES}), refusing \"{written}\"{included_from}"
    )]
    IncludeDepth {
        at: Location,
        written: String,
        included_from: IncludeTrail,
    },

    /// A file includes itself, directly or through other files.
    #[error("{at}: include cycle: {}{included_from}", chain_text(chain))]
    IncludeCycle {
        at: Location,
        chain: Vec<PathBuf>,
        included_from: IncludeTrail,
    },
}

fn chain_text(chain: &[PathBuf]) -> String {
    let names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
    names.join(" -> ")
}

/// Something Kea accepts but warns about, such as an extraneous comma.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialectWarning {
    /// Where the offending token is.
    pub at: Location,
    /// What Kea would warn about, e.g. "extraneous comma".
    pub message: String,
}

impl fmt::Display for DialectWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}
