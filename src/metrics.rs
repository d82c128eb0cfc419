//! The agent's Prometheus metrics (prefix `kea_sync_agent_`), one registry
//! shared by the pipeline, the pusher and the admin API that serves them.
//! Values that live elsewhere (the outbox's depth) are set when scraped.

use crate::kea::Service;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The service label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

/// A service and what a step ended in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub service: String,
    pub outcome: String,
}

/// Why a delivery failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// A server's HA state in one relationship.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HaLabels {
    pub service: String,
    pub this_server: String,
    pub state: String,
}

type Seconds = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    // 5 ms .. about 80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Every metric of the agent; cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub changes_seen: Family<ServiceLabel, Counter>,
    pub reloads: Family<OutcomeLabels, Counter>,
    pub validation_failures: Family<ServiceLabel, Counter>,
    pub apply_duration: Family<ServiceLabel, Histogram, fn() -> Histogram>,
    pub edit_to_live: Family<ServiceLabel, Histogram, fn() -> Histogram>,
    pub kea_reachable: Family<ServiceLabel, Gauge>,
    pub last_apply: Family<ServiceLabel, Seconds>,
    pub ha_state: Family<HaLabels, Gauge>,
    pub outbox_events: Gauge,
    pub outbox_bytes: Gauge,
    pub outbox_oldest_age: Seconds,
    pub dead_events: Gauge,
    pub deliveries: Counter,
    pub delivery_failures: Family<ReasonLabel, Counter>,
    pub dropped_events: Counter,
    /// The HA states set last, per service, to clear when they change.
    ha_set: Arc<Mutex<Vec<HaLabels>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kea_sync_agent");
        let metrics = Metrics {
            registry: Arc::new(Registry::default()),
            changes_seen: Family::default(),
            reloads: Family::default(),
            validation_failures: Family::default(),
            apply_duration: Family::new_with_constructor(duration_histogram),
            edit_to_live: Family::new_with_constructor(duration_histogram),
            kea_reachable: Family::default(),
            last_apply: Family::default(),
            ha_state: Family::default(),
            outbox_events: Gauge::default(),
            outbox_bytes: Gauge::default(),
            outbox_oldest_age: Seconds::default(),
            dead_events: Gauge::default(),
            deliveries: Counter::default(),
            delivery_failures: Family::default(),
            dropped_events: Counter::default(),
            ha_set: Arc::new(Mutex::new(Vec::new())),
        };
        let r = &mut registry;
        r.register(
            "changes_seen",
            "File changes seen in a service's config files (after settling)",
            metrics.changes_seen.clone(),
        );
        r.register(
            "reloads",
            "Reloads by outcome: applied, rejected (Kea refused it), rolled_back (refused and the last good config put back)",
            metrics.reloads.clone(),
        );
        r.register(
            "validation_failures",
            "Edits the validator (kea-dhcp4 -t/-T) or the reader refused before any reload",
            metrics.validation_failures.clone(),
        );
        r.register_with_unit(
            "apply_duration",
            "Time of one check that reloaded or rejected an edit (read, validate, reload, verify)",
            Unit::Seconds,
            metrics.apply_duration.clone(),
        );
        r.register_with_unit(
            "edit_to_live",
            "From the first file event of an edit to Kea running it",
            Unit::Seconds,
            metrics.edit_to_live.clone(),
        );
        r.register(
            "kea_reachable",
            "1 when the service's Kea answered at the last check",
            metrics.kea_reachable.clone(),
        );
        r.register_with_unit(
            "last_apply_timestamp",
            "Unix time of the service's last applied edit",
            Unit::Seconds,
            metrics.last_apply.clone(),
        );
        r.register(
            "ha_state",
            "1 for the HA state a server is in (per relationship), 0 for states it was in before",
            metrics.ha_state.clone(),
        );
        r.register(
            "outbox_events",
            "Events waiting in the outbox for delivery",
            metrics.outbox_events.clone(),
        );
        r.register_with_unit(
            "outbox",
            "Bytes of the events waiting in the outbox",
            Unit::Bytes,
            metrics.outbox_bytes.clone(),
        );
        r.register_with_unit(
            "outbox_oldest_age",
            "Age of the oldest event waiting in the outbox",
            Unit::Seconds,
            metrics.outbox_oldest_age.clone(),
        );
        r.register(
            "dead_events",
            "Events a receiver refused, kept in dead/ (kea-sync-agent outbox retry resends them)",
            metrics.dead_events.clone(),
        );
        r.register(
            "deliveries",
            "Events delivered to every sink",
            metrics.deliveries.clone(),
        );
        r.register(
            "delivery_failures",
            "Failed delivery attempts by reason",
            metrics.delivery_failures.clone(),
        );
        r.register(
            "dropped_events",
            "Events dropped to keep the outbox within max_outbox_events / max_outbox_bytes",
            metrics.dropped_events.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    /// The Prometheus (OpenMetrics) text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The label of `service`.
    pub fn service(service: Service) -> ServiceLabel {
        ServiceLabel {
            service: service.name().to_string(),
        }
    }

    /// Makes `service`'s counters exist at 0, so a scrape shows them before
    /// the first change (Prometheus treats an absent series as unknown).
    pub fn add_service(&self, service: Service) {
        let label = Metrics::service(service);
        // Creating the series is the point; the guard each call returns is not needed.
        drop(self.changes_seen.get_or_create(&label));
        drop(self.validation_failures.get_or_create(&label));
        for outcome in ["applied", "rejected", "rolled_back"] {
            drop(self.reloads.get_or_create(&OutcomeLabels {
                service: service.name().to_string(),
                outcome: outcome.to_string(),
            }));
        }
    }

    /// Sets `service`'s HA states (this server name, state) as now.
    pub fn set_ha(&self, service: Service, states: &[(String, String)]) {
        let mut set = self.ha_set.lock().unwrap_or_else(|e| e.into_inner());
        for labels in set.iter().filter(|l| l.service == service.name()) {
            self.ha_state.get_or_create(labels).set(0);
        }
        set.retain(|l| l.service != service.name());
        for (this_server, state) in states {
            let labels = HaLabels {
                service: service.name().to_string(),
                this_server: this_server.clone(),
                state: state.clone(),
            };
            self.ha_state.get_or_create(&labels).set(1);
            set.push(labels);
        }
    }

    /// Records a failed delivery attempt.
    pub fn delivery_failed(&self, reason: &str) {
        self.delivery_failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Unix seconds of `time`.
    pub fn unix_seconds(time: SystemTime) -> f64 {
        time.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let metrics = Metrics::new();
        let dhcp4 = Metrics::service(Service::Dhcp4);
        metrics.changes_seen.get_or_create(&dhcp4).inc();
        metrics
            .reloads
            .get_or_create(&OutcomeLabels {
                service: "dhcp4".into(),
                outcome: "applied".into(),
            })
            .inc();
        metrics.edit_to_live.get_or_create(&dhcp4).observe(0.07);
        metrics.outbox_oldest_age.set(1.5);
        metrics.set_ha(Service::Dhcp4, &[("server1".into(), "waiting".into())]);
        metrics.set_ha(Service::Dhcp4, &[("server1".into(), "hot-standby".into())]);
        let text = metrics.encode();
        for line in [
            "kea_sync_agent_changes_seen_total{service=\"dhcp4\"} 1",
            "kea_sync_agent_reloads_total{service=\"dhcp4\",outcome=\"applied\"} 1",
            "kea_sync_agent_edit_to_live_seconds_count{service=\"dhcp4\"} 1",
            "kea_sync_agent_outbox_oldest_age_seconds 1.5",
            "kea_sync_agent_ha_state{service=\"dhcp4\",this_server=\"server1\",state=\"hot-standby\"} 1",
            "kea_sync_agent_ha_state{service=\"dhcp4\",this_server=\"server1\",state=\"waiting\"} 0",
            "# TYPE kea_sync_agent_outbox_bytes gauge",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
