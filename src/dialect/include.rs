//! The stack of open files: `<?include "path"?>` splices the included file's tokens in
//! place, lexically, the way Kea's lexer switches flex buffers.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::MAX_NESTED_INCLUDES;
use super::error::{DialectError, IncludeTrail, Location};
use super::grammar::Pos;
use super::lexer::{LexError, Lexeme, Mark, Scan, Text, Token};

/// One open file and the cursor in it.
struct Source<'t> {
    /// Index into `IncludeStack::opened`.
    opened: usize,
    /// For cycle detection; `None` when the top-level name is not a real file.
    canonical: Option<PathBuf>,
    text: Text<'t>,
    scan: Scan,
    /// The `<?` of the directive that opened this file, in the file below on the stack.
    included_at: Option<Mark>,
}

/// Feeds the tokens of a file and of everything it includes to a callback.
pub(super) struct IncludeStack<'t> {
    include_base: PathBuf,
    stack: Vec<Source<'t>>,
    /// Every file opened, once per opening, as opened; `Pos::source` indexes it.
    opened: Vec<PathBuf>,
    /// Every file read, each once, in order of first opening.
    files: Vec<PathBuf>,
    listed: HashSet<PathBuf>,
    /// SHA-256 over every opening's path and bytes, in order: a change in any
    /// file read changes it, and it covers exactly the bytes that were parsed.
    digest: Sha256,
}

/// Adds one file's path and bytes to the content digest (length-prefixed, so
/// moving bytes between files changes it).
fn digest_file(digest: &mut Sha256, path: &Path, text: &[u8]) {
    let path = path.as_os_str().as_encoded_bytes();
    digest.update((path.len() as u64).to_le_bytes());
    digest.update(path);
    digest.update((text.len() as u64).to_le_bytes());
    digest.update(text);
}

impl<'t> IncludeStack<'t> {
    /// Starts at the top-level text; `name` is how it is called in messages.
    pub(super) fn new(name: &Path, text: Cow<'t, [u8]>, include_base: &Path) -> Self {
        let canonical = fs::canonicalize(name).ok();
        let mut listed = HashSet::new();
        listed.insert(canonical.clone().unwrap_or_else(|| name.to_path_buf()));
        let mut digest = Sha256::new();
        digest_file(&mut digest, name, &text);
        IncludeStack {
            include_base: include_base.to_path_buf(),
            stack: vec![Source {
                opened: 0,
                canonical,
                text: Text::new(text),
                scan: Scan::new(),
                included_at: None,
            }],
            opened: vec![name.to_path_buf()],
            files: vec![name.to_path_buf()],
            listed,
            digest,
        }
    }

    /// Runs to the end of the top-level file, handing every token (the final
    /// `Token::Eof` included) to `on_token`, whose `Err` is a message about that token.
    pub(super) fn run(
        &mut self,
        mut on_token: impl FnMut(Token<'_>, Pos) -> Result<(), String>,
    ) -> Result<(), DialectError> {
        loop {
            let depth = self.stack.len();
            let Some(top) = self.stack.last_mut() else {
                return Ok(());
            };
            let source = top.opened;
            let (lexeme, at) = match top.scan.next(&top.text) {
                Ok(next) => next,
                Err(e) => return Err(self.syntax_error(e)),
            };
            match lexeme {
                Lexeme::Include(written) => {
                    let written = written.to_vec();
                    self.open_include(&written, at)?;
                }
                Lexeme::Token(Token::Eof) if depth > 1 => self.close_include()?,
                Lexeme::Token(token) => {
                    let is_eof = token == Token::Eof;
                    let pos = Pos {
                        source,
                        line: at.line,
                        col: at.col,
                    };
                    on_token(token, pos)
                        .map_err(|message| self.syntax_error(LexError { at, message }))?;
                    if is_eof {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Back in the including file, the directive must end with `?>`.
    fn close_include(&mut self) -> Result<(), DialectError> {
        self.stack.pop();
        match self.stack.last_mut() {
            Some(parent) => parent
                .scan
                .directive_end(&parent.text)
                .map_err(|e| self.syntax_error(e)),
            None => Ok(()),
        }
    }

    fn open_include(&mut self, written: &[u8], at: Mark) -> Result<(), DialectError> {
        let written_text = String::from_utf8_lossy(written).into_owned();
        // Kea opens the path as written, so relative paths are relative to its working
        // directory, not to the including file.
        let resolved = self.include_base.join(path_from_bytes(written));
        if self.stack.len() > MAX_NESTED_INCLUDES {
            return Err(DialectError::IncludeDepth {
                at: self.location(at),
                written: written_text,
                included_from: self.trail(),
            });
        }
        let io_error = |this: &Self, source| DialectError::Include {
            at: this.location(at),
            written: written_text.clone(),
            resolved: resolved.clone(),
            source,
            included_from: this.trail(),
        };
        let canonical = fs::canonicalize(&resolved).map_err(|e| io_error(self, e))?;
        let cycle_start = self
            .stack
            .iter()
            .position(|s| s.canonical.as_ref() == Some(&canonical));
        if cycle_start.is_some() {
            // Kea would only fail later on the depth limit; naming the loop is clearer.
            let mut chain: Vec<PathBuf> = self
                .stack
                .iter()
                .map(|s| self.opened[s.opened].clone())
                .collect();
            chain.push(resolved);
            return Err(DialectError::IncludeCycle {
                at: self.location(at),
                chain,
                included_from: self.trail(),
            });
        }
        let text = fs::read(&resolved).map_err(|e| io_error(self, e))?;
        digest_file(&mut self.digest, &resolved, &text);
        let opened = self.opened.len();
        self.opened.push(resolved.clone());
        if self.listed.insert(canonical.clone()) {
            self.files.push(resolved);
        }
        self.stack.push(Source {
            opened,
            canonical: Some(canonical),
            text: Text::new(Cow::Owned(text)),
            scan: Scan::new(),
            included_at: Some(at),
        });
        Ok(())
    }

    /// A position in the file on top of the stack.
    fn location(&self, at: Mark) -> Location {
        let source = self.stack.last().map_or(0, |s| s.opened);
        self.location_in(source, at)
    }

    fn location_in(&self, source: usize, at: Mark) -> Location {
        Location {
            path: self.opened[source].clone(),
            line: at.line,
            col: at.col,
        }
    }

    /// The include sites leading to the file on top of the stack, innermost first.
    fn trail(&self) -> IncludeTrail {
        let sites = self
            .stack
            .windows(2)
            .rev()
            .filter_map(|pair| Some(self.location_in(pair[0].opened, pair[1].included_at?)))
            .collect();
        IncludeTrail(sites)
    }

    fn syntax_error(&self, e: LexError) -> DialectError {
        DialectError::Syntax {
            at: self.location(e.at),
            message: e.message,
            included_from: self.trail(),
        }
    }

    /// The path of an opened source, for warnings.
    pub(super) fn opened_path(&self, source: usize) -> &Path {
        &self.opened[source]
    }

    /// Every file read, top-level first, each once.
    pub(super) fn into_files(self) -> (Vec<PathBuf>, String) {
        let digest = self.digest.finalize();
        (self.files, crate::digest::hex(&digest))
    }
}

/// Include paths are raw bytes (Kea hands them to fopen); keep them exact on Unix.
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
    }
}
