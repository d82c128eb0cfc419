//! The validator gives Kea's own verdict and text, with `kea-dhcp4 -t` and
//! with the config-test fallback when the binary is absent.

mod common;

use common::{KeaServer, runtime};
use kea_sync_agent::kea::{ControlChannel, Service, UnixControl};
use kea_sync_agent::validate::{Depth, Method, ValidateError, Validator, Verdict};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A temp dir holding `parts/lifetime.inc` and one config file per case,
/// each including that part by a path relative to the dir.
fn cases(dir: &Path) -> Vec<(&'static str, PathBuf, Option<&'static str>)> {
    std::fs::create_dir_all(dir.join("parts")).expect("mkdir");
    std::fs::write(dir.join("parts/lifetime.inc"), "\"valid-lifetime\": 600,").expect("write");
    let head = r#"{ "Dhcp4": { "interfaces-config": { "interfaces": [] },
        "lease-database": { "type": "memfile", "persist": false }, <?include "parts/lifetime.inc"?>"#;
    let table: [(&str, String, Option<&str>); 4] = [
        (
            "valid",
            format!("{head} \"subnet4\": [ {{ \"id\": 1, \"subnet\": \"192.0.2.0/24\" }} ] }} }}"),
            None,
        ),
        (
            "pool outside its subnet",
            format!(
                "{head} \"subnet4\": [ {{ \"id\": 1, \"subnet\": \"192.0.2.0/24\", \"pools\": [ {{ \"pool\": \"198.51.100.1-198.51.100.9\" }} ] }} ] }} }}"
            ),
            Some("198.51.100.1"),
        ),
        (
            "syntax error",
            format!("{head} \"subnet4\": [ }} }}"),
            Some(""),
        ),
        (
            "missing include",
            r#"{ "Dhcp4": { <?include "parts/nope.inc"?> } }"#.to_string(),
            Some("nope.inc"),
        ),
    ];
    table
        .into_iter()
        .map(|(name, text, error)| {
            let path = dir.join(format!("{}.conf", name.replace(' ', "-")));
            std::fs::write(&path, text).expect("write");
            (name, path, error)
        })
        .collect()
}

fn check_all(
    validator: &Validator,
    dir: &Path,
    channel: Option<&ControlChannel>,
    expect_method: fn(&Method) -> bool,
) {
    let rt = runtime();
    for (name, file, error) in cases(dir) {
        let validation = rt
            .block_on(validator.validate(&file, channel, Depth::Parse))
            .expect("a verdict");
        assert!(
            expect_method(&validation.method),
            "{name}: {:?}",
            validation.method
        );
        match (error, &validation.verdict) {
            (None, Verdict::Valid) => {}
            (Some(needle), Verdict::Invalid(text)) => {
                assert!(
                    !text.is_empty() && text.contains(needle),
                    "{name}: Kea's text {text:?} lacks {needle:?}"
                );
            }
            (expected, verdict) => panic!("{name}: expected error {expected:?}, got {verdict:?}"),
        }
    }
}

fn validator_for(dir: &Path, binary: Option<PathBuf>) -> Validator {
    Validator::new(Service::Dhcp4, binary, dir.to_path_buf(), TIMEOUT)
}

#[test]
fn kea_binary_gives_keas_verdict_from_the_include_base() {
    common::require_binary("kea-dhcp4");
    // The include base is where relative includes resolve: each case's dir.
    let dir = tempfile::tempdir().expect("tempdir");
    let validator = validator_for(dir.path(), None);
    assert!(validator.binary().is_some());
    check_all(&validator, dir.path(), None, |m| {
        matches!(m, Method::Binary(_, Depth::Parse))
    });
    // Run from elsewhere, the relative include is not found: Kea's behaviour.
    let elsewhere = validator_for(Path::new("/"), None);
    let valid = dir.path().join("valid.conf");
    let validation = runtime()
        .block_on(elsewhere.validate(&valid, None, Depth::Parse))
        .expect("a verdict");
    assert!(
        matches!(validation.verdict, Verdict::Invalid(ref t) if t.contains("lifetime.inc")),
        "{:?}",
        validation.verdict
    );
}

#[test]
fn config_test_fallback_when_the_binary_is_absent() {
    let server = KeaServer::start(Service::Dhcp4, json!({}));
    let channel = ControlChannel::Unix(UnixControl::new(&server.socket_path, TIMEOUT));
    let dir = tempfile::tempdir().expect("tempdir");
    let validator = validator_for(dir.path(), Some(PathBuf::from("/nonexistent/kea-dhcp4")));
    assert!(validator.binary().is_none());
    let before = server.reload_count();
    check_all(&validator, dir.path(), Some(&channel), |m| {
        matches!(m, Method::ConfigTest(_))
    });
    assert_eq!(
        server.reload_count(),
        before,
        "config-test never reconfigures Kea"
    );
}

#[test]
fn no_binary_and_no_channel_is_a_clear_error() {
    let validator = validator_for(
        Path::new("/"),
        Some(PathBuf::from("/nonexistent/kea-dhcp4")),
    );
    let error = runtime()
        .block_on(validator.validate(Path::new("/etc/kea/kea-dhcp4.conf"), None, Depth::Parse))
        .expect_err("nothing to validate with");
    assert!(matches!(error, ValidateError::NoValidator { .. }));
    assert!(
        error.to_string().contains("/nonexistent/kea-dhcp4"),
        "{error}"
    );
}
