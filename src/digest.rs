//! SHA-256 digests as lower-case hex: file contents, Kea configs, events.

use sha2::{Digest, Sha256};
use std::fmt::Write;

/// Lower-case hex of a digest (or any bytes).
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A digest of a JSON document's value, equal for two documents exactly
/// when their `serde_json::Value`s are equal (maps in any order, numbers
/// as serde_json tells them apart, strings after unescaping), computed
/// as a stream: a config of tens of MB is never built as a tree.
pub fn json_value_digest(json: &str) -> Result<[u8; 32], serde_json::Error> {
    let mut hasher = Sha256::new();
    let mut reader = serde_json::Deserializer::from_str(json);
    serde::de::DeserializeSeed::deserialize(ValueDigest(&mut hasher), &mut reader)?;
    reader.end()?;
    Ok(hasher.finalize().into())
}

/// Feeds one JSON value's tokens into a hasher (tag, then content).
struct ValueDigest<'h>(&'h mut Sha256);

impl<'de> serde::de::DeserializeSeed<'de> for ValueDigest<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ValueDigest<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.update(b"n");
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.update(if v { b"t" } else { b"f" });
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.update(b"u");
        self.0.update(v.to_le_bytes());
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.update(b"i");
        self.0.update(v.to_le_bytes());
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.update(b"d");
        self.0.update(v.to_le_bytes());
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.update(b"s");
        self.0.update((v.len() as u64).to_le_bytes());
        self.0.update(v.as_bytes());
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.update(b"[");
        while seq.next_element_seed(ValueDigest(&mut *self.0))?.is_some() {}
        self.0.update(b"]");
        Ok(())
    }

    /// Each member is digested alone and the members' digests sorted, so
    /// order does not count (as for `Value`); a later duplicate key
    /// replaces an earlier one there, here both count (Kea refuses those).
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let mut member = Sha256::new();
            ValueDigest(&mut member).visit_str::<A::Error>(&key)?;
            map.next_value_seed(ValueDigest(&mut member))?;
            members.push(<[u8; 32]>::from(member.finalize()));
        }
        members.sort_unstable();
        self.0.update(b"{");
        self.0.update((members.len() as u64).to_le_bytes());
        for member in &members {
            self.0.update(member);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_value_digest_agrees_with_value_equality() {
        let same = [
            (r#"{"a": 1, "b": [1, 2]}"#, r#"{ "b" : [1,2], "a":1 }"#),
            (r#""\u00e9""#, r#""é""#),
            (
                r#"{"x": {"y": null, "z": true}}"#,
                r#"{"x": {"z": true, "y": null}}"#,
            ),
            ("1.5", "1.50"),
            ("-3", "-3"),
        ];
        let different = [
            (r#"{"a": 1}"#, r#"{"a": 1, "b": 1}"#),
            ("[1, 2]", "[2, 1]"),
            ("1", "1.0"),
            ("1", "-1"),
            (r#""1""#, "1"),
            (r#"{"a": [1]}"#, r#"{"a": 1}"#),
            (r#"["ab", "c"]"#, r#"["a", "bc"]"#),
            (r#"[[], []]"#, r#"[[[]]]"#),
            ("{}", "[]"),
            ("null", "false"),
        ];
        for (a, b) in same.iter().chain(different.iter()) {
            let equal: bool = serde_json::from_str::<serde_json::Value>(a).expect("a")
                == serde_json::from_str::<serde_json::Value>(b).expect("b");
            let digests_equal =
                json_value_digest(a).expect("a") == json_value_digest(b).expect("b");
            assert_eq!(digests_equal, equal, "{a} vs {b}");
        }
        assert!(json_value_digest("{} x").is_err());
        assert!(json_value_digest("{").is_err());
    }

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
