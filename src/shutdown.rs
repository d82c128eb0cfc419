//! One small value every long-running task holds to learn that it should
//! stop (mini-redis's `Shutdown`): the daemon's loop, the pusher. The binary
//! turns SIGTERM into [`ShutdownTrigger::trigger`]; a test calls it itself.

use tokio::sync::watch;

/// Asks every [`Shutdown`] made from it to stop.
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

/// Learns that a stop was asked for; clones all learn it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// A trigger and its first listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    /// Asks every listener to stop; they see it at once or at their next look.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Another listener.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            receiver: self.sender.subscribe(),
        }
    }
}

impl Shutdown {
    /// Whether a stop was asked for (or nobody can ask any more).
    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow() || self.receiver.has_changed().is_err()
    }

    /// Resolves once a stop is asked for; a dropped trigger counts as one.
    pub async fn requested(&mut self) {
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_listener_learns_of_the_stop() {
        let (trigger, mut first) = channel();
        let mut second = trigger.subscribe();
        assert!(!first.is_requested());
        trigger.trigger();
        first.requested().await;
        second.requested().await;
        assert!(first.clone().is_requested());
    }

    #[tokio::test]
    async fn a_dropped_trigger_counts_as_a_stop() {
        let (trigger, mut listener) = channel();
        drop(trigger);
        listener.requested().await;
        assert!(listener.is_requested());
    }
}
