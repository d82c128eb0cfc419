//! The structure check: a stack of open containers and what may come next, fed one token
//! at a time and writing the output as it goes (no value tree, so 30 MB stays cheap).
//!
//! Commas follow Kea 2.2's bison grammar (`not_empty_map: not_empty_map COMMA` with a
//! warning, same for lists), measured with `kea-dhcp4 -t`: a comma directly followed by
//! another comma or by the closing bracket is accepted with an "extraneous comma"
//! warning at that comma, so `[1,]`, `[1,,2]` and `{"a":1,,}` pass; a comma right after
//! `[` or `{` is a syntax error.
//!
//! Kea's grammar also turns a `"comment": "text"` entry of a config map into
//! `"user-context": {"comment": "text"}`, merged with the map's own
//! user-context (both holding a comment is an error). Inside user-context and
//! hook `parameters` (Kea's free-form contexts) `comment` is an ordinary key.
//! config-test and config-set refuse a bare `comment`, so the output carries
//! it the way Kea stores it.

use super::emit::Emitter;
use super::lexer::Token;

/// Where a token came from: index of the opened source plus line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub source: usize,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Map,
    List,
}

/// What the current map key means to Kea.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Plain,
    /// `comment`: held back until its value shows whether Kea moves it.
    Comment,
    UserContext,
    /// A hook library's `parameters`: free-form.
    Parameters,
}

/// One open container.
#[derive(Debug)]
struct Frame {
    container: Container,
    /// Kea's free-form context (user-context, hook parameters).
    free_form: bool,
    /// This map is its parent's user-context.
    is_user_context: bool,
    /// Entries written so far (a held comment is not one).
    entries: usize,
    key: Key,
    /// A comment string waiting to go into this map's user-context.
    comment: Option<String>,
    /// A comment was seen in this map (pending or placed).
    comment_seen: bool,
    /// Output offset just after the `{` of this map's user-context.
    user_context_at: Option<usize>,
    /// That user-context has a comment of its own.
    user_context_has_comment: bool,
}

impl Frame {
    fn new(container: Container, free_form: bool, is_user_context: bool) -> Frame {
        Frame {
            container,
            free_form,
            is_user_context,
            entries: 0,
            key: Key::Plain,
            comment: None,
            comment_seen: false,
            user_context_at: None,
            user_context_has_comment: false,
        }
    }
}

const DUPLICATE_COMMENT: &str = "duplicate user-context/comment entries (Kea merges a \"comment\" into the map's user-context, which has one already)";

/// What the grammar accepts next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The single top-level value.
    Document,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After a `,` in a map: a key, or (extraneous) `,` or `}`.
    NextKey,
    /// After a map key.
    Colon,
    /// After `:`.
    MemberValue,
    /// After `[`: a value or `]`.
    FirstElement,
    /// After a `,` in a list: a value, or (extraneous) `,` or `]`.
    NextElement,
    /// After a value inside a container: `,` or its closing bracket.
    CommaOrClose,
    /// After the top-level value.
    Eof,
}

/// Validates the token sequence and emits it; collects extraneous commas.
#[derive(Debug)]
pub(super) struct Grammar {
    emit: Emitter,
    stack: Vec<Frame>,
    expect: Expect,
    last_comma: Option<Pos>,
    extra_commas: Vec<Pos>,
}

impl Grammar {
    pub(super) fn new(emit: Emitter) -> Self {
        Grammar {
            emit,
            stack: Vec::new(),
            expect: Expect::Document,
            last_comma: None,
            extra_commas: Vec::new(),
        }
    }

    /// Takes the next token; on error, says what was expected instead.
    pub(super) fn token(&mut self, token: Token<'_>, at: Pos) -> Result<(), String> {
        use Expect::*;
        match (self.expect, token) {
            (FirstKey | NextKey, Token::Str(key)) => {
                self.key(key)?;
                self.expect = Colon;
            }
            (Colon, Token::Colon) => {
                if self.current_key() != Some(Key::Comment) {
                    self.emit.colon();
                }
                self.expect = MemberValue;
            }
            (CommaOrClose, Token::Comma) => {
                self.last_comma = Some(at);
                self.expect = match self.top() {
                    Some(Container::Map) => NextKey,
                    _ => NextElement,
                };
            }
            (NextKey | NextElement, Token::Comma) => {
                self.extraneous_comma();
                self.last_comma = Some(at);
            }
            (FirstKey | NextKey | CommaOrClose, Token::EndMap)
                if self.top() == Some(Container::Map) =>
            {
                self.close('}')
            }
            (FirstElement | NextElement | CommaOrClose, Token::EndList)
                if self.top() == Some(Container::List) =>
            {
                self.close(']')
            }
            (Eof, Token::Eof) => {}
            (MemberValue, Token::Str(text)) if self.current_key() == Some(Key::Comment) => {
                self.comment(text)?;
                self.after_value();
            }
            (Document | MemberValue | FirstElement | NextElement, token)
                if is_value_start(&token) =>
            {
                if matches!(self.expect, FirstElement | NextElement) {
                    self.element();
                } else if self.current_key() == Some(Key::Comment) {
                    // Not a string: passed on as is, for Kea to refuse.
                    self.element();
                    self.emit.verbatim("\"comment\":");
                }
                self.value(token)?;
            }
            (expect, token) => {
                return Err(format!(
                    "expected {}, found {}",
                    self.expected(expect),
                    token.describe()
                ));
            }
        }
        Ok(())
    }

    fn top(&self) -> Option<Container> {
        self.stack.last().map(|frame| frame.container)
    }

    fn current_key(&self) -> Option<Key> {
        self.stack.last().map(|frame| frame.key)
    }

    /// Starts a map or list entry, with its comma.
    fn element(&mut self) {
        if let Some(frame) = self.stack.last_mut() {
            self.emit.element(frame.entries == 0);
            frame.entries += 1;
        }
    }

    fn key(&mut self, key: &str) -> Result<(), String> {
        let depth = self.stack.len();
        let Some(frame) = self.stack.last_mut() else {
            return Ok(());
        };
        frame.key = match key {
            _ if frame.free_form => Key::Plain,
            "\"comment\"" => Key::Comment,
            "\"user-context\"" => Key::UserContext,
            "\"parameters\"" => Key::Parameters,
            _ => Key::Plain,
        };
        if frame.is_user_context && key == "\"comment\"" && depth >= 2 {
            let parent = &mut self.stack[depth - 2];
            if parent.comment_seen {
                return Err(DUPLICATE_COMMENT.into());
            }
            parent.user_context_has_comment = true;
        }
        if self.current_key() != Some(Key::Comment) {
            self.element();
            self.emit.verbatim(key);
        }
        Ok(())
    }

    /// A config map's `"comment": text`: into the user-context already
    /// written, or held until the user-context or the map's end.
    fn comment(&mut self, text: &str) -> Result<(), String> {
        let Some(frame) = self.stack.last_mut() else {
            return Ok(());
        };
        if frame.user_context_has_comment || frame.comment_seen {
            return Err(DUPLICATE_COMMENT.into());
        }
        frame.comment_seen = true;
        match frame.user_context_at {
            Some(at) => {
                let separator = if self.emit.byte_at(at) == Some(b'}') {
                    ""
                } else {
                    ","
                };
                self.emit
                    .insert(at, &format!("\"comment\":{text}{separator}"));
            }
            None => frame.comment = Some(text.to_string()),
        }
        Ok(())
    }

    fn extraneous_comma(&mut self) {
        if let Some(comma) = self.last_comma.take() {
            self.extra_commas.push(comma);
        }
    }

    fn value(&mut self, token: Token<'_>) -> Result<(), String> {
        match token {
            Token::BeginMap => {
                self.open_map();
                return Ok(());
            }
            Token::BeginList => {
                let free_form = self.stack.last().is_some_and(|f| {
                    f.free_form || matches!(f.key, Key::Parameters | Key::UserContext)
                });
                self.emit.open('[');
                self.stack
                    .push(Frame::new(Container::List, free_form, false));
                self.expect = Expect::FirstElement;
                return Ok(());
            }
            Token::Str(s) => self.emit.verbatim(s),
            Token::Int(i) => self.emit.int(i),
            Token::Float(x) => {
                let number = serde_json::Number::from_f64(x)
                    .ok_or_else(|| format!("float {x} has no JSON form"))?;
                self.emit.float(&number);
            }
            Token::Bool(b) => self.emit.verbatim(if b { "true" } else { "false" }),
            Token::Null => self.emit.verbatim("null"),
            other => return Err(format!("expected a value, found {}", other.describe())),
        }
        self.after_value();
        Ok(())
    }

    fn open_map(&mut self) {
        self.emit.open('{');
        let after_brace = self.emit.len();
        let mut child = Frame::new(Container::Map, false, false);
        if let Some(parent) = self.stack.last_mut() {
            child.free_form =
                parent.free_form || matches!(parent.key, Key::UserContext | Key::Parameters);
            if parent.key == Key::UserContext && !parent.free_form {
                child.is_user_context = true;
                parent.user_context_at = Some(after_brace);
                if let Some(comment) = parent.comment.take() {
                    self.emit.verbatim(&format!("\"comment\":{comment}"));
                    child.entries = 1;
                }
            }
        }
        self.stack.push(child);
        self.expect = Expect::FirstKey;
    }

    fn close(&mut self, bracket: char) {
        if matches!(self.expect, Expect::NextKey | Expect::NextElement) {
            self.extraneous_comma();
        }
        if let Some(frame) = self.stack.pop()
            && let Some(comment) = frame.comment
        {
            let separator = if frame.entries > 0 { "," } else { "" };
            self.emit.verbatim(&format!(
                "{separator}\"user-context\":{{\"comment\":{comment}}}"
            ));
        }
        self.emit.close(bracket);
        self.after_value();
    }

    fn after_value(&mut self) {
        self.last_comma = None;
        self.expect = if self.stack.is_empty() {
            Expect::Eof
        } else {
            Expect::CommaOrClose
        };
    }

    fn expected(&self, expect: Expect) -> &'static str {
        match (expect, self.top()) {
            (Expect::Document, _) => "a JSON value",
            (Expect::FirstKey, _) => "a map key (a string) or '}'",
            (Expect::NextKey, _) => "a map key (a string) or '}' after ','",
            (Expect::Colon, _) => "':' after map key",
            (Expect::MemberValue, _) => "a value after ':'",
            (Expect::FirstElement, _) => "a value or ']'",
            (Expect::NextElement, _) => "a value or ']' after ','",
            (Expect::CommaOrClose, Some(Container::Map)) => "',' or '}' after map value",
            (Expect::CommaOrClose, _) => "',' or ']' after list element",
            (Expect::Eof, _) => "end of file after the top-level value",
        }
    }

    /// The output text and the positions of the extraneous commas.
    pub(super) fn finish(self) -> (String, Vec<Pos>) {
        (self.emit.finish(), self.extra_commas)
    }
}

fn is_value_start(token: &Token<'_>) -> bool {
    matches!(
        token,
        Token::BeginMap
            | Token::BeginList
            | Token::Str(_)
            | Token::Int(_)
            | Token::Float(_)
            | Token::Bool(_)
            | Token::Null
    )
}
