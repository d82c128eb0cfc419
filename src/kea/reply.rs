//! Kea's answers: result codes as typed outcomes, arguments kept as raw JSON
//! so a 50 MB config-get is never turned into a tree unless someone asks.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;

/// What Kea's `result` code says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// 0: the command succeeded.
    Success,
    /// 1: the command failed (Kea's text says why).
    Error,
    /// 2: this Kea does not know the command (e.g. config-hash-get on 2.2).
    Unsupported,
    /// 3: succeeded, nothing to return.
    Empty,
    /// 4: conflicts with the current state (Kea 2.4+).
    Conflict,
    /// 5: failed with the config partly altered and not rolled back (Kea 3.1.7+).
    PartiallyApplied,
    /// Any other code, e.g. kea-ctrl-agent's 401/403.
    Other(i64),
}

impl Outcome {
    /// Maps Kea's numeric result code.
    pub fn from_code(code: i64) -> Outcome {
        match code {
            0 => Outcome::Success,
            1 => Outcome::Error,
            2 => Outcome::Unsupported,
            3 => Outcome::Empty,
            4 => Outcome::Conflict,
            5 => Outcome::PartiallyApplied,
            other => Outcome::Other(other),
        }
    }

    /// Kea's numeric result code.
    pub fn code(self) -> i64 {
        match self {
            Outcome::Success => 0,
            Outcome::Error => 1,
            Outcome::Unsupported => 2,
            Outcome::Empty => 3,
            Outcome::Conflict => 4,
            Outcome::PartiallyApplied => 5,
            Outcome::Other(code) => code,
        }
    }

    /// True for 0 (success) and 3 (empty), the codes that are not failures.
    pub fn is_ok(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Empty)
    }
}

/// One reply of one Kea daemon.
#[derive(Debug)]
pub struct Reply {
    pub outcome: Outcome,
    /// Kea's `text`, empty when Kea sent none.
    pub text: String,
    /// Kea's `arguments`, verbatim.
    pub arguments: Option<Box<RawValue>>,
}

/// A reply as read, `arguments` still pointing into the body.
#[derive(Deserialize)]
struct WireReply<'a> {
    result: i64,
    #[serde(default)]
    text: Option<String>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

/// Why a reply body could not be read as a Kea reply.
#[derive(Debug)]
pub enum BadReply {
    /// Not one complete JSON value: truncated, or not JSON at all.
    NotJson(serde_json::Error),
    /// JSON, but not shaped like a Kea reply (no numeric `result`, an empty list).
    NotAReply(String),
}

impl std::fmt::Display for BadReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadReply::NotJson(e) => write!(f, "not complete JSON ({e})"),
            BadReply::NotAReply(why) => f.write_str(why),
        }
    }
}

impl Reply {
    /// Reads a reply body: a single object (unix socket) or a list of them
    /// (kea-ctrl-agent, direct HTTP sockets), of which the first is ours.
    /// The arguments keep the body's buffer: a config-get of tens of MB is
    /// held once, not copied. Public for the fuzz targets (fuzz/).
    pub fn parse(body: Vec<u8>) -> Result<Reply, BadReply> {
        let (outcome, text, arguments) = {
            let trimmed = body.trim_ascii_start();
            let wire: WireReply = if trimmed.first() == Some(&b'[') {
                let mut list: Vec<WireReply> =
                    serde_json::from_slice(trimmed).map_err(BadReply::NotJson)?;
                if list.is_empty() {
                    return Err(BadReply::NotAReply("an empty list".into()));
                }
                list.swap_remove(0)
            } else {
                serde_json::from_slice(trimmed).map_err(|e| {
                    if e.is_data() {
                        BadReply::NotAReply(format!("JSON without a numeric 'result' ({e})"))
                    } else {
                        BadReply::NotJson(e)
                    }
                })?
            };
            let arguments = wire.arguments.map(|raw| span(&body, raw.get()));
            (
                Outcome::from_code(wire.result),
                wire.text.unwrap_or_default(),
                arguments,
            )
        };
        let arguments = match arguments {
            Some(range) => Some(raw_in_place(body, range).map_err(BadReply::NotJson)?),
            None => None,
        };
        Ok(Reply {
            outcome,
            text,
            arguments,
        })
    }

    /// The reply as one JSON object, the shape the unix socket uses.
    pub fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            result: i64,
            #[serde(skip_serializing_if = "str::is_empty")]
            text: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            arguments: Option<&'a RawValue>,
        }
        let out = Out {
            result: self.outcome.code(),
            text: &self.text,
            arguments: self.arguments.as_deref(),
        };
        serde_json::to_string(&out).unwrap_or_default()
    }
}

/// Removes the top-level `hash` key from config-get's arguments, which
/// config-test and config-set refuse ("Unsupported 'hash' parameter.").
/// Returns the cleaned arguments and the hash, if there was one (the last,
/// should the key repeat). The text is edited in place: a config of tens of
/// MB is never copied.
pub fn strip_hash(
    arguments: Box<RawValue>,
) -> Result<(Box<RawValue>, Option<String>), serde_json::Error> {
    // Only the top level is parsed; the (possibly huge) config stays raw.
    let (hash, cuts) = {
        let text = arguments.get();
        let Members(members) = serde_json::from_str(text)?;
        let hashes: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].0 == "hash")
            .collect();
        let Some(&last) = hashes.last() else {
            return Ok((arguments, None));
        };
        let hash = serde_json::from_str::<String>(members[last].1.get())?;
        let cuts: Vec<(Range<usize>, Option<usize>)> = hashes
            .iter()
            .map(|&i| {
                let value = span(text.as_bytes(), members[i].1.get());
                let previous_end = i
                    .checked_sub(1)
                    .map(|p| span(text.as_bytes(), members[p].1.get()).end);
                (value, previous_end)
            })
            .collect();
        (hash, cuts)
    };
    let mut text = String::from(Box::<str>::from(arguments));
    // Last first: each cut ends at its own member, so the offsets of the
    // members before it still hold.
    for (value, previous_end) in cuts.into_iter().rev() {
        let cut = match previous_end {
            Some(end) => end..value.end,
            None => first_member_span(&text, value),
        };
        text.replace_range(cut, "");
    }
    Ok((RawValue::from_string(text)?, Some(hash)))
}

/// The members of a JSON object in order, repeated keys included: a map type
/// keeps the last value at the first key's place, and cutting by it would
/// cut what stands between the two.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Where `part`, a slice borrowed from `whole`, lies in it.
fn span(whole: &[u8], part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

/// The bytes to cut to remove the first member of the object `text`, whose
/// value is at `value`: from the opening brace through the comma after it.
/// (Any other member is cut from the end of the value before it.)
fn first_member_span(text: &str, value: Range<usize>) -> Range<usize> {
    let open = text.find('{').map_or(0, |brace| brace + 1);
    let rest = &text[value.end..];
    let after = rest.len() - rest.trim_start().len();
    let end = match rest.trim_start().starts_with(',') {
        true => value.end + after + 1,
        false => value.end,
    };
    open..end
}

/// `body[range]` as a raw JSON value, reusing the body's allocation.
fn raw_in_place(
    mut body: Vec<u8>,
    range: Range<usize>,
) -> Result<Box<RawValue>, serde_json::Error> {
    body.truncate(range.end);
    body.drain(..range.start);
    // The range was a &str borrowed from this body: valid UTF-8.
    let text = String::from_utf8(body).map_err(serde::de::Error::custom)?;
    RawValue::from_string(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_kea_result_codes() {
        let table = [
            (0, Outcome::Success),
            (1, Outcome::Error),
            (2, Outcome::Unsupported),
            (3, Outcome::Empty),
            (4, Outcome::Conflict),
            (5, Outcome::PartiallyApplied),
            (401, Outcome::Other(401)),
        ];
        for (code, outcome) in table {
            assert_eq!(Outcome::from_code(code), outcome);
            assert_eq!(outcome.code(), code);
        }
    }

    #[test]
    fn parses_unix_and_list_wrapped_replies() {
        let unix = Reply::parse(
            br#"{ "result": 2, "text": "'config-hash-get' command not supported." }"#.to_vec(),
        )
        .expect("unix reply");
        assert_eq!(unix.outcome, Outcome::Unsupported);
        assert!(unix.text.contains("not supported"));

        let http = Reply::parse(br#"[ { "arguments": {"a": [1, 2]}, "result": 0 } ]"#.to_vec())
            .expect("list");
        assert_eq!(http.outcome, Outcome::Success);
        assert_eq!(http.arguments.expect("args").get(), r#"{"a": [1, 2]}"#);

        let unauthorized =
            Reply::parse(br#"{ "result": 401, "text": "Unauthorized" }"#.to_vec()).expect("401");
        assert_eq!(unauthorized.outcome, Outcome::Other(401));
    }

    #[test]
    fn truncated_or_foreign_bodies_are_not_replies() {
        let cases: [&[u8]; 5] = [
            br#"{ "arguments": { "Dhcp4": { "subnet4": [ "#,
            b"",
            b"<html>502</html>",
            br#"{"text": "no result"}"#,
            b"[]",
        ];
        for body in cases {
            assert!(
                Reply::parse(body.to_vec()).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn strip_hash_keeps_config_and_returns_hash() {
        let raw = RawValue::from_string(
            r#"{"Dhcp4": {"subnet4": [], "hash": "inner stays"}, "hash": "ABCD"}"#.into(),
        )
        .expect("raw");
        let (cleaned, hash) = strip_hash(raw).expect("strip");
        assert_eq!(hash.as_deref(), Some("ABCD"));
        let value: serde_json::Value = serde_json::from_str(cleaned.get()).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"Dhcp4": {"subnet4": [], "hash": "inner stays"}})
        );
    }

    #[test]
    fn strip_hash_cuts_the_member_wherever_it_stands() {
        let table = [
            (
                r#"{"Dhcp4": {"a": 1}, "hash": "AB"}"#,
                r#"{"Dhcp4": {"a": 1}}"#,
            ),
            (
                r#"{ "hash" : "AB" , "Dhcp4": {"a": 1} }"#,
                r#"{ "Dhcp4": {"a": 1} }"#,
            ),
            (
                r#"{"hash":"AB","Dhcp4":{},"x":[]}"#,
                r#"{"Dhcp4":{},"x":[]}"#,
            ),
            (r#"{"a":1,"hash":"AB","b":2}"#, r#"{"a":1,"b":2}"#),
            (r#"{"hash": "AB"}"#, r#"{}"#),
            (r#"{"Dhcp4": {}}"#, r#"{"Dhcp4": {}}"#),
        ];
        for (given, want) in table {
            let raw = RawValue::from_string(given.into()).expect("raw");
            let (cleaned, hash) = strip_hash(raw).expect("strip");
            assert_eq!(cleaned.get(), want, "{given}");
            assert_eq!(hash.is_some(), given.contains("hash"), "{given}");
        }
        let raw = RawValue::from_string(r#"{"hash": 7}"#.into()).expect("raw");
        assert!(strip_hash(raw).is_err(), "a hash that is not a string");
    }

    #[test]
    fn strip_hash_removes_every_hash_of_a_map_with_duplicate_keys() {
        // Kea never repeats a key, but a JSON object may: serde keeps the
        // last value at the first key's position, so cutting "from the first
        // hash to the last value" would also cut what stands between them.
        let table = [
            (r#"{"hash":"A","x":1,"hash":"B"}"#, r#"{"x":1}"#, "B"),
            (
                r#"{"hash":"A","x":1,"hash":"B","y":2}"#,
                r#"{"x":1,"y":2}"#,
                "B",
            ),
            (
                r#"{"x":1,"hash":"A","y":2,"hash":"B"}"#,
                r#"{"x":1,"y":2}"#,
                "B",
            ),
            (r#"{"hash":"A","hash":"B","x":1}"#, r#"{"x":1}"#, "B"),
        ];
        for (given, want, want_hash) in table {
            let raw = RawValue::from_string(given.into()).expect("raw");
            let (cleaned, hash) = strip_hash(raw).expect("strip");
            let cleaned: serde_json::Value = serde_json::from_str(cleaned.get()).expect("json");
            let want: serde_json::Value = serde_json::from_str(want).expect("json");
            assert_eq!(cleaned, want, "{given}");
            assert_eq!(hash.as_deref(), Some(want_hash), "{given}");
        }
    }

    #[test]
    fn reply_arguments_are_exactly_the_arguments_text() {
        let reply = Reply::parse(
            br#"  { "result": 0, "arguments": { "Dhcp4": {"x": "\u00e9"} } , "text": "t" }"#
                .to_vec(),
        )
        .expect("reply");
        assert_eq!(
            reply.arguments.expect("args").get(),
            r#"{ "Dhcp4": {"x": "\u00e9"} }"#
        );
        assert_eq!(reply.text, "t");
        let null = Reply::parse(br#"{"result": 0, "arguments": null}"#.to_vec()).expect("null");
        assert!(null.arguments.is_none());
    }

    #[test]
    fn requests_carry_service_only_when_asked() {
        let body =
            String::from_utf8(Command::ConfigReload.to_request(Some(crate::kea::Service::Dhcp4)))
                .expect("utf8");
        assert_eq!(body, r#"{"command":"config-reload","service":["dhcp4"]}"#);
        let body = String::from_utf8(
            Command::ConfigWrite(Some("/etc/kea/x.conf".into())).to_request(None),
        )
        .expect("utf8");
        assert_eq!(
            body,
            r#"{"command":"config-write","arguments":{"filename":"/etc/kea/x.conf"}}"#
        );
    }

    use crate::kea::Command;
}
