//! Watching config files: wakes the agent when a Kea config file or an include may have changed.
//!
//! The watcher never decides whether content changed (the agent hashes it); it only says
//! "look now". How:
//! - inotify watches the parent *directories* (non-recursive), never file inodes, so editors
//!   that replace the file (vim, `sed -i`, Ansible, `cp`, remove and recreate) stay seen;
//! - each file's symlink chain is followed, and the directory of every hop is watched too
//!   (Kubernetes ConfigMaps swap a `..data` link); [`ConfigWatcher::refresh`] re-resolves it;
//! - events are matched by name against the hops (`set.rs`) and each burst is folded into one
//!   [`WatchSignal`] (`batch.rs`) by a forwarding thread (`forward.rs`);
//! - lost events (queue overflow, a recreated watcher) become [`WatchSignal::Rescan`].

mod batch;
mod error;
mod forward;
mod set;

pub use batch::{Hint, relevant};
pub use error::WatchError;
/// Quiet time the watcher waits for before reporting a burst of events.
pub use forward::QUIET as BATCH_QUIET;
pub use set::{WatchSet, symlink_chain};

use error::{WatchFailure, classify_start, classify_watch};
use forward::{BackendMsg, HandlerGuard, Shared};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// What the watcher tells the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchSignal {
    /// Some watched path may have changed; `complete` = the batch had a close-after-write, a
    /// rename into place or a create, and no write after it (strong hint the write is done);
    /// `finished` = a close-after-write or a rename into place, no create or write after it
    /// (the writer is done with this version: no settle window needed).
    Changed {
        paths: Vec<PathBuf>,
        complete: bool,
        finished: bool,
    },
    /// Events were lost (queue overflow, watcher recreated): re-check every file.
    Rescan,
}

/// Watches a set of config files (of one or several services) through their directories.
pub struct ConfigWatcher {
    backend: Option<Backend>,
    shared: Arc<Shared>,
    /// Kept so each recreated notify watcher can get a clone.
    events: std::sync::mpsc::Sender<BackendMsg>,
    signals: UnboundedSender<WatchSignal>,
    files: Vec<PathBuf>,
    /// Directories notify watches now, with the inode they had when the watch was added.
    watching: BTreeMap<PathBuf, DirId>,
    /// Directories wanted but not watchable at the last sync: reported when they come back.
    missing: BTreeSet<PathBuf>,
}

/// Identifies a directory inode, to notice a directory replaced under the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirId {
    dev: u64,
    ino: u64,
}

fn dir_id(path: &Path) -> Option<DirId> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_dir().then(|| DirId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// One notify watcher and the flag that tells its handler it was dropped on purpose.
struct Backend {
    watcher: RecommendedWatcher,
    retired: Arc<AtomicBool>,
}

impl Backend {
    fn start(events: &std::sync::mpsc::Sender<BackendMsg>) -> Result<Backend, WatchError> {
        let retired = Arc::new(AtomicBool::new(false));
        let guard = HandlerGuard {
            events: events.clone(),
            retired: Arc::clone(&retired),
        };
        let watcher = notify::recommended_watcher(move |event| guard.forward(event))
            .map_err(classify_start)?;
        Ok(Backend { watcher, retired })
    }

    fn retire(self, dead: bool) {
        self.retired.store(true, Ordering::SeqCst);
        if dead {
            // notify's Drop unwraps a send to its event loop, which panics once that loop is gone.
            std::mem::forget(self.watcher);
        }
    }
}

impl ConfigWatcher {
    /// Starts watching; signals arrive on the returned receiver.
    pub fn new() -> Result<(ConfigWatcher, UnboundedReceiver<WatchSignal>), WatchError> {
        let (signals, receiver) = unbounded_channel();
        let (events, events_rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared::default());
        forward::spawn(events_rx, Arc::clone(&shared), signals.clone())
            .map_err(|source| WatchError::Thread { source })?;
        let backend = Backend::start(&events)?;
        let watcher = ConfigWatcher {
            backend: Some(backend),
            shared,
            events,
            signals,
            files: Vec::new(),
            watching: BTreeMap::new(),
            missing: BTreeSet::new(),
        };
        Ok((watcher, receiver))
    }

    /// Replaces the whole watched set (the agent calls it after each apply with the new
    /// include set) and re-resolves symlinks.
    pub fn set_files(&mut self, files: &[PathBuf]) -> Result<(), WatchError> {
        self.files = files.to_vec();
        self.sync()
    }

    /// Re-resolves symlinks of the current set and re-adds missing directory watches. The
    /// agent calls it after each signal.
    pub fn refresh(&mut self) -> Result<(), WatchError> {
        self.sync()
    }

    /// The directories currently watched.
    pub fn watched_dirs(&self) -> Vec<PathBuf> {
        self.watching.keys().cloned().collect()
    }

    fn sync(&mut self) -> Result<(), WatchError> {
        let failed = self.shared.failed.swap(false, Ordering::SeqCst);
        let restarted = if failed || self.backend.is_none() || self.is_dead() {
            self.restart()?;
            true
        } else {
            false
        };
        let set = WatchSet::resolve(&self.files);
        // Installed first, so events from directories added below are already understood.
        self.shared.install(set.clone());
        let lost = self.shared.take_lost();
        let (resumed, result) = self.sync_dirs(set.dirs(), &lost);
        let resumed: BTreeSet<PathBuf> =
            resumed.iter().flat_map(|dir| set.owners_in(dir)).collect();
        if restarted {
            self.signal(WatchSignal::Rescan);
        } else if !resumed.is_empty() {
            // Changes made while the directory was not watched were not seen.
            self.signal(WatchSignal::Changed {
                paths: resumed.into_iter().collect(),
                complete: false,
                finished: false,
            });
        }
        result
    }

    /// Makes the notify watches match `wanted`. Returns the directories watched again after
    /// being missing or lost, and the first error that is not a missing directory.
    fn sync_dirs(
        &mut self,
        wanted: &BTreeSet<PathBuf>,
        lost: &BTreeSet<PathBuf>,
    ) -> (Vec<PathBuf>, Result<(), WatchError>) {
        let unwanted: Vec<PathBuf> = self
            .watching
            .keys()
            .filter(|dir| !wanted.contains(*dir))
            .cloned()
            .collect();
        for dir in unwanted {
            self.unwatch(&dir);
        }
        self.missing.retain(|dir| wanted.contains(dir));

        let mut resumed = Vec::new();
        let mut first_error = None;
        for dir in wanted {
            let Some(id) = dir_id(dir) else {
                self.unwatch(dir);
                self.missing.insert(dir.clone());
                continue;
            };
            let was_lost = lost.contains(dir);
            match self.watching.get(dir) {
                Some(old) if *old == id && !was_lost => continue,
                // Replaced or moved away: drop the watch on the old inode first.
                Some(_) => self.unwatch(dir),
                None => {}
            }
            match self.call(|watcher| watcher.watch(dir, RecursiveMode::NonRecursive)) {
                Ok(()) => {
                    self.watching.insert(dir.clone(), id);
                    if self.missing.remove(dir) || was_lost {
                        resumed.push(dir.clone());
                    }
                }
                Err(source) => {
                    self.missing.insert(dir.clone());
                    match classify_watch(source, dir) {
                        WatchFailure::Missing => {}
                        WatchFailure::Fatal(error) => {
                            tracing::warn!(%error, "cannot watch config directory");
                            first_error.get_or_insert(error);
                        }
                    }
                }
            }
        }
        (resumed, first_error.map_or(Ok(()), Err))
    }

    fn unwatch(&mut self, dir: &Path) {
        if self.watching.remove(dir).is_some() {
            // notify already dropped the watch of a removed directory: nothing to report.
            let _ = self.call(|watcher| watcher.unwatch(dir));
        }
    }

    /// Calls into notify, turning "its event loop is gone" (a panic in notify) into an error.
    fn call(
        &mut self,
        op: impl FnOnce(&mut RecommendedWatcher) -> notify::Result<()>,
    ) -> notify::Result<()> {
        let gone = || notify::Error::generic("the notify event loop is gone");
        let Some(backend) = self.backend.as_mut() else {
            return Err(gone());
        };
        if self.shared.dead.load(Ordering::SeqCst) {
            return Err(gone());
        }
        match catch_unwind(AssertUnwindSafe(|| op(&mut backend.watcher))) {
            Ok(result) => result,
            Err(_) => {
                self.shared.dead.store(true, Ordering::SeqCst);
                Err(gone())
            }
        }
    }

    fn is_dead(&self) -> bool {
        self.shared.dead.load(Ordering::SeqCst)
    }

    /// Replaces the notify watcher; every directory gets watched anew by the caller.
    fn restart(&mut self) -> Result<(), WatchError> {
        tracing::info!("recreating the config file watcher");
        if let Some(old) = self.backend.take() {
            old.retire(self.is_dead());
        }
        self.watching.clear();
        self.shared.dead.store(false, Ordering::SeqCst);
        self.backend = Some(Backend::start(&self.events)?);
        Ok(())
    }

    fn signal(&self, signal: WatchSignal) {
        // The agent dropping its receiver means nobody wants signals any more.
        let _ = self.signals.send(signal);
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        if let Some(backend) = self.backend.take() {
            backend.retire(self.is_dead());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    #[tokio::test]
    async fn backend_error_recreates_the_watcher() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().canonicalize().expect("canonicalize");
        let conf = dir.join("kea-dhcp4.conf");
        std::fs::write(&conf, "{}").expect("write");
        let (mut watcher, mut signals) = ConfigWatcher::new().expect("watcher");
        watcher
            .set_files(std::slice::from_ref(&conf))
            .expect("set_files");

        let _ = watcher
            .events
            .send(BackendMsg::Event(Err(notify::Error::generic("injected"))));
        let signal = timeout(Duration::from_secs(2), signals.recv()).await;
        assert_eq!(signal.expect("in time"), Some(WatchSignal::Rescan));

        watcher.refresh().expect("refresh recreates");
        let signal = timeout(Duration::from_secs(2), signals.recv()).await;
        assert_eq!(signal.expect("in time"), Some(WatchSignal::Rescan));
        assert_eq!(watcher.watched_dirs(), vec![dir]);

        std::fs::write(&conf, "{ }").expect("edit");
        let signal = timeout(Duration::from_secs(2), signals.recv()).await;
        assert_eq!(
            signal.expect("in time"),
            Some(WatchSignal::Changed {
                paths: vec![conf],
                complete: true,
                finished: true,
            })
        );
    }
}
