//! Kea's own example configs, and a generated config in the benchmark's shape.

use std::fs;
use std::path::Path;

use crate::dialect::{Style, expand_file, expand_str};

const EXAMPLES: &str = "/usr/share/doc/kea/examples";

#[test]
fn kea_example_configs_expand_to_json() {
    let mut count = 0;
    for dir in ["kea4", "kea6"] {
        let dir = Path::new(EXAMPLES).join(dir);
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "{} unreadable ({e}); Kea's examples are missing: apt-get install kea-doc",
                dir.display()
            )
        });
        let mut paths: Vec<_> = entries
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        paths.sort();
        for path in paths {
            let compact = expand_file(&path, &dir, Style::Compact)
                .unwrap_or_else(|e| panic!("{} refused: {e}", path.display()));
            let value = compact
                .to_value()
                .unwrap_or_else(|e| panic!("{} gave invalid JSON: {e}", path.display()));
            assert!(value.is_object(), "{} is not a map", path.display());
            let pretty = expand_file(&path, &dir, Style::Pretty).expect("pretty");
            assert_eq!(pretty.to_value().expect("pretty parses"), value);
            assert_eq!(compact.files, std::slice::from_ref(&path));
            count += 1;
        }
    }
    assert!(
        count >= 40,
        "only {count} example files found under {EXAMPLES}"
    );
}

/// A Kea-style config in the shape of the 30 MB benchmark one (comments,
/// trailing commas, ten reservations per subnet), with `subnets` subnets.
/// Its speed at full size is measured by bench/p1-foundation, not here.
fn generated_config(subnets: u32) -> String {
    let mut text = String::from(
        "// generated\n{ \"Dhcp4\": {\n  \"valid-lifetime\": 4000,\n  \"subnet4\": [\n",
    );
    let mut host = 0u32;
    for subnet in 0..subnets {
        let (a, b) = (subnet / 256, subnet % 256);
        text.push_str(&format!(
            "    {{ # subnet {subnet}\n      \"id\": {id}, \"subnet\": \"10.{a}.{b}.0/24\",\n      \"pools\": [ {{ \"pool\": \"10.{a}.{b}.10 - 10.{a}.{b}.200\" }} ],\n      \"reservations\": [\n",
            id = subnet + 1
        ));
        for r in 0..10u32 {
            host += 1;
            text.push_str(&format!(
                "        {{ \"hw-address\": \"1a:1b:1c:{:02x}:{:02x}:{:02x}\", \"ip-address\": \"10.{a}.{b}.{}\", \"hostname\": \"host-{host}.example.org\", \"user-context\": {{ \"ratio\": .5 }} }},\n",
                host >> 16 & 0xff,
                host >> 8 & 0xff,
                host & 0xff,
                r + 2
            ));
        }
        text.push_str("      ],\n    },\n");
    }
    text.push_str("  ]\n} }\n");
    text
}

#[test]
fn generated_config_expands_to_strict_json() {
    let subnets = 300;
    let text = generated_config(subnets);
    let expanded = expand_str(
        Path::new("big.conf"),
        text.as_bytes(),
        Path::new("/"),
        Style::Compact,
    )
    .expect("accepted");
    // Extraneous commas: after each subnet's last reservation and after
    // each subnet, and one after the list's last subnet.
    let value: serde_json::Value = serde_json::from_str(&expanded.json).expect("strict JSON");
    let list = value["Dhcp4"]["subnet4"].as_array().expect("subnet4");
    assert_eq!(list.len(), subnets as usize);
    assert_eq!(list[299]["reservations"].as_array().map(Vec::len), Some(10));
    assert_eq!(list[0]["reservations"][0]["user-context"]["ratio"], 0.5);
    assert_eq!(expanded.warnings.len(), 2 * subnets as usize + 1);
}
