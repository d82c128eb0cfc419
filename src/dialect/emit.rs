//! Writes the output JSON text as tokens arrive (compact), and re-indents it
//! afterwards when a person is going to read it.

use std::fmt::Write as _;

/// The compact output under construction; the grammar decides what goes where.
#[derive(Debug)]
pub(super) struct Emitter {
    out: String,
}

impl Emitter {
    pub(super) fn new(capacity: usize) -> Self {
        Emitter {
            out: String::with_capacity(capacity),
        }
    }

    /// Bytes written so far: an offset to insert at later.
    pub(super) fn len(&self) -> usize {
        self.out.len()
    }

    pub(super) fn open(&mut self, bracket: char) {
        self.out.push(bracket);
    }

    /// Before each map key or list element.
    pub(super) fn element(&mut self, first: bool) {
        if !first {
            self.out.push(',');
        }
    }

    pub(super) fn colon(&mut self) {
        self.out.push(':');
    }

    pub(super) fn close(&mut self, bracket: char) {
        self.out.push(bracket);
    }

    /// Strings (quotes included) and keywords, already valid JSON.
    pub(super) fn verbatim(&mut self, text: &str) {
        self.out.push_str(text);
    }

    /// Inserts already valid JSON text at an earlier offset (rare: a Kea
    /// `comment` that follows its map's `user-context`).
    pub(super) fn insert(&mut self, at: usize, text: &str) {
        self.out.insert_str(at, text);
    }

    /// The byte at an earlier offset.
    pub(super) fn byte_at(&self, at: usize) -> Option<u8> {
        self.out.as_bytes().get(at).copied()
    }

    pub(super) fn int(&mut self, value: i64) {
        // Writing to a String cannot fail.
        let _ = write!(self.out, "{value}");
    }

    /// serde_json's float form keeps a float a float (`1.0`, not `1`).
    pub(super) fn float(&mut self, number: &serde_json::Number) {
        let _ = write!(self.out, "{number}");
    }

    pub(super) fn finish(self) -> String {
        self.out
    }
}

/// Re-indents compact JSON in serde_json's pretty layout: 2-space indent,
/// `"key": value`, one element per line, empty `{}`/`[]` inline.
pub(super) fn pretty(compact: &str) -> String {
    let bytes = compact.as_bytes();
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut i = 0;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Copy the whole string, escapes included.
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                out.push_str(&compact[start..=i.min(bytes.len() - 1)]);
            }
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                if bytes.get(i + 1) == Some(&close) {
                    out.push(open as char);
                    out.push(close as char);
                    i += 1;
                } else {
                    out.push(open as char);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            close @ (b'}' | b']') => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(close as char);
            }
            b',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            b':' => out.push_str(": "),
            _ => {
                // Numbers and keywords: copy up to the next structural byte.
                let start = i;
                while i + 1 < bytes.len() && !matches!(bytes[i + 1], b',' | b']' | b'}' | b':') {
                    i += 1;
                }
                out.push_str(&compact[start..=i]);
            }
        }
        i += 1;
    }
    out
}
