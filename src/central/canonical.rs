//! The canonical JSON of a config (object keys sorted, no whitespace) and its
//! SHA-256: the content hash that config bodies are stored under, once each.
//! Configs reach 50 MB. Kea writes every object's keys sorted, so a config-get
//! reply is canonicalised in one pass that writes as it parses; text with keys
//! out of order goes through a borrowed tree (`Node`: strings point into the
//! input) rather than a `serde_json::Value`.

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::fmt;

/// A config in canonical form with its content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalConfig {
    /// Lower-case hex SHA-256 of `json`.
    pub hash: String,
    /// The canonical JSON text.
    pub json: String,
}

impl CanonicalConfig {
    /// Canonicalises a config given as JSON text.
    pub fn of_json(text: &str) -> Result<CanonicalConfig, serde_json::Error> {
        if let Some(written) = in_key_order(text) {
            return Ok(CanonicalConfig::from_written(written));
        }
        let node: Node<'_> = serde_json::from_str(text)?;
        Ok(CanonicalConfig::from_node(&node))
    }

    /// Canonicalises a parsed config.
    pub fn of(config: &Value) -> CanonicalConfig {
        CanonicalConfig::from_node(&Node::from_value(config))
    }

    fn from_node(node: &Node<'_>) -> CanonicalConfig {
        let mut out = Vec::new();
        write_canonical(node, &mut out);
        CanonicalConfig::from_written(out)
    }

    fn from_written(out: Vec<u8>) -> CanonicalConfig {
        // Only valid UTF-8 is ever written (JSON text, escaped strings, numbers).
        let json = String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let hash = sha256_hex(json.as_bytes());
        CanonicalConfig { hash, json }
    }
}

/// `value` as compact JSON with every object's keys in byte order, so two
/// configs that differ only in key order get the same text.
pub fn canonical_json(value: &Value) -> String {
    CanonicalConfig::of(value).json
}

pub use crate::digest::sha256_hex;

/// A JSON value whose strings borrow from the input when they can.
enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    fn from_value(value: &'a Value) -> Node<'a> {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(n.clone()),
            Value::String(s) => Node::String(Cow::Borrowed(s)),
            Value::Array(items) => Node::Array(items.iter().map(Node::from_value).collect()),
            Value::Object(map) => Node::Object(
                map.iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Node::from_value(v)))
                    .collect(),
            ),
        }
    }
}

fn write_canonical(node: &Node<'_>, out: &mut Vec<u8>) {
    match node {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Node::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Node::String(s) => write_string(s, out),
        Node::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Node::Object(entries) => {
            let mut sorted: Vec<&(Cow<'_, str>, Node<'_>)> = entries.iter().collect();
            // Stable, so of repeated keys the last one (the one serde_json keeps) ends each run.
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(b'{');
            let mut first = true;
            for (i, (key, item)) in sorted.iter().map(|e| (&e.0, &e.1)).enumerate() {
                if sorted.get(i + 1).is_some_and(|next| next.0 == *key) {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                write_string(key, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
    }
}

/// `text` in canonical form, written in one pass, when every object's keys
/// come in strictly rising byte order (as Kea writes them). None when one
/// does not (or repeats), and on a syntax error: the tree path then sorts,
/// or says what is wrong.
fn in_key_order(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Emit { out: &mut out }.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(out)
}

/// Writes the value it is fed in canonical form as it is parsed; fails on
/// an object whose keys are not in rising order.
struct Emit<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Emit<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Emit<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    // Each scalar is written as `write_canonical` writes its `Node`.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        write_canonical(&Node::Null, self.out);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        write_canonical(&Node::Bool(b), self.out);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        write_canonical(&Node::Number(n.into()), self.out);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        write_canonical(&Node::Number(n.into()), self.out);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<(), E> {
        let node = NodeVisitor.visit_f64::<E>(n)?;
        write_canonical(&node, self.out);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        write_string(s, self.out);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.out;
        out.push(b'[');
        let mut first = true;
        loop {
            if !first {
                out.push(b',');
            }
            if seq.next_element_seed(Emit { out: &mut *out })?.is_none() {
                if !first {
                    out.pop(); // The comma written for an element that did not come.
                }
                break;
            }
            first = false;
        }
        out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        out.push(b'{');
        let mut last: Option<Cow<'de, str>> = None;
        while let Some(Key(key)) = map.next_key()? {
            if let Some(last) = &last {
                if key <= *last {
                    return Err(de::Error::custom("object keys not in rising order"));
                }
                out.push(b',');
            }
            write_string(&key, out);
            out.push(b':');
            map.next_value_seed(Emit { out: &mut *out })?;
            last = Some(key);
        }
        out.push(b'}');
        Ok(())
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    // serde_json's own escaping; writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Node<'de>, E> {
        Number::from_f64(n)
            .map(Node::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s.to_string())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(Key(key)) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Node::Object(entries))
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).expect("should succeed");
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).expect("should succeed");
        assert_eq!(canonical_json(&a), r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#);
        assert_eq!(CanonicalConfig::of(&a), CanonicalConfig::of(&b));
    }

    #[test]
    fn content_changes_change_the_hash() {
        let a = CanonicalConfig::of(&json!({"Dhcp4": {"valid-lifetime": 4000}}));
        let b = CanonicalConfig::of(&json!({"Dhcp4": {"valid-lifetime": 4001}}));
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.hash.len(), 64);
    }

    #[test]
    fn text_and_value_paths_agree() {
        let texts = [
            r#"{"b":[1,-2,3.5,1e300,0.1,18446744073709551615,-9223372036854775808],"a":"\u0041\n\u00e9\"","c":{"z":null,"y":true,"x":false}}"#,
            r#"{"k":1,"k":2,"\u006b2":"v","é":[],"":{}}"#,
            r#"[{"Dhcp4":{"subnet4":[{"id":1,"subnet":"192.0.2.0/24"}]}}]"#,
        ];
        for text in texts {
            let value: Value = serde_json::from_str(text).expect("should succeed");
            assert_eq!(
                CanonicalConfig::of_json(text).expect("should succeed"),
                CanonicalConfig::of(&value),
                "{text}"
            );
        }
        assert_eq!(
            canonical_json(&serde_json::from_str(texts[1]).expect("should succeed")),
            r#"{"":{},"k":2,"k2":"v","é":[]}"#
        );
        assert!(CanonicalConfig::of_json("{\"a\":").is_err());
    }

    #[test]
    fn one_pass_and_tree_write_the_same() {
        let in_order = [
            r#"{"a":[1,-2,3.5,1e300,0.1,18446744073709551615,-9223372036854775808,[],{}],"b":"\u0041\n\u00e9\"","c":{"x":false,"y":true,"z":null}}"#,
            "{ \"Dhcp4\": { \"subnet4\": [ { \"id\": 1, \"subnet\": \"192.0.2.0/24\" } ], \"valid-lifetime\": 4000 } }",
            r#"[{"":{},"a":[[]],"é":"x"}]"#,
            "7",
            r#""s""#,
        ];
        for text in in_order {
            let node: Node<'_> = serde_json::from_str(text).expect("should succeed");
            let mut tree = Vec::new();
            write_canonical(&node, &mut tree);
            assert_eq!(in_key_order(text), Some(tree), "{text}");
        }
        // Sorted by the tree instead: keys out of order, repeated, or escaped out of order.
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":{"y":1,"x":2}}"#,
            r#"{"k":1,"k":2}"#,
            r#"{"\u0062":1,"a":2}"#,
        ] {
            assert_eq!(in_key_order(text), None, "{text}");
            let value: Value = serde_json::from_str(text).expect("should succeed");
            assert_eq!(
                CanonicalConfig::of_json(text).expect("should succeed"),
                CanonicalConfig::of(&value),
                "{text}"
            );
        }
        assert_eq!(in_key_order(r#"{"a":1} x"#), None);
        assert!(CanonicalConfig::of_json(r#"{"a":1} x"#).is_err());
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(canonical_json(&json!({"q\"": "a\nb"})), r#"{"q\"":"a\nb"}"#);
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
