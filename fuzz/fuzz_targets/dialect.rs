//! The dialect reader on arbitrary bytes: never a panic, and whatever it
//! accepts is JSON that it reads back unchanged, in both output styles.
//!
//! The input is the top-level file, then up to four include files after NUL
//! bytes (`main NUL inc1 NUL inc2 ...`), written as `1`, `2`, ... into a scratch
//! directory that is the include base, so `<?include "1"?>` reaches the first.
//! Kea's example configs seed it (scripts/fuzz copies them in).
#![no_main]

use kea_sync_agent::agent::config::control_endpoint_from_config;
use kea_sync_agent::dialect::{Style, expand_str};
use kea_sync_agent::kea::Service;
use kea_sync_agent::validate::{LoadFacts, service_document};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How many include files an input may carry.
const MAX_INCLUDE_FILES: usize = 4;
/// Includes are lexical, so a file that includes another N times, which
/// includes a third N times, grows as N^depth, in Kea as in the reader (a
/// "billion laughs"). That is bounded by Kea's depth limit, not by memory:
/// capping the directives keeps every run small.
const MAX_DIRECTIVES: usize = 8;

/// The include base: $FUZZ_SCRATCH_DIR (scripts/fuzz makes and removes it),
/// else a directory of this process under the system's temp dir.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("FUZZ_SCRATCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::temp_dir().join(format!("kea-sync-agent-fuzz-{}", std::process::id()))
            });
        std::fs::create_dir_all(&dir).expect("scratch dir for include files");
        dir
    })
}

/// Writes this input's include files and removes the previous input's extra ones.
fn lay_out_includes(parts: &[&[u8]]) {
    let dir = scratch();
    for n in 1..=MAX_INCLUDE_FILES {
        let path = dir.join(n.to_string());
        match parts.get(n) {
            Some(text) => std::fs::write(&path, text).expect("write include file"),
            None => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("remove {}: {e}", path.display()),
            },
        }
    }
}

/// Parses JSON the reader wrote; None only when it nests deeper than
/// serde_json's recursion limit (128), which the reader does not have.
fn parse_output(json: &str) -> Option<serde_json::Value> {
    match serde_json::from_str(json) {
        Ok(value) => Some(value),
        Err(e) if e.to_string().contains("recursion limit") => None,
        Err(e) => panic!("the reader wrote invalid JSON ({e}): {json}"),
    }
}

/// Include paths that never end (/dev/zero) or change under the reader
/// (/proc): Kea would hang on them too, and they say nothing about the reader.
const ENDLESS: [&[u8]; 3] = [b"/dev/", b"/proc/", b"/sys/"];

fuzz_target!(|data: &[u8]| {
    if data.windows(2).filter(|w| w == b"<?").count() > MAX_DIRECTIVES
        || ENDLESS.iter().any(|dir| data.windows(dir.len()).any(|w| w == *dir))
    {
        return;
    }
    let parts: Vec<&[u8]> = data.splitn(MAX_INCLUDE_FILES + 1, |&b| b == 0).collect();
    lay_out_includes(&parts);
    let name = Path::new("main.conf");
    let base = scratch();
    let expanded = match expand_str(name, parts[0], base, Style::Compact) {
        Ok(expanded) => expanded,
        Err(error) => {
            // The message is what an operator reads: building it must not panic.
            let _ = error.to_string();
            return;
        }
    };
    assert_eq!(expanded.files[0], name);
    assert_eq!(expanded.sha256.len(), 64);
    for warning in &expanded.warnings {
        let _ = warning.to_string();
    }

    // The output is plain JSON, so the reader takes it back as it is.
    let again = expand_str(name, expanded.json.as_bytes(), base, Style::Compact)
        .unwrap_or_else(|e| panic!("own output refused ({e}): {}", expanded.json));
    assert_eq!(again.json, expanded.json, "re-reading changed the output");
    assert!(again.warnings.is_empty());

    let Some(value) = parse_output(&expanded.json) else {
        return;
    };
    let pretty = expand_str(name, parts[0], base, Style::Pretty).expect("pretty, after compact");
    assert_eq!(
        parse_output(&pretty.json),
        Some(value.clone()),
        "pretty and compact differ"
    );

    // What the agent reads off an expanded config next.
    for service in Service::ALL {
        let _ = service_document(&expanded.json, service);
        let _ = LoadFacts::of(&expanded.json, service);
        let _ = control_endpoint_from_config(&value, service);
    }
});
