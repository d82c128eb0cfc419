//! The durable outbox: every upstream event is a file in `state_dir/outbox/`
//! (temp file, fsync, rename, directory fsync) before any delivery attempt,
//! and is deleted only after the receiver stored it. Names sort by service
//! and sequence, so a restarted agent resumes in order.

use super::config::OutboxLimits;
use crate::durable;
use crate::event::wire::{self, Identity};
use crate::event::{Kind, SyncEvent};
use crate::kea::Service;
use indexmap::IndexMap;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::Notify;

/// Why the outbox could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(
        "outbox {path}: {source} (the state dir must be writable by the agent's user, and the disk not full)"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why dead events could not be queued again.
#[derive(Debug, thiserror::Error)]
pub enum ReviveError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("not in {dead}: {}; `kea-sync-agent outbox` lists the dead events and their ids", ids.join(", "))]
    NotDead { ids: Vec<String>, dead: PathBuf },
}

/// One queued event, described by its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub service: Service,
    pub sequence: u64,
    pub kind: Kind,
    pub id: String,
    /// The config body was dropped to respect the outbox's bounds.
    pub trimmed: bool,
    pub bytes: u64,
}

impl Entry {
    /// `dhcp4.000000000042.applied.01J...[.trimmed].json`
    pub fn file_name(&self) -> String {
        let trimmed = if self.trimmed { ".trimmed" } else { "" };
        format!(
            "{}.{:012}.{}.{}{trimmed}.json",
            self.service, self.sequence, self.kind, self.id
        )
    }

    /// Reads an entry back from its file name; None for foreign files.
    pub fn parse(name: &str, bytes: u64) -> Option<Entry> {
        let stem = name.strip_suffix(".json")?;
        let (stem, trimmed) = match stem.strip_suffix(".trimmed") {
            Some(stem) => (stem, true),
            None => (stem, false),
        };
        let mut parts = stem.split('.');
        let service = parts.next()?.parse().ok()?;
        let sequence = parts.next()?.parse().ok()?;
        let kind = Kind::parse(parts.next()?)?;
        let id = parts.next()?.to_string();
        parts.next().is_none().then_some(Entry {
            service,
            sequence,
            kind,
            id,
            trimmed,
            bytes,
        })
    }

    /// Whether the event's file holds a config body.
    pub fn carries_config(&self) -> bool {
        !self.trimmed && self.kind.carries_config()
    }

    /// When the event was queued: its ULID's time.
    pub fn queued_at(&self) -> Option<SystemTime> {
        ulid::Ulid::from_string(&self.id)
            .ok()
            .map(|ulid| ulid.datetime())
    }
}

/// An event a receiver refused, in `dead/` with the reply beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadEntry {
    pub entry: Entry,
    /// The receiver's reply (status line, then body).
    pub reply: String,
}

/// Which dead events to queue again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revive {
    All,
    Ids(Vec<String>),
}

/// The queued and dead events of a state dir, read from the disk alone (no
/// lock: for `outbox` while no daemon answers).
pub fn list_state_dir(state_dir: &Path) -> Result<(Vec<Entry>, Vec<DeadEntry>), OutboxError> {
    let queued = list(&state_dir.join("outbox"))?;
    let dead = list_dead(&state_dir.join("dead"))?;
    Ok((queued, dead))
}

fn list_dead(dead: &Path) -> Result<Vec<DeadEntry>, OutboxError> {
    Ok(list(dead)?
        .into_iter()
        .map(|entry| {
            let reply = std::fs::read_to_string(dead.join(format!("{}.reply", entry.file_name())))
                .unwrap_or_default();
            DeadEntry { entry, reply }
        })
        .collect())
}

/// What to do to an entry to get back within bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shrink {
    /// Drop the config body, keep the metadata.
    Trim(Entry),
    /// Drop the whole event (logged and counted).
    Drop(Entry),
}

/// Plans how to get `entries` (sorted oldest first) within `limits`: first
/// the oldest config bodies that a newer config event of the same service
/// supersedes give way, then, if still over, the oldest events. Pure.
pub fn plan_shrink(entries: &[Entry], limits: OutboxLimits) -> Vec<Shrink> {
    let mut count = entries.len();
    let mut bytes: u64 = entries.iter().map(|e| e.bytes).sum();
    let over = |count: usize, bytes: u64| count > limits.max_events || bytes > limits.max_bytes;
    let mut plan = Vec::new();
    if !over(count, bytes) {
        return plan;
    }
    let mut trimmed = vec![false; entries.len()];
    if bytes > limits.max_bytes {
        for (i, entry) in entries.iter().enumerate() {
            if bytes <= limits.max_bytes {
                break;
            }
            let superseded = entries[i + 1..]
                .iter()
                .any(|later| later.service == entry.service && later.carries_config());
            if entry.carries_config() && superseded {
                // A trimmed event keeps about a kilobyte of metadata.
                bytes = bytes.saturating_sub(entry.bytes.saturating_sub(1024));
                trimmed[i] = true;
                plan.push(Shrink::Trim(entry.clone()));
            }
        }
    }
    for (i, entry) in entries.iter().enumerate() {
        if !over(count, bytes) {
            break;
        }
        count -= 1;
        bytes = bytes.saturating_sub(if trimmed[i] { 1024 } else { entry.bytes });
        plan.retain(|step| step != &Shrink::Trim(entry.clone()));
        plan.push(Shrink::Drop(entry.clone()));
    }
    plan
}

/// The outbox directory, an index of what it holds (this process is its
/// only writer: the state dir is locked) and the per-service sequences.
#[derive(Debug)]
struct Outbox {
    dir: PathBuf,
    dead: PathBuf,
    sequences_file: PathBuf,
    sequences: BTreeMap<String, u64>,
    /// Every queued event, by service then sequence.
    queued: BTreeMap<(String, u64), Entry>,
    limits: OutboxLimits,
    identity: Identity,
    /// Events dropped to respect the bounds since start.
    dropped: u64,
    delivered_file: PathBuf,
    /// Per service, Kea's config hash of the last config event a receiver stored.
    delivered: BTreeMap<String, String>,
}

/// What the upstream has of one service's configs, as plain data for the
/// pipeline's decisions (`decide::upstream_lacks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamView {
    /// Kea's config hash of the last config event a receiver stored.
    pub last_delivered: Option<String>,
    /// A config event of the service is still waiting for delivery.
    pub config_queued: bool,
}

/// The outbox as the service pipelines (which queue) and the pusher (which
/// delivers) share it; cloning gives another handle on the same outbox.
#[derive(Debug, Clone)]
pub struct OutboxHandle {
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<Notify>,
}

impl OutboxHandle {
    /// Opens (creating) `state_dir/outbox` and `state_dir/dead`. The caller
    /// holds the state dir's lock: two writers would repeat sequences.
    pub fn open(
        state_dir: &Path,
        limits: OutboxLimits,
        identity: Identity,
    ) -> Result<OutboxHandle, OutboxError> {
        Ok(OutboxHandle {
            outbox: Arc::new(Mutex::new(Outbox::open(state_dir, limits, identity)?)),
            wake: Arc::new(Notify::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        // A panic elsewhere while holding it must not stop delivery.
        self.outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an upstream event durably and wakes the pusher; Ok(None) for
    /// outcomes that stay local. On error nothing was queued and no
    /// sequence number was used.
    pub fn queue(&self, event: &SyncEvent) -> Result<Option<Entry>, OutboxError> {
        let entry = self.lock().enqueue(event)?;
        if entry.is_some() {
            self.wake.notify_one();
        }
        Ok(entry)
    }

    /// What the upstream has of `service`'s configs.
    pub fn view(&self, service: Service) -> UpstreamView {
        let outbox = self.lock();
        UpstreamView {
            last_delivered: outbox.delivered.get(service.name()).cloned(),
            config_queued: outbox
                .queued
                .values()
                .any(|e| e.service == service && e.carries_config()),
        }
    }

    /// Every queued event, by service then sequence.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().queued.values().cloned().collect()
    }

    /// How many events are queued.
    pub fn len(&self) -> usize {
        self.lock().queued.len()
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest queued event of each service: what may be in flight.
    pub fn heads(&self) -> Vec<Entry> {
        let mut heads: Vec<Entry> = Vec::new();
        for entry in self.lock().queued.values() {
            if !heads.iter().any(|h| h.service == entry.service) {
                heads.push(entry.clone());
            }
        }
        heads
    }

    /// The file holding the event's body.
    pub fn body_path(&self, entry: &Entry) -> PathBuf {
        self.lock().path(entry)
    }

    /// The receivers stored `entry`, whose file says `config_hash`: for a
    /// config event that hash becomes the service's last delivered; then the
    /// event is forgotten.
    pub fn delivered(&self, entry: &Entry, config_hash: Option<&str>) -> Result<(), OutboxError> {
        let mut outbox = self.lock();
        outbox.mark_delivered(entry, config_hash)?;
        outbox.remove(entry)
    }

    /// Moves an event the receiver refused to `dead/`, its reply beside it.
    pub fn bury(&self, entry: &Entry, reply: &str) -> Result<PathBuf, OutboxError> {
        self.lock().bury(entry, reply)
    }

    /// Waits until an event is queued (at once if one was queued since the
    /// last wait).
    pub async fn queued(&self) {
        self.wake.notified().await;
    }

    /// New bounds (a re-read agent config); applied from the next event on.
    pub fn set_limits(&self, limits: OutboxLimits) {
        self.lock().limits = limits;
    }

    /// The events in dead/, by service then sequence.
    pub fn dead(&self) -> Result<Vec<DeadEntry>, OutboxError> {
        list_dead(&self.lock().dead)
    }

    /// Queues dead events again, each under its own id and sequence (the
    /// receiver takes the id as the idempotency key), by service and
    /// sequence; an id not in dead/ is an error and nothing moves.
    pub fn revive(&self, which: &Revive) -> Result<Vec<Entry>, ReviveError> {
        let revived = self.lock().revive(which)?;
        if !revived.is_empty() {
            self.wake.notify_one();
        }
        Ok(revived)
    }

    /// Events dropped to respect the bounds since start.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

impl Outbox {
    fn open(
        state_dir: &Path,
        limits: OutboxLimits,
        identity: Identity,
    ) -> Result<Outbox, OutboxError> {
        let dir = state_dir.join("outbox");
        let dead = state_dir.join("dead");
        for d in [&dir, &dead] {
            durable::create_dir(d).map_err(|source| OutboxError::Io {
                path: d.clone(),
                source,
            })?;
        }
        let sequences_file = state_dir.join("sequences.json");
        let mut sequences: BTreeMap<String, u64> = std::fs::read(&sequences_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let delivered_file = state_dir.join("delivered.json");
        let delivered = std::fs::read(&delivered_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let queued: BTreeMap<(String, u64), Entry> = list(&dir)?
            .into_iter()
            .map(|entry| ((entry.service.name().to_string(), entry.sequence), entry))
            .collect();
        // Never go backwards, even if sequences.json was lost.
        for entry in queued.values().chain(list(&dead)?.iter()) {
            let seq = sequences
                .entry(entry.service.name().to_string())
                .or_default();
            *seq = (*seq).max(entry.sequence);
        }
        let outbox = Outbox {
            dir,
            dead,
            sequences_file,
            sequences,
            queued,
            limits,
            identity,
            dropped: 0,
            delivered_file,
            delivered,
        };
        outbox.remove_temp_files();
        Ok(outbox)
    }

    /// Writes the event's file, then the sequence counter. A crash between
    /// the two cannot repeat a number: opening takes the highest of the
    /// counter and the files. A failure of either leaves neither.
    fn enqueue(&mut self, event: &SyncEvent) -> Result<Option<Entry>, OutboxError> {
        let Some(kind) = event.kind() else {
            return Ok(None);
        };
        let service = event.service.name().to_string();
        let sequence = self.sequences.get(&service).copied().unwrap_or(0) + 1;
        let mut entry = Entry {
            service: event.service,
            sequence,
            kind,
            id: ulid::Ulid::new().to_string(),
            trimmed: false,
            bytes: 0,
        };
        let queued_at = SystemTime::now();
        let path = self.path(&entry);
        // Streamed into the file: a large config is not held twice.
        entry.bytes = write_durably_with(&path, |file| {
            let encoded = wire::encode_into(
                event,
                &entry.id,
                sequence,
                &self.identity,
                queued_at,
                &mut *file,
            );
            // None (an event that stays local) was ruled out by kind().
            encoded.unwrap_or(Ok(())).map_err(std::io::Error::from)
        })?;
        let mut sequences = self.sequences.clone();
        sequences.insert(service.clone(), sequence);
        let counter = serde_json::to_vec(&sequences).unwrap_or_default();
        if let Err(error) = write_durably(&self.sequences_file, &counter) {
            let _ = std::fs::remove_file(&path);
            let _ = sync_dir(&self.dir);
            return Err(error);
        }
        self.sequences = sequences;
        self.queued.insert((service, sequence), entry.clone());
        // The event is queued whatever the bounds do next.
        if let Err(error) = self.shrink() {
            tracing::error!("outbox over its bounds and cannot shrink: {error}");
        }
        Ok(Some(entry))
    }

    fn path(&self, entry: &Entry) -> PathBuf {
        self.dir.join(entry.file_name())
    }

    fn read(&self, entry: &Entry) -> Result<Vec<u8>, OutboxError> {
        let path = self.path(entry);
        std::fs::read(&path).map_err(|source| OutboxError::Io { path, source })
    }

    /// Forgets an event; one already gone from the disk is forgotten too.
    fn remove(&mut self, entry: &Entry) -> Result<(), OutboxError> {
        self.queued
            .remove(&(entry.service.name().to_string(), entry.sequence));
        let path = self.path(entry);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(OutboxError::Io { path, source }),
        }
    }

    fn mark_delivered(
        &mut self,
        entry: &Entry,
        config_hash: Option<&str>,
    ) -> Result<(), OutboxError> {
        let Some(hash) = config_hash.filter(|_| entry.carries_config()) else {
            return Ok(());
        };
        self.delivered
            .insert(entry.service.name().to_string(), hash.to_string());
        write_durably(
            &self.delivered_file,
            &serde_json::to_vec(&self.delivered).unwrap_or_default(),
        )
    }

    fn revive(&mut self, which: &Revive) -> Result<Vec<Entry>, ReviveError> {
        let dead = list(&self.dead)?;
        let chosen: Vec<Entry> = match which {
            Revive::All => dead,
            Revive::Ids(ids) => {
                let unknown: Vec<String> = ids
                    .iter()
                    .filter(|id| !dead.iter().any(|e| e.id == **id))
                    .cloned()
                    .collect();
                if !unknown.is_empty() {
                    return Err(ReviveError::NotDead {
                        ids: unknown,
                        dead: self.dead.clone(),
                    });
                }
                dead.into_iter().filter(|e| ids.contains(&e.id)).collect()
            }
        };
        for entry in &chosen {
            let from = self.dead.join(entry.file_name());
            let to = self.path(entry);
            std::fs::rename(&from, &to).map_err(|source| OutboxError::Io { path: from, source })?;
            let _ = std::fs::remove_file(self.dead.join(format!("{}.reply", entry.file_name())));
            self.queued.insert(
                (entry.service.name().to_string(), entry.sequence),
                entry.clone(),
            );
        }
        if !chosen.is_empty() {
            sync_dir(&self.dir)?;
            sync_dir(&self.dead)?;
        }
        Ok(chosen)
    }

    fn bury(&mut self, entry: &Entry, reply: &str) -> Result<PathBuf, OutboxError> {
        let from = self.path(entry);
        let to = self.dead.join(entry.file_name());
        write_durably(
            &self.dead.join(format!("{}.reply", entry.file_name())),
            reply.as_bytes(),
        )?;
        std::fs::rename(&from, &to).map_err(|source| OutboxError::Io { path: from, source })?;
        self.queued
            .remove(&(entry.service.name().to_string(), entry.sequence));
        sync_dir(&self.dir)?;
        Ok(to)
    }

    /// Applies `plan_shrink`, logging every body trimmed and event dropped.
    fn shrink(&mut self) -> Result<(), OutboxError> {
        let entries: Vec<Entry> = self.queued.values().cloned().collect();
        for step in plan_shrink(&entries, self.limits) {
            match step {
                Shrink::Trim(entry) => {
                    let body = self.read(&entry)?;
                    let trimmed_body = trim_config(&body).unwrap_or(body);
                    let trimmed = Entry {
                        trimmed: true,
                        bytes: trimmed_body.len() as u64,
                        ..entry.clone()
                    };
                    write_durably(&self.dir.join(trimmed.file_name()), &trimmed_body)?;
                    self.remove(&entry)?;
                    self.queued.insert(
                        (trimmed.service.name().to_string(), trimmed.sequence),
                        trimmed,
                    );
                    tracing::warn!(event = %entry.id, service = %entry.service, sequence = entry.sequence,
                        "outbox over its bounds: dropped the config body of a superseded {} event (metadata kept)", entry.kind);
                }
                Shrink::Drop(entry) => {
                    self.remove(&entry)?;
                    self.dropped += 1;
                    tracing::error!(event = %entry.id, service = %entry.service, sequence = entry.sequence, dropped_total = self.dropped,
                        "outbox over its bounds (max_outbox_events / max_outbox_bytes): dropped the oldest {} event", entry.kind);
                }
            }
        }
        Ok(())
    }

    fn remove_temp_files(&self) {
        for dir in [&self.dir, &self.dead] {
            let Ok(read) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in read.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// The body without its `config`, marked so the receiver knows why.
fn trim_config(body: &[u8]) -> Option<Vec<u8>> {
    let mut top: IndexMap<String, Box<RawValue>> = serde_json::from_slice(body).ok()?;
    top.shift_remove("config")?;
    top.insert(
        "config_dropped".into(),
        serde_json::value::to_raw_value("outbox bounds: superseded by a newer config event")
            .ok()?,
    );
    serde_json::to_vec(&top).ok()
}

fn list(dir: &Path) -> Result<Vec<Entry>, OutboxError> {
    let read = std::fs::read_dir(dir).map_err(|source| OutboxError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut entries: Vec<Entry> = read
        .flatten()
        .filter_map(|e| {
            let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
            Entry::parse(&e.file_name().to_string_lossy(), bytes)
        })
        .collect();
    entries.sort_by(|a, b| (a.service.name(), a.sequence).cmp(&(b.service.name(), b.sequence)));
    Ok(entries)
}

/// The `config_hash` of the event in file `path`, read as a stream (the
/// file may hold a config of tens of MB). None when absent or unreadable.
pub fn config_hash_in(path: &Path) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Hash {
        config_hash: Option<String>,
    }
    let file = std::fs::File::open(path).ok()?;
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    serde_json::from_reader::<_, Hash>(reader).ok()?.config_hash
}

/// Writes an outbox file durably, owner/group-only.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), OutboxError> {
    durable::write(path, durable::FILE_MODE, bytes).map_err(|source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Like [`write_durably`], streamed through `write`; returns the file's size.
fn write_durably_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<u64, OutboxError> {
    durable::write_with(path, durable::FILE_MODE, write).map_err(|source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    durable::sync_dir(dir).map_err(|source| OutboxError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(service: Service, sequence: u64, kind: &str, bytes: u64) -> Entry {
        Entry {
            service,
            sequence,
            kind: Kind::parse(kind).expect("a kind"),
            id: format!("ID{sequence}"),
            trimmed: false,
            bytes,
        }
    }

    #[test]
    fn names_round_trip() {
        let e = entry(Service::Dhcp6, 42, "snapshot", 10);
        assert_eq!(e.file_name(), "dhcp6.000000000042.snapshot.ID42.json");
        assert_eq!(Entry::parse(&e.file_name(), 10), Some(e.clone()));
        let t = Entry { trimmed: true, ..e };
        assert_eq!(Entry::parse(&t.file_name(), 10), Some(t));
        for foreign in [
            ".dhcp4.1.applied.X.json.tmp",
            "notes.txt",
            "dhcp9.1.applied.X.json",
            "dhcp4.x.applied.X.json",
        ] {
            assert_eq!(Entry::parse(foreign, 1), None, "{foreign}");
        }
    }

    #[test]
    fn within_bounds_nothing_happens() {
        let entries = [entry(Service::Dhcp4, 1, "applied", 100)];
        let limits = OutboxLimits {
            max_events: 10,
            max_bytes: 1000,
        };
        assert!(plan_shrink(&entries, limits).is_empty());
    }

    #[test]
    fn superseded_bodies_give_way_before_any_event() {
        let mb = 1_000_000;
        let entries = [
            entry(Service::Dhcp4, 1, "applied", 50 * mb),
            entry(Service::Dhcp4, 2, "rejected", 1000),
            entry(Service::Dhcp4, 3, "applied", 50 * mb),
            entry(Service::Dhcp6, 1, "snapshot", 50 * mb),
        ];
        let limits = OutboxLimits {
            max_events: 10,
            max_bytes: 120 * mb,
        };
        // dhcp4 #1 is superseded by #3; dhcp6 #1 and dhcp4 #3 are the newest of their service.
        assert_eq!(
            plan_shrink(&entries, limits),
            vec![Shrink::Trim(entries[0].clone())]
        );
    }

    #[test]
    fn over_count_drops_oldest_events() {
        let entries: Vec<Entry> = (1..=5)
            .map(|n| entry(Service::Dhcp4, n, "rejected", 100))
            .collect();
        let limits = OutboxLimits {
            max_events: 3,
            max_bytes: 1 << 30,
        };
        assert_eq!(
            plan_shrink(&entries, limits),
            vec![
                Shrink::Drop(entries[0].clone()),
                Shrink::Drop(entries[1].clone())
            ]
        );
    }

    #[test]
    fn trim_keeps_metadata() {
        let body = br#"{"id":"X","kind":"applied","config":{"Dhcp4":{}},"text":"t"}"#;
        let trimmed: serde_json::Value =
            serde_json::from_slice(&trim_config(body).expect("trim")).expect("json");
        assert!(trimmed.get("config").is_none());
        assert_eq!(trimmed["id"], "X");
        assert!(trimmed["config_dropped"].is_string());
    }

    fn sync_event(outcome: crate::event::Outcome) -> SyncEvent {
        crate::event::example(outcome, Some(r#"{"Dhcp4":{}}"#))
    }

    #[test]
    fn a_failed_queue_uses_no_sequence_and_leaves_no_file() {
        use crate::event::Outcome;
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = OutboxHandle::open(
            dir.path(),
            OutboxLimits::default(),
            Identity::of_this_host(),
        )
        .expect("open");
        let first = outbox
            .queue(&sync_event(Outcome::Applied))
            .expect("queued")
            .expect("an upstream event");
        assert_eq!(first.sequence, 1);
        // The counter cannot be written (a directory stands where its file goes).
        let counter = dir.path().join("sequences.json");
        std::fs::remove_file(&counter).expect("remove the counter");
        std::fs::create_dir(&counter).expect("block the counter");
        assert!(outbox.queue(&sync_event(Outcome::Drift)).is_err());
        assert_eq!(outbox.entries(), vec![first.clone()], "nothing half-queued");
        assert_eq!(list(&dir.path().join("outbox")).expect("list").len(), 1);
        std::fs::remove_dir(&counter).expect("unblock the counter");
        let second = outbox
            .queue(&sync_event(Outcome::Drift))
            .expect("queued")
            .expect("an upstream event");
        assert_eq!(second.sequence, 2, "no number skipped, none repeated");
        assert!(outbox.view(Service::Dhcp4).config_queued);
        assert_eq!(outbox.heads(), vec![first]);
    }

    #[test]
    fn local_outcomes_are_not_queued_and_delivery_is_remembered() {
        use crate::event::Outcome;
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || {
            OutboxHandle::open(
                dir.path(),
                OutboxLimits::default(),
                Identity::of_this_host(),
            )
            .expect("open")
        };
        let outbox = open();
        assert_eq!(
            outbox.queue(&sync_event(Outcome::InSync)).expect("ok"),
            None
        );
        let entry = outbox
            .queue(&sync_event(Outcome::Snapshot))
            .expect("queued")
            .expect("an upstream event");
        outbox.delivered(&entry, Some("CD")).expect("delivered");
        let view = open().view(Service::Dhcp4);
        assert_eq!(
            view,
            UpstreamView {
                last_delivered: Some("CD".into()),
                config_queued: false
            },
            "what was delivered survives a restart"
        );
        assert!(open().entries().is_empty());
    }
}
