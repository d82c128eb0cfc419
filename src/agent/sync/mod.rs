//! One service's pipeline, run once per settled change. The steps, in
//! order, and the function that does each:
//!
//! 1. read the files, main file and includes, once     [`files::read_config`]
//! 2. first look: unchanged, half-written, known reject [`decide::first_step`]
//! 3. ask Kea: reachable, which process, new since?     [`ServiceSync::meet`]
//! 4. a Kea that loaded these very files itself?        [`decide::kea_loaded_current_files`]
//! 5. the in-memory config already this content?        [`ServiceSync::equals_in_memory`]
//! 6. validate (`kea-dhcp4 -t`/`-T`, started early)     [`ServiceSync::validate`]
//! 7. files still as validated (read 2); an HA pair     [`ServiceSync::ha_gate`]
//!    takes turns (held until both partners are normal);
//!    keep what Kea runs as the last good config (a     [`ServiceSync::reload`]
//!    drift first if it holds runtime changes);
//!    config-reload
//! 8. verify: Kea answers, reconfigured, serves DHCP on  [`decide::serving`]
//!    its sockets; else roll back with config-set; an
//!    HA server is followed until normal again         [`ServiceSync::ha_after`]
//! 9. record: state transition, log, queue upstream     [`ServiceSync::record`]
//!
//! When the files are unchanged, or were rejected before, a full check
//! (start-up, periodic, Kea back) looks at Kea's memory instead
//! ([`ServiceSync::watch_live`]): a restarted Kea gets a snapshot (and is in
//! sync with rejected files it loaded itself), a config changed behind the
//! agent's back a drift.
//! Decisions live in `decide.rs` and `state.rs` (the one state transition);
//! this file does the IO between them.

mod files;
mod ha;
mod held;
mod reload;

use super::config::{HaSettings, RuntimeChanges, ServiceConfig};
use super::decide::{self, FileRead, FirstStep};
use super::state::{Fact, ServiceState, StateError, StateStore};
use crate::digest::sha256_hex;
use crate::event::wire::Ha;
use crate::event::{Outcome, SyncEvent};
use crate::kea::ha::{Relationship, Reported};
use crate::kea::{ConfigHash, ControlChannel, KeaError, KeaVersion, Service, Status};
use crate::upstream::OutboxHandle;
use crate::validate::{
    Depth, LoadFacts, Thoroughness, ValidateError, Validation, Validator, Verdict, choose_depth,
};
use files::{Read, mtime, newest_mtime, process_start, read_config, service_digest};
use held::Held;
use serde_json::value::RawValue;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// What the caller should do after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing until the next change.
    Idle,
    /// The file did not parse: look again after one more settle period.
    RecheckAfterSettle,
    /// Kea (or the validator) could not be reached: retry with backoff.
    Retry,
    /// The reload is held for the HA pair: look again after this long.
    Hold(Duration),
}

/// The result of one check: its events (usually one; none when there is
/// nothing new to say) and what to do next. The events' configs have gone
/// to the outbox already.
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

/// Who runs the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `run`: events are logged; a known reject is said once.
    Daemon,
    /// `apply`: the caller prints the events; a known reject is said again.
    Once,
}

/// Kea's in-memory config and its hash.
struct Live {
    hash: String,
    config: Box<RawValue>,
}

/// What steps 2-8 found.
enum Look {
    /// Nothing to report; look again as `Next` says.
    Quiet(Next),
    /// Kea runs what the upstream has: only its hash to remember.
    Seen(String),
    /// A finding to record and report.
    Found(Found),
}

/// A finding, before it is recorded.
struct Found {
    outcome: Outcome,
    text: String,
    /// Kea's config after the step, when it was read.
    live: Option<Live>,
    /// Kea refused this content for good (said once).
    refused_for_good: bool,
    /// In sync, and the upstream lacks Kea's config: send it as a snapshot.
    snapshot: bool,
    /// A failed reload was undone (config-set of the last good config).
    rolled_back: Option<bool>,
    /// Whether Kea serves DHCP after the step (None: not checked, cannot tell).
    serving: Option<bool>,
    /// Kea ran changes in no file before the reload: sent first.
    runtime: Option<reload::Runtime>,
    /// HA as the step left it (empty: as last seen).
    ha: Vec<Ha<String>>,
    /// What the operator should know though the step succeeded.
    warnings: Vec<String>,
    /// Kea stopped answering: look again with backoff, so a restarted Kea is
    /// met as soon as it is back.
    kea_gone: bool,
    /// Kea applied and serves `live`: the next reload's way back, kept once
    /// its event is queued, so the push does not wait for that write.
    last_good: Option<LastGood>,
}

/// The config Kea applied and serves, to keep as the last good one.
struct LastGood {
    hash: String,
    /// The interfaces it binds (the applied files say them).
    interfaces: Vec<String>,
}

impl Found {
    fn new(outcome: Outcome, text: impl Into<String>) -> Found {
        Found {
            outcome,
            text: text.into(),
            live: None,
            refused_for_good: false,
            snapshot: false,
            rolled_back: None,
            serving: None,
            runtime: None,
            ha: Vec::new(),
            warnings: Vec::new(),
            kea_gone: false,
            last_good: None,
        }
    }

    /// A rejection for good: said once, not retried until the file changes.
    fn refused_for_good(text: impl Into<String>) -> Found {
        Found {
            refused_for_good: true,
            ..Found::new(Outcome::Rejected, text)
        }
    }

    fn refused(text: impl Into<String>) -> Look {
        Look::Found(Found::refused_for_good(text))
    }

    fn with_live(self, live: Live) -> Found {
        Found {
            live: Some(live),
            ..self
        }
    }
}

fn unreachable(text: impl Into<String>) -> Look {
    Look::Found(Found::new(Outcome::Unreachable, text))
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
    /// When the files were last read.
    read_at: Option<SystemTime>,
    mode: Mode,
    /// `validation` of the service's table.
    validation: Thoroughness,
    /// `runtime_changes` of the service's table.
    runtime_changes: RuntimeChanges,
    /// The `[ha]` table.
    ha: HaSettings,
    /// A reload held for the HA pair.
    hold: Option<ha::Hold>,
    /// The HA relationships of the files as last parsed.
    ha_declared: Vec<Relationship>,
    /// The HA relationships Kea reported at the last status-get.
    ha_reported: Vec<Reported>,
    /// The digest of the files as last read.
    file_sha256: Option<String>,
    /// Whether Kea answered at the last check that asked it.
    kea_reachable: Option<bool>,
    /// Why `-T` is not used, as last said (said again only when it changes).
    told_depth: Option<String>,
    /// Where upstream events are made durable before the state records
    /// them; None when it could not be opened (`apply` only).
    outbox: Option<OutboxHandle>,
    /// Upstream events the outbox could not take yet.
    held: Held,
    /// A validation started while the latest change settles.
    speculation: Option<Speculation>,
    /// More than one change since the last check: validate at its end only.
    burst: bool,
    /// Last unreachable text, to say it once rather than at every retry.
    last_unreachable: Option<String>,
    /// What Kea ran right after the agent's last verified reload, and how to
    /// tell it has not reconfigured since without a config-hash-get.
    commit_seen: Option<decide::CommitSeen>,
}

/// `kea-dhcp4 -t` started on the files as they were when a change was
/// reported, before the settle window ends. Dropping it kills the validator.
#[derive(Debug)]
struct Speculation {
    /// The files it was started on; its verdict counts only for these.
    file: FileRead,
    /// And only at this depth.
    depth: Depth,
    task: tokio::task::JoinHandle<Result<Validation, ValidateError>>,
}

impl Drop for Speculation {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ServiceSync {
    /// Builds the pipeline for one configured service.
    pub fn new(
        config: &ServiceConfig,
        channel: ControlChannel,
        store: StateStore,
        outbox: Option<OutboxHandle>,
        mode: Mode,
    ) -> ServiceSync {
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
            read_at: None,
            mode,
            validation: config.validation,
            runtime_changes: config.runtime_changes,
            ha: config.ha,
            hold: None,
            ha_declared: Vec::new(),
            ha_reported: Vec::new(),
            file_sha256: None,
            kea_reachable: None,
            told_depth: None,
            outbox,
            held: Held::default(),
            speculation: None,
            burst: false,
            last_unreachable: None,
            commit_seen: None,
        }
    }

    /// Takes over the events `old` still holds for the outbox (the same
    /// service, rebuilt with a changed config).
    pub fn inherit(&mut self, old: ServiceSync) {
        let mut old = old;
        while let Some(event) = old.held.pop() {
            self.held.push(event);
        }
    }

    /// The service as the pipeline last saw it, for the admin API.
    pub fn status(&self) -> crate::agent::admin::ServiceStatus {
        crate::agent::admin::ServiceStatus {
            service: self.service,
            config_file: self.config_file.clone(),
            files: self.files.clone(),
            file_sha256: self.file_sha256.clone(),
            applied_sha256: self.state.applied_sha256.clone(),
            config_hash: self.state.config_hash.clone(),
            kea_version: self.kea_version.clone(),
            kea_reachable: self.kea_reachable,
            reload_held: self.hold.as_ref().and_then(ha::Hold::reason),
            ha: ha::reports(&self.ha_declared, &self.ha_reported),
        }
    }

    /// Every file the config consisted of at the last read: what to watch.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Whether any of `paths` was modified since the files were last read:
    /// a file first found by that read (a new include) is watched only
    /// after it, so a write in between would otherwise go unseen.
    pub fn changed_since_read(&self, paths: &[&PathBuf]) -> bool {
        let Some(read_at) = self.read_at else {
            return false;
        };
        paths
            .iter()
            .any(|path| mtime(path).is_some_and(|modified| modified >= read_at))
    }

    /// Whether events wait for the outbox to take them.
    pub fn holds_events(&self) -> bool {
        !self.held.is_empty()
    }

    /// Starts validating the files now, while the change settles, so the
    /// check that follows finds the verdict ready (`kea-dhcp4 -t` takes tens
    /// of ms on a small config, seconds on a large one) instead of running
    /// it after the settle window. Only when the watcher saw the writer
    /// finish (`write_done`: closed after writing, renamed into place):
    /// content still being written would only waste a validator. The
    /// verdict is used only for the very files it was started on; a second
    /// change before the check drops it, and the rest of that burst is
    /// validated once, by the check.
    pub fn speculate(&mut self, write_done: bool) {
        if self.speculation.take().is_some() || self.burst {
            self.burst = true;
            return;
        }
        if !write_done || self.validator.binary().is_none() {
            return; // config-test goes through Kea: only when the check asks.
        }
        let read = self.read_files();
        if read.expanded.is_none()
            || decide::first_step(&read.file, &self.state, self.quiet_for()) != FirstStep::AskKea
            || self.looks_written_by_kea(&read)
        {
            return; // No validation ahead, or likely none (Kea's own config-write).
        }
        let depth = self.depth(&read);
        let validator = self.validator.clone();
        let file = self.config_file.clone();
        tracing::debug!(service = %self.service, "validating while the change settles");
        self.speculation = Some(Speculation {
            file: read.file,
            depth,
            task: tokio::spawn(async move { validator.validate(&file, None, depth).await }),
        });
    }

    /// Runs the pipeline once for a change seen at `detected_at`. Its
    /// upstream events are durable in the outbox (or held for it) before the
    /// state that records the decision is saved, so a crash in between
    /// repeats the decision rather than losing its event.
    pub async fn check(&mut self, detected_at: SystemTime, trigger: Trigger) -> Checked {
        self.burst = false;
        self.queue_held();
        let read = self.read_files();
        let look = self.look(&read, trigger).await;
        // Unused (the check ended before validating): kill it.
        self.speculation = None;
        match look {
            Look::Quiet(next) => Checked {
                events: Vec::new(),
                next,
            },
            Look::Seen(live_hash) => {
                self.state = self.state.after(Fact::Seen {
                    live_hash: &live_hash,
                });
                self.save();
                Checked {
                    events: Vec::new(),
                    next: Next::Idle,
                }
            }
            Look::Found(mut found) => {
                let last_good = found.last_good.take();
                let (checked, queued) = self.record(&read, found, detected_at);
                if let Some(last_good) = last_good {
                    self.keep_applied(last_good, queued, &checked).await;
                }
                checked
            }
        }
    }

    /// Keeps what Kea applied and serves as the next reload's way back: the
    /// config the outbox has queued, written on a blocking thread while the
    /// pusher sends it; or, with no outbox, the event's own. An event held
    /// for the outbox keeps its config: the next reload fetches Kea's again.
    async fn keep_applied(
        &mut self,
        last_good: LastGood,
        queued: Option<Box<RawValue>>,
        checked: &Checked,
    ) {
        let kept = match queued {
            Some(config) => {
                let (store, service) = (self.store.clone(), self.service);
                let path = store.last_good_path(service);
                tokio::task::spawn_blocking(move || store.keep_last_good(service, &config))
                    .await
                    .unwrap_or_else(|error| {
                        Err(StateError::Write {
                            path,
                            source: std::io::Error::other(error),
                        })
                    })
            }
            None => match checked.events.last().and_then(|e| e.config.as_deref()) {
                Some(config) => self.store.keep_last_good(self.service, config),
                None => return,
            },
        };
        match kept {
            Ok(()) => {
                self.last_good_kept(&last_good.hash, &last_good.interfaces);
                self.save();
            }
            Err(error) => tracing::warn!(service = %self.service,
                "{error}; the next reload fetches Kea's config again to roll back to"),
        }
    }

    /// Notes that the config with `hash`, binding `interfaces`, is durable as
    /// the one to roll back to (the store wrote it).
    fn last_good_kept(&mut self, hash: &str, interfaces: &[String]) {
        self.state = self.state.after(Fact::LastGoodKept { hash, interfaces });
    }

    /// Steps 2-8: what the files and Kea say.
    async fn look(&mut self, read: &Read, trigger: Trigger) -> Look {
        match decide::first_step(&read.file, &self.state, self.quiet_for()) {
            // Rejected files do not stop the look at Kea: a Kea restarted after it died
            // during their reload runs them, and a central may change Kea meanwhile.
            FirstStep::Unchanged | FirstStep::AlreadyRejected if trigger == Trigger::Full => {
                return match self.watch_live(read).await {
                    Ok(look) => look,
                    Err(error) => unreachable(error.to_string()),
                };
            }
            FirstStep::Unchanged => {
                return Look::Found(Found::new(
                    Outcome::Unchanged,
                    "same content as last applied",
                ));
            }
            FirstStep::WaitForWriter => {
                tracing::debug!(service = %self.service, "config does not parse yet; waiting for the writer");
                return Look::Quiet(Next::RecheckAfterSettle);
            }
            FirstStep::RejectUnparsable(error) => return Found::refused(error),
            FirstStep::AlreadyRejected if self.mode == Mode::Once => {
                return Found::refused("rejected before; the content has not changed since");
            }
            FirstStep::AlreadyRejected => {
                tracing::debug!(service = %self.service, "content was rejected before; not reporting it again");
                return Look::Quiet(Next::Idle);
            }
            FirstStep::AskKea => {}
        }
        match self.ask_kea(read).await {
            Ok(look) => look,
            Err(error) => unreachable(error.to_string()),
        }
    }

    /// Steps 3-8 for files that parsed and differ from what was applied.
    async fn ask_kea(&mut self, read: &Read) -> Result<Look, KeaError> {
        let Some(expanded) = read.expanded.as_ref() else {
            return Ok(Look::Quiet(Next::RecheckAfterSettle));
        };
        let status = self.channel.status_get().await?;
        self.saw_status(&status);
        let fresh_kea = self.meet(status.pid).await?;
        // Kea runs these files: they tell whether anything changes its config in place.
        let unchanging = read.changes_only_by_reconfiguring(self.service);
        if fresh_kea && self.kea_loaded(&status, &expanded.files) {
            let text = "Kea loaded this content itself when it started";
            let live = self.live_noting_commit(status.pid, unchanging).await?;
            return Ok(self.in_sync(live, text, read));
        }
        if self.equals_in_memory(read, expanded).await? {
            let text = "Kea's in-memory config already is this content";
            let live = self.live_noting_commit(status.pid, unchanging).await?;
            return Ok(self.in_sync(live, text, read));
        }
        let depth = self.depth(read);
        // A reload held for the HA pair was validated before the hold.
        let validated = self
            .hold
            .as_ref()
            .is_some_and(|h| h.validated(&read.file, depth));
        // What the reload needs of Kea (its config kept to roll back to: a config-get of
        // seconds on a large config) is asked while `kea-dhcp4 -t` runs beside it. Not when
        // the validation is Kea's own config-test (one Kea, one command at a time) or an HA
        // gate comes between them (it may wait for the partner).
        let beside = !validated
            && self.validator.binary().is_some()
            && read.facts(self.service).ha.is_empty();
        let (validation, prepared) = if validated {
            (None, None)
        } else if beside {
            let validation = self.validation(read, depth);
            let (validation, prepared) =
                tokio::join!(validation, self.before_reload(&status, fresh_kea));
            (Some(validation), Some(prepared))
        } else {
            (Some(self.validation(read, depth).await), None)
        };
        match validation {
            Some(Ok(validation)) => {
                if let Verdict::Invalid(text) = validation.verdict {
                    self.hold = None;
                    return Ok(Found::refused(text));
                }
            }
            Some(Err(ValidateError::ConfigTest { source, .. })) => return Err(source),
            Some(Err(error)) => return Ok(unreachable(format!("cannot validate: {error}"))),
            None => {}
        }
        let ha = match self.ha_gate(read, depth).await? {
            ha::HaStep::Go(ha) => ha,
            ha::HaStep::Stop(look) => return Ok(look),
        };
        let prepared = match prepared {
            Some(prepared) => prepared?,
            None => self.before_reload(&status, fresh_kea).await?,
        };
        self.reload(read, prepared, &ha).await
    }

    /// The full check's look at Kea when the files are unchanged: a
    /// restarted Kea gets a snapshot, a config changed behind the agent's
    /// back a drift; both only when the upstream lacks that config.
    async fn watch_live(&mut self, read: &Read) -> Result<Look, KeaError> {
        let status = self.channel.status_get().await?;
        self.saw_status(&status);
        let fresh_kea = self.meet(status.pid).await?;
        let rejected = self.state.rejected_sha256.as_deref() == Some(read.file.sha256());
        if rejected
            && fresh_kea
            && let Some(expanded) = &read.expanded
            && self.kea_loaded(&status, &expanded.files)
        {
            let text =
                "Kea (re)started and loaded this content itself, though it was rejected before";
            let unchanging = read.changes_only_by_reconfiguring(self.service);
            let live = self.live_noting_commit(status.pid, unchanging).await?;
            return Ok(self.in_sync(live, text, read));
        }
        // No reconfiguration since the agent's own reload: Kea runs what it ran then.
        if !fresh_kea
            && let Some(hash) = self.hash_since_commit(status.pid).await
            && self.state.config_hash.as_deref() == Some(hash.as_str())
        {
            return Ok(Look::Quiet(Next::Idle));
        }
        // Kea 2.4+ answers the hash alone: skip config-get when it is known.
        if let ConfigHash::Hash(hash) = self.config_hash().await?
            && !fresh_kea
            && self.state.config_hash.as_deref() == Some(hash.as_str())
        {
            return Ok(Look::Quiet(Next::Idle));
        }
        let live = self.live_noting_commit(status.pid, true).await?;
        // Not the files' config: what Kea runs tells what may change it in place.
        if !LoadFacts::of(live.config.get(), self.service).changes_only_by_reconfiguring() {
            self.commit_seen = None;
        }
        if !self.upstream_lacks(&live.hash) {
            return Ok(Look::Seen(live.hash));
        }
        let found = if fresh_kea {
            Found::new(
                Outcome::Snapshot,
                "Kea (re)started; its in-memory config differs from the last one pushed",
            )
        } else {
            let text = format!(
                "Kea's in-memory config changed without a reload by the agent (file {} , live {})",
                read.file.sha256(),
                live.hash
            );
            Found::new(Outcome::Drift, text)
        };
        Ok(Look::Found(found.with_live(live)))
    }

    /// Step 9: the one state transition, the events, their log lines and
    /// their way into the outbox, in that order of durability: the outbox
    /// first, then the state.
    /// Also returns the last event's config once the outbox has queued it, or the
    /// config Kea was found in sync with (kept as the way back when asked).
    fn record(
        &mut self,
        read: &Read,
        found: Found,
        detected_at: SystemTime,
    ) -> (Checked, Option<Box<RawValue>>) {
        let Found {
            outcome,
            text,
            live,
            refused_for_good,
            snapshot,
            rolled_back,
            serving,
            runtime,
            ha,
            warnings,
            kea_gone,
            last_good: _,
        } = found;
        let mut events = Vec::new();
        if let Some(runtime) = runtime {
            let (kind, text) = if runtime.fresh_kea {
                (
                    Outcome::Snapshot,
                    format!(
                        "Kea's in-memory config (live {}), not the one last recorded; sent before the edit's reload replaces it",
                        runtime.live.hash
                    ),
                )
            } else {
                (
                    Outcome::Drift,
                    format!(
                        "Kea ran changes made through its API that are in no file (live {}); sent before the edit's reload drops them",
                        runtime.live.hash
                    ),
                )
            };
            self.state = self.state.after(Fact::Checked {
                outcome: kind,
                file_sha256: read.file.sha256(),
                refused_for_good: false,
                live_hash: Some(&runtime.live.hash),
            });
            let mut first = self.event(kind, read, text, detected_at);
            first.config = Some(runtime.live.config);
            events.push(first);
        }
        if outcome == Outcome::Unreachable {
            self.kea_reachable = Some(false);
        }
        let live_hash = live.as_ref().map(|l| l.hash.clone());
        self.state = self.state.after(Fact::Checked {
            outcome,
            file_sha256: read.file.sha256(),
            refused_for_good,
            live_hash: live_hash.as_deref(),
        });
        let mut main = self.event(outcome, read, text, detected_at);
        main.rolled_back = rolled_back;
        main.serving = serving;
        main.warnings = warnings;
        if !ha.is_empty() {
            main.ha = ha;
        }
        events.push(main);
        let mut unsent = None;
        if let Some(live) = live {
            match outcome {
                Outcome::Applied | Outcome::Snapshot | Outcome::Drift => {
                    if let Some(main) = events.last_mut() {
                        main.config = Some(live.config);
                    }
                }
                Outcome::InSync if snapshot => {
                    let mut event = self.event(
                        Outcome::Snapshot,
                        read,
                        "Kea's in-memory config".into(),
                        detected_at,
                    );
                    event.config = Some(live.config);
                    events.push(event);
                }
                // Goes nowhere upstream, but may be the next reload's way back.
                Outcome::InSync => unsent = Some(live.config),
                _ => {}
            }
        }
        let mut queued = None;
        for event in &mut events {
            queued = self.report(event);
        }
        let queued = queued.or(unsent);
        self.save();
        let next = match outcome {
            Outcome::Unreachable => Next::Retry,
            _ if kea_gone => Next::Retry,
            _ => Next::Idle,
        };
        (Checked { events, next }, queued)
    }

    /// Logs one event (in the daemon; an unreachable Kea once per cause) and
    /// queues it upstream, or holds it when the outbox cannot take it. Its
    /// config leaves the event either way (returned once queued).
    fn report(&mut self, event: &mut SyncEvent) -> Option<Box<RawValue>> {
        let queued = self.queue(event);
        if self.mode == Mode::Daemon {
            self.log(event);
        }
        queued
    }

    /// Queues the event upstream (its id is the outbox's from then on) and
    /// returns the config it no longer carries, or holds it when the outbox
    /// cannot take it.
    fn queue(&mut self, event: &mut SyncEvent) -> Option<Box<RawValue>> {
        event.kind()?; // An outcome that stays local.
        let outbox = self.outbox.clone()?;
        // Order per service: nothing overtakes what is held.
        if self.held.is_empty() {
            match outbox.queue(event) {
                Ok(entry) => {
                    event.id = entry.map(|entry| entry.id);
                    self.config_queued(event);
                    return event.config.take();
                }
                Err(error) => {
                    tracing::error!(service = %self.service, outcome = ?event.outcome,
                        "event not queued upstream yet, held to be queued once the state dir takes it: {error}");
                }
            }
        }
        self.held.push(SyncEvent {
            config: event.config.take(),
            ..event.without_config()
        });
        None
    }

    /// Queues what was held back, oldest first, while the outbox takes it.
    pub fn queue_held(&mut self) {
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
        let mut queued = false;
        while let Some(event) = self.held.first() {
            match outbox.queue(event) {
                Ok(entry) => {
                    if let Some(event) = self.held.pop() {
                        // Its id, unknown when the event's own line was logged.
                        let id = entry.map(|entry| entry.id).unwrap_or_default();
                        tracing::info!(service = %self.service, event = %id, outcome = ?event.outcome,
                            "queued upstream the event held back for the state dir");
                        self.config_queued(&event);
                    }
                    queued = true;
                }
                Err(error) => {
                    tracing::debug!(service = %self.service, "outbox still cannot take the held events: {error}");
                    break;
                }
            }
        }
        if queued {
            self.save();
        }
    }

    /// The state learns that a config event is durable in the outbox.
    fn config_queued(&mut self, event: &SyncEvent) {
        if let (Some(_), Some(hash)) = (&event.config, &event.config_hash) {
            self.state = self.state.after(Fact::ConfigQueued { hash });
        }
    }

    fn log(&mut self, event: &SyncEvent) {
        if event.outcome == Outcome::Unreachable {
            if self.last_unreachable.as_deref() == Some(event.text.as_str()) {
                tracing::debug!(service = %event.service, "still unreachable: {}", event.text);
                return;
            }
            self.last_unreachable = Some(event.text.clone());
        } else {
            self.last_unreachable = None;
        }
        event.log();
    }

    /// The verdict on `read`: the one started while it settled when it was
    /// for these same files, else a fresh validation. The future borrows
    /// nothing of the service, so Kea can be asked things meanwhile.
    fn validation(
        &mut self,
        read: &Read,
        depth: Depth,
    ) -> impl Future<Output = Result<Validation, ValidateError>> + use<> {
        let speculation = self
            .speculation
            .take()
            .filter(|s| s.file == read.file && s.depth == depth);
        let validator = self.validator.clone();
        let file = self.config_file.clone();
        let channel = self.channel.clone();
        async move {
            if let Some(mut speculation) = speculation
                && let Ok(verdict) = (&mut speculation.task).await
            {
                return verdict;
            }
            validator.validate(&file, Some(&channel), depth).await
        }
    }

    /// How deep to validate these files (`-t` or `-T`); why not `-T` is
    /// logged once per reason.
    fn depth(&mut self, read: &Read) -> Depth {
        let facts = &read.facts(self.service).load;
        let (depth, why) = choose_depth(
            self.service,
            self.validation,
            self.kea_version.as_deref(),
            facts,
        );
        if why != self.told_depth {
            if let Some(why) = &why {
                let level = if self.validation == Thoroughness::Full {
                    "full"
                } else {
                    "auto"
                };
                tracing::info!(service = %self.service, "validation = \"{level}\": checking with -t, not -T: {why}");
            }
            self.told_depth = why;
        }
        depth
    }

    /// Whether the upstream lacks Kea's config with hash `hash`.
    fn upstream_lacks(&self, hash: &str) -> bool {
        let view = self.outbox.as_ref().map(|o| o.view(self.service));
        decide::upstream_lacks(
            hash,
            self.state.pushed_hash.as_deref(),
            view.as_ref(),
            &self.held.config_hashes(),
        )
    }

    /// config-hash-get, unless Kea's version says it has no such command
    /// (2.2): verification then compares config-get's whole answer, and the
    /// round trip Kea would refuse is not made.
    async fn config_hash(&self) -> Result<ConfigHash, KeaError> {
        let without = self
            .kea_version
            .as_deref()
            .and_then(KeaVersion::parse)
            .is_some_and(|version| !version.has_config_hash());
        if without {
            return Ok(ConfigHash::Unsupported);
        }
        self.channel.config_hash_get().await
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

    /// Whether a Kea met for the first time loaded `files` as they are now.
    fn kea_loaded(&self, status: &Status, files: &[PathBuf]) -> bool {
        // Never reconfigured since it started: it read the files after its start.
        let started_at = status
            .pid
            .filter(|_| status.reload.is_some() && status.reload == status.uptime)
            .and_then(process_start);
        decide::kea_loaded_current_files(
            newest_mtime(files),
            SystemTime::now(),
            seconds(status.reload),
            started_at,
        )
    }

    /// In sync with Kea, plus a snapshot when the upstream lacks Kea's config.
    /// Kea runs the files of `read`: its config is also the next reload's
    /// way back, kept unless it already is.
    fn in_sync(&self, live: Live, text: &str, read: &Read) -> Look {
        let snapshot = self.upstream_lacks(&live.hash);
        let kept = self.state.last_good_hash.as_deref() == Some(live.hash.as_str())
            && self.store.last_good_path(self.service).is_file();
        let last_good = (!kept).then(|| LastGood {
            hash: live.hash.clone(),
            interfaces: read.facts(self.service).interfaces.clone(),
        });
        Look::Found(Found {
            snapshot,
            last_good,
            ..Found::new(Outcome::InSync, text).with_live(live)
        })
    }

    /// Reads the files (and remembers which they are, for the watcher, and
    /// the HA relationships they declare, for the events).
    fn read_files(&mut self) -> Read {
        self.read_at = Some(SystemTime::now());
        let read = read_config(&self.config_file, &self.include_base);
        self.file_sha256 = Some(read.file.sha256().to_string());
        if let Some(expanded) = &read.expanded {
            self.files.clone_from(&expanded.files);
            self.ha_declared.clone_from(&read.facts(self.service).ha);
        }
        read
    }

    /// Remembers that Kea answered, and what status-get said of HA.
    fn saw_status(&mut self, status: &Status) {
        self.kea_reachable = Some(true);
        self.ha_reported = crate::kea::ha::reported(status.high_availability.as_ref());
    }

    /// How long the files have been left alone (since the newest mtime).
    fn quiet_for(&self) -> Duration {
        SystemTime::now()
            .duration_since(newest_mtime(&self.files))
            .unwrap_or_default()
    }

    /// Whether the files look like Kea's own config-write.
    fn looks_written_by_kea(&self, read: &Read) -> bool {
        decide::looks_written_by_kea(self.service, &read.facts(self.service).keys)
    }

    /// Whether the file's service map equals Kea's in-memory one (true when
    /// a central did config-set + config-write).
    async fn equals_in_memory(
        &self,
        read: &Read,
        expanded: &crate::dialect::Expanded,
    ) -> Result<bool, KeaError> {
        let key = self.service.config_key();
        // A config-get costs seconds on large configs: only ask when the file
        // looks like Kea wrote it.
        if !self.looks_written_by_kea(read) {
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

    fn save(&self) {
        if let Err(error) = self.store.save(self.service, &self.state) {
            tracing::error!(service = %self.service, "{error}");
        }
    }

    /// An event of this service about `read`, carrying Kea's hash as the
    /// state knows it after the transition.
    fn event(
        &self,
        outcome: Outcome,
        read: &Read,
        text: String,
        detected_at: SystemTime,
    ) -> SyncEvent {
        SyncEvent {
            id: None,
            service: self.service,
            outcome,
            file: self.config_file.clone(),
            file_sha256: Some(read.file.sha256().to_string()),
            kea_version: self.kea_version.clone(),
            config_hash: self.state.config_hash.clone(),
            text,
            detected_at,
            finished_at: SystemTime::now(),
            rolled_back: None,
            serving: None,
            ha: ha::reports(&self.ha_declared, &self.ha_reported),
            warnings: Vec::new(),
            config: None,
        }
    }
}

/// status-get's whole seconds; missing counts as "long ago".
fn seconds(value: Option<i64>) -> Duration {
    Duration::from_secs(value.unwrap_or(i64::MAX).max(0) as u64)
}
