//! A v1 event as docs/upstream-api.md defines it, checked field by field so a
//! refusal names the field. Fields this version does not know are ignored, as
//! the contract asks of v1 receivers.

use super::time::parse_rfc3339_millis;
use serde_json::{Map, Value};

/// The only schema this receiver takes.
pub const SCHEMA_V1: &str = "kea-sync-agent/event/v1";

/// Why a body is not a valid v1 event; `field` is the dotted path of the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {problem}")]
pub struct EventError {
    pub field: String,
    pub problem: String,
}

/// What happened on the Kea server (docs/upstream-api.md, "Kinds").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Applied,
    Rejected,
    Drift,
    Snapshot,
}

impl EventKind {
    /// The kind's name in events and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Applied => "applied",
            EventKind::Rejected => "rejected",
            EventKind::Drift => "drift",
            EventKind::Snapshot => "snapshot",
        }
    }

    /// Whether events of this kind carry Kea's full config (and so make a version).
    pub fn carries_config(self) -> bool {
        matches!(self, EventKind::Applied | EventKind::Snapshot)
    }

    fn parse(text: &str) -> Option<EventKind> {
        match text {
            "applied" => Some(EventKind::Applied),
            "rejected" => Some(EventKind::Rejected),
            "drift" => Some(EventKind::Drift),
            "snapshot" => Some(EventKind::Snapshot),
            _ => None,
        }
    }
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
    pub kind: EventKind,
    pub sequence: i64,
    pub file_path: String,
    pub file_sha256: Option<String>,
    /// Kea's own hash of its in-memory config after the step.
    pub config_hash: Option<String>,
    /// Kea's full config; kept only for `applied` and `snapshot`.
    pub config: Option<Value>,
    pub text: String,
    pub drift_file_sha256: Option<String>,
    pub drift_live_hash: Option<String>,
    pub detected_at: Timestamp,
    pub applied_at: Option<Timestamp>,
    pub queued_at: Timestamp,
}

impl Event {
    /// Checks a parsed body against the v1 schema and takes it apart.
    pub fn from_value(body: Value) -> Result<Event, EventError> {
        let Value::Object(mut top) = body else {
            return Err(problem("(body)", "expected a JSON object (one event)"));
        };
        // Taken out first: the config is the bulk of the body and is moved, not copied.
        let config = top.remove("config");
        let schema = required_str(&top, "", "schema")?;
        if schema != SCHEMA_V1 {
            return Err(problem(
                "schema",
                format!("must be \"{SCHEMA_V1}\", got {schema:?}"),
            ));
        }
        let id = required_str(&top, "", "id")?;
        if !is_ulid(&id) {
            return Err(problem(
                "id",
                "must be a ULID (26 Crockford base32 characters)",
            ));
        }
        let agent = required_object(&top, "", "agent")?;
        let agent_host = required_str(agent, "agent.", "host")?;
        if agent_host.is_empty() {
            return Err(problem("agent.host", "must not be empty"));
        }
        let service = required_str(&top, "", "service")?;
        if !matches!(service.as_str(), "dhcp4" | "dhcp6" | "d2") {
            return Err(problem(
                "service",
                format!("must be dhcp4, dhcp6 or d2, got {service:?}"),
            ));
        }
        let kind_text = required_str(&top, "", "kind")?;
        let kind = EventKind::parse(&kind_text).ok_or_else(|| {
            problem(
                "kind",
                format!("must be applied, rejected, drift or snapshot, got {kind_text:?}"),
            )
        })?;
        let file = required_object(&top, "", "file")?;
        let drift = optional_object(&top, "", "drift")?;
        let config = match config {
            None | Some(Value::Null) => None,
            Some(Value::Object(config)) => kind.carries_config().then_some(Value::Object(config)),
            Some(_) => return Err(problem("config", "expected an object (Kea's config)")),
        };
        Ok(Event {
            agent_machine_id: required_str(agent, "agent.", "machine_id")?,
            agent_version: required_str(agent, "agent.", "version")?,
            kea_version: nullable_str(&top, "", "kea_version")?,
            sequence: sequence(&top)?,
            file_path: required_str(file, "file.", "path")?,
            file_sha256: nullable_str(file, "file.", "sha256")?,
            config_hash: nullable_str(&top, "", "config_hash")?,
            text: required_str(&top, "", "text")?,
            drift_file_sha256: drift
                .map(|d| nullable_str(d, "drift.", "file_sha256"))
                .transpose()?
                .flatten(),
            drift_live_hash: drift
                .map(|d| nullable_str(d, "drift.", "live_hash"))
                .transpose()?
                .flatten(),
            detected_at: timestamp(&top, "detected_at")?,
            applied_at: nullable_str(&top, "", "applied_at")?
                .map(|_| timestamp(&top, "applied_at"))
                .transpose()?,
            queued_at: timestamp(&top, "queued_at")?,
            id,
            agent_host,
            service,
            kind,
            config,
        })
    }
}

fn problem(field: &str, problem: impl Into<String>) -> EventError {
    EventError {
        field: field.to_string(),
        problem: problem.into(),
    }
}

fn required<'a>(
    map: &'a Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<&'a Value, EventError> {
    match map.get(key) {
        None => Err(problem(
            &format!("{prefix}{key}"),
            "is required but missing",
        )),
        Some(value) => Ok(value),
    }
}

fn required_str(map: &Map<String, Value>, prefix: &str, key: &str) -> Result<String, EventError> {
    match required(map, prefix, key)? {
        Value::String(text) => Ok(text.clone()),
        other => Err(problem(
            &format!("{prefix}{key}"),
            format!("expected a string, got {}", type_name(other)),
        )),
    }
}

fn nullable_str(
    map: &Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<Option<String>, EventError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(problem(
            &format!("{prefix}{key}"),
            format!("expected a string or null, got {}", type_name(other)),
        )),
    }
}

fn required_object<'a>(
    map: &'a Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<&'a Map<String, Value>, EventError> {
    match required(map, prefix, key)? {
        Value::Object(object) => Ok(object),
        other => Err(problem(
            &format!("{prefix}{key}"),
            format!("expected an object, got {}", type_name(other)),
        )),
    }
}

fn optional_object<'a>(
    map: &'a Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, EventError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => required_object(map, prefix, key).map(Some),
    }
}

fn sequence(map: &Map<String, Value>) -> Result<i64, EventError> {
    match required(map, "", "sequence")?.as_i64() {
        Some(n) if n >= 1 => Ok(n),
        _ => Err(problem("sequence", "expected an integer of at least 1")),
    }
}

fn timestamp(map: &Map<String, Value>, key: &str) -> Result<Timestamp, EventError> {
    let text = required_str(map, "", key)?;
    let millis = parse_rfc3339_millis(&text).map_err(|e| problem(key, e.to_string()))?;
    Ok(Timestamp { text, millis })
}

fn is_ulid(text: &str) -> bool {
    text.len() == 26
        && text.bytes().all(|c| {
            c.is_ascii_digit()
                || (c.is_ascii_uppercase() && !matches!(c, b'I' | b'L' | b'O' | b'U'))
        })
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
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
        assert_eq!(event.kind, EventKind::Applied);
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
    fn configs_of_rejected_and_drift_events_are_not_kept() {
        let body = with(&["kind"], Some(json!("rejected")));
        assert_eq!(
            Event::from_value(body).expect("should succeed").config,
            None
        );
    }
}
