//! Two stored versions and the changes between them: what the read API and
//! the page both show. The diff itself runs on the blocking pool (configs
//! of tens of MB take a while to parse).

use super::{Change, diff_configs};
use crate::central::store::{Store, StoreError, VersionInfo};
use serde_json::Value;

/// Why a diff could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("no version {number} of {server}/{service}")]
    NoSuchVersion {
        server: String,
        service: String,
        number: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored config is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("diff failed: {0}")]
    Failed(String),
}

/// Versions `from` and `to` of a server and service with the changes between them.
pub async fn load_diff(
    store: &Store,
    server: &str,
    service: &str,
    from: i64,
    to: i64,
) -> Result<(VersionInfo, VersionInfo, Vec<Change>), DiffError> {
    let missing = |number: i64| DiffError::NoSuchVersion {
        server: server.to_string(),
        service: service.to_string(),
        number,
    };
    let old = store
        .version(server, service, from)
        .await?
        .ok_or_else(|| missing(from))?;
    let new = store
        .version(server, service, to)
        .await?
        .ok_or_else(|| missing(to))?;
    let (old_info, new_info) = (old.info.clone(), new.info.clone());
    let changes = tokio::task::spawn_blocking(move || -> Result<Vec<Change>, serde_json::Error> {
        let mut before: Value = serde_json::from_str(&old.config_json)?;
        let mut after: Value = serde_json::from_str(&new.config_json)?;
        // Secrets never show: a changed one shows as changed, not as what.
        crate::central::secrets::redact_pair(&mut before, &mut after);
        Ok(diff_configs(&before, &after))
    })
    .await
    .map_err(|e| DiffError::Failed(e.to_string()))?
    .map_err(DiffError::NotJson)?;
    Ok((old_info, new_info, changes))
}
