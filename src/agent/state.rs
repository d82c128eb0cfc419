//! What the agent last decided per service, persisted in the state dir so a
//! restarted agent neither reloads nor reports the same content twice. The
//! state changes in one place: [`ServiceState::after`], a pure transition.

use crate::durable;
use crate::event::Outcome;
use crate::kea::Service;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::path::{Path, PathBuf};

/// The last decision's results for one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Content last applied, or found in sync with Kea.
    pub applied_sha256: Option<String>,
    /// Content last rejected (reported once).
    pub rejected_sha256: Option<String>,
    /// Kea's in-memory config hash after the last step.
    pub config_hash: Option<String>,
    /// Hash of the last config queued upstream (applied, snapshot, drift).
    #[serde(default)]
    pub pushed_hash: Option<String>,
    /// Kea's hash of the config kept as the last good one (the rollback).
    #[serde(default)]
    pub last_good_hash: Option<String>,
    /// The interfaces that config binds DHCP sockets on.
    #[serde(default)]
    pub last_good_interfaces: Option<Vec<String>>,
    /// Kea's hash right after it last loaded the files (applied or found in
    /// sync): a live hash other than this one is a change in no file.
    #[serde(default)]
    pub loaded_hash: Option<String>,
}

/// Something a check established, as the state records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact<'a> {
    /// A check of the files with digest `file_sha256` ended in `outcome`.
    Checked {
        outcome: Outcome,
        file_sha256: &'a str,
        /// Kea refused this content for good: say so once, not at every look.
        refused_for_good: bool,
        /// Kea's config hash after the step, when the check learnt it.
        live_hash: Option<&'a str>,
    },
    /// Kea's in-memory config has hash `live_hash`; nothing to report.
    Seen { live_hash: &'a str },
    /// A config event with Kea hash `hash` is durable in the outbox (only
    /// then: an event that could not be written does not count).
    ConfigQueued { hash: &'a str },
    /// Kea's config with hash `hash`, binding `interfaces`, is durable as
    /// the last good one.
    LastGoodKept {
        hash: &'a str,
        interfaces: &'a [String],
    },
}

impl ServiceState {
    /// The state after `fact`. Pure: the one place the state changes.
    pub fn after(&self, fact: Fact<'_>) -> ServiceState {
        let mut next = self.clone();
        match fact {
            Fact::Checked {
                outcome,
                file_sha256,
                refused_for_good,
                live_hash,
            } => {
                match outcome {
                    Outcome::Applied | Outcome::InSync => {
                        next.applied_sha256 = Some(file_sha256.to_string());
                        next.rejected_sha256 = None;
                        if let Some(hash) = live_hash {
                            next.loaded_hash = Some(hash.to_string());
                        }
                    }
                    Outcome::Rejected if refused_for_good => {
                        next.rejected_sha256 = Some(file_sha256.to_string());
                    }
                    Outcome::Rejected
                    | Outcome::Unchanged
                    | Outcome::Unreachable
                    | Outcome::Snapshot
                    | Outcome::Drift => {}
                }
                if let Some(hash) = live_hash {
                    next.config_hash = Some(hash.to_string());
                }
            }
            Fact::Seen { live_hash } => next.config_hash = Some(live_hash.to_string()),
            Fact::ConfigQueued { hash } => next.pushed_hash = Some(hash.to_string()),
            Fact::LastGoodKept { hash, interfaces } => {
                next.last_good_hash = Some(hash.to_string());
                next.last_good_interfaces = Some(interfaces.to_vec());
            }
        }
        next
    }
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read agent state {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot write agent state {path}: {source} (the state dir must be writable by the agent's user)"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The per-service state files under the state dir.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// Uses `dir` (created when missing, on first write).
    pub fn new(dir: &Path) -> StateStore {
        StateStore {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, service: Service) -> PathBuf {
        self.dir.join(format!("{}.state.json", service.name()))
    }

    /// Where the last good in-memory config of `service` is kept.
    pub fn last_good_path(&self, service: Service) -> PathBuf {
        self.dir.join(format!("{}.last-good.json", service.name()))
    }

    /// Keeps `config` (config-get's arguments without `hash`) as the last
    /// good one, readable by the agent's user alone: it holds Kea's
    /// database passwords.
    pub fn keep_last_good(&self, service: Service, config: &RawValue) -> Result<(), StateError> {
        let path = self.last_good_path(service);
        durable::create_dir(&self.dir)
            .and_then(|()| durable::write(&path, durable::SECRET_MODE, config.get().as_bytes()))
            .map_err(|source| StateError::Write { path, source })
    }

    /// The last good config kept, when there is one.
    pub fn last_good(&self, service: Service) -> Result<Box<RawValue>, StateError> {
        let path = self.last_good_path(service);
        let text = std::fs::read_to_string(&path).map_err(|source| StateError::Read {
            path: path.clone(),
            source,
        })?;
        RawValue::from_string(text).map_err(|error| StateError::Read {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
        })
    }

    /// The saved state, or the empty state when there is none or it is
    /// unreadable (logged: starting from scratch is safe, only less quiet).
    pub fn load(&self, service: Service) -> ServiceState {
        let path = self.path(service);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::warn!(path = %path.display(), %error, "ignoring unreadable agent state");
                ServiceState::default()
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => ServiceState::default(),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read agent state; starting fresh");
                ServiceState::default()
            }
        }
    }

    /// Saves atomically: temp file, fsync, rename, fsync of the directory,
    /// so a crash leaves the old state or the new one, never half of one.
    pub fn save(&self, service: Service, state: &ServiceState) -> Result<(), StateError> {
        let path = self.path(service);
        let error = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        durable::create_dir(&self.dir).map_err(error)?;
        let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        durable::write(&path, durable::FILE_MODE, &bytes).map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_per_service() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = StateStore::new(&dir.path().join("state"));
        assert_eq!(store.load(Service::Dhcp4), ServiceState::default());
        let state = ServiceState {
            applied_sha256: Some("ab".into()),
            rejected_sha256: None,
            config_hash: Some("CD".into()),
            pushed_hash: None,
            last_good_hash: None,
            last_good_interfaces: None,
            loaded_hash: None,
        };
        store.save(Service::Dhcp4, &state).expect("save");
        assert_eq!(store.load(Service::Dhcp4), state);
        assert_eq!(store.load(Service::Dhcp6), ServiceState::default());
    }

    #[test]
    fn transition_table() {
        let old = ServiceState {
            applied_sha256: Some("old".into()),
            rejected_sha256: Some("bad".into()),
            config_hash: Some("H0".into()),
            pushed_hash: Some("H0".into()),
            last_good_hash: None,
            last_good_interfaces: None,
            loaded_hash: None,
        };
        let with = |applied: &str, rejected: Option<&str>, hash: &str, pushed: &str| ServiceState {
            applied_sha256: Some(applied.into()),
            rejected_sha256: rejected.map(str::to_string),
            config_hash: Some(hash.into()),
            pushed_hash: Some(pushed.into()),
            last_good_hash: None,
            last_good_interfaces: None,
            loaded_hash: None,
        };
        let loaded = |state: ServiceState, hash: &str| ServiceState {
            loaded_hash: Some(hash.into()),
            ..state
        };
        let checked = |outcome, refused_for_good, live_hash| Fact::Checked {
            outcome,
            file_sha256: "new",
            refused_for_good,
            live_hash,
        };
        let cases = [
            (
                "applied: the new content, Kea's new hash, the reject forgotten",
                checked(Outcome::Applied, false, Some("H1")),
                loaded(with("new", None, "H1", "H0"), "H1"),
            ),
            (
                "in sync: the same as applied",
                checked(Outcome::InSync, false, Some("H1")),
                loaded(with("new", None, "H1", "H0"), "H1"),
            ),
            (
                "refused for good: remembered, the applied content kept",
                checked(Outcome::Rejected, true, None),
                with("old", Some("new"), "H0", "H0"),
            ),
            (
                "a reload that did not take: tried again next time",
                checked(Outcome::Rejected, false, Some("H2")),
                with("old", Some("bad"), "H2", "H0"),
            ),
            (
                "unchanged: nothing",
                checked(Outcome::Unchanged, false, None),
                old.clone(),
            ),
            (
                "unreachable: nothing",
                checked(Outcome::Unreachable, false, None),
                old.clone(),
            ),
            (
                "drift: Kea's hash only; queued is a separate fact",
                checked(Outcome::Drift, false, Some("H3")),
                with("old", Some("bad"), "H3", "H0"),
            ),
            (
                "snapshot: the same",
                checked(Outcome::Snapshot, false, Some("H3")),
                with("old", Some("bad"), "H3", "H0"),
            ),
            (
                "seen: Kea's hash",
                Fact::Seen { live_hash: "H4" },
                with("old", Some("bad"), "H4", "H0"),
            ),
            (
                "queued: what the upstream will get",
                Fact::ConfigQueued { hash: "H5" },
                with("old", Some("bad"), "H0", "H5"),
            ),
            (
                "kept: the rollback's config",
                Fact::LastGoodKept {
                    hash: "H6",
                    interfaces: &["lo".to_string()],
                },
                ServiceState {
                    last_good_hash: Some("H6".into()),
                    last_good_interfaces: Some(vec!["lo".into()]),
                    ..old.clone()
                },
            ),
        ];
        for (name, fact, want) in cases {
            assert_eq!(old.after(fact), want, "{name}");
        }
        assert_eq!(
            ServiceState::default().after(checked(Outcome::Applied, false, None)),
            ServiceState {
                applied_sha256: Some("new".into()),
                ..ServiceState::default()
            },
            "a hash not learnt is not invented"
        );
    }

    #[test]
    fn the_last_good_config_is_kept_for_the_agent_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = StateStore::new(&dir.path().join("state"));
        assert!(store.last_good(Service::Dhcp4).is_err());
        let config =
            RawValue::from_string(r#"{"Dhcp4":{"valid-lifetime":7}}"#.into()).expect("raw");
        store.keep_last_good(Service::Dhcp4, &config).expect("kept");
        assert_eq!(
            store.last_good(Service::Dhcp4).expect("read").get(),
            config.get()
        );
        let mode = std::fs::metadata(store.last_good_path(Service::Dhcp4))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn garbage_state_starts_fresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("dhcp4.state.json"), b"{half").expect("write");
        assert_eq!(
            StateStore::new(dir.path()).load(Service::Dhcp4),
            ServiceState::default()
        );
    }
}
