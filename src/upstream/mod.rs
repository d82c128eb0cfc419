//! Getting every event upstream at once and durably (docs/upstream-api.md):
//! the wire format (`wire.rs`), the durable outbox in the state dir
//! (`outbox.rs`), the sinks: HTTP(S) and exec hooks (`sink.rs`), and the
//! delivery loop (`pusher.rs`).

pub mod config;
pub mod outbox;
pub mod pusher;
pub mod sink;
pub mod wire;

pub use config::{HookConfig, OutboxLimits, UpstreamConfig};
pub use outbox::{Outbox, OutboxError, SharedOutbox};
pub use pusher::Pusher;
