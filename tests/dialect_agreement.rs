//! The dialect reader agrees with Kea itself: on every example config Kea
//! ships, on include chains, and on the value Kea builds from a file written
//! in the full dialect.

mod common;

use common::{KeaServer, kea_accepts, require_binary, runtime};
use kea_sync_agent::dialect::{self, Style};
use kea_sync_agent::kea::{Command, ControlChannel, Outcome, Service, UnixControl};
use kea_sync_agent::validate::service_document;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const EXAMPLES: &str = "/usr/share/doc/kea/examples";

/// Our verdict: expand the file, then ask the running Kea with config-test.
async fn agent_accepts(
    channel: &ControlChannel,
    file: &Path,
    base: &Path,
    service: Service,
) -> (bool, String) {
    let expanded = match dialect::expand_file(file, base, Style::Compact) {
        Ok(expanded) => expanded,
        Err(error) => return (false, error.to_string()),
    };
    let document = match service_document(&expanded.json, service) {
        Ok(document) => document,
        Err(why) => return (false, why),
    };
    let reply = channel
        .config_test(document)
        .await
        .expect("config-test reaches Kea");
    (reply.outcome == Outcome::Success, reply.text)
}

fn examples(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(EXAMPLES).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; install the examples with: apt-get install kea-doc",
                dir.display()
            )
        })
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() > 15,
        "expected Kea's example configs in {}",
        dir.display()
    );
    files
}

fn agree_on_examples(service: Service, dir: &str) {
    let binary = require_binary(service.daemon_binary());
    let server = KeaServer::start(service, json!({}));
    let channel = ControlChannel::Unix(UnixControl::new(
        &server.socket_path,
        Duration::from_secs(60),
    ));
    let base = Path::new(EXAMPLES).join(dir);
    let rt = runtime();
    let mut disagreements = Vec::new();
    let mut accepted = 0;
    let files = examples(dir);
    for file in &files {
        let (kea, kea_text) = kea_accepts(&binary, file, &base);
        let (ours, our_text) = rt.block_on(agent_accepts(&channel, file, &base, service));
        accepted += usize::from(kea);
        if kea != ours {
            disagreements.push(format!(
                "{}: kea -t {} but expand + config-test {}\n  kea: {}\n  ours: {}",
                file.display(),
                if kea { "accepts" } else { "refuses" },
                if ours { "accepts" } else { "refuses" },
                kea_text.lines().last().unwrap_or(""),
                our_text
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    // Both verdicts occur, so the comparison can fail either way.
    assert!(
        accepted > 0 && accepted < files.len(),
        "{accepted} of {} accepted",
        files.len()
    );
}

#[test]
fn agrees_with_kea_dhcp4_on_every_kea4_example() {
    agree_on_examples(Service::Dhcp4, "kea4");
}

#[test]
fn agrees_with_kea_dhcp6_on_every_kea6_example() {
    agree_on_examples(Service::Dhcp6, "kea6");
}

/// A file using every part of the dialect loads into exactly the in-memory
/// config that config-set of our expansion produces.
#[test]
fn expansion_builds_the_same_config_as_kea_reading_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).expect("mkdir");
    // Include paths are absolute: Kea resolves relative ones against its
    // working directory, which is the server's dir here.
    std::fs::write(
        parts.join("subnets.inc"),
        format!(
            "// a fragment, not a document\n{{ \"id\": 1, \"comment\": \"first subnet\", \"subnet\": \"192.0.2.0/24\", # comment\n  \"pools\": [ {{ \"pool\": \"192.0.2.10 - 192.0.2.20\" }}, ],\n  <?include \"{}\"?> }},\n",
            parts.join("options.inc").display()
        ),
    )
    .expect("write");
    std::fs::write(
        parts.join("options.inc"),
        "\"option-data\": [ { \"name\": \"domain-name\", \"data\": \"a#b//c/*d*/.example\" } ],",
    )
    .expect("write");
    let main = r#"
# hash comment
/* block
   comment */
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [ ] },
    "control-socket": { "socket-type": "unix", "socket-name": "@SOCKET@" },
    "lease-database": { "type": "memfile", "persist": false, },
    "comment": "merged into the user-context below",
    "valid-lifetime": 04000,
    "t1-percent": .5, "t2-percent": +.75,
    "user-context": { "note": "escaped \" quote and \u00e9", "list": [1, 2.5e1, -3,], },
    "subnet4": [ <?include "@INCLUDES@/subnets.inc"?> ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "@LOG@" } ], "severity": "INFO" } ],
} }
"#
    .replace("@INCLUDES@", &parts.display().to_string());
    let server = KeaServer::start_with_file(Service::Dhcp4, &main);
    let rt = runtime();
    let channel = ControlChannel::Unix(UnixControl::new(
        &server.socket_path,
        Duration::from_secs(60),
    ));
    let from_file = rt.block_on(channel.config_get()).expect("config-get");
    let from_file: Value = serde_json::from_str(from_file.config.get()).expect("json");
    assert_eq!(from_file["Dhcp4"]["valid-lifetime"], 4000);
    assert_eq!(
        from_file["Dhcp4"]["subnet4"][0]["user-context"]["comment"],
        "first subnet"
    );

    let expanded =
        dialect::expand_file(&server.config_path, Path::new("/"), Style::Compact).expect("expand");
    assert_eq!(expanded.files.len(), 3, "{:?}", expanded.files);
    let document = service_document(&expanded.json, Service::Dhcp4).expect("document");
    let reply = rt
        .block_on(channel.send(&Command::Raw {
            name: "config-set".into(),
            arguments: Some(document),
        }))
        .expect("config-set");
    assert_eq!(reply.outcome, Outcome::Success, "{}", reply.text);
    let from_expansion = rt.block_on(channel.config_get()).expect("config-get");
    let from_expansion: Value = serde_json::from_str(from_expansion.config.get()).expect("json");
    assert_eq!(
        from_file, from_expansion,
        "Kea built the same config from the file and from our expansion"
    );
}

/// Include depth: Kea 2.2 accepts 11 nested includes and refuses the 12th;
/// the reader draws the line at the same place.
#[test]
fn include_depth_limit_matches_kea() {
    let binary = require_binary("kea-dhcp4");
    for (depth, kea_should_accept) in [(11, true), (12, false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        for level in 1..=depth {
            let body = if level < depth {
                format!("<?include \"d{}.inc\"?>", level + 1)
            } else {
                "\"valid-lifetime\": 5,".to_string()
            };
            std::fs::write(dir.path().join(format!("d{level}.inc")), body).expect("write");
        }
        let main = dir.path().join("main.json");
        std::fs::write(
            &main,
            r#"{"Dhcp4": {"interfaces-config": {"interfaces": []}, "lease-database": {"type": "memfile", "persist": false}, <?include "d1.inc"?> "renew-timer": 1}}"#,
        )
        .expect("write");
        let (kea, text) = kea_accepts(&binary, &main, dir.path());
        assert_eq!(kea, kea_should_accept, "kea -t at depth {depth}: {text}");
        let ours = dialect::expand_file(&main, dir.path(), Style::Compact);
        assert_eq!(
            ours.is_ok(),
            kea,
            "reader at depth {depth}: {:?}",
            ours.err().map(|e| e.to_string())
        );
    }
}
