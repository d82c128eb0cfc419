//! The agent's decisions as pure functions over plain data, so each rule is a
//! table-driven test and the IO around them stays thin.

pub mod ha;

use super::state::ServiceState;
use crate::kea::Service;
use crate::kea::sockets::Bound;
use crate::upstream::UpstreamView;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// What reading the config files gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRead {
    /// Kea's dialect parsed; `sha256` covers every file read.
    Parsed { sha256: String },
    /// Does not parse (maybe half-written); `sha256` of the main file's bytes.
    Unparsable { sha256: String, error: String },
}

impl FileRead {
    /// The content digest, parsed or not.
    pub fn sha256(&self) -> &str {
        match self {
            FileRead::Parsed { sha256 } | FileRead::Unparsable { sha256, .. } => sha256,
        }
    }
}

/// The first step for a file read, before asking Kea anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstStep {
    /// Same bytes as the content last applied or found in sync.
    Unchanged,
    /// Does not parse: a writer may be mid-write; look again after settling.
    WaitForWriter,
    /// Still does not parse after waiting: broken, not half-written.
    RejectUnparsable(String),
    /// This exact content was rejected before: do not report it again.
    AlreadyRejected,
    /// Ask Kea: in-sync check, validation, reload.
    AskKea,
}

/// How long an unparsable file must stay untouched before it counts as
/// broken rather than half-written (editors and scripts pause mid-write).
pub const UNPARSABLE_PATIENCE: Duration = Duration::from_secs(1);

/// Decides what to do with `read`. `quiet_for` is how long the files have
/// not been modified.
pub fn first_step(read: &FileRead, state: &ServiceState, quiet_for: Duration) -> FirstStep {
    let sha = read.sha256();
    if state.applied_sha256.as_deref() == Some(sha) {
        return FirstStep::Unchanged;
    }
    if state.rejected_sha256.as_deref() == Some(sha) {
        return FirstStep::AlreadyRejected;
    }
    match read {
        FileRead::Unparsable { .. } if quiet_for < UNPARSABLE_PATIENCE => FirstStep::WaitForWriter,
        FileRead::Unparsable { error, .. } => FirstStep::RejectUnparsable(error.clone()),
        FileRead::Parsed { .. } => FirstStep::AskKea,
    }
}

/// When the agent meets a Kea process for the first time (agent start, or
/// Kea restarted): did that Kea load the files' current content itself?
/// `newest_mtime` is the latest modification among the files; `since_reload`
/// is status-get's `reload` (whole seconds since the last configuration).
/// Kea's second granularity leaves a window in which the answer is unknown;
/// there the file counts as newer, since a missed reload would leave the edit
/// unapplied, while an extra one only costs a reload. `started_at` is the Kea
/// process's start when known precisely (same host, /proc) and Kea has not
/// been reconfigured since: it read its files after that instant.
pub fn kea_loaded_current_files(
    newest_mtime: SystemTime,
    now: SystemTime,
    since_reload: Duration,
    started_at: Option<SystemTime>,
) -> bool {
    if started_at.is_some_and(|start| newest_mtime < start) {
        return true;
    }
    let Some(loaded_at) = now.checked_sub(since_reload) else {
        return false;
    };
    // Kea's value is truncated: it loaded up to one second earlier than this.
    match loaded_at.checked_sub(Duration::from_secs(1)) {
        Some(earliest) => newest_mtime < earliest,
        None => false,
    }
}

/// Keys Kea writes into every DHCPv4/v6 config it serializes (config-get,
/// config-write) and people rarely write by hand.
const KEA_WRITTEN_KEYS: [&str; 4] = [
    "decline-probation-period",
    "dhcp4o6-port",
    "dhcp-queue-control",
    "sanity-checks",
];

/// Whether a file with these service-map keys may be Kea's own config-write
/// output (worth comparing with the in-memory config). D2 configs are small:
/// always compare them.
pub fn looks_written_by_kea(service: Service, keys: &[String]) -> bool {
    service == Service::D2
        || KEA_WRITTEN_KEYS
            .iter()
            .all(|k| keys.iter().any(|key| key == k))
}

/// Whether status-get after a config-reload shows the reconfiguration: its
/// `reload` counter restarted within the time the reload took.
pub fn reload_took_effect(since_reload_after: Duration, reload_took: Duration) -> bool {
    since_reload_after <= reload_took + Duration::from_secs(1)
}

/// What the agent saw of Kea right after reconfiguring it: the process,
/// the stamp that reconfiguration put on a statistic Kea sets at every
/// commit, and the hash config-get gave after that stamp was read. Noted
/// only for configs nothing changes in place (no subnet, host or class
/// commands, no config backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSeen {
    pub pid: u32,
    pub stamp: String,
    pub hash: String,
}

/// Whether Kea still runs `seen.hash`: the same process, and the statistic
/// still carries the stamp read before that config-get, so no
/// reconfiguration came after it. Pure.
pub fn unchanged_since(seen: &CommitSeen, pid: Option<u32>, stamp: Option<&str>) -> bool {
    pid == Some(seen.pid) && stamp == Some(seen.stamp.as_str())
}

/// Whether the upstream lacks Kea's config with hash `live_hash`, so it must
/// be sent (as a snapshot or drift). It has it when a receiver stored it
/// last, when it is queued (the last config queued is this one and a config
/// event still waits), or when it is held back to be queued (`held`: the
/// state dir could not take it yet). `view` is None when there is no outbox
/// (`apply` on a state dir it cannot write): then only what was queued counts.
pub fn upstream_lacks(
    live_hash: &str,
    pushed_hash: Option<&str>,
    view: Option<&UpstreamView>,
    held: &[&str],
) -> bool {
    if held.contains(&live_hash) {
        return false;
    }
    let pushed = pushed_hash == Some(live_hash);
    match view {
        Some(view) => {
            view.last_delivered.as_deref() != Some(live_hash) && !(pushed && view.config_queued)
        }
        None => !pushed,
    }
}

/// Whether Kea serves DHCP after a reload (or a rollback), as far as the
/// agent can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    Yes,
    /// Not serving, and why.
    No(String),
    /// The sockets are not visible from here: judged by the rest (Kea
    /// answered, its reload counter restarted), never read as "not serving".
    CannotTell(String),
}

/// Judges Kea's DHCP sockets after a reload. A config that lists no
/// interface binds none and is judged by the rest. Otherwise Kea must bind
/// at least one DHCP socket, and, when the interface list is the one Kea ran
/// before (`interfaces_before`), every socket it had bound before. Pure.
pub fn serving(
    before: &Bound,
    after: &Bound,
    interfaces_before: Option<&[String]>,
    interfaces_after: &[String],
) -> Serving {
    if interfaces_after.is_empty() {
        return Serving::Yes;
    }
    let now = match after {
        Bound::CannotTell(why) => return Serving::CannotTell(why.clone()),
        Bound::Sockets(now) => now,
    };
    if now.is_empty() {
        return Serving::No(format!(
            "Kea binds no DHCP socket although the config lists interfaces {}",
            interfaces_after.join(", ")
        ));
    }
    if let (Some(old), Bound::Sockets(had)) = (interfaces_before, before)
        && old == interfaces_after
    {
        let lost: BTreeSet<&SocketAddr> = had.difference(now).collect();
        if !lost.is_empty() {
            let lost: Vec<String> = lost.iter().map(|a| a.to_string()).collect();
            return Serving::No(format!(
                "the DHCP sockets on {} are no longer bound",
                lost.join(", ")
            ));
        }
    }
    Serving::Yes
}

/// Finished writes closer together than this (and than `settle_ms`) are a burst.
pub const BURST_GAP: Duration = Duration::from_millis(100);

/// How long to wait before checking a change the watcher reported, `batch_quiet` after its
/// last event: none when the writer finished (closed after writing, renamed into place) and
/// the change is alone; else the rest of `settle`. A finished write that follows the previous
/// finished one within [`BURST_GAP`] (`since_last`; within `settle` if that is shorter) is
/// part of a burst (a script saving in a loop, an editor writing twice): it waits, so the
/// burst is read once at its end rather than save by save.
pub fn settle_delay(
    finished: bool,
    since_last: Option<Duration>,
    settle: Duration,
    batch_quiet: Duration,
) -> Duration {
    let in_burst = since_last.is_some_and(|since| since < BURST_GAP.min(settle));
    if finished && !in_burst {
        Duration::ZERO
    } else {
        settle.saturating_sub(batch_quiet)
    }
}

/// Delay before retry number `attempt` (1-based) to reach Kea: doubling from
/// 250 ms, capped at 30 s.
pub fn backoff(attempt: u32) -> Duration {
    let millis = 250u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(10));
    Duration::from_millis(millis.min(30_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kea_runs_what_was_seen_only_while_the_stamp_and_process_stay() {
        let seen = CommitSeen {
            pid: 42,
            stamp: "2026-12-08 00:04:15.558764".into(),
            hash: "ABC".into(),
        };
        assert!(unchanged_since(
            &seen,
            Some(42),
            Some("2026-12-08 00:04:15.558764")
        ));
        // Another reconfiguration (config-set, config-reload), a decline or a reset.
        assert!(!unchanged_since(
            &seen,
            Some(42),
            Some("2026-12-08 00:04:15.558765")
        ));
        // Kea restarted, or the statistic is gone (statistic-remove, no subnet).
        assert!(!unchanged_since(
            &seen,
            Some(43),
            Some("2026-12-08 00:04:15.558764")
        ));
        assert!(!unchanged_since(&seen, Some(42), None));
        assert!(!unchanged_since(
            &seen,
            None,
            Some("2026-12-08 00:04:15.558764")
        ));
    }

    #[test]
    fn a_finished_lone_change_is_checked_at_once_and_the_rest_settles() {
        let ms = Duration::from_millis;
        let (settle, quiet) = (ms(50), ms(25));
        let cases = [
            ("finished, first change", true, None, ms(0)),
            ("finished, last change long ago", true, Some(ms(400)), ms(0)),
            ("finished, within a burst", true, Some(ms(20)), ms(25)),
            (
                "finished, just past the burst gap",
                true,
                Some(ms(60)),
                ms(0),
            ),
            ("still open, first change", false, None, ms(25)),
            (
                "still open, long after the last",
                false,
                Some(ms(400)),
                ms(25),
            ),
        ];
        for (name, finished, since_last, expected) in cases {
            assert_eq!(
                settle_delay(finished, since_last, settle, quiet),
                expected,
                "{name}"
            );
        }
        // A settle window shorter than the watcher's own quiet: nothing more to wait.
        assert_eq!(settle_delay(false, None, ms(10), quiet), Duration::ZERO);
        // A long settle_ms does not make every finished write a burst.
        let long = ms(60_000);
        assert_eq!(settle_delay(true, Some(ms(700)), long, quiet), ms(0));
        assert_eq!(settle_delay(true, Some(ms(20)), long, quiet), ms(59_975));
    }

    fn state(applied: Option<&str>, rejected: Option<&str>) -> ServiceState {
        ServiceState {
            applied_sha256: applied.map(str::to_string),
            rejected_sha256: rejected.map(str::to_string),
            ..ServiceState::default()
        }
    }

    fn parsed(sha: &str) -> FileRead {
        FileRead::Parsed { sha256: sha.into() }
    }

    fn broken(sha: &str) -> FileRead {
        FileRead::Unparsable {
            sha256: sha.into(),
            error: "x.conf:3:1: expected ','".into(),
        }
    }

    #[test]
    fn first_step_table() {
        let fresh = Duration::from_millis(50);
        let pausing = Duration::from_millis(300);
        let a_b = state(Some("a"), Some("b"));
        let cases = [
            (
                "touch / identical rewrite",
                parsed("a"),
                state(Some("a"), None),
                fresh,
                FirstStep::Unchanged,
            ),
            (
                "new content",
                parsed("b"),
                state(Some("a"), None),
                fresh,
                FirstStep::AskKea,
            ),
            (
                "nothing recorded yet",
                parsed("b"),
                state(None, None),
                fresh,
                FirstStep::AskKea,
            ),
            (
                "rejected before",
                parsed("b"),
                a_b.clone(),
                fresh,
                FirstStep::AlreadyRejected,
            ),
            (
                "fixed after a reject",
                parsed("c"),
                a_b.clone(),
                fresh,
                FirstStep::AskKea,
            ),
            (
                "half-written",
                broken("h"),
                state(Some("a"), None),
                fresh,
                FirstStep::WaitForWriter,
            ),
            (
                "writer pausing",
                broken("h"),
                state(Some("a"), None),
                pausing,
                FirstStep::WaitForWriter,
            ),
            (
                "untouched for a second: broken",
                broken("h"),
                state(Some("a"), None),
                UNPARSABLE_PATIENCE,
                FirstStep::RejectUnparsable("x.conf:3:1: expected ','".into()),
            ),
            (
                "broken, rejected before",
                broken("h"),
                state(Some("a"), Some("h")),
                fresh,
                FirstStep::AlreadyRejected,
            ),
            (
                "reverted to applied",
                parsed("a"),
                a_b,
                fresh,
                FirstStep::Unchanged,
            ),
        ];
        for (name, read, state, quiet_for, expected) in cases {
            assert_eq!(first_step(&read, &state, quiet_for), expected, "{name}");
        }
    }

    #[test]
    fn kea_loaded_current_files_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let secs = Duration::from_secs;
        let cases = [
            (
                "edited an hour before Kea loaded",
                now - secs(7200),
                secs(3600),
                true,
            ),
            ("edited after Kea loaded", now - secs(10), secs(3600), false),
            (
                "edited in Kea's load second",
                now - secs(3600),
                secs(3600),
                false,
            ),
            (
                "edited a second before: unknown, counts as newer",
                now - secs(3601),
                secs(3600),
                false,
            ),
            (
                "edited two seconds before",
                now - secs(3602),
                secs(3600),
                true,
            ),
            ("Kea just loaded, file older", now - secs(60), secs(0), true),
            ("edited just now, Kea loaded just now", now, secs(0), false),
        ];
        for (name, mtime, since_reload, expected) in cases {
            assert_eq!(
                kea_loaded_current_files(mtime, now, since_reload, None),
                expected,
                "{name}"
            );
        }
        // A precisely known process start settles the ambiguous second.
        let started = Some(now - secs(3600) + Duration::from_millis(500));
        assert!(kea_loaded_current_files(
            now - secs(3600),
            now,
            secs(3600),
            started
        ));
        assert!(!kea_loaded_current_files(
            now - secs(10),
            now,
            secs(3600),
            started
        ));
    }

    #[test]
    fn reload_took_effect_table() {
        let ms = Duration::from_millis;
        assert!(reload_took_effect(ms(0), ms(5)));
        assert!(reload_took_effect(Duration::from_secs(1), ms(5)));
        assert!(reload_took_effect(
            Duration::from_secs(6),
            Duration::from_secs(5)
        ));
        assert!(!reload_took_effect(Duration::from_secs(3600), ms(5)));
    }

    #[test]
    fn only_kea_written_files_are_compared_with_memory() {
        let keys = |list: &[&str]| list.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let written = keys(&[
            "subnet4",
            "decline-probation-period",
            "dhcp4o6-port",
            "dhcp-queue-control",
            "sanity-checks",
        ]);
        let by_hand = keys(&["subnet4", "valid-lifetime", "interfaces-config"]);
        assert!(looks_written_by_kea(Service::Dhcp4, &written));
        assert!(looks_written_by_kea(Service::Dhcp6, &written));
        assert!(!looks_written_by_kea(Service::Dhcp4, &by_hand));
        assert!(looks_written_by_kea(Service::D2, &by_hand));
    }

    #[test]
    fn upstream_lacks_table() {
        let view = |delivered: Option<&str>, queued: bool| UpstreamView {
            last_delivered: delivered.map(str::to_string),
            config_queued: queued,
        };
        let cases = [
            (
                "stored last",
                "H",
                None,
                Some(view(Some("H"), false)),
                vec![],
                false,
            ),
            (
                "queued and waiting",
                "H",
                Some("H"),
                Some(view(Some("G"), true)),
                vec![],
                false,
            ),
            (
                "queued once but refused since (dead)",
                "H",
                Some("H"),
                Some(view(Some("G"), false)),
                vec![],
                true,
            ),
            (
                "another config waits",
                "H",
                Some("G"),
                Some(view(Some("G"), true)),
                vec![],
                true,
            ),
            (
                "never sent",
                "H",
                None,
                Some(view(None, false)),
                vec![],
                true,
            ),
            (
                "held back for a full disk",
                "H",
                Some("G"),
                Some(view(None, false)),
                vec!["H"],
                false,
            ),
            (
                "no outbox, queued before",
                "H",
                Some("H"),
                None,
                vec![],
                false,
            ),
            (
                "no outbox, never queued",
                "H",
                Some("G"),
                None,
                vec![],
                true,
            ),
        ];
        for (name, live, pushed, view, held, want) in cases {
            assert_eq!(
                upstream_lacks(live, pushed, view.as_ref(), &held),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn serving_table() {
        let sockets = |list: &[&str]| {
            Bound::Sockets(list.iter().map(|a| a.parse().expect("address")).collect())
        };
        let lo = vec!["lo".to_string()];
        let two = vec!["lo".to_string(), "eth1".to_string()];
        let hidden = Bound::CannotTell("hidden".into());
        let a = "127.0.0.1:67";
        let b = "192.0.2.1:67";
        let yes = |s: &Serving| *s == Serving::Yes;
        let no = |s: &Serving| matches!(s, Serving::No(_));
        let unknown = |s: &Serving| matches!(s, Serving::CannotTell(_));
        type Case<'a> = (
            &'a str,
            Bound,
            Bound,
            Option<&'a [String]>,
            &'a [String],
            fn(&Serving) -> bool,
        );
        let cases: Vec<Case> = vec![
            (
                "all back",
                sockets(&[a, b]),
                sockets(&[a, b]),
                Some(&two),
                &two,
                yes,
            ),
            (
                "one lost, same interfaces",
                sockets(&[a, b]),
                sockets(&[a]),
                Some(&two),
                &two,
                no,
            ),
            (
                "one dropped with its interface",
                sockets(&[a, b]),
                sockets(&[a]),
                Some(&two),
                &lo,
                yes,
            ),
            (
                "none bound (a failed reload)",
                sockets(&[a]),
                sockets(&[]),
                Some(&lo),
                &lo,
                no,
            ),
            (
                "none bound, interfaces changed",
                sockets(&[a]),
                sockets(&[]),
                Some(&two),
                &lo,
                no,
            ),
            (
                "binds no interface: judged by the rest",
                sockets(&[a]),
                sockets(&[]),
                Some(&lo),
                &[],
                yes,
            ),
            (
                "hidden: cannot tell",
                sockets(&[a]),
                hidden.clone(),
                Some(&lo),
                &lo,
                unknown,
            ),
            (
                "before unknown, after bound",
                hidden,
                sockets(&[a]),
                None,
                &lo,
                yes,
            ),
        ];
        for (name, before, after, old, new, want) in cases {
            let got = serving(&before, &after, old, new);
            assert!(want(&got), "{name}: {got:?}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let got: Vec<u64> = (1..=10).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(
            got,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff(0).as_millis(), 250);
        assert_eq!(backoff(u32::MAX).as_secs(), 30);
    }
}
