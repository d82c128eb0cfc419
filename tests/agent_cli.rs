//! `kea-sync-agent apply` and `check` against a real kea-dhcp4 (2.2): exit codes, the
//! JSON events scripts read, and what Kea itself shows afterwards.

mod common;

use common::agent::{Agent, AgentToml, TomlTable, run_agent};
use common::{KeaServer, backdate, is_sha256_hex};
use kea_sync_agent::kea::Service;
use serde_json::{Value, json};
use std::fs;
use std::process::Output;

const GOOD_POOL: &str = "192.0.2.10 - 192.0.2.20";
const OUTSIDE_POOL: &str = "198.51.100.10 - 198.51.100.20";

/// A kea-dhcp4 with one subnet, its config file backdated an hour (so Kea clearly loaded
/// the current content itself), and an agent config for it with an empty state dir.
struct Setup {
    agent: Agent,
    kea: KeaServer,
}

impl Setup {
    fn start() -> Setup {
        let kea = KeaServer::start(
            Service::Dhcp4,
            json!({
                "valid-lifetime": 4000,
                "subnet4": [{"id": 1, "subnet": "192.0.2.0/24", "pools": [{"pool": GOOD_POOL}]}],
            }),
        );
        backdate(&kea.config_path);
        let mut agent = Agent::new();
        agent.write_toml(
            &AgentToml::new().service(TomlTable::service(Service::Dhcp4, &kea.config_path)),
        );
        Setup { agent, kea }
    }

    /// Rewrites Kea's config file with `from` replaced by `to` (the file is pretty JSON).
    fn edit(&self, from: &str, to: &str) {
        let text = fs::read_to_string(&self.kea.config_path).expect("read Kea's config");
        assert!(text.contains(from), "{from} not in Kea's config:\n{text}");
        fs::write(&self.kea.config_path, text.replace(from, to)).expect("edit Kea's config");
    }

    fn apply(&self) -> Applied {
        Applied::from(self.agent.run("apply"))
    }

    fn check(&self) -> Output {
        self.agent.run("check")
    }

    fn valid_lifetime(&self) -> Option<u64> {
        let reply = self.kea.command(r#"{"command":"config-get"}"#);
        reply["arguments"]["Dhcp4"]["valid-lifetime"].as_u64()
    }
}

/// What `apply` did: exit code, its JSON events (one per stdout line), stderr.
struct Applied {
    code: Option<i32>,
    events: Vec<Value>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Applied {
    fn from(output: Output) -> Applied {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let events = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect();
        Applied {
            code: output.status.code(),
            events,
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Outcomes of the decision `apply` makes per service; besides it, `apply` may print
/// what goes upstream (a `snapshot` of Kea's in-memory config, a `drift`).
const DECISIONS: [&str; 5] = ["applied", "rejected", "in-sync", "unchanged", "unreachable"];
const UPSTREAM_ONLY: [&str; 2] = ["snapshot", "drift"];

impl Applied {
    /// The service's one decision event, after checking the exit code, that every other
    /// line is an upstream-only event, and the fields every event has.
    fn decision(&self, code: i32, outcome: &str, setup: &Setup) -> &Value {
        let context = format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert_eq!(self.code, Some(code), "exit code\n{context}");
        let outcome_of = |event: &Value| event["outcome"].as_str().unwrap_or_default().to_string();
        let (decisions, others): (Vec<&Value>, Vec<&Value>) = self
            .events
            .iter()
            .partition(|event| DECISIONS.contains(&outcome_of(event).as_str()));
        assert_eq!(decisions.len(), 1, "one decision per service\n{context}");
        assert!(
            others
                .iter()
                .all(|event| UPSTREAM_ONLY.contains(&outcome_of(event).as_str())),
            "unknown outcomes\n{context}"
        );
        for event in &self.events {
            assert_eq!(event["service"], "dhcp4", "{context}");
            assert_eq!(
                event["file"],
                setup.kea.config_path.to_string_lossy().as_ref(),
                "{context}"
            );
            for key in ["text", "detected_at", "finished_at"] {
                assert!(
                    event[key].as_str().is_some_and(|s| !s.is_empty()),
                    "{key} missing\n{context}"
                );
            }
            for key in ["file_sha256", "kea_version", "config_hash"] {
                assert!(event.get(key).is_some(), "{key} missing\n{context}");
            }
        }
        let event = decisions[0];
        assert_eq!(event["outcome"], outcome, "outcome\n{context}");
        event
    }
}

#[test]
fn apply_applies_an_edit_then_reports_unchanged() {
    let setup = Setup::start();
    let reloads = setup.kea.reload_count();
    setup.edit(r#""valid-lifetime": 4000"#, r#""valid-lifetime": 4100"#);

    let applied = setup.apply();
    let event = applied.decision(0, "applied", &setup);
    assert!(is_sha256_hex(&event["file_sha256"]), "{event}");
    assert_eq!(event["kea_version"], "2.2.0", "{event}");
    assert!(
        event["config_hash"].as_str().is_some_and(|h| !h.is_empty()),
        "{event}"
    );
    let detected = event["detected_at"].as_str().unwrap_or_default();
    let finished = event["finished_at"].as_str().unwrap_or_default();
    assert!(
        detected.ends_with('Z') && detected <= finished,
        "RFC 3339 UTC times, detected before finished: {event}"
    );
    assert_eq!(setup.kea.reload_count(), reloads + 1, "one config-reload");
    assert_eq!(setup.valid_lifetime(), Some(4100));

    let again = setup.apply();
    again.decision(0, "unchanged", &setup);
    assert_eq!(setup.kea.reload_count(), reloads + 1, "no second reload");
    assert!(setup.kea.failed_reloads().is_empty());
}

#[test]
fn apply_with_the_file_kea_loaded_is_in_sync() {
    let setup = Setup::start();
    let applied = setup.apply();
    applied.decision(0, "in-sync", &setup);
    assert_eq!(setup.kea.reload_count(), 0);
}

#[test]
fn apply_rejects_an_invalid_file_with_keas_text() {
    let setup = Setup::start();
    setup.edit(GOOD_POOL, OUTSIDE_POOL);
    setup.edit(r#""valid-lifetime": 4000"#, r#""valid-lifetime": 4100"#);

    let applied = setup.apply();
    let event = applied.decision(1, "rejected", &setup);
    let text = event["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("does not match the prefix of a subnet"),
        "Kea's own text expected: {text}"
    );
    assert_eq!(
        setup.kea.reload_count(),
        0,
        "an invalid file is never reloaded"
    );
    assert!(
        setup.kea.failed_reloads().is_empty(),
        "{:#?}",
        setup.kea.failed_reloads()
    );
    assert_eq!(setup.valid_lifetime(), Some(4000));
}

#[test]
fn apply_with_kea_stopped_is_unreachable_naming_the_socket() {
    let mut setup = Setup::start();
    setup.kea.stop();
    let applied = setup.apply();
    let event = applied.decision(2, "unreachable", &setup);
    let socket = setup.kea.socket_path.to_string_lossy().into_owned();
    let text = event["text"].as_str().unwrap_or_default();
    assert!(text.contains(&socket), "{socket} not named in: {text}");
}

#[test]
fn apply_with_a_bad_agent_config_exits_6_naming_file_line_and_column() {
    let setup = Setup::start();
    let good = fs::read_to_string(setup.agent.toml()).expect("read agent.toml");
    // Line 3 of the file, column 1.
    let bad = good.replacen("settle_ms", "no_such_key = 1\nsettle_ms", 1);
    assert_eq!(bad.lines().nth(2), Some("no_such_key = 1"));
    fs::write(setup.agent.toml(), bad).expect("write bad agent.toml");

    let applied = setup.apply();
    assert_eq!(applied.code, Some(6), "stderr: {}", applied.stderr);
    assert!(applied.events.is_empty(), "stdout: {}", applied.stdout);
    let location = format!("{}:3:1", setup.agent.toml().display());
    assert!(
        applied.stderr.contains(&location),
        "{location} not in stderr: {}",
        applied.stderr
    );
    assert_eq!(setup.kea.reload_count(), 0);
}

#[test]
fn check_says_all_is_well_on_a_good_setup() {
    let setup = Setup::start();
    let output = setup.check();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.lines().any(|l| l == "verdict: all is well"),
        "{stdout}"
    );
    assert!(!stdout.lines().any(|l| l.starts_with("FAIL")), "{stdout}");
    assert_eq!(setup.kea.reload_count(), 0, "check never reloads");
}

#[test]
fn check_fails_naming_the_socket_when_kea_is_stopped() {
    let mut setup = Setup::start();
    setup.kea.stop();
    let output = setup.check();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let socket = setup.kea.socket_path.to_string_lossy().into_owned();
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains(&socket)),
        "no FAIL line naming {socket}:\n{stdout}"
    );
    assert!(!stdout.contains("verdict: all is well"), "{stdout}");
}

#[test]
fn check_changes_nothing_and_makes_no_missing_state_dir() {
    let setup = Setup::start();
    let missing = setup.agent.dir().join("not-yet").join("state");
    let mut agent = Agent::new();
    agent.write_toml(
        &AgentToml::new()
            .state_dir(&missing)
            .service(TomlTable::service(Service::Dhcp4, &setup.kea.config_path)),
    );
    let output = agent.run("check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let said = format!(
        "ok   state dir {}: does not exist yet; `run` makes it",
        missing.display()
    );
    assert!(stdout.contains(&said), "{said:?} not in:\n{stdout}");
    assert!(
        !missing.parent().expect("a parent").exists(),
        "check made {}",
        missing.display()
    );
    // Where relative includes resolve, and why.
    assert!(
        stdout.contains("include base /: no kea-dhcp4 runs on this file")
            || stdout.contains("the working directory of the running kea-dhcp4"),
        "{stdout}"
    );
}

#[test]
fn check_of_a_broken_agent_config_says_every_problem_and_exits_6() {
    let setup = Setup::start();
    let good = fs::read_to_string(setup.agent.toml()).expect("read agent.toml");
    let bad = good
        .replacen("settle_ms = 50", "settle_ms = \"fast\"", 1)
        .replacen(
            "[[service]]",
            "[nonsense]\n[[service]]\ncolour = \"blue\"",
            1,
        );
    fs::write(setup.agent.toml(), &bad).expect("write bad agent.toml");
    let output = setup.check();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(6), "{stdout}");
    let file = setup.agent.toml().display().to_string();
    assert!(
        stdout.contains(&format!("3 problems in {file}")),
        "{bad}\n{stdout}"
    );
    for words in [
        "`settle_ms` must be a whole number (like 50), not the string \"fast\"",
        "unknown table `nonsense`",
        "unknown field `colour`",
    ] {
        assert!(stdout.contains(words), "{words:?} not in:\n{stdout}");
    }
    assert!(!stdout.contains("expected u64"), "{stdout}");
}

#[test]
fn usage_errors_exit_3_and_help_teaches_the_exit_codes() {
    let code = |args: &[&str]| {
        let output = run_agent(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    };
    let (status, text) = code(&["kea"]);
    assert_eq!(status, Some(3), "a missing argument: {text}");
    let (status, text) = code(&["no-such-command"]);
    assert_eq!(status, Some(3), "an unknown subcommand: {text}");
    let (status, text) = code(&["kea", "config-get", "--socket", "/s", "--service", "dhcp4"]);
    assert_eq!(status, Some(3), "--service beside --socket: {text}");
    assert!(text.contains("cannot be used with"), "{text}");

    let (status, help) = code(&["--help"]);
    assert_eq!(status, Some(0), "{help}");
    for line in ["Exit status", "  3  bad input", "  6  bad agent config"] {
        assert!(help.contains(line), "{line:?} not in --help:\n{help}");
    }
    let (_, kea_help) = code(&["kea", "--help"]);
    assert!(kea_help.contains("3 for bad"), "kea --help:\n{kea_help}");
    let (_, expand_help) = code(&["expand", "--help"]);
    assert!(
        expand_help.contains("Exit 0"),
        "expand --help:\n{expand_help}"
    );
    let (status, version) = code(&["--version"]);
    assert_eq!(status, Some(0), "{version}");
    assert!(version.starts_with("kea-sync-agent "), "{version}");
}
