//! Agent bearer tokens: a file of `NAME TOKEN` lines; the NAME becomes the
//! server's identity in the store.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why the tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tokens file {path}, line {line}: {problem}")]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("tokens file {path} names no agent")]
    Empty { path: PathBuf },
}

/// The agents allowed to post events, by token.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    // Keyed by the token's SHA-256, so lookups do not compare secrets byte by byte.
    by_digest: HashMap<[u8; 32], String>,
}

impl Tokens {
    /// Reads and parses a tokens file.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let tokens = Tokens::parse(&text).map_err(|(line, problem)| TokensError::Line {
            path: path.to_path_buf(),
            line,
            problem,
        })?;
        if tokens.is_empty() {
            return Err(TokensError::Empty {
                path: path.to_path_buf(),
            });
        }
        super::users::warn_if_readable(path, "tokens file");
        Ok(tokens)
    }

    /// Parses `NAME TOKEN` lines (a word starting with `#` starts a comment);
    /// errors carry the line number.
    pub fn parse(text: &str) -> Result<Tokens, (usize, String)> {
        let mut by_digest = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            // A comment starts with `#` at the start of a word, so tokens may contain `#`.
            let fields: Vec<&str> = line
                .split_whitespace()
                .take_while(|field| !field.starts_with('#'))
                .collect();
            if fields.is_empty() {
                continue;
            }
            let [name, token] = fields[..] else {
                return Err((index + 1, "expected `NAME TOKEN`".to_string()));
            };
            if by_digest.insert(digest(token), name.to_string()).is_some() {
                return Err((
                    index + 1,
                    format!("the token of {name} is already used above"),
                ));
            }
        }
        Ok(Tokens { by_digest })
    }

    /// The agent name a token belongs to.
    pub fn name_of(&self, token: &str) -> Option<&str> {
        self.by_digest.get(&digest(token)).map(String::as_str)
    }

    /// How many tokens are known.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether no token is known.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_tokens_and_comments() {
        let text = "# fleet\nkea1 s3cret\n\n  kea2\tother # lab\nkea3 a#b #c\n";
        let tokens = Tokens::parse(text).expect("tokens");
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens.name_of("a#b"), Some("kea3"));
        assert_eq!(tokens.name_of("s3cret"), Some("kea1"));
        assert_eq!(tokens.name_of("other"), Some("kea2"));
        assert_eq!(tokens.name_of("nope"), None);
    }

    #[test]
    fn refuses_bad_lines_with_their_number() {
        assert_eq!(
            Tokens::parse("kea1 a\nkea2\n")
                .expect_err("should be refused")
                .0,
            2
        );
        assert_eq!(
            Tokens::parse("kea1 a b\n")
                .expect_err("should be refused")
                .0,
            1
        );
        assert_eq!(
            Tokens::parse("kea1 a\nkea2 a\n")
                .expect_err("should be refused")
                .0,
            2
        );
    }
}
