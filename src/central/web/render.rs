//! The pages as pure functions of what the store answered: the fleet, one
//! server's history, the diff of two versions.

use super::html::{ago, escape, page, segment, server_href, shorten};
use crate::central::diff::{Category, Change, ChangeKind, Follower, Summary};
use crate::central::pairs::{Relationship, Reported};
use crate::central::review::Finding;
use crate::central::store::{EventInfo, ServerSummary, VersionInfo};
use crate::central::time::format_millis;
use std::fmt::Write;

/// A server that sent nothing for this long is shown as silent.
pub const SILENT_AFTER_MS: i64 = 24 * 3600 * 1000;

/// The most changes a diff page lists (the JSON API has them all).
pub const MAX_CHANGES_SHOWN: usize = 2000;

/// A server's status, worst first: the colour of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Rejected,
    Drift,
    Silent,
    NoConfigYet,
    InSync,
}

impl Status {
    /// Open reject beats open drift beats silence.
    pub fn of(server: &ServerSummary, now_ms: i64) -> Status {
        if server.reject_open {
            Status::Rejected
        } else if server.drift_open {
            Status::Drift
        } else if now_ms - server.last_seen_ms > SILENT_AFTER_MS {
            Status::Silent
        } else if server.version.is_none() {
            Status::NoConfigYet
        } else {
            Status::InSync
        }
    }

    fn pill(self) -> &'static str {
        match self {
            Status::Rejected => "<span class=\"pill rejected\">edit rejected</span>",
            Status::Drift => "<span class=\"pill drift\">drift</span>",
            Status::Silent => "<span class=\"pill silent\">silent</span>",
            Status::NoConfigYet => "<span class=\"pill new\">no config yet</span>",
            Status::InSync => "<span class=\"pill ok\">in sync</span>",
        }
    }
}

/// What the fleet's rejection count counts, as its tooltip says.
const OPEN_REJECTION: &str = "Servers whose newest edit was rejected, with no applied config or snapshot since. \
     A rejection that a later good edit fixed is closed and no longer counted; each server's page keeps its history.";

/// What the fleet's drift count counts.
const OPEN_DRIFT: &str = "Servers whose running config differs from their files (drift reported), \
     with no applied config or snapshot since. A server with an open rejection is counted there instead.";

/// `1 open rejection`, `0 open rejections`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `/`: every server and service with its status.
pub fn fleet(servers: &[ServerSummary], now_ms: i64) -> String {
    let statuses: Vec<Status> = servers.iter().map(|s| Status::of(s, now_ms)).collect();
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    let mut body = String::from("<h1>Fleet</h1>");
    let _ = write!(
        body,
        "<p class=\"counts\"><span>{}</span><span>{} in sync</span>\
         <span title=\"{OPEN_DRIFT}\">{}</span><span title=\"{OPEN_REJECTION}\">{}</span><span>{} silent</span></p>",
        plural(servers.len(), "server/service pair", "server/service pairs"),
        count(Status::InSync),
        plural(count(Status::Drift), "open drift", "open drifts"),
        plural(count(Status::Rejected), "open rejection", "open rejections"),
        count(Status::Silent)
    );
    if servers.is_empty() {
        body.push_str("<p class=\"muted\">No events received yet. Point an agent's <code>[upstream] url</code> at <code>/v1/events</code>.</p>");
        return page("Fleet", &body);
    }
    body.push_str(
        "<table><tr><th>Status</th><th>Server</th><th>Service</th><th>Version</th><th>Last applied</th>\
         <th>Last seen</th><th>Last event</th></tr>",
    );
    for (server, status) in servers.iter().zip(statuses) {
        let applied = server
            .last_applied_ms
            .map_or("–".to_string(), |ms| ago(now_ms, ms));
        let _ = write!(
            body,
            "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td title=\"{}\">{}</td>\
             <td><span class=\"pill {kind}\">{kind}</span> <span class=\"muted\">{}</span></td></tr>",
            status.pill(),
            escape(&server_href(&server.server, &server.service)),
            escape(&server.server),
            escape(&server.service),
            server.version.map_or("–".to_string(), |v| v.to_string()),
            applied,
            format_millis(server.last_seen_ms),
            ago(now_ms, server.last_seen_ms),
            escape(&shorten(&server.last_text, 90)),
            kind = escape(&server.last_event_kind),
        );
    }
    body.push_str("</table>");
    page("Fleet", &body)
}

/// `/servers/{server}/{service}`: state, versions (with diff links) and recent events.
/// The HA relationships of the fleet and what differs between partners.
pub fn ha(relationships: &[Relationship]) -> String {
    let mut body = String::from("<h1>HA pairs</h1>");
    if relationships.is_empty() {
        body.push_str("<p class=\"muted\">No server's current config loads the HA hook.</p>");
        return page("HA pairs", &body);
    }
    for relationship in relationships {
        let pill = if relationship.in_sync {
            "<span class=\"pill applied\">in sync</span>"
        } else {
            "<span class=\"pill rejected\">differs</span>"
        };
        let _ = write!(
            body,
            "<h2>{} ({}) {pill}</h2><table><tr><th>Server</th><th>Service</th><th>this-server-name</th><th>Role</th><th>State (as its agent last reported)</th></tr>",
            escape(&relationship.peers.join(" + ")),
            escape(&relationship.mode)
        );
        for member in &relationship.servers {
            let _ = write!(
                body,
                "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
                server_href(&member.server, &member.service),
                escape(&member.server),
                escape(&member.service),
                escape(&member.this_server_name),
                escape(&member.role),
                reported_state(member.reported.as_ref())
            );
        }
        body.push_str("</table>");
        if !relationship.missing.is_empty() {
            let _ = write!(
                body,
                "<p>No server of the fleet is {}: its agent has not reported yet.</p>",
                escape(&relationship.missing.join(", "))
            );
        }
        if !relationship.differences.is_empty() {
            body.push_str("<table class=\"differences\"><tr><th>Element</th><th>What</th><th>Values</th></tr>");
            for difference in &relationship.differences {
                let values: Vec<String> = difference
                    .values
                    .iter()
                    .map(|(server, value)| {
                        format!("{server}: {}", shorten(&value.to_string(), 200))
                    })
                    .collect();
                let _ = write!(
                    body,
                    "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                    escape(&difference.element),
                    escape(&difference.text),
                    escape(&values.join("\n"))
                );
            }
            body.push_str("</table>");
        }
    }
    page("HA pairs", &body)
}

/// The review of the current version: what its checks found.
fn findings_section(version: Option<i64>, findings: &[Finding]) -> String {
    let Some(version) = version else {
        return String::new();
    };
    if findings.is_empty() {
        return format!("<p class=\"findings-none\">Review of version {version}: no findings.</p>");
    }
    let mut out = format!(
        "<h2>Review of version {version}: {} finding(s)</h2><table class=\"findings\"><tr><th>severity</th><th>check</th><th>where</th><th>what</th></tr>",
        findings.len()
    );
    for finding in findings {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
            escape(finding.severity),
            escape(finding.check),
            escape(&finding.path),
            escape(&finding.text)
        );
    }
    out.push_str("</table>");
    out
}

pub fn server(
    summary: &ServerSummary,
    versions: &[VersionInfo],
    events: &[EventInfo],
    findings: &[Finding],
    now_ms: i64,
) -> String {
    let (name, service) = (&summary.server, &summary.service);
    let mut body = format!(
        "<h1>{} / {} {}</h1>",
        escape(name),
        escape(service),
        Status::of(summary, now_ms).pill()
    );
    body.push_str("<table class=\"facts\">");
    let facts = [
        ("Agent host", summary.agent_host.clone()),
        ("Agent version", summary.agent_version.clone()),
        (
            "Kea version",
            summary.kea_version.clone().unwrap_or_default(),
        ),
        ("Current version", current_version(summary, events)),
        (
            "Content hash",
            summary.content_hash.clone().unwrap_or_default(),
        ),
        (
            "Kea config hash",
            summary.config_hash.clone().unwrap_or_default(),
        ),
        (
            "Last seen",
            format!(
                "{} ({})",
                format_millis(summary.last_seen_ms),
                ago(now_ms, summary.last_seen_ms)
            ),
        ),
        ("Last event", last_event(summary, events)),
    ];
    for (label, value) in facts {
        let _ = write!(
            body,
            "<tr><td>{label}</td><td class=\"mono\">{}</td></tr>",
            escape(&value)
        );
    }
    body.push_str("</table>");
    body.push_str(&findings_section(summary.version, findings));
    let base = server_href(name, service);
    if versions.len() >= 2 {
        let options = |selected: i64| {
            versions.iter().fold(String::new(), |mut out, v| {
                let mark = if v.number == selected {
                    " selected"
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    "<option value=\"{n}\"{mark}>{n}</option>",
                    n = v.number
                );
                out
            })
        };
        let _ = write!(
            body,
            "<form method=\"get\" action=\"{}/diff\">Compare version <select name=\"from\">{}</select> with \
             <select name=\"to\">{}</select> <button type=\"submit\">Show diff</button></form>",
            escape(&base),
            options(versions[1].number),
            options(versions[0].number)
        );
    }
    body.push_str("<h2>Versions</h2>");
    if versions.is_empty() {
        body.push_str(
            "<p class=\"muted\">No config received yet (applied, snapshot or drift).</p>",
        );
    } else {
        body.push_str("<table><tr><th>Version</th><th>Kind</th><th>Applied</th><th>Received</th><th>Size</th><th>Content hash</th><th></th></tr>");
        for v in versions {
            let diff = if v.number > 1 {
                format!(
                    "<a href=\"{}/diff?from={}&amp;to={}\">diff with {}</a>",
                    escape(&base),
                    v.number - 1,
                    v.number,
                    v.number - 1
                )
            } else {
                String::new()
            };
            let json = format!(
                "/v1/servers/{}/{}/versions/{}",
                segment(name),
                segment(service),
                v.number
            );
            let _ = write!(
                body,
                "<tr><td>{}</td><td><span class=\"pill {kind}\">{kind}</span></td><td>{}</td><td>{}</td><td>{} bytes</td>\
                 <td class=\"mono\">{}</td><td>{diff} <a href=\"{}\">JSON</a></td></tr>",
                v.number,
                v.applied_ms.map(format_millis).unwrap_or_default(),
                format_millis(v.received_ms),
                v.json_bytes,
                escape(&shorten(&v.content_hash, 16)),
                escape(&json),
                kind = escape(&v.kind),
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Recent changes</h2><table><tr><th>Received</th><th>Kind</th><th title=\"The agent's event sequence number\">Event #</th><th>Made version</th><th>Kea's text</th></tr>");
    for e in events {
        let _ = write!(
            body,
            "<tr><td title=\"{}\">{}</td><td><span class=\"pill {kind}\">{kind}</span></td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            format_millis(e.received_ms),
            ago(now_ms, e.received_ms),
            e.sequence,
            e.version.map(|v| v.to_string()).unwrap_or_default(),
            outcome_marks(e) + &escape(&shorten(&e.text, 400)),
            kind = escape(&e.kind),
        );
    }
    body.push_str("</table>");
    page(&format!("{name} / {service}"), &body)
}

/// The current version, and the event that made it when the history shows it:
/// `version 3 (made by event #4)`.
fn current_version(summary: &ServerSummary, events: &[EventInfo]) -> String {
    let Some(number) = summary.version else {
        return "none yet".to_string();
    };
    match events.iter().find(|e| e.version == Some(number)) {
        Some(event) => format!("version {number} (made by event #{})", event.sequence),
        None => format!("version {number}"),
    }
}

/// The newest event, numbered as an event and not as a version:
/// `event #4, applied, made version 3: ...`.
fn last_event(summary: &ServerSummary, events: &[EventInfo]) -> String {
    let made = events
        .iter()
        .find(|e| e.id == summary.last_event_id)
        .and_then(|e| e.version)
        .map(|v| format!(", made version {v}"))
        .unwrap_or_default();
    format!(
        "event #{}, {}{made}: {}",
        summary.last_sequence, summary.last_event_kind, summary.last_text
    )
}

/// A member's reported HA state: the state, its partner's, any error, when.
fn reported_state(reported: Option<&Reported>) -> String {
    let Some(reported) = reported else {
        return "<span class=\"muted\">no event with HA state yet</span>".to_string();
    };
    let state = reported.state.as_deref().unwrap_or("unknown");
    let mut cell = format!(
        "<span class=\"mono\">{}</span> (partner: {}) <span class=\"muted\">{}</span>",
        escape(state),
        escape(reported.partner_state.as_deref().unwrap_or("unknown")),
        escape(&reported.at)
    );
    if let Some(error) = &reported.error {
        let _ = write!(
            cell,
            "<br><span class=\"pill rejected\">{}</span>",
            escape(error)
        );
    }
    cell
}

/// What a person must see first about an event: a rolled-back rejection
/// leaves Kea on the last good config; a Kea not serving DHCP is an outage;
/// HA errors and the agent's warnings.
fn outcome_marks(event: &EventInfo) -> String {
    let mut marks = String::new();
    for ha in &event.ha {
        if let Some(error) = &ha.error {
            let _ = write!(
                marks,
                "<span class=\"pill rejected\">HA {}: {}</span> ",
                escape(&ha.this_server),
                escape(error)
            );
        }
    }
    for warning in &event.warnings {
        let _ = write!(
            marks,
            "<span class=\"pill drift\">{}</span> ",
            escape(warning)
        );
    }
    if event.rolled_back == Some(true) {
        marks
            .push_str("<span class=\"pill ok\">rolled back: Kea runs the last good config</span> ");
    }
    if event.serving == Some(false) {
        marks.push_str("<span class=\"pill rejected\">Kea not serving DHCP</span> ");
    }
    marks
}

/// `/servers/{server}/{service}/diff?from=&to=`: the changes, grouped by category.
pub fn diff(
    server: &str,
    service: &str,
    from: &VersionInfo,
    to: &VersionInfo,
    changes: &[Change],
) -> String {
    let mut body = format!(
        "<h1><a href=\"{}\">{} / {}</a>: version {} → {}</h1>",
        escape(&server_href(server, service)),
        escape(server),
        escape(service),
        from.number,
        to.number
    );
    let summary = Summary::of(changes);
    let _ = write!(
        body,
        "<p class=\"summary\">{}</p><p class=\"muted\">{} ({}) → {} ({})</p>",
        escape(&summary.text()),
        escape(&shorten(&from.content_hash, 12)),
        format_millis(from.received_ms),
        escape(&shorten(&to.content_hash, 12)),
        format_millis(to.received_ms),
    );
    if changes.is_empty() {
        body.push_str("<p>The two versions have the same content.</p>");
    }
    if summary.inherited > 0 {
        body.push_str(
            "<p class=\"muted\">Kea's config-get repeats an inherited setting in every subnet and shared network \
             that inherits it. Where such a copy changed along with the setting it inherits, it is listed under \
             that change (\"followed by\") and not counted as a change of its own.</p>",
        );
    }
    let shown = &changes[..changes.len().min(MAX_CHANGES_SHOWN)];
    for category in Category::ALL {
        let rows: Vec<&Change> = shown.iter().filter(|c| c.category == category).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            body,
            "<h2>{} ({})</h2><table class=\"diff\"><tr><th></th><th>Where</th><th>Before</th><th>After</th></tr>",
            category.title(),
            rows.len()
        );
        for change in rows {
            let (sign, class) = match change.kind {
                ChangeKind::Added => ("+ added", "added"),
                ChangeKind::Removed => ("− removed", "removed"),
                ChangeKind::Changed => ("~ changed", "changed"),
            };
            let value = |v: &Option<serde_json::Value>| {
                v.as_ref()
                    .map(|v| escape(&shorten(&v.to_string(), 300)))
                    .unwrap_or_default()
            };
            let _ = write!(
                body,
                "<tr><td class=\"{class}\">{sign}</td><td>{}{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
                escape(&change.path_text()),
                followers(&change.followed_by),
                value(&change.before),
                value(&change.after),
            );
        }
        body.push_str("</table>");
    }
    if changes.len() > shown.len() {
        let _ = write!(
            body,
            "<p class=\"muted\">{} more changes not shown; the JSON API lists them all.</p>",
            changes.len() - shown.len()
        );
    }
    page(
        &format!("{server} / {service} diff {} → {}", from.number, to.number),
        &body,
    )
}

/// The subnets and shared networks that followed a change, folded:
/// `followed by 3 subnets` and, opened, where each is.
fn followers(followed_by: &[Follower]) -> String {
    if followed_by.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<details class=\"followers\"><summary>{}</summary><ul class=\"mono\">",
        escape(&followed_text(followed_by))
    );
    for follower in followed_by {
        let scope = &follower.path[..follower.path.len().saturating_sub(1)];
        let _ = write!(out, "<li>{}</li>", escape(&scope.join(" › ")));
    }
    out.push_str("</ul></details>");
    out
}

/// `followed by 3 subnets and 1 shared network`.
fn followed_text(followed_by: &[Follower]) -> String {
    let count = |category| {
        followed_by
            .iter()
            .filter(|f| f.category == category)
            .count()
    };
    let parts: Vec<String> = [
        (Category::Subnet, "subnet", "subnets"),
        (Category::SharedNetwork, "shared network", "shared networks"),
    ]
    .into_iter()
    .filter(|(category, _, _)| count(*category) > 0)
    .map(|(category, one, many)| plural(count(category), one, many))
    .collect();
    format!("followed by {}", parts.join(" and "))
}

/// A page saying what went wrong.
pub fn error(message: &str) -> String {
    page(
        "Error",
        &format!(
            "<h1>Sorry</h1><p>{}</p><p><a href=\"/\">Back to the fleet</a></p>",
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str) -> ServerSummary {
        ServerSummary {
            server: name.into(),
            service: "dhcp4".into(),
            version: Some(2),
            content_hash: Some("ab".repeat(32)),
            config_hash: None,
            kea_version: Some("2.2.0".into()),
            agent_host: name.into(),
            agent_version: "0.1.0".into(),
            last_applied_ms: Some(1_000),
            last_seen_ms: 1_000,
            last_event_kind: "applied".into(),
            last_event_id: "01HZY5P6J8K9M0N1P2Q3R4S5T6".into(),
            last_sequence: 4,
            last_text: "<reloaded>".into(),
            drift_open: false,
            reject_open: false,
            ha: Vec::new(),
        }
    }

    #[test]
    fn status_worst_first() {
        let mut s = summary("kea1");
        assert_eq!(Status::of(&s, 2_000), Status::InSync);
        assert_eq!(Status::of(&s, 2_000 + SILENT_AFTER_MS), Status::Silent);
        s.drift_open = true;
        assert_eq!(Status::of(&s, 2_000), Status::Drift);
        s.reject_open = true;
        assert_eq!(Status::of(&s, 2_000), Status::Rejected);
        s = summary("kea1");
        s.version = None;
        assert_eq!(Status::of(&s, 2_000), Status::NoConfigYet);
    }

    #[test]
    fn user_data_is_escaped() {
        let html = fleet(&[summary("<script>alert(1)</script>")], 2_000);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;reloaded&gt;"));
        assert!(html.contains("/servers/%3Cscript%3Ealert%281%29%3C%2Fscript%3E/dhcp4"));
    }

    #[test]
    fn the_fleet_counts_open_rejections_and_says_so() {
        let mut rejected = summary("kea1");
        rejected.reject_open = true;
        let html = fleet(&[rejected, summary("kea2")], 2_000);
        assert!(html.contains(">1 open rejection</span>"), "{html}");
        assert!(html.contains(">0 open drifts</span>"), "{html}");
        assert!(html.contains("title=\"Servers whose newest edit was rejected"));
        let html = fleet(&[summary("kea2")], 2_000);
        assert!(html.contains(">0 open rejections</span>"), "{html}");
    }

    #[test]
    fn events_and_versions_are_numbered_apart() {
        let s = summary("kea1");
        let applied = EventInfo {
            id: s.last_event_id.clone(),
            kind: "applied".into(),
            sequence: 4,
            text: "<reloaded>".into(),
            detected_ms: 0,
            applied_at: None,
            received_ms: 0,
            config_hash: None,
            version: Some(2),
            rolled_back: None,
            serving: None,
            ha: Vec::new(),
            warnings: Vec::new(),
        };
        assert_eq!(
            last_event(&s, std::slice::from_ref(&applied)),
            "event #4, applied, made version 2: <reloaded>"
        );
        assert_eq!(
            current_version(&s, std::slice::from_ref(&applied)),
            "version 2 (made by event #4)"
        );
        assert_eq!(last_event(&s, &[]), "event #4, applied: <reloaded>");
        assert_eq!(current_version(&s, &[]), "version 2");
    }

    #[test]
    fn followers_are_named_by_kind() {
        let follower = |category, at: &str| Follower {
            category,
            path: vec!["Dhcp4".into(), at.into(), "valid-lifetime".into()],
        };
        let followed = [
            follower(Category::Subnet, "subnet4 id=1 (192.0.2.0/24)"),
            follower(Category::Subnet, "subnet4 id=2"),
            follower(Category::SharedNetwork, "shared-networks campus"),
        ];
        assert_eq!(
            followed_text(&followed),
            "followed by 2 subnets and 1 shared network"
        );
        assert_eq!(followed_text(&followed[..1]), "followed by 1 subnet");
        let html = followers(&followed);
        assert!(
            html.contains("<li>Dhcp4 › subnet4 id=1 (192.0.2.0/24)</li>"),
            "{html}"
        );
        assert_eq!(followers(&[]), "");
    }

    #[test]
    fn a_rolled_back_rejection_says_what_kea_runs() {
        let event = |rolled_back, serving| EventInfo {
            id: "01J".into(),
            kind: "rejected".into(),
            sequence: 1,
            text: "config-reload failed".into(),
            detected_ms: 0,
            applied_at: None,
            received_ms: 0,
            config_hash: None,
            version: None,
            rolled_back,
            serving,
            ha: Vec::new(),
            warnings: Vec::new(),
        };
        assert!(
            outcome_marks(&event(Some(true), Some(true))).contains("Kea runs the last good config")
        );
        assert!(outcome_marks(&event(Some(false), Some(false))).contains("not serving"));
        assert_eq!(outcome_marks(&event(None, None)), "");
    }
}
