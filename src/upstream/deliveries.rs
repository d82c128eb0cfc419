//! What the pusher learnt while delivering, for people asking the running
//! agent (`status`, `outbox`): per service the last success and the last
//! failure, per queued event its attempts and last error. In memory only: a
//! restarted agent starts counting again.

use crate::kea::Service;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Attempts at one queued event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts {
    pub count: u32,
    pub last_error: Option<String>,
}

/// One service's delivery record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDeliveries {
    pub last_success: Option<SystemTime>,
    pub last_error: Option<(SystemTime, String)>,
}

#[derive(Debug, Default)]
struct Record {
    services: BTreeMap<&'static str, ServiceDeliveries>,
    attempts: BTreeMap<String, Attempts>,
}

/// The shared record; cloning gives another handle on it.
#[derive(Debug, Clone, Default)]
pub struct Deliveries {
    record: Arc<Mutex<Record>>,
}

impl Deliveries {
    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Event `id` of `service` is stored by every sink.
    pub fn delivered(&self, service: Service, id: &str) {
        let mut record = self.lock();
        record.attempts.remove(id);
        record
            .services
            .entry(service.name())
            .or_default()
            .last_success = Some(SystemTime::now());
    }

    /// An attempt at event `id` failed with `error` (it stays queued, or
    /// went to dead/).
    pub fn failed(&self, service: Service, id: &str, error: &str) {
        let mut record = self.lock();
        let attempts = record.attempts.entry(id.to_string()).or_default();
        attempts.count += 1;
        attempts.last_error = Some(error.to_string());
        record
            .services
            .entry(service.name())
            .or_default()
            .last_error = Some((SystemTime::now(), error.to_string()));
    }

    /// The attempts at event `id` so far.
    pub fn attempts(&self, id: &str) -> Attempts {
        self.lock().attempts.get(id).cloned().unwrap_or_default()
    }

    /// `service`'s record.
    pub fn service(&self, service: Service) -> ServiceDeliveries {
        self.lock()
            .services
            .get(service.name())
            .cloned()
            .unwrap_or_default()
    }
}
