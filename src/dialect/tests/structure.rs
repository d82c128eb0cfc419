//! Structure: one JSON value, Kea's extraneous commas, output layout.

use super::{error, expand, json};
use crate::dialect::Style;

#[test]
fn extraneous_commas_are_dropped_with_a_warning_where_kea_warns() {
    // Columns as reported by kea-dhcp4 -t: the comma followed by ',' or a closer.
    type Case = (&'static str, &'static str, &'static [(usize, usize)]);
    let cases: &[Case] = &[
        (r#"{"a":1,}"#, r#"{"a":1}"#, &[(1, 7)]),
        ("[1,2,]", "[1,2]", &[(1, 5)]),
        (r#"{"a":[1,],}"#, r#"{"a":[1]}"#, &[(1, 8), (1, 10)]),
        ("[\n  1,\n  2,\n]", "[1,2]", &[(3, 4)]),
        // Kea 2.2 also accepts doubled commas (not_empty_list COMMA is a rule of its own).
        ("[1,,2]", "[1,2]", &[(1, 3)]),
        (r#"{"a":1,,"b":2}"#, r#"{"a":1,"b":2}"#, &[(1, 7)]),
        ("[1,,]", "[1]", &[(1, 3), (1, 4)]),
        ("[1,2]", "[1,2]", &[]),
    ];
    for (input, expected, warned) in cases {
        let expanded = expand(input.as_bytes(), Style::Compact).expect("accepted");
        assert_eq!(expanded.json, *expected, "input {input:?}");
        let got: Vec<(usize, usize)> = expanded
            .warnings
            .iter()
            .map(|w| (w.at.line, w.at.col))
            .collect();
        assert_eq!(got, *warned, "warnings for {input:?}");
        for warning in &expanded.warnings {
            assert_eq!(warning.message, "extraneous comma");
            assert!(warning.to_string().starts_with("main.conf:"), "{warning}");
        }
        expanded.to_value().expect("valid JSON");
    }
}

#[test]
fn displayed_warning_names_file_line_and_column() {
    let expanded = expand(b"{\n  \"a\": 1,\n}", Style::Compact).expect("accepted");
    let shown: Vec<String> = expanded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(shown, ["main.conf:2:9: extraneous comma"]);
}

#[test]
fn structure_errors_say_what_was_expected() {
    let cases: &[(&str, &str)] = &[
        (
            "",
            "main.conf:1:1: expected a JSON value, found end of file",
        ),
        (
            "  # only a comment\n",
            "main.conf:2:1: expected a JSON value, found end of file",
        ),
        (
            r#"{"a": 1} {}"#,
            "main.conf:1:10: expected end of file after the top-level value, found '{'",
        ),
        (
            r#"{"a": 1} "b""#,
            "main.conf:1:10: expected end of file after the top-level value, found string \"b\"",
        ),
        (
            r#"{"a" 1}"#,
            "main.conf:1:6: expected ':' after map key, found integer 1",
        ),
        (
            r#"{"a": 1 "b": 2}"#,
            "main.conf:1:9: expected ',' or '}' after map value, found string \"b\"",
        ),
        (
            r#"{"a": 1]"#,
            "main.conf:1:8: expected ',' or '}' after map value, found ']'",
        ),
        (
            "{\n    \"a\":\n}",
            "main.conf:3:1: expected a value after ':', found '}'",
        ),
        (
            "[1 2]",
            "main.conf:1:4: expected ',' or ']' after list element, found integer 2",
        ),
        (
            "[1}",
            "main.conf:1:3: expected ',' or ']' after list element, found '}'",
        ),
        (
            "{,}",
            "main.conf:1:2: expected a map key (a string) or '}', found ','",
        ),
        ("[,1]", "main.conf:1:2: expected a value or ']', found ','"),
        ("[,]", "main.conf:1:2: expected a value or ']', found ','"),
        (
            "{1: 2}",
            "main.conf:1:2: expected a map key (a string) or '}', found integer 1",
        ),
        (
            r#"{"a": 1, 2}"#,
            "main.conf:1:10: expected a map key (a string) or '}' after ',', found integer 2",
        ),
        (
            "[1, :]",
            "main.conf:1:5: expected a value or ']' after ',', found ':'",
        ),
        (
            "{\"a\": [1, {\"b\": 2}",
            "main.conf:1:19: expected ',' or ']' after list element, found end of file",
        ),
        ("]", "main.conf:1:1: expected a JSON value, found ']'"),
        (":", "main.conf:1:1: expected a JSON value, found ':'"),
    ];
    for (input, expected) in cases {
        assert_eq!(error(input.as_bytes()), *expected, "input {input:?}");
    }
}

#[test]
fn duplicate_keys_are_kept_in_order() {
    assert_eq!(json(r#"{"a": 1, "a": 2}"#), r#"{"a":1,"a":2}"#);
}

#[test]
fn pretty_output_is_serde_json_pretty_and_means_the_same() {
    let text = br#"
        // Kea dialect on the way in
        { "Dhcp4": { "valid-lifetime": 4000, "empty-map": {}, "empty-list": [ ],
          "subnet4": [ { "id": 1, "subnet": "10.0.0.0/8", "pools": [ { "pool": "10.0.0.1 - 10.0.0.9" }, ] } ],
          "nested": [[], [{}], [1, [2.5, -0.0005]], "caf"], "flags": [true, false, null], }, }
    "#;
    let compact = expand(text, Style::Compact).expect("compact");
    let pretty = expand(text, Style::Pretty).expect("pretty");
    let value = compact.to_value().expect("compact parses");
    assert_eq!(pretty.to_value().expect("pretty parses"), value);
    let serde_pretty = serde_json::to_string_pretty(&value).expect("serialize");
    assert_eq!(pretty.json, serde_pretty);
    assert_eq!(
        compact.json,
        serde_json::to_string(&value).expect("serialize")
    );
    assert_eq!(pretty.warnings, compact.warnings);
}

#[test]
fn pretty_scalars_and_empties_stay_on_one_line() {
    let cases: &[(&str, &str)] = &[
        ("5", "5"),
        ("{}", "{}"),
        ("[ ]", "[]"),
        ("[1]", "[\n  1\n]"),
        (r#"{"a": {}}"#, "{\n  \"a\": {}\n}"),
    ];
    for (input, expected) in cases {
        let pretty = expand(input.as_bytes(), Style::Pretty).expect("accepted");
        assert_eq!(pretty.json, *expected, "input {input:?}");
    }
}

#[test]
fn comment_entries_become_user_context_like_kea_stores_them() {
    let cases: &[(&str, &str)] = &[
        (r#"{"comment":"x"}"#, r#"{"user-context":{"comment":"x"}}"#),
        (
            r#"{"a":1,"comment":"x","b":2}"#,
            r#"{"a":1,"b":2,"user-context":{"comment":"x"}}"#,
        ),
        // Merged with the map's own user-context, before or after it.
        (
            r#"{"comment":"x","user-context":{"k":1}}"#,
            r#"{"user-context":{"comment":"x","k":1}}"#,
        ),
        (
            r#"{"user-context":{"k":1},"comment":"x"}"#,
            r#"{"user-context":{"comment":"x","k":1}}"#,
        ),
        (
            r#"{"user-context":{},"comment":"x"}"#,
            r#"{"user-context":{"comment":"x"}}"#,
        ),
        // Nested config maps each get their own.
        (
            r#"{"Dhcp4":{"comment":"s","subnet4":[{"comment":"n","id":1}]}}"#,
            r#"{"Dhcp4":{"subnet4":[{"id":1,"user-context":{"comment":"n"}}],"user-context":{"comment":"s"}}}"#,
        ),
        // Free-form contexts keep `comment` as an ordinary key.
        (
            r#"{"user-context":{"deep":{"comment":"x"}}}"#,
            r#"{"user-context":{"deep":{"comment":"x"}}}"#,
        ),
        (
            r#"{"hooks-libraries":[{"library":"l","parameters":{"comment":"p","l":[{"comment":"q"}]}}]}"#,
            r#"{"hooks-libraries":[{"library":"l","parameters":{"comment":"p","l":[{"comment":"q"}]}}]}"#,
        ),
        // Not a string: left for Kea to refuse.
        (r#"{"comment":1}"#, r#"{"comment":1}"#),
    ];
    for (input, expected) in cases {
        let expanded = expand(input.as_bytes(), Style::Compact).expect("accepted");
        assert_eq!(expanded.json, *expected, "input {input}");
        expanded.to_value().expect("valid JSON");
    }
    for duplicate in [
        r#"{"comment":"x","user-context":{"comment":"y"}}"#,
        r#"{"user-context":{"comment":"y"},"comment":"x"}"#,
        r#"{"comment":"x","comment":"y"}"#,
    ] {
        let error = expand(duplicate.as_bytes(), Style::Compact).expect_err("duplicate comment");
        assert!(
            error.to_string().contains("duplicate user-context/comment"),
            "{error}"
        );
    }
}
