//! Steps 7 and 8 and the way back. Before the reload: what Kea runs now is
//! kept as the last good config (mode 0600, the rollback), and sent upstream
//! first as a drift when it holds changes made through Kea's API; Kea's DHCP
//! sockets are noted. After it: Kea must still answer, have reconfigured, and
//! serve DHCP on those sockets. When the reload fails or Kea stops serving,
//! config-set puts the last good config back and the edit is rejected.
//! Never leave DHCP worse than it was.

use super::files::{ConfigFacts, Read};
use super::ha::HaBefore;
use super::{Found, LastGood, Live, Look, Next, ServiceSync, seconds};
use crate::agent::config::RuntimeChanges;
use crate::agent::decide::{self, Serving};
use crate::event::Outcome;
use crate::kea::sockets::{Bound, dhcp_sockets};
use crate::kea::{ConfigHash, KeaError, Status};
use std::time::{Duration, Instant};

/// A statistic every reconfiguration of kea-dhcp4 and kea-dhcp6 stamps anew
/// (config-reload, config-set, a start; seen on 2.2.0 and 3.0.4), while
/// config-hash-get or config-get costs Kea a serialization of the whole
/// config (3.6 s on 46 MB with Kea 3.0.4). A DHCPDECLINE or a
/// statistic-reset stamps it too: that only makes the agent ask for the hash.
/// Kea sets it only once it has a subnet; D2 has none.
const COMMIT_STATISTIC: &str = "declined-addresses";

/// How long Kea may take to bind its DHCP sockets again after a reload.
const SOCKETS_PATIENCE: Duration = Duration::from_secs(1);
const SOCKETS_POLL: Duration = Duration::from_millis(50);

/// Kea ran a config that is in no file, just before the reload.
pub(super) struct Runtime {
    pub live: Live,
    /// The upstream lacks it: send it first.
    pub unsent: bool,
    /// The agent met this Kea only now: it did not see the change happen (a
    /// crash between a reload and its record looks the same), so it goes as
    /// a snapshot, not as a drift.
    pub fresh_kea: bool,
}

/// What the reload needs to know of Kea, asked before it (beside the validation).
pub(super) struct Prepared {
    before: Before,
    runtime: Option<Runtime>,
}

/// What was true just before the reload.
struct Before {
    /// Kea's process.
    pid: Option<u32>,
    /// Kea's DHCP sockets.
    sockets: Bound,
    /// A last good config is kept to roll back to.
    rollback: bool,
}

/// How a reload Kea answered with success turned out.
enum Verified {
    /// Applied, or a reload that did not take: the finding to record.
    Done(Found),
    /// Kea stopped serving: roll back.
    NotServing(String),
    /// Kea no longer answers.
    Gone(String),
}

impl ServiceSync {
    /// Steps 7 and 8 for files validated and unchanged since: reload them,
    /// and roll back when Kea fails to load them or stops serving.
    /// `fresh_kea`: the agent met this Kea process only now, so it did not
    /// see how Kea came to run what it runs.
    pub(super) async fn reload(
        &mut self,
        read: &Read,
        prepared: Prepared,
        ha: &HaBefore,
    ) -> Result<Look, KeaError> {
        let Prepared { before, runtime } = prepared;
        if runtime.is_some() && self.runtime_changes == RuntimeChanges::Keep {
            let text = "Kea runs changes made through its API (config-set, subnet or host commands) \
                that are in no file, and a reload would drop them: config-write Kea's config first \
                (kea-sync-agent kea config-write ...), or set runtime_changes = \"reload\"; the \
                runtime config went upstream as a drift";
            return Ok(with_runtime(Found::refused(text), runtime));
        }
        // Kea reads the files itself: they must still be what was validated, checked as
        // late as can be (after the config-get and the fsync of the last good config).
        if self.read_files().file != read.file {
            tracing::info!(service = %self.service, "config changed during validation; checking again");
            return Ok(Look::Quiet(Next::RecheckAfterSettle));
        }
        if runtime.as_ref().is_some_and(|r| r.unsent) {
            tracing::warn!(service = %self.service,
                "Kea runs a config that is in no file and not upstream yet; sending it before the reload drops it");
        }
        let interfaces_after = read.facts(self.service).interfaces.clone();
        let unchanging = read.changes_only_by_reconfiguring(self.service);
        // Whatever the reload does, what was seen of Kea before it no longer holds.
        self.commit_seen = None;
        let started = Instant::now();
        let failure = match self.channel.config_reload().await {
            Ok(_) => match self
                .verify(&before, &interfaces_after, unchanging, started.elapsed())
                .await?
            {
                Verified::Done(found) => {
                    let applied = found.outcome == Outcome::Applied;
                    let found = Found {
                        ha: self.ha_after(ha, applied).await,
                        warnings: if applied { ha.warnings() } else { Vec::new() },
                        ..found
                    };
                    return Ok(with_runtime(Look::Found(found), runtime));
                }
                Verified::NotServing(why) => {
                    format!("config-reload answered success but Kea no longer serves DHCP: {why}")
                }
                Verified::Gone(why) => return Ok(with_runtime(exited(&why), runtime)),
            },
            Err(KeaError::Refused { text, .. }) => {
                format!("config-reload failed: {}", text.trim_end())
            }
            Err(error) => {
                // No answer: a hiccup (Kea is there: try again later) or Kea died on the file.
                if self.channel.status_get().await.is_ok() {
                    return Err(error);
                }
                return Ok(with_runtime(exited(&error.to_string()), runtime));
            }
        };
        // A writer that changed the files between that check and Kea's read of them made
        // Kea fail on content nobody validated (a half-written file): not this edit's fault.
        if self.read_files().file != read.file {
            let rolled_back = if before.rollback {
                self.roll_back(failure.clone(), &before).await.rolled_back
            } else {
                None
            };
            let after = match rolled_back {
                Some(true) => "Kea runs the last good config again",
                Some(false) => "rolling back to the last good config failed",
                None => "no last good config was kept to roll back to",
            };
            tracing::warn!(service = %self.service,
                "the config changed while Kea read it, and Kea refused what it read ({failure}); \
                 {after}; checking the new content");
            return Ok(Look::Quiet(Next::RecheckAfterSettle));
        }
        let found = if before.rollback {
            self.roll_back(failure, &before).await
        } else {
            let serving = self.serving_now(&before, &interfaces_after).await;
            Found {
                rolled_back: Some(false),
                serving: serving.known(),
                ..Found::refused_for_good(format!(
                    "{failure}. No last good config was kept, so nothing was rolled back"
                ))
            }
        };
        let found = Found {
            ha: self.ha_after(ha, false).await,
            ..found
        };
        Ok(with_runtime(Look::Found(found), runtime))
    }

    /// What Kea runs now: kept as the last good config when the agent has
    /// not kept it yet, and returned when it is not what Kea last loaded from
    /// the files (runtime changes), so it goes upstream before the reload
    /// drops it. Also Kea's DHCP sockets.
    pub(super) async fn before_reload(
        &mut self,
        status: &Status,
        fresh_kea: bool,
    ) -> Result<Prepared, KeaError> {
        let (live_hash, mut live) = match self.hash_since_commit(status.pid).await {
            Some(hash) => (hash, None),
            None => match self.config_hash().await? {
                ConfigHash::Hash(hash) => (hash, None),
                ConfigHash::Unsupported => {
                    let live = self.live().await?;
                    (live.hash.clone(), Some(live))
                }
            },
        };
        let runtime_changed = self
            .state
            .loaded_hash
            .as_ref()
            .is_some_and(|loaded| *loaded != live_hash);
        let kept = self.state.last_good_hash.as_deref() == Some(live_hash.as_str())
            && self.store.last_good_path(self.service).is_file();
        if (runtime_changed || !kept) && live.is_none() {
            live = Some(self.live().await?);
        }
        let mut rollback = kept;
        if let Some(live) = live.as_ref().filter(|_| !kept) {
            match self.keep_last_good(live) {
                Ok(()) => rollback = true,
                Err(error) => tracing::error!(service = %self.service,
                    "{error}; a reload that fails cannot be rolled back"),
            }
        }
        let sockets = match status.pid {
            Some(pid) => dhcp_sockets(pid, self.service, self.channel.socket_owner()),
            None => Bound::CannotTell("status-get gave no pid".into()),
        };
        // Sent once: a drift the periodic look found already went upstream.
        let unsent = runtime_changed && self.upstream_lacks(&live_hash);
        let runtime = live.filter(|_| runtime_changed).map(|live| Runtime {
            live,
            unsent,
            fresh_kea,
        });
        Ok(Prepared {
            before: Before {
                pid: status.pid,
                sockets,
                rollback,
            },
            runtime,
        })
    }

    /// The hash of what Kea runs when Kea cannot have changed it since the
    /// agent's last verified reload: the same process, and the commit
    /// statistic still stamped as it was then (a statistic-get of a
    /// millisecond instead of a config-hash-get of seconds on a large config).
    pub(super) async fn hash_since_commit(&self, pid: Option<u32>) -> Option<String> {
        let seen = self
            .commit_seen
            .as_ref()
            .filter(|seen| Some(seen.pid) == pid)?;
        let stamp = self.commit_stamp().await;
        decide::unchanged_since(seen, pid, stamp.as_deref()).then(|| seen.hash.clone())
    }

    /// config-get of what Kea runs, noting the commit it came from when
    /// `unchanging` (nothing changes that config in place): then the next
    /// look needs no config-get or config-hash-get while Kea does not
    /// reconfigure. The stamp is read first: a reconfiguration after that
    /// read, even one the config-get sees, stamps the statistic anew.
    pub(super) async fn live_noting_commit(
        &mut self,
        pid: Option<u32>,
        unchanging: bool,
    ) -> Result<Live, KeaError> {
        let stamp = match unchanging {
            true => self.commit_stamp().await,
            false => None,
        };
        let live = self.live().await?;
        self.commit_seen = stamp.zip(pid).map(|(stamp, pid)| decide::CommitSeen {
            pid,
            stamp,
            hash: live.hash.clone(),
        });
        Ok(live)
    }

    /// The stamp on Kea's commit statistic; None when Kea has none or does not say.
    async fn commit_stamp(&self) -> Option<String> {
        if self.service == crate::kea::Service::D2 {
            return None;
        }
        match self.channel.statistic_stamp(COMMIT_STATISTIC).await {
            Ok(stamp) => stamp,
            Err(error) => {
                tracing::debug!(service = %self.service, "statistic-get {COMMIT_STATISTIC}: {error}");
                None
            }
        }
    }

    /// Keeps `live` as the config to roll back to.
    fn keep_last_good(&mut self, live: &Live) -> Result<(), crate::agent::state::StateError> {
        self.store.keep_last_good(self.service, &live.config)?;
        let bound = ConfigFacts::of(live.config.get(), self.service).interfaces;
        self.last_good_kept(&live.hash, &bound);
        Ok(())
    }

    /// Step 8 for a reload Kea answered with success.
    /// `unchanging`: the applied files' config changes only when Kea
    /// reconfigures, so the commit seen now tells the next reload what Kea runs.
    async fn verify(
        &mut self,
        before: &Before,
        interfaces_after: &[String],
        unchanging: bool,
        took: Duration,
    ) -> Result<Verified, KeaError> {
        let after = match self.channel.status_get().await {
            Ok(after) => after,
            Err(error) => return Ok(Verified::Gone(error.to_string())),
        };
        if after.pid != before.pid {
            tracing::warn!(service = %self.service, before = ?before.pid, after = ?after.pid,
                "Kea is another process after the reload than before it (restarted meanwhile)");
        }
        if !decide::reload_took_effect(seconds(after.reload), took) {
            let text = format!(
                "config-reload answered success but status-get says the last reconfiguration was {} s ago",
                seconds(after.reload).as_secs()
            );
            let live = self.live().await?;
            return Ok(Verified::Done(
                Found::new(Outcome::Rejected, text).with_live(live),
            ));
        }
        let interfaces_before = self.state.last_good_interfaces.clone();
        let serving = self
            .wait_serving(
                &before.sockets,
                interfaces_before.as_deref(),
                interfaces_after,
                after.pid,
            )
            .await;
        if let Serving::No(why) = serving {
            return Ok(Verified::NotServing(why));
        }
        let live = self.live_noting_commit(after.pid, unchanging).await?;
        // What Kea applied and serves is the next reload's way back, so that reload need not
        // fetch it first (Kea 2.4+ compares hashes): kept once it is queued upstream.
        let last_good = LastGood {
            hash: live.hash.clone(),
            interfaces: interfaces_after.to_vec(),
        };
        Ok(Verified::Done(Found {
            serving: serving.known(),
            last_good: Some(last_good),
            ..Found::new(Outcome::Applied, "config-reload: configuration live").with_live(live)
        }))
    }

    /// config-set of the last good config, then the serving check again.
    async fn roll_back(&mut self, failure: String, before: &Before) -> Found {
        self.commit_seen = None;
        let config = match self.store.last_good(self.service) {
            Ok(config) => config,
            Err(error) => {
                return Found {
                    rolled_back: Some(false),
                    serving: Some(false),
                    ..Found::refused_for_good(format!("{failure}. Rolling back failed: {error}"))
                };
            }
        };
        if let Err(error) = self.channel.config_set(config).await {
            let serving = self
                .serving_now(
                    before,
                    &self.state.last_good_interfaces.clone().unwrap_or_default(),
                )
                .await;
            return Found {
                rolled_back: Some(false),
                serving: serving.known().or(Some(false)),
                ..Found::refused_for_good(format!(
                    "{failure}. Rolling back to the last good config failed too ({error}): Kea may not serve DHCP until a good config is loaded"
                ))
            };
        }
        let interfaces = self.state.last_good_interfaces.clone().unwrap_or_default();
        let serving = self.serving_now(before, &interfaces).await;
        let text = format!(
            "{failure}. Rolled back: Kea runs the last good config; the file is rejected until it changes"
        );
        let live = self.live().await.ok();
        Found {
            rolled_back: Some(true),
            serving: serving.known(),
            live,
            ..Found::refused_for_good(text)
        }
    }

    /// Whether Kea serves now, waiting a moment for its sockets.
    async fn serving_now(&self, before: &Before, interfaces: &[String]) -> Serving {
        let pid = match self.channel.status_get().await {
            Ok(status) => status.pid,
            Err(error) => return Serving::No(format!("Kea does not answer: {error}")),
        };
        self.wait_serving(&before.sockets, Some(interfaces), interfaces, pid)
            .await
    }

    /// Kea's DHCP sockets judged against those it had, polled for a moment:
    /// Kea may bind them a little after its reply.
    async fn wait_serving(
        &self,
        had: &Bound,
        interfaces_before: Option<&[String]>,
        interfaces_after: &[String],
        pid: Option<u32>,
    ) -> Serving {
        let Some(pid) = pid else {
            return Serving::CannotTell("status-get gave no pid".into());
        };
        let deadline = Instant::now() + SOCKETS_PATIENCE;
        loop {
            let now = dhcp_sockets(pid, self.service, self.channel.socket_owner());
            let verdict = decide::serving(had, &now, interfaces_before, interfaces_after);
            match verdict {
                Serving::No(_) if Instant::now() < deadline => {
                    tokio::time::sleep(SOCKETS_POLL).await;
                }
                Serving::CannotTell(ref why) => {
                    tracing::warn!(service = %self.service,
                        "cannot tell whether Kea serves DHCP ({why}); judging the reload by Kea's answers alone");
                    return verdict;
                }
                verdict => return verdict,
            }
        }
    }
}

impl Serving {
    /// As an event's `serving`: None when it cannot be told.
    fn known(&self) -> Option<bool> {
        match self {
            Serving::Yes => Some(true),
            Serving::No(_) => Some(false),
            Serving::CannotTell(_) => None,
        }
    }
}

/// Kea stopped answering during or right after the reload of this file: it
/// may have died on it, or been killed. The file is not reloaded again; the
/// agent watches for Kea's return, and a Kea restarted on the file that loads
/// it is in sync with it (`watch_live`).
fn exited(why: &str) -> Look {
    Look::Found(Found {
        rolled_back: Some(false),
        serving: Some(false),
        kea_gone: true,
        ..Found::refused_for_good(format!(
            "Kea stopped answering while reloading this file ({why}): it serves no DHCP until it is restarted. \
             The file is not reloaded again until it changes; a Kea restarted on it that loads it is taken as in sync"
        ))
    })
}

/// Puts Kea's runtime config, to go upstream first when unsent, on a finding.
fn with_runtime(look: Look, runtime: Option<Runtime>) -> Look {
    match look {
        Look::Found(found) => Look::Found(Found {
            runtime: runtime.filter(|runtime| runtime.unsent),
            ..found
        }),
        other => other,
    }
}
