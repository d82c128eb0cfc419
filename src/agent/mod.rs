//! The agent: its config, the decisions, and the pipeline from a seen change
//! to a verified reload (`sync/`), driven by the daemon loop (`daemon.rs`).

pub mod admin;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod lock;
pub mod signals;
pub mod state;
pub mod sync;
pub mod systemd;
