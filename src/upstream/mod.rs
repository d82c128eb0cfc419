//! Getting every event upstream at once and durably (docs/upstream-api.md):
//! the durable outbox in the state dir and its handle (`outbox.rs`), the
//! sinks: HTTP(S) and exec hooks (`sink.rs`), and the delivery loop
//! (`pusher.rs`). The events themselves and their wire form are
//! `crate::event`'s; nothing here knows the agent's pipeline.

pub mod config;
pub mod deliveries;
pub mod outbox;
pub mod pusher;
pub mod sink;

pub use config::{HookConfig, OutboxLimits, UpstreamConfig};
pub use deliveries::Deliveries;
pub use outbox::{OutboxError, OutboxHandle, UpstreamView};
pub use pusher::Pusher;
