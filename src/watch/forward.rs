//! The thread between notify and the agent: folds each burst of events into one signal.

use super::WatchSignal;
use super::batch::{Batch, lost_dirs};
use super::set::WatchSet;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// A burst ends after this long without events: one editor save arrives well within it.
pub const QUIET: Duration = Duration::from_millis(25);
/// A burst whose writer is done (closed after writing, renamed into place) ends after this
/// long without events: enough for the rest of a rename (its other half, a chmod or chown
/// right after it) to join it, not enough to delay the agent.
const DONE_QUIET: Duration = Duration::from_millis(2);
/// A burst is cut after this long, so a writer that never pauses still wakes the agent.
const LONGEST: Duration = Duration::from_millis(250);

/// What notify's event loop hands over.
pub enum BackendMsg {
    Event(notify::Result<notify::Event>),
    /// The event loop thread ended without being asked to (it panicked).
    Died,
}

/// State the forwarding thread and the `ConfigWatcher` both see.
#[derive(Default)]
pub struct Shared {
    /// What the events are matched against; replaced on every sync.
    pub set: RwLock<WatchSet>,
    /// Watched directories removed or moved since the last sync.
    pub lost: Mutex<BTreeSet<PathBuf>>,
    /// notify reported an error: recreate it on the next sync.
    pub failed: AtomicBool,
    /// notify's event loop is gone: calling into it would panic.
    pub dead: AtomicBool,
}

impl Shared {
    pub fn take_lost(&self) -> BTreeSet<PathBuf> {
        std::mem::take(&mut *self.lost.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn install(&self, set: WatchSet) {
        *self.set.write().unwrap_or_else(PoisonError::into_inner) = set;
    }
}

/// Sits in notify's event handler; tells the forwarding thread if the event loop dies.
pub struct HandlerGuard {
    pub events: Sender<BackendMsg>,
    /// Set before the watcher is dropped on purpose.
    pub retired: Arc<AtomicBool>,
}

impl HandlerGuard {
    pub fn forward(&self, event: notify::Result<notify::Event>) {
        // Fails only once the forwarding thread is gone, i.e. nobody listens any more.
        let _ = self.events.send(BackendMsg::Event(event));
    }
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        if !self.retired.load(Ordering::SeqCst) {
            let _ = self.events.send(BackendMsg::Died);
        }
    }
}

/// Starts the forwarding thread; it ends when every sender of `events` is gone or the agent
/// dropped its receiver.
pub fn spawn(
    events: Receiver<BackendMsg>,
    shared: Arc<Shared>,
    signals: UnboundedSender<WatchSignal>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("kea-config-watch".to_string())
        .spawn(move || forward(&events, &shared, &signals))
        .map(drop)
}

fn forward(events: &Receiver<BackendMsg>, shared: &Shared, signals: &UnboundedSender<WatchSignal>) {
    // Blocks without cost while nothing happens.
    while let Ok(first) = events.recv() {
        let mut batch = Batch::default();
        // Events about unwatched neighbours (a log file polled next door)
        // neither start a burst nor keep one open.
        if !take(first, &mut batch, shared) {
            continue;
        }
        let cut = Instant::now() + LONGEST;
        let mut quiet_until = Instant::now() + quiet_after(&batch);
        let ended = loop {
            let wait = quiet_until
                .min(cut)
                .saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break false;
            }
            match events.recv_timeout(wait) {
                Ok(msg) => {
                    if take(msg, &mut batch, shared) {
                        quiet_until = Instant::now() + quiet_after(&batch);
                    }
                }
                Err(RecvTimeoutError::Timeout) => break false,
                Err(RecvTimeoutError::Disconnected) => break true,
            }
        };
        if let Some(signal) = batch.into_signal() {
            tracing::debug!(?signal, "config files may have changed");
            if signals.send(signal).is_err() {
                return;
            }
        }
        if ended {
            return;
        }
    }
}

/// How long a burst in this state waits for more events before it ends.
fn quiet_after(batch: &Batch) -> Duration {
    if batch.is_finished() {
        DONE_QUIET
    } else {
        QUIET
    }
}

/// Folds one message into the batch; true when it concerned the watched set.
fn take(msg: BackendMsg, batch: &mut Batch, shared: &Shared) -> bool {
    match msg {
        BackendMsg::Event(Ok(event)) => {
            tracing::trace!(?event, "file event");
            let set = shared.set.read().unwrap_or_else(PoisonError::into_inner);
            let lost = lost_dirs(&event.kind, &event.paths, &set);
            if !lost.is_empty() {
                tracing::debug!(?lost, "watched directory removed or moved");
                shared
                    .lost
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(lost.clone());
            }
            batch.add(&event, &set) || !lost.is_empty()
        }
        BackendMsg::Event(Err(error)) => {
            tracing::warn!(%error, "file watcher failed; it will be recreated");
            shared.failed.store(true, Ordering::SeqCst);
            batch.lost_events();
            true
        }
        BackendMsg::Died => {
            tracing::warn!("file watcher's event loop died; it will be recreated");
            shared.dead.store(true, Ordering::SeqCst);
            batch.lost_events();
            true
        }
    }
}
