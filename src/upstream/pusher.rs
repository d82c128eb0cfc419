//! The delivery loop: sends the oldest queued event of each service to every
//! sink, deletes it once all stored it, buries refused ones in dead/, and
//! backs off while the receiver is away. Order per service is kept because
//! only a service's head event is ever in flight.

use super::config::{HookConfig, UpstreamConfig};
use super::deliveries::Deliveries;
use super::outbox::{self, Entry, OutboxHandle};
use super::sink::{self, Disposition, HookSink, HttpSink, SinkError};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

/// One destination of events.
#[derive(Debug, Clone)]
enum Sink {
    Http(HttpSink),
    Hook(HookSink),
}

impl Sink {
    /// `last`: nothing else is queued behind this event.
    async fn deliver(&self, id: &str, body: &Path, last: bool) -> Disposition {
        match self {
            Sink::Http(http) => http.post(id, body, last).await,
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
    outbox: OutboxHandle,
    sinks: Vec<Sink>,
    /// Sinks that already stored an event (by id), so a retry does not run
    /// a hook twice because the HTTP sink failed.
    stored_by: HashMap<String, BTreeSet<usize>>,
    last_problem: Option<String>,
    deliveries: Deliveries,
    metrics: Metrics,
}

impl Pusher {
    /// Sets up the sinks for `outbox`.
    pub fn new(
        outbox: OutboxHandle,
        upstream: Option<&UpstreamConfig>,
        hooks: &[HookConfig],
        deliveries: Deliveries,
        metrics: Metrics,
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
            stored_by: HashMap::new(),
            last_problem: None,
            deliveries,
            metrics,
        })
    }

    /// Whether there is anywhere to deliver to (else events stay local).
    pub fn has_sinks(&self) -> bool {
        !self.sinks.is_empty()
    }

    /// Delivers until `shutdown`; queued events (from before a restart too)
    /// go first. A delivery in flight when the stop comes is finished (each
    /// is bounded by its sink's timeout), so no receiver sees a request cut.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut attempt = 0u32;
        while !shutdown.is_requested() {
            let heads = self.outbox.heads();
            if heads.is_empty() {
                // Everything delivered: the bodies sent are freed, give them back.
                crate::memory::give_back();
                tokio::select! {
                    () = self.outbox.queued() => continue,
                    () = shutdown.requested() => break,
                }
            }
            let mut retry: Option<Option<Duration>> = None;
            for head in heads {
                if shutdown.is_requested() {
                    break;
                }
                if let Some(after) = self.deliver(&head).await {
                    retry = Some(retry.flatten().max(after));
                }
            }
            match retry {
                Some(asked) => {
                    attempt = attempt.saturating_add(1);
                    let delay = sink::retry_delay(attempt, asked, jitter());
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.requested() => break,
                    }
                }
                None => attempt = 0,
            }
        }
        tracing::debug!("pusher stopped");
    }

    /// Tries one event on every sink that has not stored it yet. Returns
    /// Some(delay asked) when it must be tried again.
    async fn deliver(&mut self, entry: &Entry) -> Option<Option<Duration>> {
        // Sinks stream the body from the file: a config of tens of MB is
        // not held in memory beside Kea's reply.
        let body = self.outbox.body_path(entry);
        // With nothing queued behind it, its connection is not kept alive: an idle agent
        // holds no connection the pool would have to time out (a wake-up 20 s later).
        let last = self.outbox.len() <= 1;
        let mut retry: Option<Option<Duration>> = None;
        for (index, sink) in self.sinks.clone().iter().enumerate() {
            if self
                .stored_by
                .get(&entry.id)
                .is_some_and(|s| s.contains(&index))
            {
                continue;
            }
            match sink.deliver(&entry.id, &body, last).await {
                Disposition::Delivered => {
                    self.stored_by
                        .entry(entry.id.clone())
                        .or_default()
                        .insert(index);
                }
                Disposition::Retry { after, why } => {
                    let problem = format!("{}: {why}", sink.name());
                    self.failed(entry, &problem, failure_reason(&why));
                    if self.last_problem.as_deref() != Some(problem.as_str()) {
                        tracing::warn!(event = %entry.id, service = %entry.service, "cannot deliver upstream, will retry: {problem}");
                        self.last_problem = Some(problem);
                    }
                    retry = Some(retry.flatten().max(after));
                }
                // Said as an error once per streak: only a person can fix it.
                Disposition::Unauthorized { why } => {
                    let problem = format!("{}: {why}", sink.name());
                    self.failed(entry, &problem, "unauthorized");
                    if self.last_problem.as_deref() != Some(problem.as_str()) {
                        tracing::error!(event = %entry.id, service = %entry.service, "upstream refuses the agent's credentials, will retry: {problem}");
                        self.last_problem = Some(problem);
                    }
                    retry = Some(retry.flatten());
                }
                Disposition::Dead { reply } => {
                    self.stored_by.remove(&entry.id);
                    let first_line = reply.lines().next().unwrap_or_default();
                    self.failed(entry, &format!("{}: {first_line}", sink.name()), "refused");
                    match self.outbox.bury(entry, &reply) {
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
        self.deliveries.delivered(entry.service, &entry.id);
        self.metrics.deliveries.inc();
        if self.last_problem.take().is_some() {
            tracing::info!("upstream delivery works again");
        }
        tracing::debug!(event = %entry.id, service = %entry.service, sequence = entry.sequence, kind = %entry.kind, "delivered upstream");
        let hash = entry
            .carries_config()
            .then(|| outbox::config_hash_in(&body))
            .flatten();
        if let Err(error) = self.outbox.delivered(entry, hash.as_deref()) {
            tracing::error!("{error}");
        }
        None
    }
}

impl Pusher {
    fn failed(&self, entry: &Entry, problem: &str, reason: &str) {
        self.deliveries.failed(entry.service, &entry.id, problem);
        self.metrics.delivery_failed(reason);
    }
}

/// The metric label of a retried failure's text.
fn failure_reason(why: &str) -> &'static str {
    match why.strip_prefix("HTTP ").and_then(|rest| rest.get(..3)) {
        Some("408") => "http_408",
        Some("429") => "http_429",
        Some(code) if code.starts_with('5') => "http_5xx",
        Some(_) => "http_other",
        None if why.contains("timed out") || why.contains("timeout") => "timeout",
        None if why.starts_with("cannot read the queued event") => "outbox_read",
        None => "unreachable",
    }
}

/// A number in 0..1 that differs between agents and attempts.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}
