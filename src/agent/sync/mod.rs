//! One service's pipeline, run once per settled change:
//!
//! read files -> first decision (unchanged / half-written / known reject)
//! -> Kea reachable? -> fresh Kea that loaded the files itself?
//! -> equal to the in-memory config? -> validate -> config-reload
//! -> verify live -> record and report (plus a snapshot when Kea restarted,
//! or drift when its config changed behind the agent's back).
//!
//! Decisions live in `decide.rs`; this file does the IO between them.

use super::config::ServiceConfig;
use super::decide::{self, FileRead, FirstStep};
use super::event::{Outcome, SyncEvent};
use super::state::{ServiceState, StateStore};
use crate::dialect::{self, Expanded, Style};
use crate::digest::{hex, json_value_digest, sha256_hex};
use crate::kea::{ConfigHash, ControlChannel, KeaError, Service};
use crate::upstream::SharedOutbox;
use crate::upstream::pusher::lock;
use crate::validate::{ValidateError, Validation, Validator, Verdict};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;

/// What the caller should do after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing until the next change.
    Idle,
    /// The file did not parse: look again after one more settle period.
    RecheckAfterSettle,
    /// Kea (or the validator) could not be reached: retry with backoff.
    Retry,
}

/// The result of one check: its events (usually one; none when there is
/// nothing new to say) and what to do next.
#[derive(Debug)]
pub struct Checked {
    pub events: Vec<SyncEvent>,
    pub next: Next,
}

/// Why a check was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A file event, or `apply`.
    Change,
    /// Start-up, the periodic safety net, Kea back after an outage: also
    /// looks at Kea's memory for a restart (snapshot) or drift.
    Full,
}

/// Kea's in-memory config and its hash.
struct Live {
    hash: String,
    config: Box<RawValue>,
}

/// A service's pipeline with what it remembers between checks.
#[derive(Debug)]
pub struct ServiceSync {
    pub service: Service,
    pub config_file: PathBuf,
    include_base: PathBuf,
    channel: ControlChannel,
    validator: Validator,
    store: StateStore,
    state: ServiceState,
    /// The Kea process last talked to: a new pid means Kea (re)started.
    kea_pid: Option<u32>,
    kea_version: Option<String>,
    /// Every file of the config as last read (main file first).
    files: Vec<PathBuf>,
    /// Report already-rejected content again (`apply`; the daemon says it once).
    pub repeat_rejects: bool,
    /// Where upstream events are made durable before the state records them.
    outbox: Option<(SharedOutbox, Arc<Notify>)>,
    /// A validation started while the latest change settles.
    speculation: Option<Speculation>,
    /// More than one change since the last check: validate at its end only.
    burst: bool,
}

/// `kea-dhcp4 -t` started on the files as they were when a change was
/// reported, before the settle window ends. Dropping it kills the validator.
#[derive(Debug)]
struct Speculation {
    /// The files it was started on; its verdict counts only for these.
    file: FileRead,
    task: tokio::task::JoinHandle<Result<Validation, ValidateError>>,
}

impl Drop for Speculation {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The files as read, parsed or not.
struct Read {
    file: FileRead,
    expanded: Option<Expanded>,
}

impl ServiceSync {
    /// Builds the pipeline for one configured service.
    pub fn new(config: &ServiceConfig, channel: ControlChannel, store: StateStore) -> ServiceSync {
        let include_base = config.resolve_include_base();
        let validator = Validator::new(
            config.service,
            config.validator.clone(),
            include_base.clone(),
            config.timeout,
        );
        let state = store.load(config.service);
        ServiceSync {
            service: config.service,
            config_file: config.config_file.clone(),
            include_base,
            channel,
            validator,
            store,
            state,
            kea_pid: None,
            kea_version: None,
            files: vec![config.config_file.clone()],
            repeat_rejects: false,
            outbox: None,
            speculation: None,
            burst: false,
        }
    }

    /// Queues this service's upstream events in `outbox`, waking `wake`.
    pub fn with_outbox(mut self, outbox: SharedOutbox, wake: Arc<Notify>) -> ServiceSync {
        self.outbox = Some((outbox, wake));
        self
    }

    /// Every file the config consisted of at the last read: what to watch.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Starts validating the files now, while the change settles, so the
    /// check that follows finds the verdict ready (`kea-dhcp4 -t` takes tens
    /// of ms on a small config, seconds on a large one) instead of running
    /// it after the settle window. The verdict is used only for the very
    /// files it was started on; a second change before the check drops it,
    /// and the rest of that burst is validated once, by the check.
    pub fn speculate(&mut self) {
        if self.speculation.take().is_some() || self.burst {
            self.burst = true;
            return;
        }
        if self.validator.binary().is_none() {
            return; // config-test goes through Kea: only when the check asks.
        }
        let read = self.read_files();
        let Some(expanded) = read.expanded.as_ref() else {
            return;
        };
        if decide::first_step(&read.file, &self.state, self.quiet_for()) != FirstStep::AskKea
            || self.looks_written_by_kea(expanded)
        {
            return; // No validation ahead, or likely none (Kea's own config-write).
        }
        let validator = self.validator.clone();
        let file = self.config_file.clone();
        tracing::debug!(service = %self.service, "validating while the change settles");
        self.speculation = Some(Speculation {
            file: read.file,
            task: tokio::spawn(async move { validator.validate(&file, None).await }),
        });
    }

    /// The verdict on `read`: the one started while it settled when it was
    /// for these same files, else a fresh validation.
    async fn validate(&mut self, read: &Read) -> Result<Validation, ValidateError> {
        if let Some(mut speculation) = self.speculation.take()
            && speculation.file == read.file
            && let Ok(verdict) = (&mut speculation.task).await
        {
            return verdict;
        }
        self.validator
            .validate(&self.config_file, Some(&self.channel))
            .await
    }

    /// Runs the pipeline once for a change seen at `detected_at`. Its
    /// upstream events are durable in the outbox before the state that
    /// records the decision is saved, so a crash in between repeats the
    /// decision rather than losing its event.
    pub async fn check(&mut self, detected_at: SystemTime, trigger: Trigger) -> Checked {
        self.burst = false;
        let checked = self.decide(detected_at, trigger).await;
        // Unused (the check ended before validating): kill it.
        self.speculation = None;
        if let Some((outbox, wake)) = &self.outbox {
            let mut queued = false;
            for event in &checked.events {
                match lock(outbox).enqueue(event) {
                    Ok(entry) => queued |= entry.is_some(),
                    Err(error) => {
                        tracing::error!(service = %self.service, outcome = ?event.outcome, "event not queued upstream: {error}")
                    }
                }
            }
            if queued {
                wake.notify_one();
            }
        }
        self.save();
        checked
    }

    async fn decide(&mut self, detected_at: SystemTime, trigger: Trigger) -> Checked {
        let read = self.read_files();
        let quiet_for = self.quiet_for();
        let quiet = |next| Checked {
            events: Vec::new(),
            next,
        };
        match decide::first_step(&read.file, &self.state, quiet_for) {
            FirstStep::Unchanged if trigger == Trigger::Full => {
                return match self.watch_live(&read, detected_at).await {
                    Ok(events) => Checked {
                        events,
                        next: Next::Idle,
                    },
                    Err(error) => self.unreachable(&read, error.to_string(), detected_at),
                };
            }
            FirstStep::Unchanged => {
                return self.done(
                    Outcome::Unchanged,
                    &read,
                    None,
                    "same content as last applied",
                    detected_at,
                );
            }
            FirstStep::WaitForWriter => {
                tracing::debug!(service = %self.service, "config does not parse yet; waiting for the writer");
                return quiet(Next::RecheckAfterSettle);
            }
            FirstStep::RejectUnparsable(error) => {
                self.state.rejected_sha256 = Some(read.file.sha256().to_string());
                return self.done(Outcome::Rejected, &read, None, &error, detected_at);
            }
            FirstStep::AlreadyRejected if self.repeat_rejects => {
                let text = "rejected before; the content has not changed since";
                return self.done(Outcome::Rejected, &read, None, text, detected_at);
            }
            FirstStep::AlreadyRejected => {
                tracing::debug!(service = %self.service, "content was rejected before; not reporting it again");
                return quiet(Next::Idle);
            }
            FirstStep::AskKea => {}
        }
        let Some(expanded) = read.expanded.as_ref() else {
            return quiet(Next::RecheckAfterSettle);
        };
        match self.ask_kea(&read, expanded, detected_at).await {
            Ok(checked) => checked,
            Err(error) => self.unreachable(&read, error.to_string(), detected_at),
        }
    }

    async fn ask_kea(
        &mut self,
        read: &Read,
        expanded: &Expanded,
        detected_at: SystemTime,
    ) -> Result<Checked, KeaError> {
        let status = self.channel.status_get().await?;
        let fresh_kea = self.meet(status.pid).await?;
        // Never reconfigured since it started: it read the files after its start.
        let started_at = status
            .pid
            .filter(|_| status.reload.is_some() && status.reload == status.uptime)
            .and_then(process_start);
        let newest = newest_mtime(&expanded.files);
        if fresh_kea
            && decide::kea_loaded_current_files(
                newest,
                SystemTime::now(),
                seconds(status.reload),
                started_at,
            )
        {
            let live = self.live().await?;
            let text = "Kea loaded this content itself when it started";
            return Ok(self.in_sync_with_snapshot(read, live, text, detected_at));
        }
        if self.equals_in_memory(expanded).await? {
            let live = self.live().await?;
            let text = "Kea's in-memory config already is this content";
            return Ok(self.in_sync_with_snapshot(read, live, text, detected_at));
        }
        match self.validate(read).await {
            Ok(validation) => {
                if let Verdict::Invalid(text) = validation.verdict {
                    self.state.rejected_sha256 = Some(read.file.sha256().to_string());
                    return Ok(self.done(Outcome::Rejected, read, None, &text, detected_at));
                }
            }
            Err(ValidateError::ConfigTest { source, .. }) => return Err(source),
            Err(error) => {
                return Ok(self.unreachable(
                    read,
                    format!("cannot validate: {error}"),
                    detected_at,
                ));
            }
        }
        // The files must still be what was validated; else check again.
        if self.read_files().file != read.file {
            tracing::info!(service = %self.service, "config changed during validation; checking again");
            return Ok(Checked {
                events: Vec::new(),
                next: Next::RecheckAfterSettle,
            });
        }
        let started = Instant::now();
        match self.channel.config_reload().await {
            Ok(_) => {}
            Err(KeaError::Refused { text, .. }) => {
                self.state.rejected_sha256 = Some(read.file.sha256().to_string());
                let text = format!("config-reload failed: {text}");
                return Ok(self.done(Outcome::Rejected, read, None, &text, detected_at));
            }
            Err(error) => return Err(error),
        }
        let took = started.elapsed();
        let after = self.channel.status_get().await?;
        let live = self.live().await?;
        if !decide::reload_took_effect(seconds(after.reload), took) {
            let text = format!(
                "config-reload answered success but status-get says the last reconfiguration was {} s ago",
                seconds(after.reload).as_secs()
            );
            return Ok(self.done(Outcome::Rejected, read, Some(live.hash), &text, detected_at));
        }
        self.state.pushed_hash = Some(live.hash.clone());
        let mut checked = self.done(
            Outcome::Applied,
            read,
            Some(live.hash),
            "config-reload: configuration live",
            detected_at,
        );
        attach(&mut checked, live.config);
        Ok(checked)
    }

    /// Periodic look at Kea when the files are unchanged: a restarted Kea
    /// gets a snapshot, a config changed behind the agent's back a drift event.
    async fn watch_live(
        &mut self,
        read: &Read,
        detected_at: SystemTime,
    ) -> Result<Vec<SyncEvent>, KeaError> {
        let status = self.channel.status_get().await?;
        let fresh_kea = self.meet(status.pid).await?;
        // Kea 2.4+ answers the hash alone, cheaply: skip config-get when it is known.
        if let ConfigHash::Hash(hash) = self.channel.config_hash_get().await?
            && !fresh_kea
            && self.state.config_hash.as_deref() == Some(hash.as_str())
        {
            return Ok(Vec::new());
        }
        let live = self.live().await?;
        if !self.upstream_lacks(&live.hash) {
            self.state.config_hash = Some(live.hash);
            return Ok(Vec::new());
        }
        let (outcome, text) = if fresh_kea {
            (
                Outcome::Snapshot,
                "Kea (re)started; its in-memory config differs from the last one pushed"
                    .to_string(),
            )
        } else {
            let text = format!(
                "Kea's in-memory config changed without a reload by the agent (file {} , live {})",
                read.file.sha256(),
                live.hash
            );
            (Outcome::Drift, text)
        };
        self.state.pushed_hash = Some(live.hash.clone());
        let mut checked = self.done(outcome, read, Some(live.hash), &text, detected_at);
        attach(&mut checked, live.config);
        Ok(checked.events)
    }

    /// Whether the upstream has not got the config with Kea hash `hash`: not
    /// the last one a receiver stored, nor the one still queued for it (a
    /// config event refused into dead/ does not count as delivered).
    fn upstream_lacks(&self, hash: &str) -> bool {
        let pushed = self.state.pushed_hash.as_deref() == Some(hash);
        match &self.outbox {
            Some((outbox, _)) => {
                let outbox = lock(outbox);
                outbox.last_delivered(self.service) != Some(hash)
                    && !(pushed && outbox.has_queued_config(self.service))
            }
            None => !pushed,
        }
    }

    /// Records the Kea process talked to; true when it is a new one.
    async fn meet(&mut self, pid: Option<u32>) -> Result<bool, KeaError> {
        let fresh = self.kea_pid != pid || self.kea_version.is_none();
        if fresh {
            self.kea_version = Some(self.channel.version_get().await?);
            self.kea_pid = pid;
        }
        Ok(fresh)
    }

    /// An in-sync result, plus a snapshot when the live config is not the
    /// one last pushed upstream.
    fn in_sync_with_snapshot(
        &mut self,
        read: &Read,
        live: Live,
        text: &str,
        detected_at: SystemTime,
    ) -> Checked {
        let needs_snapshot = self.upstream_lacks(&live.hash);
        let mut checked = self.done(
            Outcome::InSync,
            read,
            Some(live.hash.clone()),
            text,
            detected_at,
        );
        if needs_snapshot {
            self.state.pushed_hash = Some(live.hash.clone());
            let mut snapshot = self.event(
                Outcome::Snapshot,
                read,
                Some(live.hash),
                "Kea's in-memory config".into(),
                detected_at,
            );
            snapshot.config = Some(live.config);
            checked.events.push(snapshot);
        }
        checked
    }

    /// Reads and expands the config files once; the digest covers exactly
    /// the bytes parsed.
    fn read_files(&mut self) -> Read {
        match dialect::expand_file(&self.config_file, &self.include_base, Style::Compact) {
            Ok(expanded) => {
                self.files.clone_from(&expanded.files);
                Read {
                    file: FileRead::Parsed {
                        sha256: expanded.sha256.clone(),
                    },
                    expanded: Some(expanded),
                }
            }
            Err(error) => {
                let bytes = std::fs::read(&self.config_file).unwrap_or_default();
                let mut digest = Sha256::new();
                digest.update(&bytes);
                digest.update(error.to_string().as_bytes());
                Read {
                    file: FileRead::Unparsable {
                        sha256: hex(&digest.finalize()),
                        error: error.to_string(),
                    },
                    expanded: None,
                }
            }
        }
    }

    /// How long the files have been left alone (since the newest mtime).
    fn quiet_for(&self) -> Duration {
        SystemTime::now()
            .duration_since(newest_mtime(&self.files))
            .unwrap_or_default()
    }

    /// Whether the files look like Kea's own config-write.
    fn looks_written_by_kea(&self, expanded: &Expanded) -> bool {
        let keys = service_keys(&expanded.json, self.service.config_key());
        decide::looks_written_by_kea(self.service, &keys)
    }

    /// Whether the file's service map equals Kea's in-memory one (true when
    /// a central did config-set + config-write).
    async fn equals_in_memory(&self, expanded: &Expanded) -> Result<bool, KeaError> {
        let key = self.service.config_key();
        // A config-get costs seconds on large configs: only ask when the file
        // looks like Kea wrote it.
        if !self.looks_written_by_kea(expanded) {
            return Ok(false);
        }
        let Some(file) = service_digest(&expanded.json, key) else {
            return Ok(false);
        };
        let in_memory = self.channel.config_get().await?;
        Ok(service_digest(in_memory.config.get(), key) == Some(file))
    }

    /// Kea's in-memory config and its hash: Kea's own (2.4+, part of the
    /// config-get reply), else SHA-256 of config-get's text.
    async fn live(&self) -> Result<Live, KeaError> {
        let in_memory = self.channel.config_get().await?;
        let hash = match in_memory.hash {
            Some(hash) => hash,
            None => sha256_hex(in_memory.config.get().as_bytes()),
        };
        Ok(Live {
            hash,
            config: in_memory.config,
        })
    }

    fn unreachable(&self, read: &Read, text: String, detected_at: SystemTime) -> Checked {
        Checked {
            events: vec![self.event(Outcome::Unreachable, read, None, text, detected_at)],
            next: Next::Retry,
        }
    }

    /// Records a final outcome in the state and builds its event.
    fn done(
        &mut self,
        outcome: Outcome,
        read: &Read,
        hash: Option<String>,
        text: &str,
        detected_at: SystemTime,
    ) -> Checked {
        if matches!(outcome, Outcome::Applied | Outcome::InSync) {
            self.state.applied_sha256 = Some(read.file.sha256().to_string());
            self.state.rejected_sha256 = None;
        }
        if hash.is_some() {
            self.state.config_hash.clone_from(&hash);
        }
        Checked {
            events: vec![self.event(outcome, read, hash, text.to_string(), detected_at)],
            next: Next::Idle,
        }
    }

    fn save(&self) {
        if let Err(error) = self.store.save(self.service, &self.state) {
            tracing::error!(service = %self.service, "{error}");
        }
    }

    fn event(
        &self,
        outcome: Outcome,
        read: &Read,
        hash: Option<String>,
        text: String,
        detected_at: SystemTime,
    ) -> SyncEvent {
        SyncEvent {
            service: self.service,
            outcome,
            file: self.config_file.clone(),
            file_sha256: Some(read.file.sha256().to_string()),
            kea_version: self.kea_version.clone(),
            config_hash: hash.or_else(|| self.state.config_hash.clone()),
            text,
            detected_at,
            finished_at: SystemTime::now(),
            config: None,
        }
    }
}

/// The keys of the service's map in an expanded config (top level only parsed).
fn service_keys(json: &str, key: &str) -> Vec<String> {
    type Raw = indexmap::IndexMap<String, Box<RawValue>>;
    serde_json::from_str::<Raw>(json)
        .ok()
        .and_then(|top| {
            top.get(key)
                .and_then(|body| serde_json::from_str::<Raw>(body.get()).ok())
        })
        .map(|body| body.into_keys().collect())
        .unwrap_or_default()
}

/// The digest of the `key` member (the service map) of a config document,
/// as a stream (no value tree of a large config): equal digests mean equal
/// values. None when the document or the member is missing or not JSON.
fn service_digest(json: &str, key: &str) -> Option<[u8; 32]> {
    let top: indexmap::IndexMap<String, &RawValue> = serde_json::from_str(json).ok()?;
    json_value_digest(top.get(key)?.get()).ok()
}

/// Puts the live config on the check's first event.
fn attach(checked: &mut Checked, config: Box<RawValue>) {
    if let Some(event) = checked.events.first_mut() {
        event.config = Some(config);
    }
}

/// When process `pid` started, from /proc (10 ms precision); None when it
/// is not visible here (Kea on another host or in another pid namespace).
fn process_start(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime, clock ticks after boot), counted after the ")" of the name.
    let start_ticks: f64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // USER_HZ is 100 on every Linux architecture the agent runs on.
    let age = uptime - start_ticks / 100.0;
    SystemTime::now().checked_sub(Duration::from_secs_f64(age.max(0.0)))
}

/// status-get's whole seconds; missing counts as "long ago".
fn seconds(value: Option<i64>) -> Duration {
    Duration::from_secs(value.unwrap_or(i64::MAX).max(0) as u64)
}

/// The latest modification time among `files` (unreadable ones count as now:
/// when unsure, assume the file is newer than Kea's load).
fn newest_mtime(files: &[PathBuf]) -> SystemTime {
    files
        .iter()
        .map(|file| mtime(file).unwrap_or_else(SystemTime::now))
        .max()
        .unwrap_or_else(SystemTime::now)
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
