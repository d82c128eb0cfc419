//! What the agent last decided per service, persisted in the state dir so a
//! restarted agent neither reloads nor reports the same content twice.

use crate::kea::Service;
use serde::{Deserialize, Serialize};
use std::io::Write;
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
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
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
        std::fs::create_dir_all(&self.dir).map_err(error)?;
        let temp = self.dir.join(format!(".{}.state.json.tmp", service.name()));
        let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        let mut file = std::fs::File::create(&temp).map_err(error)?;
        file.write_all(&bytes).map_err(error)?;
        file.sync_all().map_err(error)?;
        std::fs::rename(&temp, &path).map_err(error)?;
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(error)
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
        };
        store.save(Service::Dhcp4, &state).expect("save");
        assert_eq!(store.load(Service::Dhcp4), state);
        assert_eq!(store.load(Service::Dhcp6), ServiceState::default());
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
