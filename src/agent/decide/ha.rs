//! The rules for a server of an HA pair, pure. Every reload restarts the HA
//! service of that server (waiting -> syncing -> ready -> normal), and while
//! one partner syncs the other may pause DHCP: so the agents, which do not
//! talk to each other, take turns by what Kea says of both partners.
//!
//! - The primary (load-balancing: the `primary` role) reloads at once;
//!   every other role first waits `delay`, so a primary edited in the same
//!   second goes first.
//! - Then a server reloads only when, in every relationship it is in, its
//!   own state and its partner's are normal (hot-standby, load-balancing,
//!   passive-backup, backup). Else the reload is held, at most `max_hold`.
//! - After the reload its state is followed until normal again (or back in
//!   the `partner-down` it was in before: a lone survivor); the reload is an
//!   error for HA when it ends in `terminated`, in a `partner-down` it was
//!   not in before, or not settled by the timeout.

use crate::agent::config::SecondaryEdits;
use crate::event::wire::Ha;
use crate::kea::ha::{Peer, Relationship, Reported, is_normal, reported_for};
use std::time::Duration;

/// How often a held reload looks at the pair again.
pub const HOLD_POLL: Duration = Duration::from_millis(500);

/// One HA relationship of the server: as its config file declares it, and
/// as the running Kea reports it (None: Kea does not run it yet, or Kea
/// was not asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub declared: Option<Relationship>,
    pub reported: Option<Reported>,
}

impl Pair {
    /// This server's name in the relationship.
    pub fn this_server(&self) -> &str {
        self.reported
            .as_ref()
            .and_then(|r| r.server_name.as_deref())
            .or(self.declared.as_ref().map(|d| d.this_server.as_str()))
            .unwrap_or_default()
    }

    /// The role Kea runs (else the one the file declares).
    pub fn role(&self) -> &str {
        match (&self.reported, &self.declared) {
            (Some(reported), _) if !reported.role.is_empty() => &reported.role,
            (_, Some(declared)) => declared.role(),
            _ => "",
        }
    }

    pub fn mode(&self) -> &str {
        match (&self.reported, &self.declared) {
            (Some(reported), _) if !reported.mode.is_empty() => &reported.mode,
            (_, Some(declared)) => &declared.mode,
            _ => "",
        }
    }

    /// The partner whose state matters, with how to reach it.
    pub fn partner(&self) -> Option<&Peer> {
        self.declared.as_ref()?.partner()
    }

    /// This server's state, as Kea reports it.
    pub fn state(&self) -> Option<&str> {
        self.reported
            .as_ref()
            .map(|r| r.state.as_str())
            .filter(|s| !s.is_empty())
    }

    /// What an event says of this relationship.
    pub fn report(
        &self,
        state_before: Option<&str>,
        partner_state_after: Option<&str>,
    ) -> Ha<String> {
        Ha {
            this_server: self.this_server().to_string(),
            role: self.role().to_string(),
            mode: self.mode().to_string(),
            partner: self.partner().map(|p| p.name.clone()),
            state_before: state_before.map(str::to_string),
            state_after: self.state().map(str::to_string),
            partner_state_after: partner_state_after.map(str::to_string),
            error: None,
        }
    }
}

/// The relationships of a server: each declared one with the entry Kea
/// reports for it, then reported ones the file no longer declares.
pub fn pairs(declared: &[Relationship], reported: &[Reported]) -> Vec<Pair> {
    let mut pairs: Vec<Pair> = declared
        .iter()
        .enumerate()
        .map(|(index, relationship)| Pair {
            declared: Some(relationship.clone()),
            reported: reported_for(relationship, index, reported).cloned(),
        })
        .collect();
    for entry in reported {
        if !pairs.iter().any(|p| p.reported.as_ref() == Some(entry)) {
            pairs.push(Pair {
                declared: None,
                reported: Some(entry.clone()),
            });
        }
    }
    pairs
}

/// A pair as seen now, with the partner's state as fresh as it could be had.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub pair: &'a Pair,
    /// The partner's state: its own answer to ha-heartbeat, else what this
    /// server heard from it within the last seconds; None: not known.
    pub partner_state: Option<&'a str>,
}

/// Whether to reload now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Go,
    /// Look again after `again_in`.
    Hold {
        why: String,
        again_in: Duration,
    },
    /// Held `max_hold` already, and still not normal.
    HeldTooLong {
        why: String,
    },
}

/// The rule of the module's header for the relationships Kea runs, held
/// `held_for` so far.
pub fn gate(seen: &[Seen], held_for: Duration, delay: Duration, max_hold: Duration) -> Gate {
    let running: Vec<&Seen> = seen.iter().filter(|s| s.pair.reported.is_some()).collect();
    if running.is_empty() {
        return Gate::Go;
    }
    if held_for < delay && running.iter().any(|s| s.pair.role() != "primary") {
        return Gate::Hold {
            why: format!(
                "this server is the {} of its HA pair: the primary, if edited too, reloads first",
                running
                    .iter()
                    .map(|s| s.pair.role())
                    .find(|role| *role != "primary")
                    .unwrap_or_default()
            ),
            again_in: delay - held_for,
        };
    }
    let why = running.iter().find_map(|seen| not_normal(seen));
    match why {
        None => Gate::Go,
        Some(why) if held_for >= max_hold => Gate::HeldTooLong { why },
        Some(why) => Gate::Hold {
            why,
            again_in: HOLD_POLL,
        },
    }
}

/// Why a relationship is not ready for this server's reload.
fn not_normal(seen: &Seen) -> Option<String> {
    let pair = seen.pair;
    let partner = pair.partner().map_or("the partner", |p| p.name.as_str());
    match (pair.state(), seen.partner_state) {
        (Some(state), _) if !is_normal(state) => Some(format!(
            "this server ({}) is in HA state {state}, not yet back to normal",
            pair.this_server()
        )),
        (None, _) => Some("Kea reports no HA state for this server".into()),
        (_, None) => Some(format!("the state of partner {partner} is not known yet")),
        (_, Some(state)) if !is_normal(state) => {
            Some(format!("partner {partner} is in HA state {state}"))
        }
        _ => None,
    }
}

/// How the HA state after a reload turned out so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// Back to normal.
    Normal,
    /// Not yet: look again.
    Wait,
    /// The reload hurt HA: the event carries this error.
    Failed(String),
}

/// One relationship's state `elapsed` after the reload, which found it in
/// `before`.
pub fn followed(
    before: Option<&str>,
    now: Option<&str>,
    elapsed: Duration,
    timeout: Duration,
) -> Followed {
    match now {
        Some(state) if is_normal(state) => Followed::Normal,
        // A lone survivor back where it was: its partner was down before the reload.
        Some("partner-down") if before == Some("partner-down") => Followed::Normal,
        Some("terminated") => Followed::Failed(
            "the reload left HA terminated: this server no longer serves as part of the pair (check the partners' configs match: subnet ids, prefixes, pools; then ha-reset)".into(),
        ),
        Some("partner-down") if before != Some("partner-down") => Followed::Failed(
            "after the reload this server went to partner-down: it cannot reach its partner (check the peer URLs and credentials in the HA config)".into(),
        ),
        _ if elapsed >= timeout => Followed::Failed(format!(
            "HA state still {} {} s after the reload",
            now.unwrap_or("unknown"),
            timeout.as_secs()
        )),
        _ => Followed::Wait,
    }
}

/// What an edit on this server means under `secondary_edits`: None to apply
/// it quietly, Some(text) for the warning (or the refusal).
pub fn secondary_edit(pairs: &[Pair], policy: SecondaryEdits) -> Option<String> {
    if policy == SecondaryEdits::Apply {
        return None;
    }
    let pair = pairs
        .iter()
        .find(|p| !p.role().is_empty() && p.role() != "primary")?;
    let primary = pair
        .declared
        .as_ref()
        .and_then(|d| d.peers.iter().find(|p| p.role == "primary"))
        .map_or("the primary".to_string(), |p| {
            format!("the primary, {}", p.name)
        });
    Some(format!(
        "this server ({}) is the {} of its HA pair: a central that treats the primary's config as the truth for the pair (such as Micetro) will overwrite this edit; make it on {primary}",
        pair.this_server(),
        pair.role()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kea::ha::Peer;

    fn peer(name: &str, role: &str) -> Peer {
        Peer {
            name: name.into(),
            url: format!("http://{name}:8000/"),
            role: role.into(),
            user: None,
            password: None,
            password_file: None,
        }
    }

    fn pair(this: &str, state: Option<&str>) -> Pair {
        let declared = Relationship {
            this_server: this.into(),
            mode: "hot-standby".into(),
            peers: vec![peer("s1", "primary"), peer("s2", "standby")],
            trust_anchor: None,
            cert_file: None,
            key_file: None,
        };
        let role = declared.role().to_string();
        Pair {
            declared: Some(declared),
            reported: state.map(|state| Reported {
                mode: "hot-standby".into(),
                role,
                state: state.into(),
                ..Reported::default()
            }),
        }
    }

    const DELAY: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(60);

    fn decide(this: &str, state: Option<&str>, partner: Option<&str>, held_s: u64) -> Gate {
        let pair = pair(this, state);
        let seen = [Seen {
            pair: &pair,
            partner_state: partner,
        }];
        gate(&seen, Duration::from_secs(held_s), DELAY, MAX)
    }

    fn holds(gate: &Gate) -> bool {
        matches!(gate, Gate::Hold { .. })
    }

    #[test]
    fn the_primary_goes_first_and_others_wait_for_a_normal_pair() {
        let normal = Some("hot-standby");
        assert_eq!(decide("s1", normal, normal, 0), Gate::Go);
        let waiting = decide("s2", normal, normal, 0);
        assert_eq!(
            waiting,
            Gate::Hold {
                why: "this server is the standby of its HA pair: the primary, if edited too, reloads first".into(),
                again_in: DELAY
            }
        );
        assert_eq!(decide("s2", normal, normal, 2), Gate::Go);
        for (state, partner) in [
            (Some("waiting"), normal),
            (normal, Some("syncing")),
            (normal, Some("ready")),
            (normal, Some("partner-down")),
            (normal, None),
            (Some("partner-down"), normal),
        ] {
            assert!(
                holds(&decide("s2", state, partner, 3)),
                "{state:?} {partner:?}"
            );
            assert!(
                holds(&decide("s1", state, partner, 0)),
                "primary: {state:?} {partner:?}"
            );
            assert!(
                matches!(decide("s2", state, partner, 60), Gate::HeldTooLong { .. }),
                "{state:?} {partner:?}"
            );
        }
    }

    #[test]
    fn relationships_kea_does_not_run_yet_do_not_hold() {
        assert_eq!(decide("s2", None, None, 0), Gate::Go);
        assert_eq!(gate(&[], Duration::ZERO, DELAY, MAX), Gate::Go);
    }

    #[test]
    fn a_hub_waits_for_every_relationship() {
        let first = pair("s2", Some("hot-standby"));
        let second = pair("s2", Some("hot-standby"));
        let seen = [
            Seen {
                pair: &first,
                partner_state: Some("hot-standby"),
            },
            Seen {
                pair: &second,
                partner_state: Some("syncing"),
            },
        ];
        assert!(holds(&gate(&seen, Duration::from_secs(5), DELAY, MAX)));
    }

    #[test]
    fn following_a_reload() {
        let t = Duration::from_secs;
        let cases = [
            (
                Some("hot-standby"),
                Some("hot-standby"),
                1,
                Followed::Normal,
            ),
            (Some("hot-standby"), Some("waiting"), 1, Followed::Wait),
            (Some("hot-standby"), Some("syncing"), 59, Followed::Wait),
            (Some("hot-standby"), None, 1, Followed::Wait),
            (
                Some("partner-down"),
                Some("partner-down"),
                1,
                Followed::Normal,
            ),
            (Some("partner-down"), Some("waiting"), 1, Followed::Wait),
        ];
        for (before, now, elapsed, expected) in cases {
            assert_eq!(
                followed(before, now, t(elapsed), t(60)),
                expected,
                "{now:?}"
            );
        }
        for (before, now, elapsed) in [
            (Some("hot-standby"), Some("terminated"), 1),
            (Some("hot-standby"), Some("partner-down"), 1),
            (Some("hot-standby"), Some("syncing"), 60),
            (Some("partner-down"), Some("waiting"), 60),
        ] {
            let verdict = followed(before, now, t(elapsed), t(60));
            assert!(
                matches!(verdict, Followed::Failed(_)),
                "{now:?} {elapsed}: {verdict:?}"
            );
        }
    }

    #[test]
    fn edits_on_the_standby_are_warned_or_refused() {
        let standby = [pair("s2", Some("hot-standby"))];
        let primary = [pair("s1", Some("hot-standby"))];
        assert_eq!(secondary_edit(&standby, SecondaryEdits::Apply), None);
        assert_eq!(secondary_edit(&primary, SecondaryEdits::Warn), None);
        let warning = secondary_edit(&standby, SecondaryEdits::Warn).expect("a warning");
        assert!(
            warning.contains("standby") && warning.contains("primary, s1"),
            "{warning}"
        );
        assert!(secondary_edit(&standby, SecondaryEdits::Refuse).is_some());
        assert_eq!(secondary_edit(&[], SecondaryEdits::Warn), None);
    }

    #[test]
    fn pairs_match_declared_and_reported() {
        let declared = pair("s2", None).declared.into_iter().collect::<Vec<_>>();
        let reported = vec![Reported {
            role: "standby".into(),
            state: "ready".into(),
            ..Reported::default()
        }];
        let found = pairs(&declared, &reported);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].state(), Some("ready"));
        let report = found[0].report(Some("hot-standby"), Some("hot-standby"));
        assert_eq!(report.partner.as_deref(), Some("s1"));
        assert_eq!(report.state_after.as_deref(), Some("ready"));
        // Kea runs HA the file no longer declares: still a pair.
        let found = pairs(&[], &reported);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].role(), "standby");
    }
}
