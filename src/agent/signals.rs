//! The binary's signals as the daemon's triggers: SIGTERM and SIGINT stop
//! it, SIGHUP asks it to re-read its config. Installed first thing in `run`,
//! before the config is read, so a signal during start-up is not lost.

use super::daemon::Triggers;
use crate::shutdown;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

/// A signal handler could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the {signal} handler: {source}")]
pub struct SignalError {
    signal: &'static str,
    #[source]
    source: std::io::Error,
}

/// SIGTERM, SIGINT and SIGHUP, caught.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    /// Installs the handlers; until [`Signals::into_triggers`] the signals wait.
    pub fn install() -> Result<Signals, SignalError> {
        let install = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| SignalError {
                signal: name,
                source,
            })
        };
        Ok(Signals {
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            hangup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Forwards the signals to a daemon's triggers from a task of their own.
    pub fn into_triggers(mut self) -> Triggers {
        let (stop, shutdown) = shutdown::channel();
        let (reload_tx, reload) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = self.terminate.recv() => stop.trigger(),
                    _ = self.interrupt.recv() => stop.trigger(),
                    _ = self.hangup.recv() => {
                        if reload_tx.send(()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Triggers { shutdown, reload }
    }
}
