//! Byte lexer for one file, mirroring the flex rules of Kea's `dhcp4_lexer.ll`
//! (identical in the dhcp6, d2 and agent lexers).
//!
//! It knows nothing about other files: an `<?include "path"` is handed back as a
//! [`Lexeme::Include`], and the caller calls [`Scan::directive_end`] once the included
//! file is exhausted.

use std::borrow::Cow;

/// A file's bytes, kept as `str` when the whole file is UTF-8 (the usual case) so that
/// strings are sliced out without validating each one again.
#[derive(Debug)]
pub(super) enum Text<'t> {
    Utf8(Cow<'t, str>),
    Bytes(Cow<'t, [u8]>),
}

impl<'t> Text<'t> {
    pub(super) fn new(bytes: Cow<'t, [u8]>) -> Self {
        match bytes {
            Cow::Borrowed(b) => match std::str::from_utf8(b) {
                Ok(s) => Text::Utf8(Cow::Borrowed(s)),
                Err(_) => Text::Bytes(Cow::Borrowed(b)),
            },
            Cow::Owned(v) => match String::from_utf8(v) {
                Ok(s) => Text::Utf8(Cow::Owned(s)),
                Err(e) => Text::Bytes(Cow::Owned(e.into_bytes())),
            },
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Text::Utf8(s) => s.as_bytes(),
            Text::Bytes(b) => b,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Text::Utf8(s) => Some(s),
            Text::Bytes(_) => None,
        }
    }
}

/// One JSON token; strings and numbers already checked against Kea's rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Token<'t> {
    BeginMap,
    EndMap,
    BeginList,
    EndList,
    Comma,
    Colon,
    /// The string exactly as written, quotes included: its escapes are a subset of
    /// JSON's, so it can be copied to the output verbatim.
    Str(&'t str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Eof,
}

impl Token<'_> {
    /// How the token is named in "found ..." messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Token::BeginMap => "'{'".into(),
            Token::EndMap => "'}'".into(),
            Token::BeginList => "'['".into(),
            Token::EndList => "']'".into(),
            Token::Comma => "','".into(),
            Token::Colon => "':'".into(),
            Token::Str(s) if s.chars().count() > 40 => {
                let head: String = s.chars().take(37).collect();
                format!("string {head}...")
            }
            Token::Str(s) => format!("string {s}"),
            Token::Int(i) => format!("integer {i}"),
            Token::Float(x) => format!("float {x}"),
            Token::Bool(b) => b.to_string(),
            Token::Null => "null".into(),
            Token::Eof => "end of file".into(),
        }
    }
}

/// What the lexer found next: a token, or the start of an include directive.
#[derive(Debug)]
pub(super) enum Lexeme<'t> {
    Token(Token<'t>),
    /// `<?include "path"` was read; the raw bytes between the quotes.
    Include(&'t [u8]),
}

/// A 1-based line and byte column within the file being scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub line: usize,
    pub col: usize,
}

/// A lexical error within the file being scanned.
#[derive(Debug)]
pub(super) struct LexError {
    pub at: Mark,
    pub message: String,
}

/// The cursor of one file: byte offset plus line bookkeeping for columns.
#[derive(Debug)]
pub(super) struct Scan {
    pos: usize,
    line: usize,
    line_start: usize,
}

impl Scan {
    pub(super) fn new() -> Self {
        Scan {
            pos: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn mark_at(&self, pos: usize) -> Mark {
        Mark {
            line: self.line,
            col: pos - self.line_start + 1,
        }
    }

    fn error(&self, pos: usize, message: impl Into<String>) -> LexError {
        LexError {
            at: self.mark_at(pos),
            message: message.into(),
        }
    }

    /// Reads the next token or include directive; `Token::Eof` at the end of the file.
    pub(super) fn next<'t>(&mut self, file: &'t Text<'_>) -> Result<(Lexeme<'t>, Mark), LexError> {
        let text = file.bytes();
        self.skip_trivia(text)?;
        let at = self.mark_at(self.pos);
        let Some(&b) = text.get(self.pos) else {
            return Ok((Lexeme::Token(Token::Eof), at));
        };
        let punct = match b {
            b'{' => Some(Token::BeginMap),
            b'}' => Some(Token::EndMap),
            b'[' => Some(Token::BeginList),
            b']' => Some(Token::EndList),
            b',' => Some(Token::Comma),
            b':' => Some(Token::Colon),
            _ => None,
        };
        let token = if let Some(token) = punct {
            self.pos += 1;
            token
        } else {
            match b {
                b'"' => Token::Str(self.string(text, file.as_str())?),
                b'<' if text.get(self.pos + 1) == Some(&b'?') => {
                    return Ok((Lexeme::Include(self.directive(text)?), at));
                }
                b'-' | b'+' | b'.' | b'0'..=b'9' | b'e' | b'E' => self.number(text)?,
                b't' | b'f' | b'n' | b'T' | b'F' | b'N' => self.keyword(text)?,
                _ => return Err(self.error(self.pos, invalid_character(text, self.pos))),
            }
        };
        Ok((Lexeme::Token(token), at))
    }

    fn newline(&mut self, pos: usize) {
        self.line += 1;
        self.line_start = pos + 1;
    }

    /// Whitespace (space, tab, CR, LF) and the three comment forms.
    fn skip_trivia(&mut self, text: &[u8]) -> Result<(), LexError> {
        loop {
            match text.get(self.pos) {
                Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                Some(b'\n') => {
                    self.newline(self.pos);
                    self.pos += 1;
                }
                Some(b'#') => self.skip_line(text),
                Some(b'/') => match text.get(self.pos + 1) {
                    Some(b'/') => self.skip_line(text),
                    Some(b'*') => self.skip_block_comment(text)?,
                    // A lone '/' is an invalid character; next() reports it.
                    _ => return Ok(()),
                },
                _ => return Ok(()),
            }
        }
    }

    /// Leaves the cursor on the '\n' (or EOF) so the newline is counted normally.
    fn skip_line(&mut self, text: &[u8]) {
        let rest = &text[self.pos..];
        self.pos += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    }

    /// `/* ... */`, not nested, with any bytes (even non-UTF-8) inside.
    fn skip_block_comment(&mut self, text: &[u8]) -> Result<(), LexError> {
        // Reported at the opening '/*', which names the line Kea names.
        let open = self.mark_at(self.pos);
        let mut i = self.pos + 2;
        while i < text.len() {
            match text[i] {
                b'\n' => self.newline(i),
                b'*' if text.get(i + 1) == Some(&b'/') => {
                    self.pos = i + 2;
                    return Ok(());
                }
                _ => {}
            }
            i += 1;
        }
        Err(LexError {
            at: open,
            message: format!("comment not closed ('/*' opened at line {})", open.line),
        })
    }

    /// A `"..."` string: no raw control bytes, only Kea's escapes, valid UTF-8.
    /// `whole` is `text` as `str` when the file is all UTF-8.
    fn string<'t>(&mut self, text: &'t [u8], whole: Option<&'t str>) -> Result<&'t str, LexError> {
        let start = self.pos;
        let mut i = start + 1;
        loop {
            // Plain characters are the bulk of a config; skip them in one tight loop.
            i += text[i..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(text.len() - i);
            let Some(&b) = text.get(i) else {
                return Err(self.error(start, "unterminated string"));
            };
            match b {
                b'"' => break,
                b'\\' => i += self.escape(text, i)?,
                b'\n' => {
                    return Err(self.error(
                        i,
                        "invalid control character U+000A (newline) in string; missing closing '\"'?",
                    ));
                }
                0x00..=0x1f => {
                    return Err(
                        self.error(i, format!("invalid control character U+{b:04X} in string"))
                    );
                }
                _ => i += 1,
            }
        }
        // Quotes are ASCII, so slicing the whole-file str there cannot split a character.
        let s = match whole.and_then(|w| w.get(start..=i)) {
            Some(s) => s,
            None => std::str::from_utf8(&text[start..=i])
                .map_err(|e| self.error(start + e.valid_up_to(), "invalid UTF-8 in string"))?,
        };
        self.pos = i + 1;
        Ok(s)
    }

    /// Checks the escape starting at the backslash `text[i]`; returns its length.
    fn escape(&self, text: &[u8], i: usize) -> Result<usize, LexError> {
        match text.get(i + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(2),
            Some(b'u') => {
                let hex = text.get(i + 2..i + 6).unwrap_or_default();
                if hex.len() != 4 || !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(self.error(i, "bad escape '\\u' in string (needs 4 hex digits)"));
                }
                // Kea decodes \uXXXX into one byte, so only \u00XX survives.
                if &hex[..2] != b"00" {
                    return Err(self.error(
                        i,
                        format!(
                            "unsupported unicode escape '\\u{}', Kea only accepts \\u0000-\\u00ff",
                            String::from_utf8_lossy(hex)
                        ),
                    ));
                }
                Ok(6)
            }
            None => Err(self.error(i, "unterminated string")),
            Some(_) => Err(self.error(
                i,
                format!(
                    "bad escape in string: '\\' followed by {}",
                    describe_char(text, i + 1)
                ),
            )),
        }
    }

    /// Numbers follow flex: the longest match of the int rule `-?[0-9]+` and the float
    /// rule `[-+]?[0-9]*\.?[0-9]*([eE][-+]?[0-9]+)?`; on a tie the int rule (listed
    /// first) wins.
    fn number(&mut self, text: &[u8]) -> Result<Token<'static>, LexError> {
        let start = self.pos;
        let rest = &text[start..];
        let float_len = float_match_len(rest);
        if float_len == 0 {
            return Err(self.error(start, invalid_character(text, start)));
        }
        let int_len = int_match_len(rest);
        let lexeme = std::str::from_utf8(&rest[..float_len])
            .map_err(|_| self.error(start, "invalid number"))?;
        let token = if int_len == float_len {
            let value: i64 = lexeme.parse().map_err(|_| {
                self.error(start, format!("integer out of range (64 bits): {lexeme}"))
            })?;
            Token::Int(value)
        } else {
            match lexeme.parse::<f64>() {
                Ok(x) if x.is_finite() => Token::Float(x),
                Ok(_) => {
                    return Err(self.error(start, format!("float out of range: {lexeme}")));
                }
                Err(_) => {
                    return Err(self.error(start, format!("invalid number '{lexeme}'")));
                }
            }
        };
        self.pos += float_len;
        Ok(token)
    }

    /// `true`, `false`, `null` in lowercase; Kea has dedicated errors for other casings.
    fn keyword(&mut self, text: &[u8]) -> Result<Token<'static>, LexError> {
        let rest = &text[self.pos..];
        for (word, token) in [
            ("true", Token::Bool(true)),
            ("false", Token::Bool(false)),
            ("null", Token::Null),
        ] {
            let Some(head) = rest.get(..word.len()) else {
                continue;
            };
            if head == word.as_bytes() {
                self.pos += word.len();
                return Ok(token);
            }
            if head.eq_ignore_ascii_case(word.as_bytes()) {
                return Err(self.error(
                    self.pos,
                    format!("JSON {word} reserved keyword is lower case only"),
                ));
            }
        }
        Err(self.error(self.pos, invalid_character(text, self.pos)))
    }

    /// After `<?`: blanks/newlines, `include`, blanks/newlines, `"path"`. Returns the path.
    fn directive<'t>(&mut self, text: &'t [u8]) -> Result<&'t [u8], LexError> {
        self.pos += 2;
        self.skip_blanks(text);
        if !text[self.pos..].starts_with(b"include") {
            return Err(self.directive_error(text, "'include' after '<?'"));
        }
        self.pos += "include".len();
        self.skip_blanks(text);
        if text.get(self.pos) != Some(&b'"') {
            return Err(self.directive_error(text, "'\"' starting the include path"));
        }
        let start = self.pos + 1;
        let rest = &text[start..];
        match rest.iter().position(|&b| b == b'"' || b == b'\n') {
            Some(0) => Err(self.error(self.pos, "empty include path")),
            Some(len) if rest[len] == b'"' => {
                self.pos = start + len + 1;
                Ok(&rest[..len])
            }
            _ => Err(self.error(self.pos, "include path not closed on its line")),
        }
    }

    /// The `?>` closing a directive once the included file is exhausted.
    pub(super) fn directive_end(&mut self, file: &Text<'_>) -> Result<(), LexError> {
        let text = file.bytes();
        self.skip_blanks(text);
        if text[self.pos..].starts_with(b"?>") {
            self.pos += 2;
            Ok(())
        } else {
            Err(self.directive_error(text, "'?>' closing the include directive"))
        }
    }

    /// Inside a directive only whitespace is skipped: Kea does not allow comments there.
    fn skip_blanks(&mut self, text: &[u8]) {
        while let Some(&b) = text.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\r' => {}
                b'\n' => self.newline(self.pos),
                _ => return,
            }
            self.pos += 1;
        }
    }

    fn directive_error(&self, text: &[u8], expected: &str) -> LexError {
        let found = if self.pos >= text.len() {
            "end of file (directive not closed)".to_string()
        } else {
            describe_char(text, self.pos)
        };
        self.error(self.pos, format!("expected {expected}, found {found}"))
    }
}

fn digits(b: &[u8]) -> usize {
    b.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// Length of the longest prefix matching `-?[0-9]+`, 0 if none.
fn int_match_len(b: &[u8]) -> usize {
    let sign = usize::from(b.first() == Some(&b'-'));
    match digits(&b[sign..]) {
        0 => 0,
        n => sign + n,
    }
}

/// Length of the longest prefix matching `[-+]?[0-9]*\.?[0-9]*([eE][-+]?[0-9]+)?`.
/// Each part is optional and unambiguous, so greedy matching is the longest match.
fn float_match_len(b: &[u8]) -> usize {
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    i += digits(&b[i..]);
    if b.get(i) == Some(&b'.') {
        i += 1;
    }
    i += digits(&b[i..]);
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let n = digits(&b[j..]);
        if n > 0 {
            i = j + n;
        }
    }
    i
}

fn invalid_character(text: &[u8], pos: usize) -> String {
    format!("invalid character {}", describe_char(text, pos))
}

/// The character at `pos` for messages: `'x'`, `U+00E9`, or `byte 0xFF` if not UTF-8.
fn describe_char(text: &[u8], pos: usize) -> String {
    let rest = &text[pos..text.len().min(pos + 4)];
    let valid = match std::str::from_utf8(rest) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
    };
    match valid.chars().next() {
        Some(c) if c.is_ascii_graphic() => format!("'{c}'"),
        Some(c) => format!("U+{:04X}", u32::from(c)),
        None => match text.get(pos) {
            Some(b) => format!("byte 0x{b:02X}"),
            None => "end of file".into(),
        },
    }
}
