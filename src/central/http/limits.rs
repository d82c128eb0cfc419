//! What a connection may cost the central, decided over plain counts and
//! instants: whether a new connection is admitted (caps in all and per peer
//! address), and when an open one has waited too long (header and idle
//! deadlines). `listen.rs` feeds these from the sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The bounds on every connection (`serve --header-timeout` and the like).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A TLS handshake, and then each request's head, must arrive within this.
    pub header_timeout: Duration,
    /// A kept-alive connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Connections open at once, from everyone.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_peer: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_peer: 64,
        }
    }
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Total,
    Peer,
}

/// The answer to a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Served; `ended_*` count the refusals of a streak this admission ends.
    Admitted {
        ended_total: Option<u64>,
        ended_peer: Option<u64>,
    },
    /// Closed at once; `first` when it starts a streak (log it then, not after).
    Refused { cap: Cap, first: bool },
}

/// The connections open now, in all and per peer address, and the streaks of
/// refusals under way.
#[derive(Debug, Default)]
pub struct Connections {
    total: usize,
    refused_total: u64,
    peers: HashMap<IpAddr, PeerCount>,
}

#[derive(Debug, Default)]
struct PeerCount {
    open: usize,
    refused: u64,
}

impl Connections {
    /// Admits (and counts) a connection from `ip`, or refuses it.
    pub fn admit(&mut self, ip: IpAddr, limits: &ConnectionLimits) -> Admission {
        if self.total >= limits.max_connections {
            self.refused_total += 1;
            return Admission::Refused {
                cap: Cap::Total,
                first: self.refused_total == 1,
            };
        }
        let peer = self.peers.entry(ip).or_default();
        if peer.open >= limits.max_connections_per_peer {
            peer.refused += 1;
            return Admission::Refused {
                cap: Cap::Peer,
                first: peer.refused == 1,
            };
        }
        peer.open += 1;
        self.total += 1;
        Admission::Admitted {
            ended_total: ended(&mut self.refused_total),
            ended_peer: ended(&mut peer.refused),
        }
    }

    /// Forgets a closed connection from `ip`; returns the refusals of the
    /// peer's streak when its last connection closes during one.
    pub fn release(&mut self, ip: IpAddr) -> Option<u64> {
        self.total = self.total.saturating_sub(1);
        let peer = self.peers.get_mut(&ip)?;
        peer.open = peer.open.saturating_sub(1);
        if peer.open > 0 {
            return None;
        }
        let refused = ended(&mut peer.refused);
        self.peers.remove(&ip);
        refused
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total
    }
}

fn ended(streak: &mut u64) -> Option<u64> {
    let refused = std::mem::take(streak);
    (refused > 0).then_some(refused)
}

/// Why an open connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Connected and sent nothing within the header timeout.
    Silent,
    /// Began a request's head and did not finish it within the header timeout.
    Head,
    /// Kept alive with nothing asked (or its answer not read) for the idle timeout.
    Idle,
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Expired::Silent => "sent nothing within --header-timeout",
            Expired::Head => "did not finish a request's head within --header-timeout",
            Expired::Idle => "idle for --idle-timeout",
        })
    }
}

/// What one connection is doing, as seen from its bytes and its requests.
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    phase: Phase,
    /// When the phase began.
    since: Instant,
    /// The last byte read or written.
    last_io: Instant,
    /// Requests answered so far.
    answered: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request.
    Waiting,
    /// Some bytes of a request's head are in.
    Head,
    /// Requests being answered (their bodies are bounded by the body timeout).
    Busy(usize),
}

/// When to look at a connection again, or that it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Until(Instant),
    Expired(Expired),
}

impl Activity {
    /// A connection accepted at `now`.
    pub fn new(now: Instant) -> Activity {
        Activity {
            phase: Phase::Waiting,
            since: now,
            last_io: now,
            answered: 0,
        }
    }

    /// Bytes arrived.
    pub fn read(&mut self, now: Instant) {
        if self.phase == Phase::Waiting {
            self.phase = Phase::Head;
            self.since = now;
        }
        self.last_io = now;
    }

    /// Bytes were sent.
    pub fn wrote(&mut self, now: Instant) {
        self.last_io = now;
    }

    /// A request's head is complete and its answer begun.
    pub fn request_started(&mut self, now: Instant) {
        let busy = match self.phase {
            Phase::Busy(n) => n + 1,
            Phase::Waiting | Phase::Head => 1,
        };
        self.phase = Phase::Busy(busy);
        self.since = now;
    }

    /// A request's answer is ready (hyper writes it next) or was abandoned.
    pub fn request_done(&mut self, now: Instant) {
        self.answered += 1;
        self.phase = match self.phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Waiting,
        };
        self.since = now;
        self.last_io = now;
    }

    /// Whether the connection has outstayed its phase's deadline at `now`.
    pub fn check(&self, now: Instant, limits: &ConnectionLimits) -> Check {
        let (deadline, why) = match self.phase {
            Phase::Waiting if self.answered == 0 => {
                (self.since + limits.header_timeout, Expired::Silent)
            }
            // Writing the last answer counts as activity: a client that stops
            // reading it is idle too.
            Phase::Waiting => (self.last_io + limits.idle_timeout, Expired::Idle),
            Phase::Head => (self.since + limits.header_timeout, Expired::Head),
            // Nothing to time here: the handler bounds the body it reads.
            // Look again after a while in case the phase changes.
            Phase::Busy(_) => {
                let recheck = limits.header_timeout.min(limits.idle_timeout);
                return Check::Until(now + recheck);
            }
        };
        if now >= deadline {
            Check::Expired(why)
        } else {
            Check::Until(deadline)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_peer: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: total,
            max_connections_per_peer: per_peer,
            ..ConnectionLimits::default()
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    const ADMITTED: Admission = Admission::Admitted {
        ended_total: None,
        ended_peer: None,
    };

    #[test]
    fn admits_up_to_the_caps() {
        let limits = limits(3, 2);
        let mut open = Connections::default();
        let answers: Vec<Admission> = [1, 1, 1, 2, 3, 3]
            .into_iter()
            .map(|n| open.admit(ip(n), &limits))
            .collect();
        assert_eq!(
            answers,
            [
                ADMITTED,
                ADMITTED,
                Admission::Refused {
                    cap: Cap::Peer,
                    first: true
                },
                ADMITTED,
                Admission::Refused {
                    cap: Cap::Total,
                    first: true
                },
                Admission::Refused {
                    cap: Cap::Total,
                    first: false
                },
            ]
        );
        assert_eq!(open.open(), 3);
    }

    #[test]
    fn a_streak_is_reported_once_at_its_start_and_once_at_its_end() {
        let limits = limits(100, 1);
        let mut open = Connections::default();
        assert_eq!(open.admit(ip(1), &limits), ADMITTED);
        let firsts: Vec<bool> = (0..4)
            .map(|_| match open.admit(ip(1), &limits) {
                Admission::Refused { first, .. } => first,
                Admission::Admitted { .. } => panic!("admitted over the cap"),
            })
            .collect();
        assert_eq!(firsts, [true, false, false, false]);
        // Another peer is not part of the streak.
        assert_eq!(open.admit(ip(2), &limits), ADMITTED);
        // The peer's last connection closes: the streak ends with its count.
        assert_eq!(open.release(ip(1)), Some(4));
        assert_eq!(open.admit(ip(1), &limits), ADMITTED);
        assert_eq!(
            open.admit(ip(1), &limits),
            Admission::Refused {
                cap: Cap::Peer,
                first: true
            }
        );
    }

    #[test]
    fn the_admission_after_a_total_streak_reports_it() {
        let limits = limits(1, 10);
        let mut open = Connections::default();
        assert_eq!(open.admit(ip(1), &limits), ADMITTED);
        assert!(matches!(
            open.admit(ip(2), &limits),
            Admission::Refused {
                cap: Cap::Total,
                first: true
            }
        ));
        assert!(matches!(
            open.admit(ip(3), &limits),
            Admission::Refused {
                cap: Cap::Total,
                first: false
            }
        ));
        assert_eq!(open.release(ip(1)), None);
        assert_eq!(
            open.admit(ip(2), &limits),
            Admission::Admitted {
                ended_total: Some(2),
                ended_peer: None
            }
        );
    }

    #[test]
    fn releasing_frees_both_counts() {
        let limits = limits(2, 2);
        let mut open = Connections::default();
        for _ in 0..2 {
            assert_eq!(open.admit(ip(1), &limits), ADMITTED);
        }
        assert_eq!(open.release(ip(1)), None);
        assert_eq!(open.admit(ip(2), &limits), ADMITTED);
        assert_eq!(open.open(), 2);
        // A release of an unknown address does not underflow.
        assert_eq!(open.release(ip(9)), None);
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn deadlines_by_phase() {
        let limits = ConnectionLimits {
            header_timeout: secs(10),
            idle_timeout: secs(60),
            ..ConnectionLimits::default()
        };
        let t0 = Instant::now();
        let mut activity = Activity::new(t0);
        // Connected and silent: the header timeout from the accept.
        assert_eq!(activity.check(t0, &limits), Check::Until(t0 + secs(10)));
        assert_eq!(
            activity.check(t0 + secs(10), &limits),
            Check::Expired(Expired::Silent)
        );
        // A first byte at 5 s: the head must be complete by 15 s, however it drips.
        activity.read(t0 + secs(5));
        activity.read(t0 + secs(9));
        assert_eq!(
            activity.check(t0 + secs(12), &limits),
            Check::Until(t0 + secs(15))
        );
        assert_eq!(
            activity.check(t0 + secs(15), &limits),
            Check::Expired(Expired::Head)
        );
        // Head complete at 14 s: no deadline while it is answered, however long.
        activity.request_started(t0 + secs(14));
        assert_eq!(
            activity.check(t0 + secs(100), &limits),
            Check::Until(t0 + secs(110))
        );
        // Answered at 100 s, written until 101 s: idle from then.
        activity.request_done(t0 + secs(100));
        activity.wrote(t0 + secs(101));
        assert_eq!(
            activity.check(t0 + secs(120), &limits),
            Check::Until(t0 + secs(161))
        );
        assert_eq!(
            activity.check(t0 + secs(161), &limits),
            Check::Expired(Expired::Idle)
        );
        // The next request's first byte starts a fresh header deadline.
        activity.read(t0 + secs(150));
        assert_eq!(
            activity.check(t0 + secs(155), &limits),
            Check::Until(t0 + secs(160))
        );
    }

    #[test]
    fn pipelined_requests_keep_the_connection_busy_until_the_last_is_answered() {
        let limits = ConnectionLimits::default();
        let t0 = Instant::now();
        let mut activity = Activity::new(t0);
        activity.request_started(t0);
        activity.request_started(t0);
        activity.request_done(t0);
        let late = t0 + secs(3600);
        assert!(matches!(activity.check(late, &limits), Check::Until(_)));
        activity.request_done(late);
        assert_eq!(
            activity.check(late + limits.idle_timeout, &limits),
            Check::Expired(Expired::Idle)
        );
    }
}
