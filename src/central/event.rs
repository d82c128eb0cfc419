//! A v1 event as docs/upstream-api.md defines it. The wire form (field
//! names, nesting, kinds, schema string) is the agent's own
//! [`crate::event::wire::Wire`]; this module decodes it, checks what serde
//! cannot (schema, ULID, service, sequence, timestamps) and names the field
//! of any refusal. Fields this version does not know are ignored, as the
//! contract asks of v1 receivers.

use super::time::parse_rfc3339_millis;
use crate::event::wire::{Ha, Wire};
use crate::event::{Kind, SCHEMA};
use serde::Deserialize;
use serde_json::Value;

/// The only schema this receiver takes.
pub const SCHEMA_V1: &str = SCHEMA;

/// Why a body is not a valid v1 event; `field` is the dotted path of the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {problem}")]
pub struct EventError {
    pub field: String,
    pub problem: String,
}

/// A timestamp as sent, with its value in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    pub text: String,
    pub millis: i64,
}

/// One valid v1 event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub agent_host: String,
    pub agent_machine_id: String,
    pub agent_version: String,
    /// `dhcp4`, `dhcp6` or `d2`.
    pub service: String,
    pub kea_version: Option<String>,
    pub kind: Kind,
    pub sequence: i64,
    pub file_path: String,
    pub file_sha256: Option<String>,
    /// Kea's own hash of its in-memory config after the step.
    pub config_hash: Option<String>,
    /// Kea's full config; kept only for the kinds that carry one.
    pub config: Option<Value>,
    pub text: String,
    pub drift_file_sha256: Option<String>,
    pub drift_live_hash: Option<String>,
    pub detected_at: Timestamp,
    pub applied_at: Option<Timestamp>,
    pub queued_at: Timestamp,
    /// A failed reload was undone: Kea runs the last good config.
    pub rolled_back: Option<bool>,
    /// Whether Kea served DHCP after the step, as the agent saw it.
    pub serving: Option<bool>,
    /// The server's HA relationships as the step left them (every one for a
    /// hub; empty for a server without HA).
    pub ha: Vec<Ha<String>>,
    /// What the operator should know though the step succeeded.
    pub warnings: Vec<String>,
}

impl Event {
    /// Checks a parsed body against the v1 schema and takes it apart.
    pub fn from_value(body: Value) -> Result<Event, EventError> {
        if !body.is_object() {
            return Err(not_an_object());
        }
        let (mut event, config) = decode::<Value, _>(body)?;
        event.config = match config {
            None | Some(Value::Null) => None,
            Some(config @ Value::Object(_)) => Some(config),
            Some(_) => return Err(problem("config", NOT_A_CONFIG)),
        };
        Ok(event)
    }
}

/// What a body that is no JSON object is told.
pub fn not_an_object() -> EventError {
    problem("(body)", "expected a JSON object (one event)")
}

/// What a `config` that is not an object is told.
pub const NOT_A_CONFIG: &str = "expected an object (Kea's config)";

/// Decodes one event from `deserializer` and checks it; the config comes
/// back apart, as decoded (`C`: a value tree, or raw text so a 50 MB config
/// is not turned into a tree), and only for the kinds that carry one. The
/// caller makes sure the body is an object (serde would take an array too).
pub fn decode<'de, C, D>(deserializer: D) -> Result<(Event, Option<C>), EventError>
where
    C: Deserialize<'de>,
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    let wire: Wire<String, C> =
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let field = error.path().to_string();
            schema_error(&field, error.into_inner())
        })?;
    check(wire)
}

/// Whether a decoding error is about the schema (a field's type or
/// presence) rather than the JSON syntax.
pub fn is_schema_error(error: &serde_json::Error) -> bool {
    error.classify() == serde_json::error::Category::Data
}

/// serde's words for a refused field, in the contract's terms: a missing
/// member is named itself, not by its parent.
fn schema_error(path: &str, error: serde_json::Error) -> EventError {
    let text = error.to_string();
    // serde_json appends " at line L column C"; the field says where.
    let text = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(message, _)| message);
    let path = if path == "." || path.is_empty() {
        ""
    } else {
        path
    };
    if let Some(member) = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        let field = if path.is_empty() {
            member.to_string()
        } else {
            format!("{path}.{member}")
        };
        return problem(&field, "is required but missing");
    }
    if path.is_empty() {
        return not_an_object();
    }
    problem(path, text)
}

fn check<C>(wire: Wire<String, C>) -> Result<(Event, Option<C>), EventError> {
    if wire.schema != SCHEMA_V1 {
        return Err(problem(
            "schema",
            format!("must be \"{SCHEMA_V1}\", got {:?}", wire.schema),
        ));
    }
    if !is_ulid(&wire.id) {
        return Err(problem(
            "id",
            "must be a ULID (26 Crockford base32 characters)",
        ));
    }
    if wire.agent.host.is_empty() {
        return Err(problem("agent.host", "must not be empty"));
    }
    if !matches!(wire.service.as_str(), "dhcp4" | "dhcp6" | "d2") {
        return Err(problem(
            "service",
            format!("must be dhcp4, dhcp6 or d2, got {:?}", wire.service),
        ));
    }
    let sequence = i64::try_from(wire.sequence)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| problem("sequence", "expected an integer of at least 1"))?;
    let applied_at = wire
        .applied_at
        .map(|text| timestamp("applied_at", text))
        .transpose()?;
    let (drift_file_sha256, drift_live_hash) = wire
        .drift
        .map_or((None, None), |d| (d.file_sha256, d.live_hash));
    let config = wire.config.filter(|_| wire.kind.carries_config());
    let ha = match wire.ha_relationships {
        Some(all) if !all.is_empty() => all,
        _ => wire.ha.into_iter().collect(),
    };
    let event = Event {
        id: wire.id,
        agent_host: wire.agent.host,
        agent_machine_id: wire.agent.machine_id,
        agent_version: wire.agent.version,
        service: wire.service,
        kea_version: wire.kea_version,
        kind: wire.kind,
        sequence,
        file_path: wire.file.path,
        file_sha256: wire.file.sha256,
        config_hash: wire.config_hash,
        config: None,
        text: wire.text,
        drift_file_sha256,
        drift_live_hash,
        detected_at: timestamp("detected_at", wire.detected_at)?,
        applied_at,
        queued_at: timestamp("queued_at", wire.queued_at)?,
        rolled_back: wire.rolled_back,
        serving: wire.serving,
        ha,
        warnings: wire.warnings,
    };
    Ok((event, config))
}

fn problem(field: &str, problem: impl Into<String>) -> EventError {
    EventError {
        field: field.to_string(),
        problem: problem.into(),
    }
}

fn timestamp(field: &str, text: String) -> Result<Timestamp, EventError> {
    let millis = parse_rfc3339_millis(&text).map_err(|e| problem(field, e.to_string()))?;
    Ok(Timestamp { text, millis })
}

fn is_ulid(text: &str) -> bool {
    text.len() == 26
        && text.bytes().all(|c| {
            c.is_ascii_digit()
                || (c.is_ascii_uppercase() && !matches!(c, b'I' | b'L' | b'O' | b'U'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "schema": SCHEMA_V1,
            "id": "01HZY5P6J8K9M0N1P2Q3R4S5T6",
            "agent": {"host": "kea1", "machine_id": "abc", "version": "0.1.0"},
            "service": "dhcp4",
            "kea_version": "2.2.0",
            "kind": "applied",
            "sequence": 3,
            "file": {"path": "/etc/kea/kea-dhcp4.conf", "sha256": "aa"},
            "config_hash": "bb",
            "config": {"Dhcp4": {"subnet4": []}},
            "text": "reloaded",
            "detected_at": "2025-01-31T12:00:00.000Z",
            "applied_at": "2025-01-31T12:00:00.250Z",
            "queued_at": "2025-01-31T12:00:00.300Z"
        })
    }

    fn with(path: &[&str], value: Option<Value>) -> Value {
        let mut body = valid();
        let (last, parents) = path.split_last().expect("should succeed");
        let mut at = &mut body;
        for key in parents {
            at = at.get_mut(*key).expect("should succeed");
        }
        let object = at.as_object_mut().expect("should succeed");
        match value {
            Some(value) => object.insert(last.to_string(), value),
            None => object.remove(*last),
        };
        body
    }

    #[test]
    fn takes_a_valid_event_apart() {
        let event = Event::from_value(valid()).expect("should succeed");
        assert_eq!(event.kind, Kind::Applied);
        assert_eq!(event.agent_host, "kea1");
        assert_eq!(event.sequence, 3);
        assert_eq!(
            event.applied_at.expect("should succeed").millis,
            1_738_324_800_250
        );
        assert!(event.config.is_some());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let body = with(&["agent", "os"], Some(json!("linux")));
        let body = with_top(body, "future_field", json!({"nested": [1, 2]}));
        assert!(Event::from_value(body).is_ok());
    }

    fn with_top(mut body: Value, key: &str, value: Value) -> Value {
        body.as_object_mut()
            .expect("should succeed")
            .insert(key.into(), value);
        body
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        for key in [
            "kea_version",
            "config_hash",
            "applied_at",
            "config",
            "drift",
        ] {
            assert!(
                Event::from_value(with(&[key], None)).is_ok(),
                "{key} absent"
            );
            assert!(
                Event::from_value(with(&[key], Some(Value::Null))).is_ok(),
                "{key} null"
            );
        }
        assert!(Event::from_value(with(&["file", "sha256"], None)).is_ok());
    }

    #[test]
    fn refusals_name_the_field() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([1]), "(body)"),
            (
                with(&["schema"], Some(json!("kea-sync-agent/event/v2"))),
                "schema",
            ),
            (with(&["id"], None), "id"),
            (
                with(&["id"], Some(json!("01HZY5P6J8K9M0N1P2Q3R4S5TU"))),
                "id",
            ),
            (with(&["agent"], Some(json!("kea1"))), "agent"),
            (with(&["agent", "host"], None), "agent.host"),
            (with(&["agent", "host"], Some(json!(""))), "agent.host"),
            (
                with(&["agent", "machine_id"], Some(json!(5))),
                "agent.machine_id",
            ),
            (with(&["service"], Some(json!("dhcp5"))), "service"),
            (with(&["kind"], Some(json!("deleted"))), "kind"),
            (with(&["sequence"], Some(json!(0))), "sequence"),
            (with(&["sequence"], Some(json!(1.5))), "sequence"),
            (with(&["file", "path"], None), "file.path"),
            (with(&["config"], Some(json!("{}"))), "config"),
            (with(&["text"], None), "text"),
            (
                with(&["drift"], Some(json!({"live_hash": 7}))),
                "drift.live_hash",
            ),
            (
                with(&["detected_at"], Some(json!("yesterday"))),
                "detected_at",
            ),
            (
                with(&["applied_at"], Some(json!("2025-13-01T00:00:00Z"))),
                "applied_at",
            ),
            (with(&["queued_at"], None), "queued_at"),
        ];
        for (body, field) in cases {
            let error = Event::from_value(body).expect_err("should be refused");
            assert_eq!(error.field, field, "{error}");
        }
    }

    #[test]
    fn configs_of_rejected_events_are_not_kept() {
        let body = with(&["kind"], Some(json!("rejected")));
        assert_eq!(
            Event::from_value(body).expect("should succeed").config,
            None
        );
    }

    #[test]
    fn drift_events_keep_the_config_kea_runs() {
        let body = with(&["kind"], Some(json!("drift")));
        let event = Event::from_value(body).expect("should succeed");
        assert_eq!(event.kind, Kind::Drift);
        assert_eq!(event.config, Some(json!({"Dhcp4": {"subnet4": []}})));
    }

    /// The agent's encoder and this parser agree on every kind: what the
    /// agent queues is what the central takes apart, config and all.
    #[test]
    fn agent_events_of_every_kind_round_trip() {
        use crate::event::wire::{Identity, encode};
        use crate::event::{Outcome, SyncEvent};
        use crate::kea::Service;
        use serde_json::value::RawValue;
        use std::time::{Duration, SystemTime};

        let identity = Identity {
            host: "kea1.example.net".into(),
            machine_id: "0123456789abcdef".into(),
            version: "0.1.0".into(),
        };
        let detected = SystemTime::UNIX_EPOCH + Duration::from_millis(1_738_324_800_123);
        let finished = detected + Duration::from_millis(250);
        let queued = finished + Duration::from_millis(5);
        let config = r#"{"Dhcp4":{"valid-lifetime":4000,"subnet4":[]}}"#;
        for (n, outcome) in [
            Outcome::Applied,
            Outcome::Rejected,
            Outcome::Drift,
            Outcome::Snapshot,
        ]
        .into_iter()
        .enumerate()
        {
            let kind = outcome.kind().expect("an upstream outcome");
            let event = SyncEvent {
                id: None,
                service: Service::Dhcp6,
                outcome,
                file: "/etc/kea/kea-dhcp6.conf".into(),
                file_sha256: Some("aa".repeat(32)),
                kea_version: Some("2.2.0".into()),
                config_hash: Some("BB".repeat(32)),
                text: format!("text of {kind}"),
                detected_at: detected,
                finished_at: finished,
                rolled_back: (outcome == Outcome::Rejected).then_some(true),
                serving: Some(true),
                ha: Vec::new(),
                warnings: Vec::new(),
                config: Some(RawValue::from_string(config.into()).expect("raw")),
            };
            let id = ulid::Ulid::new().to_string();
            let sequence = n as u64 + 1;
            let body = encode(&event, &id, sequence, &identity, queued).expect("encoded");
            let value: Value = serde_json::from_slice(&body).expect("json");
            let parsed = Event::from_value(value).expect("the central takes the agent's event");
            assert_eq!(parsed.kind, kind);
            assert_eq!(parsed.id, id);
            assert_eq!(parsed.sequence, sequence as i64);
            assert_eq!(parsed.service, "dhcp6");
            assert_eq!(parsed.agent_host, identity.host);
            assert_eq!(parsed.agent_machine_id, identity.machine_id);
            assert_eq!(parsed.agent_version, identity.version);
            assert_eq!(parsed.kea_version.as_deref(), Some("2.2.0"));
            assert_eq!(parsed.file_path, "/etc/kea/kea-dhcp6.conf");
            assert_eq!(parsed.file_sha256, event.file_sha256);
            assert_eq!(parsed.config_hash, event.config_hash);
            assert_eq!(parsed.text, event.text);
            assert_eq!(parsed.detected_at.millis, 1_738_324_800_123);
            assert_eq!(parsed.applied_at.map(|t| t.millis), Some(1_738_324_800_373));
            assert_eq!(parsed.queued_at.millis, 1_738_324_800_378);
            assert_eq!(parsed.rolled_back, event.rolled_back, "{kind}: rolled_back");
            assert_eq!(parsed.serving, Some(true), "{kind}: serving");
            let want_config: Option<Value> = kind
                .carries_config()
                .then(|| serde_json::from_str(config).expect("json"));
            assert_eq!(parsed.config, want_config, "{kind}: config");
            let drift = (kind == Kind::Drift).then(|| ("aa".repeat(32), "BB".repeat(32)));
            assert_eq!(
                parsed.drift_file_sha256.zip(parsed.drift_live_hash),
                drift,
                "{kind}: drift hashes"
            );
            // The raw path the HTTP ingest takes agrees too.
            let (raw_event, raw_config) = super::super::ingest::parse(None, body, 1 << 20)
                .expect("the ingest takes the agent's event");
            assert_eq!(raw_event.kind, kind);
            assert_eq!(raw_config.is_some(), kind.carries_config(), "{kind}");
        }
    }
}
