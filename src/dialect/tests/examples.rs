//! Kea's own example configs, and a large generated config for timing.

use std::fs;
use std::path::Path;
use std::time::Instant;

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

/// A Kea-style config of about 30 MB: comments, trailing commas, 20,000 subnets and
/// 200,000 reservations.
fn big_config() -> String {
    let mut text = String::from(
        "// generated\n{ \"Dhcp4\": {\n  \"valid-lifetime\": 4000,\n  \"subnet4\": [\n",
    );
    let mut host = 0u32;
    for subnet in 0..20_000u32 {
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

/// Run with `cargo test --release --lib dialect -- --ignored --nocapture`.
#[test]
#[ignore = "timing; meaningful in release builds only"]
fn thirty_megabytes_expand_quickly() {
    let text = big_config();
    // Best of three, so a busy machine does not fail the test.
    let mut best = None;
    let mut expanded = None;
    for _ in 0..3 {
        let started = Instant::now();
        let run = expand_str(
            Path::new("big.conf"),
            text.as_bytes(),
            Path::new("/"),
            Style::Compact,
        )
        .expect("accepted");
        let took = started.elapsed();
        best = Some(best.map_or(took, |b: std::time::Duration| b.min(took)));
        expanded = Some(run);
    }
    let (Some(elapsed), Some(expanded)) = (best, expanded) else {
        unreachable!("three runs happened");
    };
    println!(
        "{} MB in, {} MB out, {} warnings, {elapsed:?}",
        text.len() / 1_000_000,
        expanded.json.len() / 1_000_000,
        expanded.warnings.len()
    );
    assert!(text.len() > 30_000_000);
    assert_eq!(expanded.warnings.len(), 40_001);
    assert!(elapsed.as_millis() < 1000, "took {elapsed:?}");
}
