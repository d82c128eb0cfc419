//! The delivery loop: sends the oldest queued event of each service to every
//! sink, deletes it once all stored it, buries refused ones in dead/, and
//! backs off while the receiver is away. Order per service is kept because
//! only a service's head event is ever in flight.

use super::config::{HookConfig, UpstreamConfig};
use super::outbox::{self, Entry, SharedOutbox};
use super::sink::{self, Disposition, HookSink, HttpSink, SinkError};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long to wait before looking again after the outbox itself failed.
const OUTBOX_ERROR_PAUSE: Duration = Duration::from_secs(5);

/// One destination of events.
#[derive(Debug, Clone)]
enum Sink {
    Http(HttpSink),
    Hook(HookSink),
}

impl Sink {
    async fn deliver(&self, id: &str, body: &Path) -> Disposition {
        match self {
            Sink::Http(http) => http.post(id, body).await,
            Sink::Hook(hook) => hook.run(body).await,
        }
    }

    fn name(&self) -> String {
        match self {
            Sink::Http(http) => http.url().to_string(),
            Sink::Hook(hook) => format!("hook {}", hook.name()),
        }
    }
}

/// Delivers the outbox's events to the configured sinks.
pub struct Pusher {
    outbox: SharedOutbox,
    sinks: Vec<Sink>,
    wake: Arc<Notify>,
    /// Sinks that already stored an event (by id), so a retry does not run
    /// a hook twice because the HTTP sink failed.
    stored_by: HashMap<String, BTreeSet<usize>>,
    last_problem: Option<String>,
}

impl Pusher {
    /// Sets up the sinks; `wake` is notified whenever an event is queued.
    pub fn new(
        outbox: SharedOutbox,
        upstream: Option<&UpstreamConfig>,
        hooks: &[HookConfig],
        wake: Arc<Notify>,
    ) -> Result<Pusher, SinkError> {
        let mut sinks = Vec::new();
        if let Some(upstream) = upstream {
            sinks.push(Sink::Http(HttpSink::new(upstream)?));
        }
        for hook in hooks {
            sinks.push(Sink::Hook(HookSink::new(hook)?));
        }
        Ok(Pusher {
            outbox,
            sinks,
            wake,
            stored_by: HashMap::new(),
            last_problem: None,
        })
    }

    /// Whether there is anywhere to deliver to (else events stay local).
    pub fn has_sinks(&self) -> bool {
        !self.sinks.is_empty()
    }

    /// Runs forever; queued events (from before a restart too) go first.
    pub async fn run(mut self) {
        let mut attempt = 0u32;
        loop {
            let heads = match self.heads() {
                Ok(heads) => heads,
                Err(error) => {
                    tracing::error!("{error}");
                    tokio::time::sleep(OUTBOX_ERROR_PAUSE).await;
                    continue;
                }
            };
            if heads.is_empty() {
                self.wake.notified().await;
                continue;
            }
            let mut retry: Option<Option<Duration>> = None;
            for head in heads {
                if let Some(after) = self.deliver(&head).await {
                    retry = Some(retry.flatten().max(after));
                }
            }
            match retry {
                Some(asked) => {
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(sink::retry_delay(attempt, asked, jitter())).await;
                }
                None => attempt = 0,
            }
        }
    }

    /// The oldest queued event of each service.
    fn heads(&self) -> Result<Vec<Entry>, super::OutboxError> {
        let entries = lock(&self.outbox).entries()?;
        let mut heads: Vec<Entry> = Vec::new();
        for entry in entries {
            if !heads.iter().any(|h| h.service == entry.service) {
                heads.push(entry);
            }
        }
        Ok(heads)
    }

    /// Tries one event on every sink that has not stored it yet. Returns
    /// Some(delay asked) when it must be tried again.
    async fn deliver(&mut self, entry: &Entry) -> Option<Option<Duration>> {
        // Sinks stream the body from the file: a config of tens of MB is
        // not held in memory beside Kea's reply.
        let body = lock(&self.outbox).path(entry);
        let mut retry: Option<Option<Duration>> = None;
        for (index, sink) in self.sinks.clone().iter().enumerate() {
            if self
                .stored_by
                .get(&entry.id)
                .is_some_and(|s| s.contains(&index))
            {
                continue;
            }
            match sink.deliver(&entry.id, &body).await {
                Disposition::Delivered => {
                    self.stored_by
                        .entry(entry.id.clone())
                        .or_default()
                        .insert(index);
                }
                Disposition::Retry { after, why } => {
                    let problem = format!("{}: {why}", sink.name());
                    if self.last_problem.as_deref() != Some(problem.as_str()) {
                        tracing::warn!(event = %entry.id, service = %entry.service, "cannot deliver upstream, will retry: {problem}");
                        self.last_problem = Some(problem);
                    }
                    retry = Some(retry.flatten().max(after));
                }
                Disposition::Dead { reply } => {
                    self.stored_by.remove(&entry.id);
                    match lock(&self.outbox).bury(entry, &reply) {
                        Ok(path) => {
                            tracing::error!(event = %entry.id, service = %entry.service, sequence = entry.sequence,
                            "{} refused the event; moved to {} with its reply: {}", sink.name(), path.display(), reply.lines().next().unwrap_or(""))
                        }
                        Err(error) => tracing::error!("{error}"),
                    }
                    return None;
                }
            }
        }
        if retry.is_some() {
            return retry;
        }
        self.stored_by.remove(&entry.id);
        if self.last_problem.take().is_some() {
            tracing::info!("upstream delivery works again");
        }
        tracing::debug!(event = %entry.id, service = %entry.service, sequence = entry.sequence, kind = %entry.kind, "delivered upstream");
        let hash = entry
            .carries_config()
            .then(|| outbox::config_hash_in(&body))
            .flatten();
        let mut outbox = lock(&self.outbox);
        if let Err(error) = outbox
            .mark_delivered(entry, hash.as_deref())
            .and_then(|()| outbox.remove(entry))
        {
            tracing::error!("{error}");
        }
        None
    }
}

/// The outbox lock; a panic elsewhere while holding it does not stop delivery.
pub fn lock(outbox: &SharedOutbox) -> std::sync::MutexGuard<'_, super::Outbox> {
    outbox
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A number in 0..1 that differs between agents and attempts.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}
