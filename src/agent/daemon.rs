//! `kea-sync-agent run`: the loop that turns file events into settled checks.
//!
//! change seen (watcher) -> settled (`settle` of quiet) -> [`ServiceSync::check`]
//! (read, decide, validate, reload, verify) -> event logged and sent upstream.
//! Validation starts when the change is seen ([`ServiceSync::speculate`]) and
//! its verdict is used if the files are still the same when the check runs.
//! Checks of one service never overlap; events during a check make it due again.

use super::config::{AgentConfig, ConfigError};
use super::decide;
use super::event::{Outcome, SyncEvent};
use super::state::StateStore;
use super::sync::{Next, ServiceSync, Trigger};
use super::systemd::Notifier;
use crate::upstream::sink::SinkError;
use crate::upstream::wire::Identity;
use crate::upstream::{Outbox, OutboxError, Pusher, SharedOutbox};
use crate::watch::{BATCH_QUIET, ConfigWatcher, WatchError, WatchSignal};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a shutdown waits for the check in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Termination and reload signals, installed before anything else.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    /// Installs SIGTERM, SIGINT and SIGHUP handlers.
    pub fn install() -> Result<Signals, DaemonError> {
        let install = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| DaemonError::Signal {
                signal: name,
                source,
            })
        };
        Ok(Signals {
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            hangup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_requested(terminate: &mut Signal, interrupt: &mut Signal) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}

/// One service and when it is next due.
struct Slot {
    sync: ServiceSync,
    /// When to check next; None: idle.
    due: Option<Instant>,
    /// When the first change of the pending batch was seen.
    detected_at: Option<SystemTime>,
    /// Failed attempts to reach Kea in a row.
    attempt: u32,
    /// Last unreachable text, to say it once rather than at every retry.
    last_unreachable: Option<String>,
    /// The pending check also looks at Kea's memory (start-up, periodic, retry).
    full: bool,
    /// The last outcome, for systemd's status line.
    last_outcome: Option<Outcome>,
}

/// The running agent.
pub struct Daemon {
    config_path: Option<PathBuf>,
    config: AgentConfig,
    slots: Vec<Slot>,
    watcher: ConfigWatcher,
    watch_signals: UnboundedReceiver<WatchSignal>,
    outbox: SharedOutbox,
    wake: Arc<Notify>,
    pusher: Option<JoinHandle<()>>,
    notifier: Notifier,
    ready: bool,
}

impl Daemon {
    /// Loads the agent config and starts watching. Every service is checked
    /// at once: the start-up catch-up.
    pub fn start(config_path: Option<&Path>) -> Result<Daemon, DaemonError> {
        let config = AgentConfig::from_cli(config_path)?;
        let outbox = Outbox::open(
            &config.agent.state_dir,
            config.outbox,
            Identity::of_this_host(),
        )?;
        let outbox: SharedOutbox = Arc::new(Mutex::new(outbox));
        let wake = Arc::new(Notify::new());
        let pusher = spawn_pusher(&config, &outbox, &wake)?;
        let slots = build_slots(&config, &outbox, &wake)?;
        let (watcher, watch_signals) = ConfigWatcher::new()?;
        let mut daemon = Daemon {
            config_path: config_path.map(Path::to_path_buf),
            config,
            slots,
            watcher,
            watch_signals,
            outbox,
            wake,
            pusher,
            notifier: Notifier::from_env(),
            ready: false,
        };
        daemon.watch_current_files();
        let now = Instant::now();
        for slot in &mut daemon.slots {
            slot.due = Some(now);
            slot.detected_at = Some(SystemTime::now());
            slot.full = true;
        }
        tracing::info!(config = %daemon.config.source, services = daemon.slots.len(), "kea-sync-agent started");
        Ok(daemon)
    }

    /// Runs until SIGTERM/SIGINT; the check in flight is finished first.
    pub async fn run(mut self, mut signals: Signals) {
        let mut periodic = self.config.agent.check_interval.map(|every| {
            let mut interval = tokio::time::interval_at(Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        let mut watchdog = self.notifier.watchdog_interval().map(tokio::time::interval);
        loop {
            let next_due = self.slots.iter().filter_map(|s| s.due).min();
            tokio::select! {
                () = stop_requested(&mut signals.terminate, &mut signals.interrupt) => break,
                () = periodic_tick(watchdog.as_mut()) => self.notifier.watchdog(),
                _ = signals.hangup.recv() => self.reload_agent_config(),
                Some(signal) = self.watch_signals.recv() => self.on_watch_signal(signal),
                () = periodic_tick(periodic.as_mut()) => {
                    self.make_all_due(false);
                    for slot in &mut self.slots {
                        slot.full = true;
                    }
                }
                () = sleep_until(next_due) => {
                    if !self.run_due_checks(&mut signals).await {
                        break;
                    }
                }
            }
        }
        self.notifier.stopping();
        tracing::info!("kea-sync-agent stopping");
    }

    /// Runs every due check; false when a stop signal arrived meanwhile.
    async fn run_due_checks(&mut self, signals: &mut Signals) -> bool {
        let now = Instant::now();
        let mut keep_running = true;
        for slot in self
            .slots
            .iter_mut()
            .filter(|s| s.due.is_some_and(|due| due <= now))
        {
            slot.due = None;
            let detected_at = slot.detected_at.take().unwrap_or_else(SystemTime::now);
            let service = slot.sync.service;
            let trigger = if std::mem::take(&mut slot.full) {
                Trigger::Full
            } else {
                Trigger::Change
            };
            let checked = {
                let check = slot.sync.check(detected_at, trigger);
                tokio::pin!(check);
                tokio::select! {
                    checked = &mut check => checked,
                    () = stop_requested(&mut signals.terminate, &mut signals.interrupt) => {
                        keep_running = false;
                        tracing::info!(%service, "stop requested: finishing the check in flight");
                        match tokio::time::timeout(SHUTDOWN_GRACE, &mut check).await {
                            Ok(checked) => checked,
                            Err(_) => {
                                tracing::warn!(%service, "check did not finish in time; exiting anyway");
                                return false;
                            }
                        }
                    }
                }
            };
            for event in checked.events {
                slot.last_outcome = Some(event.outcome);
                report(slot, event);
            }
            match checked.next {
                Next::Idle => slot.attempt = 0,
                Next::RecheckAfterSettle => {
                    slot.due = Some(Instant::now() + self.config.agent.settle);
                    slot.detected_at = Some(detected_at);
                }
                Next::Retry => {
                    slot.attempt += 1;
                    slot.full = true;
                    slot.due = Some(Instant::now() + decide::backoff(slot.attempt));
                    slot.detected_at = Some(detected_at);
                }
            }
            if !keep_running {
                break;
            }
        }
        self.watch_current_files();
        let status = self.status_line();
        if self.ready {
            self.notifier.status(&status);
        } else {
            // Ready once the start-up check of every service has run.
            self.ready = true;
            self.notifier.ready(&status);
        }
        keep_running
    }

    /// One line for `systemctl status`: each service's last outcome.
    fn status_line(&self) -> String {
        let services: Vec<String> = self
            .slots
            .iter()
            .map(|slot| {
                let outcome = slot.last_outcome.map(|o| format!("{o:?}").to_lowercase());
                format!(
                    "{}: {}",
                    slot.sync.service,
                    outcome.as_deref().unwrap_or("waiting")
                )
            })
            .collect();
        format!(
            "watching {} file(s); {}",
            self.slots
                .iter()
                .map(|s| s.sync.files().len())
                .sum::<usize>(),
            services.join(", ")
        )
    }

    fn on_watch_signal(&mut self, signal: WatchSignal) {
        match signal {
            WatchSignal::Changed { paths, .. } => {
                // The watcher already saw BATCH_QUIET of quiet before reporting.
                let settle = self.config.agent.settle.saturating_sub(BATCH_QUIET);
                let mut matched = false;
                for slot in &mut self.slots {
                    if slot.sync.files().iter().any(|f| paths.contains(f)) {
                        matched = true;
                        make_due(slot, settle);
                        slot.sync.speculate();
                    }
                }
                // A path the services do not list (a symlink hop): check all.
                if !matched {
                    self.make_all_due(true);
                }
            }
            WatchSignal::Rescan => {
                tracing::info!("file events were lost; re-checking every config");
                self.make_all_due(true);
            }
        }
        if let Err(error) = self.watcher.refresh() {
            tracing::warn!("{error}");
        }
    }

    fn make_all_due(&mut self, settle: bool) {
        let delay = if settle {
            self.config.agent.settle
        } else {
            Duration::ZERO
        };
        for slot in &mut self.slots {
            make_due(slot, delay);
        }
    }

    /// SIGHUP: re-read the agent config; an invalid one is reported and the
    /// old one kept.
    fn reload_agent_config(&mut self) {
        let loaded = AgentConfig::from_cli(self.config_path.as_deref())
            .map_err(DaemonError::from)
            .and_then(|config| {
                let slots = build_slots(&config, &self.outbox, &self.wake)?;
                let pusher_changed =
                    config.upstream != self.config.upstream || config.hooks != self.config.hooks;
                let pusher = if pusher_changed {
                    Some(spawn_pusher(&config, &self.outbox, &self.wake)?)
                } else {
                    None
                };
                Ok((config, slots, pusher))
            });
        match loaded {
            Ok((config, slots, pusher)) => {
                tracing::info!(config = %config.source, services = slots.len(), "SIGHUP: agent config re-read");
                if let Some(pusher) = pusher {
                    if let Some(old) = std::mem::replace(&mut self.pusher, pusher) {
                        old.abort();
                    }
                }
                self.config = config;
                self.slots = slots;
                self.make_all_due(false);
                self.watch_current_files();
            }
            Err(error) => tracing::error!("SIGHUP: {error}; keeping the running config"),
        }
    }

    fn watch_current_files(&mut self) {
        let files: BTreeSet<PathBuf> = self
            .slots
            .iter()
            .flat_map(|s| s.sync.files().iter().cloned())
            .collect();
        let files: Vec<PathBuf> = files.into_iter().collect();
        if let Err(error) = self.watcher.set_files(&files) {
            tracing::warn!("{error}; relying on the periodic re-check");
        }
    }
}

/// Starts delivering the outbox when there is anywhere to deliver to.
fn spawn_pusher(
    config: &AgentConfig,
    outbox: &SharedOutbox,
    wake: &Arc<Notify>,
) -> Result<Option<JoinHandle<()>>, SinkError> {
    let pusher = Pusher::new(
        outbox.clone(),
        config.upstream.as_ref(),
        &config.hooks,
        wake.clone(),
    )?;
    if !pusher.has_sinks() {
        tracing::info!("no [upstream] or [[hook]] configured: events are kept in the outbox only");
        return Ok(None);
    }
    if let Some(upstream) = &config.upstream {
        tracing::info!(url = %upstream.url, "pushing events upstream");
    }
    Ok(Some(tokio::spawn(pusher.run())))
}

fn build_slots(
    config: &AgentConfig,
    outbox: &SharedOutbox,
    wake: &Arc<Notify>,
) -> Result<Vec<Slot>, ConfigError> {
    let store = StateStore::new(&config.agent.state_dir);
    config
        .services
        .iter()
        .map(|service| {
            let channel = service.control_channel()?;
            Ok(Slot {
                sync: ServiceSync::new(service, channel, store.clone())
                    .with_outbox(outbox.clone(), wake.clone()),
                due: None,
                detected_at: None,
                attempt: 0,
                last_unreachable: None,
                full: true,
                last_outcome: None,
            })
        })
        .collect()
}

/// Marks a slot due after `delay` of quiet, keeping the first detection time.
fn make_due(slot: &mut Slot, delay: Duration) {
    slot.due = Some(Instant::now() + delay);
    slot.detected_at.get_or_insert_with(SystemTime::now);
}

/// Logs an event (an unreachable Kea once per distinct cause); upstream
/// delivery goes through the outbox, written by the service pipeline.
fn report(slot: &mut Slot, event: SyncEvent) {
    if event.outcome == Outcome::Unreachable {
        if slot.last_unreachable.as_deref() == Some(event.text.as_str()) {
            tracing::debug!(service = %event.service, "still unreachable: {}", event.text);
            return;
        }
        slot.last_unreachable = Some(event.text.clone());
    } else {
        slot.last_unreachable = None;
    }
    event.log();
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => never().await,
    }
}

async fn periodic_tick(periodic: Option<&mut tokio::time::Interval>) {
    match periodic {
        Some(interval) => {
            interval.tick().await;
        }
        None => never().await,
    }
}

async fn never<T>() -> T {
    std::future::pending().await
}
