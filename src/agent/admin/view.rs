//! The admin API's answers as JSON, and the tables `status` and `outbox`
//! print from that JSON (so the CLI shows exactly what the daemon said).
//! Pure: plain data in, JSON or text out.

use super::Board;
use crate::upstream::deliveries::{Attempts, ServiceDeliveries};
use crate::upstream::outbox::{DeadEntry, Entry};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

/// What the outbox holds, as the server reads it for an answer.
pub struct OutboxNow<'a> {
    pub queued: &'a [Entry],
    pub dead: &'a [DeadEntry],
    pub dropped: u64,
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

fn age_s(since: Option<SystemTime>, now: SystemTime) -> Option<f64> {
    since.map(|t| now.duration_since(t).unwrap_or_default().as_secs_f64())
}

/// `GET /v1/status`.
pub fn status(
    board: &Board,
    outbox: &OutboxNow,
    deliveries: impl Fn(crate::kea::Service) -> ServiceDeliveries,
    now: SystemTime,
) -> Value {
    let services: Vec<Value> = board
        .services
        .values()
        .map(|service| {
            let mine: Vec<&Entry> = outbox
                .queued
                .iter()
                .filter(|e| e.service == service.service)
                .collect();
            let oldest = mine.iter().filter_map(|e| e.queued_at()).min();
            let dead = outbox
                .dead
                .iter()
                .filter(|d| d.entry.service == service.service)
                .count();
            let delivered = deliveries(service.service);
            let mut value = serde_json::to_value(service).unwrap_or_default();
            value["last_event"] = board
                .last_events
                .get(service.service.name())
                .cloned()
                .unwrap_or(Value::Null);
            value["outbox"] = json!({
                "queued": mine.len(),
                "oldest_age_s": age_s(oldest, now),
                "dead": dead,
                "last_delivery": delivered.last_success.map(rfc3339),
                "last_error": delivered.last_error.map(|(at, text)| json!({"at": rfc3339(at), "text": text})),
            });
            value
        })
        .collect();
    json!({
        "agent": {
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "config": board.config,
            "started_at": rfc3339(board.started_at),
            "uptime_s": now.duration_since(board.started_at).unwrap_or_default().as_secs(),
        },
        "services": services,
        "outbox": {
            "queued": outbox.queued.len(),
            "bytes": outbox.queued.iter().map(|e| e.bytes).sum::<u64>(),
            "dead": outbox.dead.len(),
            "dropped": outbox.dropped,
        },
    })
}

/// `GET /v1/outbox` (and `outbox` without a daemon: `attempts` then knows
/// nothing).
pub fn outbox(outbox: &OutboxNow, attempts: impl Fn(&str) -> Attempts, now: SystemTime) -> Value {
    let entry = |e: &Entry, state: &str, error: Option<String>, tries: Option<u32>| {
        json!({
            "id": e.id,
            "service": e.service.name(),
            "sequence": e.sequence,
            "kind": e.kind.as_str(),
            "state": state,
            "age_s": age_s(e.queued_at(), now),
            "bytes": e.bytes,
            "trimmed": e.trimmed,
            "attempts": tries,
            "last_error": error,
        })
    };
    let mut list: Vec<Value> = outbox
        .queued
        .iter()
        .map(|e| {
            let tried = attempts(&e.id);
            let count = (tried.count > 0).then_some(tried.count);
            entry(e, "queued", tried.last_error, count)
        })
        .collect();
    list.extend(outbox.dead.iter().map(|d| {
        let tried = attempts(&d.entry.id);
        let count = (tried.count > 0).then_some(tried.count);
        let reply = d.reply.lines().take(2).collect::<Vec<_>>().join(": ");
        entry(
            &d.entry,
            "dead",
            Some(reply).filter(|r| !r.is_empty()),
            count,
        )
    }));
    json!({ "events": list, "dropped": outbox.dropped })
}

/// A duration for people: "3 s", "4 min", "2 h", "5 d".
fn human(seconds: f64) -> String {
    let d = Duration::from_secs_f64(seconds.max(0.0)).as_secs();
    match d {
        0..120 => format!("{d} s"),
        120..7200 => format!("{} min", d / 60),
        7200..172_800 => format!("{} h", d / 3600),
        _ => format!("{} d", d / 86_400),
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

fn short(value: &Value) -> String {
    value
        .as_str()
        .map_or("-".into(), |s| s.chars().take(12).collect())
}

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Rows of cells as aligned columns.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `status` for people, from the JSON of `GET /v1/status`.
pub fn status_table(status: &Value) -> String {
    let agent = &status["agent"];
    let mut out = format!(
        "kea-sync-agent {} (pid {}), up {}, config {}\n\n",
        text(&agent["version"]),
        agent["pid"],
        human(agent["uptime_s"].as_f64().unwrap_or(0.0)),
        text(&agent["config"]),
    );
    let mut rows = vec![vec![
        "SERVICE".to_string(),
        "KEA".into(),
        "FILE".into(),
        "LAST CHANGE".into(),
        "OUTBOX".into(),
    ]];
    let empty = Vec::new();
    for service in status["services"].as_array().unwrap_or(&empty) {
        let kea = match service["kea_reachable"].as_bool() {
            Some(true) => format!("{} up", text(&service["kea_version"])),
            Some(false) => "unreachable".into(),
            None => "not asked yet".into(),
        };
        let in_sync = service["file_sha256"] == service["applied_sha256"];
        let file = format!(
            "{} ({})",
            short(&service["file_sha256"]),
            if in_sync { "applied" } else { "not applied" }
        );
        let event = &service["last_event"];
        let change = if event.is_null() {
            "-".to_string()
        } else {
            let mut said = format!(
                "{} {}",
                text(&event["outcome"]),
                text(&event["finished_at"])
            );
            if event["rolled_back"] == true {
                said.push_str(" (rolled back)");
            }
            said
        };
        let outbox = &service["outbox"];
        let mut queue = format!("{} queued", outbox["queued"]);
        if let Some(age) = outbox["oldest_age_s"].as_f64() {
            queue.push_str(&format!(", oldest {}", human(age)));
        }
        if outbox["dead"].as_u64().unwrap_or(0) > 0 {
            queue.push_str(&format!(", {} dead", outbox["dead"]));
        }
        rows.push(vec![
            text(&service["service"]).to_string(),
            kea,
            file,
            change,
            queue,
        ]);
    }
    out.push_str(&table(&rows));
    for service in status["services"].as_array().unwrap_or(&empty) {
        let name = text(&service["service"]);
        out.push_str(&format!("\n{name}: {}\n", text(&service["config_file"])));
        let files = service["files"].as_array().map_or(0, Vec::len);
        if files > 1 {
            out.push_str(&format!("  includes {} file(s)\n", files - 1));
        }
        if let Some(event) = service["last_event"].as_object() {
            out.push_str(&format!(
                "  last: {}\n",
                cut(event.get("text").and_then(Value::as_str).unwrap_or(""), 160)
            ));
        }
        if let Some(held) = service["reload_held"].as_str() {
            out.push_str(&format!("  reload held: {held}\n"));
        }
        for ha in service["ha"].as_array().unwrap_or(&empty) {
            out.push_str(&format!(
                "  HA: {} ({}, {}) is {}; partner {} is {}\n",
                text(&ha["this_server"]),
                text(&ha["role"]),
                text(&ha["mode"]),
                text(&ha["state_after"]),
                text(&ha["partner"]),
                text(&ha["partner_state_after"]),
            ));
        }
        let outbox = &service["outbox"];
        if let Some(at) = outbox["last_delivery"].as_str() {
            out.push_str(&format!("  delivered upstream last at {at}\n"));
        }
        if let Some(error) = outbox["last_error"].as_object() {
            out.push_str(&format!(
                "  last delivery error at {}: {}\n",
                error.get("at").and_then(Value::as_str).unwrap_or("-"),
                cut(error.get("text").and_then(Value::as_str).unwrap_or(""), 160)
            ));
        }
    }
    out
}

/// `outbox` for people, from the JSON of `GET /v1/outbox`.
pub fn outbox_table(outbox: &Value) -> String {
    let empty = Vec::new();
    let events = outbox["events"].as_array().unwrap_or(&empty);
    if events.is_empty() {
        return "the outbox is empty: every event was delivered\n".into();
    }
    let mut rows = vec![vec![
        "STATE".to_string(),
        "SERVICE".into(),
        "SEQ".into(),
        "KIND".into(),
        "AGE".into(),
        "SIZE".into(),
        "TRIES".into(),
        "ID".into(),
        "LAST ERROR".into(),
    ]];
    for event in events {
        rows.push(vec![
            text(&event["state"]).to_string(),
            text(&event["service"]).to_string(),
            event["sequence"].to_string(),
            text(&event["kind"]).to_string(),
            event["age_s"].as_f64().map_or("-".into(), human),
            format!("{} B", event["bytes"]),
            event["attempts"]
                .as_u64()
                .map_or("-".into(), |n| n.to_string()),
            text(&event["id"]).to_string(),
            cut(event["last_error"].as_str().unwrap_or("-"), 100),
        ]);
    }
    let mut out = table(&rows);
    if outbox["dropped"].as_u64().unwrap_or(0) > 0 {
        out.push_str(&format!(
            "{} event(s) dropped since the agent started (outbox bounds)\n",
            outbox["dropped"]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;
    use crate::kea::Service;

    fn entry(sequence: u64) -> Entry {
        Entry {
            service: Service::Dhcp4,
            sequence,
            kind: Kind::Applied,
            id: ulid::Ulid::new().to_string(),
            trimmed: false,
            bytes: 1200,
        }
    }

    #[test]
    fn the_outbox_lists_queued_and_dead_events_with_their_errors() {
        let queued = [entry(3)];
        let dead = [DeadEntry {
            entry: entry(2),
            reply: "HTTP 400\nnot a valid event".into(),
        }];
        let now = SystemTime::now() + Duration::from_secs(5);
        let id = queued[0].id.clone();
        let value = outbox(
            &OutboxNow {
                queued: &queued,
                dead: &dead,
                dropped: 0,
            },
            |asked| Attempts {
                count: u32::from(asked == id) * 4,
                last_error: (asked == id).then(|| "HTTP 401: bad token".into()),
            },
            now,
        );
        let events = value["events"].as_array().expect("events");
        assert_eq!(events[0]["state"], "queued");
        assert_eq!(events[0]["attempts"], 4);
        assert_eq!(events[0]["last_error"], "HTTP 401: bad token");
        assert!(events[0]["age_s"].as_f64().expect("age") >= 4.0);
        assert_eq!(events[1]["state"], "dead");
        assert_eq!(events[1]["last_error"], "HTTP 400: not a valid event");
        let table = outbox_table(&value);
        assert!(
            table.contains("queued  dhcp4") && table.contains("HTTP 401"),
            "{table}"
        );
        assert!(outbox_table(&json!({"events": []})).contains("empty"));
    }

    #[test]
    fn people_read_durations() {
        assert_eq!(human(3.2), "3 s");
        assert_eq!(human(600.0), "10 min");
        assert_eq!(human(3.0 * 86_400.0), "3 d");
    }
}
