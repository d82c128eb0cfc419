//! Tokens: comments, strings, numbers, keywords and the characters Kea refuses.

use super::{error, expand, json};
use crate::dialect::Style;

#[test]
fn accepted_text_becomes_standard_json() {
    let cases: &[(&str, &str)] = &[
        // The three comment forms, anywhere between tokens.
        ("# head\n{\"a\": 1} # tail", r#"{"a":1}"#),
        ("// head\n{\"a\": 1} // tail", r#"{"a":1}"#),
        ("/* head\n * more */{\"a\": /* in */ 1}/**/", r#"{"a":1}"#),
        ("{\"a\":/*/ not closed yet */1}", r#"{"a":1}"#),
        ("{\"a\": 1 /* ** */}", r#"{"a":1}"#),
        // Comment markers inside strings are string text.
        (
            r#"{"a#b": "http://x", "c": "/*x*/", "d": "<?include \"x\"?>"}"#,
            r#"{"a#b":"http://x","c":"/*x*/","d":"<?include \"x\"?>"}"#,
        ),
        // Whitespace: space, tab, CR, LF.
        ("\r\n\t{ \"a\" :\t1 }\r\n", r#"{"a":1}"#),
        // Escapes are copied verbatim: Kea's set is a subset of JSON's.
        (
            r#"["\"\\\/\b\f\n\r\t", "\u00e9\u00FF\u0000"]"#,
            r#"["\"\\\/\b\f\n\r\t","\u00e9\u00FF\u0000"]"#,
        ),
        ("[\"caf\u{e9} \u{1f600}\"]", "[\"caf\u{e9} \u{1f600}\"]"),
        // Ints: leading zeros allowed, emitted in plain decimal.
        ("[0100, -0100, 0, -0, 7]", "[100,-100,0,0,7]"),
        (
            "[9223372036854775807, -9223372036854775808]",
            "[9223372036854775807,-9223372036854775808]",
        ),
        // Floats: whatever the float rule matches beyond the int rule.
        (
            "[.5, +.5, 5., +1, 1e2, 1E+2]",
            "[0.5,0.5,5.0,1.0,100.0,100.0]",
        ),
        ("[-.5e-3, 00.5, 1.25, 1e-400]", "[-0.0005,0.5,1.25,0.0]"),
        ("[true, false, null]", "[true,false,null]"),
        ("\"just a string\"", "\"just a string\""),
        ("42", "42"),
    ];
    for (input, expected) in cases {
        assert_eq!(json(input), *expected, "input {input:?}");
    }
}

#[test]
fn bytes_that_are_not_utf8_are_fine_in_comments() {
    let text = b"# caf\xe9\n// \xff\xfe\n/* \xc0 */ {\"a\": 1}";
    let expanded = expand(text, Style::Compact).expect("accepted");
    assert_eq!(expanded.json, r#"{"a":1}"#);
}

#[test]
fn refused_tokens_are_located_and_explained() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"{\"a\": True}",
            "main.conf:1:7: JSON true reserved keyword is lower case only",
        ),
        (
            b"[FALSE]",
            "main.conf:1:2: JSON false reserved keyword is lower case only",
        ),
        (
            b"[nUll]",
            "main.conf:1:2: JSON null reserved keyword is lower case only",
        ),
        (b"[nul]", "main.conf:1:2: invalid character 'n'"),
        (b"{\"a\": 1} x", "main.conf:1:10: invalid character 'x'"),
        (b"{'a': 1}", "main.conf:1:2: invalid character '''"),
        (b"[1] / 2", "main.conf:1:5: invalid character '/'"),
        (b"\xef\xbb\xbf{}", "main.conf:1:1: invalid character U+FEFF"),
        (b"[1]\n\x00", "main.conf:2:1: invalid character U+0000"),
        (b"[\xff]", "main.conf:1:2: invalid character byte 0xFF"),
        // Strings.
        (b"{\"a\":\n  \"abc", "main.conf:2:3: unterminated string"),
        (b"[\"abc\\", "main.conf:1:6: unterminated string"),
        (
            b"[\"a\tb\"]",
            "main.conf:1:4: invalid control character U+0009 in string",
        ),
        (
            b"[\"a\nb\"]",
            "main.conf:1:4: invalid control character U+000A (newline)",
        ),
        (
            b"[\"a\\xb\"]",
            "main.conf:1:4: bad escape in string: '\\' followed by 'x'",
        ),
        (
            b"[\"\\u00g0\"]",
            "main.conf:1:3: bad escape '\\u' in string (needs 4 hex digits)",
        ),
        (
            b"[\"x\\u0100\"]",
            "main.conf:1:4: unsupported unicode escape '\\u0100', Kea only accepts \\u0000-\\u00ff",
        ),
        (
            b"[\"ok\", \"caf\xe9\"]",
            "main.conf:1:12: invalid UTF-8 in string",
        ),
        // Comments.
        (
            b"{\"a\": 1}\n\n  /* never\n closed",
            "main.conf:3:3: comment not closed ('/*' opened at line 3)",
        ),
        (b"[1] /", "main.conf:1:5: invalid character '/'"),
        // Numbers.
        (b"[-]", "main.conf:1:2: invalid number '-'"),
        (b"[.]", "main.conf:1:2: invalid number '.'"),
        (b"[+]", "main.conf:1:2: invalid number '+'"),
        (b"[.e5]", "main.conf:1:2: invalid number '.e5'"),
        (b"[e5]", "main.conf:1:2: invalid number 'e5'"),
        (b"[5e]", "main.conf:1:3: invalid character 'e'"),
        (b"[1e400]", "main.conf:1:2: float out of range: 1e400"),
        (
            b"[9223372036854775808]",
            "main.conf:1:2: integer out of range (64 bits): 9223372036854775808",
        ),
    ];
    for (input, expected) in cases {
        let message = error(input);
        assert!(
            message.starts_with(expected),
            "input {:?}\n  got      {message}\n  expected {expected}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn escapes_decode_like_json() {
    let expanded = expand(br#"{"e": "\u00e9", "n": "a\nb"}"#, Style::Compact).expect("accepted");
    let value = expanded.to_value().expect("valid JSON");
    assert_eq!(value["e"], "\u{e9}");
    assert_eq!(value["n"], "a\nb");
}

#[test]
fn floats_stay_floats_and_ints_stay_ints() {
    let expanded = expand(b"[1, 1.0, +1, 0100, 1e2]", Style::Compact).expect("accepted");
    let value = expanded.to_value().expect("valid JSON");
    let kinds: Vec<bool> = value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.is_i64())
        .collect();
    assert_eq!(kinds, [true, false, false, true, false]);
}
