//! The one-shot commands: `apply` (the daemon's decision, once, now) and
//! `check` (like `nginx -t`: is everything the daemon needs in place?).

use super::config::{AgentConfig, ServiceConfig};
use super::lock::{LockError, StateDirLock};
use super::state::StateStore;
use super::sync::{Mode, Next, ServiceSync, Trigger};
use crate::dialect::{self, Style};
use crate::event::wire::Identity;
use crate::event::{Outcome, SyncEvent};
use crate::kea::ha::{self, PARTNER_TIMEOUT, Relationship};
use crate::kea::{ControlChannel, Service};
use crate::upstream::OutboxHandle;
use crate::validate::{Depth, LoadFacts, Validator, Verdict, choose_depth, service_members};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How long `apply` waits for a file that does not parse yet to settle.
const APPLY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs the pipeline once for every configured service (or just `only`) and
/// returns one event per service. Refused while another agent holds the
/// state dir: the daemon applies edits itself, and two writers of one outbox
/// would repeat sequence numbers.
pub async fn apply(
    config: &AgentConfig,
    only: Option<Service>,
) -> Result<Vec<SyncEvent>, LockError> {
    let state_dir = &config.agent.state_dir;
    let lock = match StateDirLock::acquire(state_dir, "apply") {
        Ok(lock) => Some(lock),
        Err(held @ LockError::Held { .. }) => return Err(held),
        Err(error) => {
            tracing::warn!("{error}; applying without the state dir");
            None
        }
    };
    let store = StateStore::new(state_dir);
    // Events go to the outbox, for the daemon to deliver; without the state
    // dir there is no outbox either.
    let outbox = lock.as_ref().and_then(|_| {
        OutboxHandle::open(state_dir, config.outbox, Identity::of_this_host())
            .inspect_err(|error| tracing::warn!("events will not be queued upstream: {error}"))
            .ok()
    });
    let mut events = Vec::new();
    for service in config
        .services
        .iter()
        .filter(|s| only.is_none_or(|o| o == s.service))
    {
        let channel = match service.control_channel() {
            Ok(channel) => channel,
            Err(error) => {
                events.push(unreachable_event(service, error.to_string()));
                continue;
            }
        };
        let mut sync =
            ServiceSync::new(service, channel, store.clone(), outbox.clone(), Mode::Once);
        let detected_at = SystemTime::now();
        let started = std::time::Instant::now();
        loop {
            let checked = sync.check(detected_at, Trigger::Change).await;
            if !checked.events.is_empty() {
                events.extend(checked.events);
                break;
            }
            // A hold for the HA pair ends by itself ([ha] max_hold_s).
            let wait = match checked.next {
                Next::RecheckAfterSettle if started.elapsed() <= APPLY_PATIENCE => config
                    .agent
                    .settle
                    .max(std::time::Duration::from_millis(50)),
                Next::Hold(after) => after,
                _ => break,
            };
            tokio::time::sleep(wait).await;
        }
        if sync.holds_events() {
            tracing::error!(service = %service.service, "the outbox could not take this run's upstream events; the daemon sends Kea's config when it next runs");
        }
    }
    drop(lock);
    Ok(events)
}

/// The exit code of `apply` for its events: the worst outcome wins.
pub fn apply_exit_code(events: &[SyncEvent]) -> u8 {
    events
        .iter()
        .map(|e| e.outcome.exit_code())
        .max()
        .unwrap_or(0)
}

fn unreachable_event(service: &ServiceConfig, text: String) -> SyncEvent {
    let now = SystemTime::now();
    SyncEvent {
        id: None,
        service: service.service,
        outcome: Outcome::Unreachable,
        file: service.config_file.clone(),
        file_sha256: None,
        kea_version: None,
        config_hash: None,
        text,
        detected_at: now,
        finished_at: now,
        rolled_back: None,
        serving: None,
        ha: Vec::new(),
        warnings: Vec::new(),
        config: None,
    }
}

/// One line of `check`'s report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub subject: String,
    pub text: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{mark} {}: {}", self.subject, self.text)
    }
}

fn finding(ok: bool, subject: impl Into<String>, text: impl Into<String>) -> Finding {
    Finding {
        ok,
        subject: subject.into(),
        text: text.into(),
    }
}

/// Checks what the daemon needs: the state dir, and per service the config
/// files (readable, valid for Kea) and the control channel (reachable,
/// permitted, Kea's version).
pub async fn check(config: &AgentConfig) -> Vec<Finding> {
    let mut findings = vec![finding(true, "agent config", config.source.to_string())];
    findings.push(check_state_dir(config));
    for service in &config.services {
        check_service(service, &mut findings).await;
    }
    findings
}

fn check_state_dir(config: &AgentConfig) -> Finding {
    let dir = &config.agent.state_dir;
    let subject = format!("state dir {}", dir.display());
    // A check changes nothing: a missing dir is not made (run as root, that would
    // leave a root-owned dir the service's user cannot write).
    if !dir.exists() {
        return match creatable_in(dir) {
            Ok(parent) => finding(
                true,
                subject,
                format!(
                    "does not exist yet; `run` makes it ({} is writable)",
                    parent.display()
                ),
            ),
            Err(why) => finding(false, subject, format!("does not exist, and {why}")),
        };
    }
    let probe = dir.join(".kea-sync-agent-check");
    let writable = std::fs::write(&probe, b"probe").and_then(|()| std::fs::remove_file(&probe));
    let held = StateDirLock::holder(dir)
        .map(|holder| format!(", in use by {holder}"))
        .unwrap_or_default();
    match writable {
        Ok(()) => finding(true, subject, format!("writable{held}")),
        Err(error) => finding(false, subject, format!("not writable: {error}{held}")),
    }
}

/// The nearest existing ancestor of `dir` when this user may make `dir` in it, else why not.
fn creatable_in(dir: &Path) -> Result<PathBuf, String> {
    let parent = dir
        .ancestors()
        .skip(1)
        .find(|ancestor| ancestor.exists())
        .ok_or_else(|| "no parent of it exists".to_string())?;
    if !parent.is_dir() {
        return Err(format!("{} is not a directory", parent.display()));
    }
    // A probe made and removed at once: this user may make dirs there (root included).
    let probe = parent.join(format!(".kea-sync-agent-check-{}", std::process::id()));
    match std::fs::create_dir(&probe).and_then(|()| std::fs::remove_dir(&probe)) {
        Ok(()) => Ok(parent.to_path_buf()),
        Err(error) => Err(format!(
            "this user cannot make it in {}: {error}",
            parent.display()
        )),
    }
}

async fn check_service(service: &ServiceConfig, findings: &mut Vec<Finding>) {
    let name = service.service;
    let (include_base, why) = service.include_base_and_why();
    let file = &service.config_file;
    let mut facts = LoadFacts::default();
    let mut relationships = Vec::new();
    match dialect::expand_file(file, &include_base, Style::Compact) {
        Ok(expanded) => {
            facts = LoadFacts::of(&expanded.json, name);
            relationships = service_members(&expanded.json, name)
                .map(|members| ha::relationships(members.get("hooks-libraries").copied()))
                .unwrap_or_default();
            findings.push(finding(
                true,
                format!("{name} config {}", file.display()),
                format!(
                    "reads as Kea would ({} file(s); include base {}: {why})",
                    expanded.files.len(),
                    include_base.display()
                ),
            ));
        }
        Err(error) => findings.push(finding(
            false,
            format!("{name} config {}", file.display()),
            error.to_string(),
        )),
    }
    let channel = match service.control_channel() {
        Ok(channel) => Some(channel),
        Err(error) => {
            findings.push(finding(
                false,
                format!("{name} control channel"),
                error.to_string(),
            ));
            None
        }
    };
    let mut kea_version = None;
    if let Some(channel) = &channel {
        let subject = format!("{name} control channel {}", channel.endpoint());
        match channel.version_get().await {
            Ok(version) => {
                findings.push(finding(true, subject, format!("Kea {version} answers")));
                kea_version = Some(version);
            }
            Err(error) => findings.push(finding(false, subject, error.to_string())),
        }
    }
    let (depth, why) = choose_depth(name, service.validation, kea_version.as_deref(), &facts);
    let validator = Validator::new(
        name,
        service.validator.clone(),
        include_base,
        service.timeout,
    );
    let how = match validator.binary() {
        Some(binary) => {
            let flag = if depth == Depth::Load { "-T" } else { "-t" };
            let why = why
                .map(|why| format!("; not -T: {why}"))
                .unwrap_or_default();
            format!("{} {flag}{why}", binary.display())
        }
        None => "config-test (validator binary not found)".to_string(),
    };
    let subject = format!("{name} validation ({how})");
    match validator.validate(file, channel.as_ref(), depth).await {
        Ok(validation) => match validation.verdict {
            Verdict::Valid => findings.push(finding(true, subject, "Kea accepts the file")),
            Verdict::Invalid(text) => findings.push(finding(
                false,
                subject,
                format!("Kea refuses the file: {text}"),
            )),
        },
        Err(error) => findings.push(finding(false, subject, error.to_string())),
    }
    for relationship in &relationships {
        check_ha_partner(name, relationship, findings).await;
    }
}

/// Whether the HA partner answers ha-heartbeat as the agent will ask it
/// before every reload of this server.
async fn check_ha_partner(name: Service, relationship: &Relationship, findings: &mut Vec<Finding>) {
    let role = relationship.role();
    let Some(partner) = relationship.partner() else {
        findings.push(finding(
            false,
            format!("{name} HA ({})", relationship.this_server),
            "no partner among the peers: check this-server-name and peers",
        ));
        return;
    };
    let subject = format!(
        "{name} HA: {} ({role}, {}), partner {} at {}",
        relationship.this_server, relationship.mode, partner.name, partner.url
    );
    let asked = match ControlChannel::to_ha_peer(name, partner, relationship, PARTNER_TIMEOUT) {
        Ok(channel) => channel.ha_heartbeat().await,
        Err(error) => Err(error),
    };
    match asked {
        Ok(state) => findings.push(finding(true, subject, format!("answers ha-heartbeat: {state}"))),
        Err(error) => findings.push(finding(
            false,
            subject,
            format!(
                "does not answer ha-heartbeat ({error}); before a reload the agent then relies on what this server last heard from it, and holds the reload when that is not recent"
            ),
        )),
    }
}
