//! The admin API: what the running agent thinks, for people and scripts
//! (`kea-sync-agent status`, `outbox`, `apply` beside a daemon) and for
//! Prometheus. HTTP/1.1 on a unix socket (`[agent] admin_socket`), and the
//! read-only part on TCP when `[agent] metrics_listen` is set.
//!
//! The daemon publishes what it knows on a [`Board`] after every check; the
//! server (`server.rs`) reads it with the outbox, the pusher's record and the
//! metrics; an apply is handed to the daemon's loop ([`ApplyRequest`]), which
//! runs it between its other checks. `view.rs` turns it all into JSON and
//! into the tables the CLI prints (pure); `client.rs` is the CLI's side.

pub mod client;
pub mod server;
pub mod socket;
pub mod view;

use crate::event::SyncEvent;
use crate::event::wire::Ha;
use crate::kea::Service;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot};

/// Default of `[agent] admin_socket` (the unit's RuntimeDirectory).
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/kea-sync-agent/admin.sock";
/// How many recent events `GET /v1/events` can return.
pub const EVENT_RING: usize = 200;

/// One service as the pipeline last saw it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub service: Service,
    pub config_file: PathBuf,
    /// The main file and every include, as last read.
    pub files: Vec<PathBuf>,
    /// SHA-256 of the files as last read.
    pub file_sha256: Option<String>,
    /// The content last applied (or found in sync with Kea).
    pub applied_sha256: Option<String>,
    /// Kea's hash of its in-memory config after the last step.
    pub config_hash: Option<String>,
    pub kea_version: Option<String>,
    /// Whether Kea answered at the last check (None: not asked yet).
    pub kea_reachable: Option<bool>,
    /// Why a reload waits for the HA pair, while it does.
    pub reload_held: Option<String>,
    /// The server's HA relationships, as last seen.
    pub ha: Vec<Ha<String>>,
}

/// What the daemon publishes.
#[derive(Debug)]
pub struct Board {
    pub started_at: SystemTime,
    /// The agent config's origin.
    pub config: String,
    pub services: BTreeMap<&'static str, ServiceStatus>,
    /// The last event of each service.
    pub last_events: BTreeMap<&'static str, serde_json::Value>,
    /// The most recent events, newest last.
    pub events: VecDeque<serde_json::Value>,
}

impl Board {
    pub fn new(config: String) -> Board {
        Board {
            started_at: SystemTime::now(),
            config,
            services: BTreeMap::new(),
            last_events: BTreeMap::new(),
            events: VecDeque::new(),
        }
    }

    /// A check's result: the service as it stands, and its events.
    pub fn checked(&mut self, status: ServiceStatus, events: &[SyncEvent]) {
        let name = status.service.name();
        for event in events {
            let value = serde_json::to_value(event).unwrap_or_default();
            self.last_events.insert(name, value.clone());
            if self.events.len() == EVENT_RING {
                self.events.pop_front();
            }
            self.events.push_back(value);
        }
        self.services.insert(name, status);
    }

    /// Forgets a service no longer managed.
    pub fn remove(&mut self, service: Service) {
        self.services.remove(service.name());
        self.last_events.remove(service.name());
    }
}

/// The board as the daemon and the server share it.
#[derive(Debug, Clone)]
pub struct SharedBoard(Arc<Mutex<Board>>);

impl SharedBoard {
    pub fn new(config: String) -> SharedBoard {
        SharedBoard(Arc::new(Mutex::new(Board::new(config))))
    }

    /// The board, for a moment.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What an apply through the daemon gives back.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Applied {
    /// The check's events, as `apply` prints them.
    pub events: Vec<serde_json::Value>,
    /// When there is no event: why (held for the HA pair, waiting for a
    /// writer, retrying an unreachable Kea, nothing new).
    pub note: Option<String>,
}

/// `POST /v1/apply`: run `service`'s check inside the daemon.
#[derive(Debug)]
pub struct ApplyRequest {
    pub service: Service,
    pub reply: oneshot::Sender<Applied>,
}

/// Where the server hands apply requests to the daemon.
pub type ApplySender = mpsc::Sender<ApplyRequest>;
