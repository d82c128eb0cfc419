//! HA around step 7 (the rules are in `decide/ha.rs`). Before the reload:
//! status-get says how this server's relationships stand, and each partner
//! says its own state (`ha-heartbeat` at the peer URL of the HA config,
//! with the credentials HA itself uses); the reload is held until the pair
//! is normal. After it: this server's state is followed until it is normal
//! again. The agents never talk to each other: Kea tells each of them.

use super::files::Read;
use super::{Found, Look, Mode, Next, ServiceSync};
use crate::agent::config::{AfterMaxHold, SecondaryEdits};
use crate::agent::decide::FileRead;
use crate::agent::decide::ha::{self as rules, Followed, Gate, HOLD_POLL, Pair, Seen};
use crate::event::Outcome;
use crate::event::wire::Ha;
use crate::kea::ha::{self, PARTNER_TIMEOUT, Peer, Relationship};
use crate::kea::{ControlChannel, KeaError};
use crate::validate::Depth;
use std::time::{Duration, Instant};

/// How often the state is looked at while following a reload.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// A partner state this server heard at most this many seconds ago counts
/// when the partner cannot be asked itself.
const HEARD_RECENTLY_S: u64 = 1;

/// What held the reload of these files: kept between checks, so the
/// validation is not run again and the hold has a start.
#[derive(Debug)]
pub(super) struct Hold {
    file: FileRead,
    depth: Depth,
    since: Instant,
    /// The reason last logged.
    said: Option<String>,
}

impl Hold {
    /// Whether these files at this depth were validated before the hold.
    pub fn validated(&self, file: &FileRead, depth: Depth) -> bool {
        self.file == *file && self.depth == depth
    }

    /// Why the reload waits.
    pub fn reason(&self) -> Option<String> {
        self.said.clone()
    }
}

/// The pair just before a reload.
pub(super) struct HaBefore {
    pairs: Vec<Pair>,
    warnings: Vec<String>,
}

impl HaBefore {
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

/// Whether the reload goes ahead.
pub(super) enum HaStep {
    Go(HaBefore),
    Stop(Look),
}

impl ServiceSync {
    /// The HA gate before a reload of `read`, validated at `depth`.
    pub(super) async fn ha_gate(&mut self, read: &Read, depth: Depth) -> Result<HaStep, KeaError> {
        let declared = &read.facts(self.service).ha;
        // No HA in the files, none at the status-get of this check: nothing to ask.
        if declared.is_empty() && self.ha_reported.is_empty() {
            return Ok(HaStep::Go(HaBefore {
                pairs: Vec::new(),
                warnings: Vec::new(),
            }));
        }
        let pairs = self.ha_pairs(declared).await?;
        let go = |pairs, warnings| Ok(HaStep::Go(HaBefore { pairs, warnings }));
        if pairs.iter().all(|p| p.reported.is_none()) {
            self.hold = None;
            return go(pairs, Vec::new());
        }
        let secondary = rules::secondary_edit(&pairs, self.ha.secondary_edits);
        if let Some(text) = secondary.as_ref()
            && self.ha.secondary_edits == SecondaryEdits::Refuse
        {
            self.hold = None;
            let text = format!("refused ([ha] secondary_edits = \"refuse\"): {text}");
            return Ok(HaStep::Stop(Found::refused(text)));
        }
        let warnings: Vec<String> = secondary.into_iter().collect();
        let partners = self.partner_states(&pairs).await;
        let seen: Vec<Seen> = pairs
            .iter()
            .zip(&partners)
            .map(|(pair, partner_state)| Seen {
                pair,
                partner_state: partner_state.as_deref(),
            })
            .collect();
        let since = match &self.hold {
            Some(hold) if hold.file == read.file => hold.since,
            _ => Instant::now(),
        };
        let held_for = since.elapsed();
        match rules::gate(&seen, held_for, self.ha.delay, self.ha.max_hold) {
            Gate::Go => {
                if self.hold.take().is_some() {
                    tracing::info!(service = %self.service, held_ms = held_for.as_millis() as u64,
                        "HA pair normal: reloading now");
                }
                go(pairs, warnings)
            }
            Gate::Hold { why, again_in } => {
                self.hold_for(read, depth, since, &why, false);
                Ok(HaStep::Stop(Look::Quiet(Next::Hold(again_in))))
            }
            Gate::HeldTooLong { why } => {
                let reload = self.ha.after_max_hold == AfterMaxHold::Reload;
                let text = format!(
                    "HA: reload held {} s ([ha] max_hold_s) and the pair is still not normal: {why}",
                    held_for.as_secs()
                );
                if reload {
                    tracing::error!(service = %self.service, "{text}; reloading anyway ([ha] after_max_hold = \"reload\")");
                    self.hold = None;
                    return go(pairs, warnings);
                }
                self.hold_for(read, depth, since, &text, true);
                if self.mode == Mode::Once {
                    self.hold = None;
                    return Ok(HaStep::Stop(Look::Found(Found::new(
                        Outcome::Unreachable,
                        format!(
                            "{text}; not reloaded (the daemon keeps waiting; [ha] after_max_hold = \"reload\" reloads anyway)"
                        ),
                    ))));
                }
                Ok(HaStep::Stop(Look::Quiet(Next::Hold(HOLD_POLL))))
            }
        }
    }

    /// Remembers the hold and says why, once per reason.
    fn hold_for(&mut self, read: &Read, depth: Depth, since: Instant, why: &str, loud: bool) {
        let said = self.hold.take().and_then(|hold| hold.said);
        if said.as_deref() != Some(why) {
            if loud {
                tracing::error!(service = %self.service, "{why}; still waiting ([ha] after_max_hold = \"wait\")");
            } else {
                tracing::info!(service = %self.service, "HA: holding the reload: {why}");
            }
        }
        self.hold = Some(Hold {
            file: read.file.clone(),
            depth,
            since,
            said: Some(why.to_string()),
        });
    }

    /// What the event of a reload says of HA: after an applied reload the
    /// state is followed until normal (or the timeout); otherwise it is
    /// read once.
    pub(super) async fn ha_after(&mut self, before: &HaBefore, follow: bool) -> Vec<Ha<String>> {
        if before.pairs.is_empty() {
            return Vec::new();
        }
        let declared: Vec<Relationship> = before
            .pairs
            .iter()
            .filter_map(|p| p.declared.clone())
            .collect();
        let started = Instant::now();
        let (pairs, errors) = loop {
            let pairs = match self.ha_pairs(&declared).await {
                Ok(pairs) => pairs,
                Err(error) => {
                    let unknown = before
                        .pairs
                        .iter()
                        .map(|pair| Pair {
                            reported: None,
                            ..pair.clone()
                        })
                        .collect();
                    let why = format!("the HA state cannot be read after the reload: {error}");
                    break (unknown, vec![Some(why); before.pairs.len()]);
                }
            };
            let verdicts: Vec<Followed> = before
                .pairs
                .iter()
                .zip(&pairs)
                .map(|(was, now)| {
                    rules::followed(
                        was.state(),
                        now.state(),
                        started.elapsed(),
                        self.ha.follow_timeout,
                    )
                })
                .collect();
            if !follow || !verdicts.contains(&Followed::Wait) {
                let errors = verdicts
                    .into_iter()
                    .map(|v| match v {
                        Followed::Failed(why) => Some(why),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                break (pairs, errors);
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        };
        let partners = self.partner_states(&pairs).await;
        let reports: Vec<Ha<String>> = before
            .pairs
            .iter()
            .zip(&pairs)
            .zip(partners.iter().zip(errors))
            .map(|((was, now), (partner, error))| Ha {
                error: error.filter(|_| follow),
                ..now.report(was.state(), partner.as_deref())
            })
            .collect();
        for report in reports.iter().filter(|r| r.error.is_some()) {
            tracing::error!(service = %self.service, this_server = report.this_server,
                "HA: {}", report.error.as_deref().unwrap_or_default());
        }
        if follow && reports.iter().all(|r| r.error.is_none()) {
            tracing::info!(service = %self.service, took_ms = started.elapsed().as_millis() as u64,
                "HA state back to normal after the reload");
        }
        reports
    }

    /// status-get's HA entries, paired with the relationships `declared`.
    async fn ha_pairs(&mut self, declared: &[Relationship]) -> Result<Vec<Pair>, KeaError> {
        let status = self.channel.status_get().await?;
        self.saw_status(&status);
        Ok(rules::pairs(declared, &self.ha_reported))
    }

    /// Each partner's state: its answer to ha-heartbeat, else what this
    /// server heard from it lately; None when neither.
    async fn partner_states(&self, pairs: &[Pair]) -> Vec<Option<String>> {
        let mut states = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let asked = match (pair.partner(), &pair.declared) {
                (Some(peer), Some(declared)) => self.ask_partner(peer, declared).await,
                _ => None,
            };
            let heard = pair
                .reported
                .as_ref()
                .filter(|r| r.partner_age.is_some_and(|age| age <= HEARD_RECENTLY_S))
                .and_then(|r| r.partner_state.clone());
            states.push(asked.or(heard));
        }
        states
    }

    /// ha-heartbeat to `peer`, as this server's HA would send it.
    async fn ask_partner(&self, peer: &Peer, relationship: &Relationship) -> Option<String> {
        let asked =
            match ControlChannel::to_ha_peer(self.service, peer, relationship, PARTNER_TIMEOUT) {
                Ok(partner) => partner.ha_heartbeat().await,
                Err(error) => Err(error),
            };
        match asked {
            Ok(state) => Some(state),
            Err(error) => {
                tracing::debug!(service = %self.service, partner = peer.name, "cannot ask the HA partner: {error}");
                None
            }
        }
    }
}

/// The event's view of HA when no reload was tried: the relationships as
/// the files declare them, the states as Kea last reported them.
pub(super) fn reports(declared: &[Relationship], reported: &[ha::Reported]) -> Vec<Ha<String>> {
    rules::pairs(declared, reported)
        .iter()
        .map(|pair| {
            let partner = pair
                .reported
                .as_ref()
                .and_then(|r| r.partner_state.as_deref());
            pair.report(pair.state(), partner)
        })
        .collect()
}
