//! Upstream events that could not be written to the outbox yet (state dir
//! full or read-only), kept in order to be queued, as what they were, as
//! soon as the disk takes them. Bounded: a disk full for days must not
//! grow the agent without end.

use crate::event::SyncEvent;
use std::collections::VecDeque;

/// At most this many events are held.
const MAX_HELD_EVENTS: usize = 64;
/// At most this many bytes of configs are held.
const MAX_HELD_BYTES: usize = 256 << 20;

/// The held events of one service, oldest first.
#[derive(Debug, Default)]
pub(super) struct Held {
    events: VecDeque<SyncEvent>,
}

impl Held {
    /// Holds `event` after the others; the oldest give way beyond the bounds
    /// (each said in the log).
    pub fn push(&mut self, event: SyncEvent) {
        self.events.push_back(event);
        while self.events.len() > MAX_HELD_EVENTS
            || (self.events.len() > 1 && self.bytes() > MAX_HELD_BYTES)
        {
            if let Some(dropped) = self.events.pop_front() {
                tracing::error!(service = %dropped.service, outcome = ?dropped.outcome,
                    "too many events held back for the outbox (state dir still full?): dropped the oldest");
            }
        }
    }

    /// The oldest held event.
    pub fn first(&self) -> Option<&SyncEvent> {
        self.events.front()
    }

    /// Forgets the oldest held event (it was queued).
    pub fn pop(&mut self) -> Option<SyncEvent> {
        self.events.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Kea's config hashes of the held config events.
    pub fn config_hashes(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.config.is_some())
            .filter_map(|e| e.config_hash.as_deref())
            .collect()
    }

    fn bytes(&self) -> usize {
        self.events
            .iter()
            .map(|e| e.config.as_ref().map_or(0, |c| c.get().len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Outcome;

    fn event(n: usize, config: bool) -> SyncEvent {
        SyncEvent {
            config_hash: Some(format!("H{n}")),
            ..crate::event::example(Outcome::Applied, config.then_some("{}"))
        }
    }

    #[test]
    fn keeps_order_and_its_bounds() {
        let mut held = Held::default();
        for n in 0..MAX_HELD_EVENTS + 3 {
            held.push(event(n, n % 2 == 0));
        }
        assert_eq!(
            held.first().and_then(|e| e.config_hash.clone()),
            Some("H3".into()),
            "the oldest gave way"
        );
        assert!(held.config_hashes().contains(&"H4"));
        assert!(!held.config_hashes().contains(&"H5"), "no config, no hash");
        while held.pop().is_some() {}
        assert!(held.is_empty());
    }
}
