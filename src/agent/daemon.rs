//! `kea-sync-agent run`: the loop that turns file events into settled checks.
//!
//! change seen (watcher) -> settled (the writer closed or renamed; else `settle` of
//! quiet) -> [`ServiceSync::check`]
//! (read, decide, validate, reload, verify, record). Validation starts when
//! the change is seen ([`ServiceSync::speculate`]) and its verdict is used if
//! the files are still the same when the check runs. Checks of one service
//! never overlap; events during a check make it due again.
//!
//! The daemon opens nothing of its own: [`Daemon::new`] receives what it
//! watches and where it queues ([`DaemonIo`]), [`Daemon::run`] its shutdown
//! and reload triggers ([`Triggers`]). The binary turns SIGTERM and SIGHUP
//! into those (`signals.rs`); a test pulls them itself.

use super::admin::server::{self as admin_server, AdminState};
use super::admin::{self, Applied, ApplyRequest, SharedBoard};
use super::config::{AgentConfig, ConfigError, ServiceChange, ServiceConfig, reconfiguration};
use super::decide;
use super::lock::{LockError, StateDirLock};
use super::state::StateStore;
use super::sync::{Mode, Next, ServiceSync, Trigger};
use super::systemd::Notifier;
use crate::event::wire::Identity;
use crate::event::{Outcome, SyncEvent};
use crate::kea::Service;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::upstream::sink::SinkError;
use crate::upstream::{Deliveries, OutboxError, OutboxHandle, Pusher};
use crate::watch::{BATCH_QUIET, ConfigWatcher, WatchError, WatchSignal};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval};

/// How long a shutdown waits for the check in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);
/// How long a shutdown waits for the delivery in flight.
const PUSHER_GRACE: Duration = Duration::from_secs(3);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// What the daemon watches and where it queues, opened before it runs.
pub struct DaemonIo {
    /// Held for the daemon's whole life: one agent per state dir.
    pub lock: StateDirLock,
    pub outbox: OutboxHandle,
    pub watcher: ConfigWatcher,
    pub watch_signals: UnboundedReceiver<WatchSignal>,
    /// The admin API's unix socket; None when it could not be opened.
    pub admin: Option<tokio::net::UnixListener>,
    /// The read-only admin API on TCP (`[agent] metrics_listen`).
    pub metrics: Option<tokio::net::TcpListener>,
}

impl DaemonIo {
    /// Locks the state dir, opens its outbox and starts a watcher.
    pub fn open(config: &AgentConfig) -> Result<DaemonIo, DaemonError> {
        let lock = StateDirLock::acquire(&config.agent.state_dir, "run")?;
        let outbox = OutboxHandle::open(
            &config.agent.state_dir,
            config.outbox,
            Identity::of_this_host(),
        )?;
        let (watcher, watch_signals) = ConfigWatcher::new()?;
        let agent = &config.agent;
        // Without its admin socket the agent still does its job: say so, go on.
        let admin = match admin::socket::bind(&agent.admin_socket, agent.admin_group.as_deref()) {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!("{error}; `kea-sync-agent status` cannot ask this agent");
                None
            }
        };
        let metrics = agent.metrics_listen.and_then(|address| {
            let bound = std::net::TcpListener::bind(address)
                .and_then(|listener| {
                    listener.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(listener)
                });
            match bound {
                Ok(listener) => Some(listener),
                Err(error) => {
                    tracing::error!("[agent] metrics_listen {address}: {error}; metrics only on the admin socket");
                    None
                }
            }
        });
        Ok(DaemonIo {
            lock,
            outbox,
            watcher,
            watch_signals,
            admin,
            metrics,
        })
    }
}

/// What asks the running daemon to act.
pub struct Triggers {
    /// Stop: the check in flight and the delivery in flight are finished.
    pub shutdown: Shutdown,
    /// Each message asks to re-read the agent config.
    pub reload: UnboundedReceiver<()>,
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
    /// The pending check also looks at Kea's memory (start-up, periodic, retry).
    full: bool,
    /// The last outcome, for systemd's status line.
    last_outcome: Option<Outcome>,
    /// The next check answers an apply through the admin API.
    apply_waiting: Vec<tokio::sync::oneshot::Sender<Applied>>,
    /// When to try again to queue events the outbox could not take.
    held_due: Option<Instant>,
    held_attempt: u32,
    /// When the watcher last reported a finished write of this service's files.
    last_finished: Option<Instant>,
}

impl Slot {
    fn new(sync: ServiceSync) -> Slot {
        Slot {
            sync,
            due: None,
            detected_at: None,
            attempt: 0,
            full: true,
            last_outcome: None,
            apply_waiting: Vec::new(),
            held_due: None,
            held_attempt: 0,
            last_finished: None,
        }
    }

    /// Due after `delay` of quiet, keeping the first detection time.
    fn make_due(&mut self, delay: Duration) {
        self.due = Some(Instant::now() + delay);
        self.detected_at.get_or_insert_with(SystemTime::now);
    }

    /// Schedules the next try for held events, if there are any.
    fn plan_held_retry(&mut self) {
        if self.sync.holds_events() {
            self.held_attempt = self.held_attempt.saturating_add(1);
            self.held_due = Some(Instant::now() + decide::backoff(self.held_attempt));
        } else {
            self.held_due = None;
            self.held_attempt = 0;
        }
    }
}

/// The pusher task and what stops it.
struct RunningPusher {
    stop: ShutdownTrigger,
    task: JoinHandle<()>,
}

/// The running agent.
pub struct Daemon {
    config_path: Option<PathBuf>,
    config: AgentConfig,
    slots: Vec<Slot>,
    io: DaemonIo,
    pusher: Option<RunningPusher>,
    periodic: Option<Interval>,
    notifier: Notifier,
    ready: bool,
    /// The files the watcher was last given.
    watched: BTreeSet<PathBuf>,
    /// What the admin API shows.
    board: SharedBoard,
    metrics: Metrics,
    deliveries: Deliveries,
    /// Applies asked through the admin API.
    applies: mpsc::Receiver<ApplyRequest>,
    /// The admin API's tasks and what stops them.
    admin: Vec<(ShutdownTrigger, JoinHandle<()>)>,
}

impl Daemon {
    /// The daemon for `config` (read from `config_path`, re-read on reload)
    /// over `io`. Every service is checked at once: the start-up catch-up.
    pub fn new(
        config: AgentConfig,
        config_path: Option<PathBuf>,
        mut io: DaemonIo,
    ) -> Result<Daemon, DaemonError> {
        let metrics = Metrics::new();
        for service in &config.services {
            metrics.add_service(service.service);
        }
        let deliveries = Deliveries::default();
        let pusher = start_pusher(&config, &io.outbox, None, &deliveries, &metrics)?;
        let board = SharedBoard::new(config.source.to_string());
        let (apply, applies) = mpsc::channel(8);
        let state = AdminState {
            board: board.clone(),
            outbox: io.outbox.clone(),
            deliveries: deliveries.clone(),
            metrics: metrics.clone(),
            apply,
        };
        let mut admin = Vec::new();
        if let Some(listener) = io.admin.take() {
            let (stop, shutdown) = shutdown::channel();
            let task = tokio::spawn(admin_server::serve(
                listener,
                state.clone(),
                false,
                shutdown,
            ));
            tracing::info!(socket = %config.agent.admin_socket.display(), "admin API listening");
            admin.push((stop, task));
        }
        if let Some(listener) = io.metrics.take() {
            let (stop, shutdown) = shutdown::channel();
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "read-only admin API and /metrics listening on TCP");
            }
            let task = tokio::spawn(admin_server::serve(listener, state, true, shutdown));
            admin.push((stop, task));
        }
        let slots = config
            .services
            .iter()
            .map(|service| Ok(Slot::new(build_sync(&config, service, &io.outbox)?)))
            .collect::<Result<Vec<Slot>, ConfigError>>()?;
        let mut daemon = Daemon {
            config_path,
            periodic: periodic(&config),
            config,
            slots,
            io,
            pusher,
            notifier: Notifier::from_env(),
            ready: false,
            watched: BTreeSet::new(),
            board,
            metrics,
            deliveries,
            applies,
            admin,
        };
        daemon.watch_current_files();
        daemon.make_all_due(Duration::ZERO, true);
        tracing::info!(config = %daemon.config.source, services = daemon.slots.len(), "kea-sync-agent started");
        Ok(daemon)
    }

    /// Runs until `triggers.shutdown`; the check in flight is finished
    /// first, then the delivery in flight.
    pub async fn run(mut self, triggers: Triggers) {
        let Triggers {
            mut shutdown,
            mut reload,
        } = triggers;
        let mut watchdog = self.notifier.watchdog_interval().map(tokio::time::interval);
        while !shutdown.is_requested() {
            let next_due = self
                .slots
                .iter()
                .flat_map(|s| [s.due, s.held_due])
                .flatten()
                .min();
            tokio::select! {
                () = shutdown.requested() => break,
                () = tick(watchdog.as_mut()) => self.notifier.watchdog(),
                Some(()) = reload.recv() => self.reload_agent_config(),
                Some(signal) = self.io.watch_signals.recv() => self.on_watch_signal(signal),
                Some(request) = self.applies.recv() => self.on_apply(request),
                () = tick(self.periodic.as_mut()) => self.make_all_due(Duration::ZERO, true),
                () = sleep_until(next_due) => {
                    if !self.run_due_checks(&mut shutdown).await {
                        break;
                    }
                }
            }
        }
        self.notifier.stopping();
        tracing::info!("kea-sync-agent stopping");
        for (stop, task) in std::mem::take(&mut self.admin) {
            stop.trigger();
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        if let Some(pusher) = self.pusher.take() {
            stop_pusher(pusher).await;
        }
    }

    /// Runs every due check (and queues held events); false when a stop
    /// came meanwhile.
    async fn run_due_checks(&mut self, shutdown: &mut Shutdown) -> bool {
        let now = Instant::now();
        let mut keep_running = true;
        let mut checked_any = false;
        let settle = self.config.agent.settle;
        for slot in &mut self.slots {
            if slot.held_due.is_some_and(|due| due <= now) {
                slot.sync.queue_held();
                slot.plan_held_retry();
            }
            if slot.due.is_none_or(|due| due > now) {
                continue;
            }
            slot.due = None;
            checked_any = true;
            let detected_at = slot.detected_at.take().unwrap_or_else(SystemTime::now);
            let service = slot.sync.service;
            let trigger = if std::mem::take(&mut slot.full) {
                Trigger::Full
            } else {
                Trigger::Change
            };
            let started = std::time::Instant::now();
            let checked = {
                let check = slot.sync.check(detected_at, trigger);
                tokio::pin!(check);
                tokio::select! {
                    checked = &mut check => checked,
                    () = shutdown.requested() => {
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
            if let Some(event) = checked.events.last() {
                slot.last_outcome = Some(event.outcome);
            }
            record_metrics(&self.metrics, service, &checked.events, started.elapsed());
            let status = slot.sync.status();
            if !slot.apply_waiting.is_empty() {
                let applied = applied(&checked.events, checked.next, status.reload_held.as_deref());
                for waiting in slot.apply_waiting.drain(..) {
                    let _ = waiting.send(applied.clone());
                }
            }
            self.board.lock().checked(status, &checked.events);
            match checked.next {
                Next::Idle => slot.attempt = 0,
                Next::RecheckAfterSettle => {
                    slot.due = Some(Instant::now() + settle);
                    slot.detected_at = Some(detected_at);
                }
                // The edit's time stays: edit-to-live includes the hold.
                Next::Hold(after) => {
                    slot.due = Some(Instant::now() + after);
                    slot.detected_at = Some(detected_at);
                }
                Next::Retry => {
                    slot.attempt += 1;
                    slot.full = true;
                    slot.due = Some(Instant::now() + decide::backoff(slot.attempt));
                    slot.detected_at = Some(detected_at);
                }
            }
            if slot.held_due.is_none() {
                slot.plan_held_retry();
            }
            if !keep_running {
                break;
            }
        }
        self.watch_current_files();
        if checked_any {
            // What the checks freed (Kea's replies, the configs kept) goes back to the system.
            crate::memory::give_back();
        }
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

    /// An apply through the admin API: the service's check runs at once,
    /// and its result answers the request.
    fn on_apply(&mut self, request: ApplyRequest) {
        match self
            .slots
            .iter_mut()
            .find(|s| s.sync.service == request.service)
        {
            Some(slot) => {
                tracing::info!(service = %request.service, "apply asked through the admin API");
                slot.make_due(Duration::ZERO);
                slot.apply_waiting.push(request.reply);
            }
            // Dropping the reply tells the server the service is not managed.
            None => drop(request),
        }
    }

    fn on_watch_signal(&mut self, signal: WatchSignal) {
        match signal {
            WatchSignal::Changed {
                paths,
                complete,
                finished,
            } => {
                let now = Instant::now();
                let mut matched = false;
                for slot in &mut self.slots {
                    if slot.sync.files().iter().any(|f| paths.contains(f)) {
                        matched = true;
                        self.metrics
                            .changes_seen
                            .get_or_create(&Metrics::service(slot.sync.service))
                            .inc();
                        let since_last = slot.last_finished.map(|at| now.duration_since(at));
                        if finished {
                            slot.last_finished = Some(now);
                        }
                        slot.make_due(decide::settle_delay(
                            finished,
                            since_last,
                            self.config.agent.settle,
                            BATCH_QUIET,
                        ));
                        slot.sync.speculate(complete);
                    }
                }
                // A path the services do not list (a symlink hop): check all.
                if !matched {
                    self.make_all_due(self.config.agent.settle, false);
                }
            }
            WatchSignal::Rescan => {
                tracing::info!("file events were lost; re-checking every config");
                self.make_all_due(self.config.agent.settle, false);
            }
        }
        if let Err(error) = self.io.watcher.refresh() {
            tracing::warn!("{error}");
        }
    }

    /// Every service due after `delay`; `full` also looks at Kea's memory.
    fn make_all_due(&mut self, delay: Duration, full: bool) {
        for slot in &mut self.slots {
            slot.make_due(delay);
            slot.full |= full;
        }
    }

    /// Reload: re-read the agent config and apply what changed; an invalid
    /// one is reported and the old one kept whole.
    fn reload_agent_config(&mut self) {
        match self.reconfigure() {
            Ok(()) => {
                tracing::info!(config = %self.config.source, services = self.slots.len(), "SIGHUP: agent config re-read");
                // A reload is also the way to ask for a look at every service now.
                self.make_all_due(Duration::ZERO, true);
                self.watch_current_files();
            }
            Err(error) => tracing::error!("SIGHUP: {error}; keeping the running config"),
        }
    }

    fn reconfigure(&mut self) -> Result<(), DaemonError> {
        let new = AgentConfig::from_cli(self.config_path.as_deref())?;
        let plan = reconfiguration(&self.config, &new)?;
        // Everything that can fail first, so a bad config changes nothing.
        let mut fresh: Vec<(Service, ServiceSync)> = Vec::new();
        for change in &plan.services {
            if let ServiceChange::Added(service) | ServiceChange::Changed(service) = change {
                fresh.push((service.service, build_sync(&new, service, &self.io.outbox)?));
            }
        }
        let pusher = if plan.sinks {
            Some(Pusher::new(
                self.io.outbox.clone(),
                new.upstream.as_ref(),
                &new.hooks,
                self.deliveries.clone(),
                self.metrics.clone(),
            )?)
        } else {
            None
        };
        let mut old: Vec<Slot> = std::mem::take(&mut self.slots);
        let mut take_old = |service: Service| {
            old.iter()
                .position(|s| s.sync.service == service)
                .map(|at| old.swap_remove(at))
        };
        for change in plan.services {
            match change {
                ServiceChange::Removed(service) => {
                    self.board.lock().remove(service);
                    if take_old(service).is_some_and(|old| old.sync.holds_events()) {
                        tracing::warn!(%service, "no longer managed: its events held back for a full state dir are dropped");
                    } else {
                        tracing::info!(%service, "no longer managed");
                    }
                }
                ServiceChange::Unchanged(service) => self.slots.extend(take_old(service)),
                ServiceChange::Added(config) | ServiceChange::Changed(config) => {
                    self.metrics.add_service(config.service);
                    let Some(at) = fresh.iter().position(|(s, _)| *s == config.service) else {
                        continue;
                    };
                    let (service, mut sync) = fresh.swap_remove(at);
                    if let Some(previous) = take_old(service) {
                        tracing::info!(%service, "service settings changed: starting it afresh");
                        sync.inherit(previous.sync);
                    }
                    self.slots.push(Slot::new(sync));
                }
            }
        }
        if plan.outbox_limits {
            self.io.outbox.set_limits(new.outbox);
        }
        if plan.timing {
            self.periodic = periodic(&new);
        }
        if let Some(pusher) = pusher {
            let previous = self.pusher.take();
            self.pusher = run_pusher(pusher, &new, previous);
        }
        self.config = new;
        Ok(())
    }

    /// Watches every file of every service. A file new to the watch (an
    /// include the last read found) that changed since that read is due
    /// for a look: no event of its was watched for yet.
    fn watch_current_files(&mut self) {
        let files: BTreeSet<PathBuf> = self
            .slots
            .iter()
            .flat_map(|s| s.sync.files().iter().cloned())
            .collect();
        let list: Vec<PathBuf> = files.iter().cloned().collect();
        if let Err(error) = self.io.watcher.set_files(&list) {
            tracing::warn!("{error}; relying on the periodic re-check");
        }
        let settle = self.config.agent.settle;
        for slot in &mut self.slots {
            let new: Vec<&PathBuf> = slot
                .sync
                .files()
                .iter()
                .filter(|f| !self.watched.contains(*f))
                .collect();
            if !new.is_empty() && slot.sync.changed_since_read(&new) {
                tracing::debug!(service = %slot.sync.service, "a newly watched file changed since it was read");
                slot.make_due(settle);
            }
        }
        self.watched = files;
    }
}

/// The pipeline of one configured service.
fn build_sync(
    config: &AgentConfig,
    service: &ServiceConfig,
    outbox: &OutboxHandle,
) -> Result<ServiceSync, ConfigError> {
    let channel = service.control_channel()?;
    let store = StateStore::new(&config.agent.state_dir);
    Ok(ServiceSync::new(
        service,
        channel,
        store,
        Some(outbox.clone()),
        Mode::Daemon,
    ))
}

/// Starts delivering the outbox when there is anywhere to deliver to.
fn start_pusher(
    config: &AgentConfig,
    outbox: &OutboxHandle,
    previous: Option<RunningPusher>,
    deliveries: &Deliveries,
    metrics: &Metrics,
) -> Result<Option<RunningPusher>, SinkError> {
    let pusher = Pusher::new(
        outbox.clone(),
        config.upstream.as_ref(),
        &config.hooks,
        deliveries.clone(),
        metrics.clone(),
    )?;
    Ok(run_pusher(pusher, config, previous))
}

/// Runs `pusher` once `previous` (asked to stop now) has finished its
/// delivery in flight: never two pushers on one outbox.
fn run_pusher(
    pusher: Pusher,
    config: &AgentConfig,
    previous: Option<RunningPusher>,
) -> Option<RunningPusher> {
    if let Some(previous) = &previous {
        previous.stop.trigger();
    }
    if !pusher.has_sinks() {
        tracing::info!("no [upstream] or [[hook]] configured: events are kept in the outbox only");
        return None;
    }
    if let Some(upstream) = &config.upstream {
        tracing::info!(url = %upstream.url, "pushing events upstream");
    }
    let (stop, shutdown) = shutdown::channel();
    let task = tokio::spawn(async move {
        if let Some(previous) = previous {
            let _ = previous.task.await;
        }
        pusher.run(shutdown).await;
    });
    Some(RunningPusher { stop, task })
}

/// Stops the pusher, giving the delivery in flight a moment to finish.
async fn stop_pusher(pusher: RunningPusher) {
    pusher.stop.trigger();
    let mut task = pusher.task;
    if tokio::time::timeout(PUSHER_GRACE, &mut task).await.is_err() {
        tracing::warn!("upstream delivery in flight did not finish in time; it stays queued");
        task.abort();
    }
}

/// A check's result as an apply through the admin API answers it.
fn applied(events: &[SyncEvent], next: Next, held: Option<&str>) -> Applied {
    let note = events.is_empty().then(|| match next {
        Next::Idle => "nothing new: the files are as last applied or reported".to_string(),
        Next::RecheckAfterSettle => {
            "the files do not parse yet (a writer may be mid-write); looking again after settling"
                .into()
        }
        Next::Retry => "Kea could not be reached; retrying with backoff".into(),
        Next::Hold(_) => format!(
            "the reload waits for the HA pair: {}",
            held.unwrap_or_default()
        ),
    });
    Applied {
        events: events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .collect(),
        note,
    }
}

/// What a check's events say for the metrics.
fn record_metrics(metrics: &Metrics, service: Service, events: &[SyncEvent], took: Duration) {
    let label = Metrics::service(service);
    let reload = |outcome: &str| {
        metrics
            .reloads
            .get_or_create(&OutcomeLabels {
                service: service.name().to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    };
    for event in events {
        let reachable = event.outcome != Outcome::Unreachable;
        metrics
            .kea_reachable
            .get_or_create(&label)
            .set(i64::from(reachable));
        match event.outcome {
            Outcome::Applied => {
                reload("applied");
                if let Ok(edit_to_live) = event.finished_at.duration_since(event.detected_at) {
                    metrics
                        .edit_to_live
                        .get_or_create(&label)
                        .observe(edit_to_live.as_secs_f64());
                }
                metrics
                    .last_apply
                    .get_or_create(&label)
                    .set(Metrics::unix_seconds(event.finished_at));
                metrics
                    .apply_duration
                    .get_or_create(&label)
                    .observe(took.as_secs_f64());
            }
            Outcome::Rejected => {
                match event.rolled_back {
                    Some(true) => reload("rolled_back"),
                    Some(false) => reload("rejected"),
                    // Never reached Kea's config-reload: the validator (or reader) refused it.
                    None => {
                        metrics.validation_failures.get_or_create(&label).inc();
                    }
                }
                metrics
                    .apply_duration
                    .get_or_create(&label)
                    .observe(took.as_secs_f64());
            }
            _ => {}
        }
        let states: Vec<(String, String)> = event
            .ha
            .iter()
            .filter_map(|ha| Some((ha.this_server.clone(), ha.state_after.clone()?)))
            .collect();
        metrics.set_ha(service, &states);
    }
}

/// The periodic safety net's timer, if it is on. An interval the clock cannot
/// reach (`check_interval_s` near 2^63, which TOML allows) never comes: no
/// timer, rather than a panic adding it to now.
fn periodic(config: &AgentConfig) -> Option<Interval> {
    let every = config.agent.check_interval?;
    let first = Instant::now().checked_add(every)?;
    let mut interval = tokio::time::interval_at(first, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(interval)
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: Option<&mut Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(check_interval_s: &str) -> AgentConfig {
        let text = format!(
            "[agent]\ncheck_interval_s = {check_interval_s}\n[[service]]\nname = \"dhcp4\"\n"
        );
        AgentConfig::parse(&text, Path::new("agent.toml")).expect("valid agent config")
    }

    #[tokio::test]
    async fn periodic_check_interval_past_the_clock_is_no_timer_not_a_panic() {
        // The largest TOML integer: Instant::now() + it overflowed and panicked.
        assert!(periodic(&config("9223372036854775807")).is_none());
        assert!(periodic(&config("0")).is_none(), "0 switches it off");
        assert!(periodic(&config("60")).is_some());
    }
}
