//! The open-files limit (RLIMIT_NOFILE) against `--max-connections`: each
//! connection is a file descriptor, and so are the database, the listener and
//! the logs. systemd starts services with a soft limit of 1024 (hard 524288),
//! so the central raises its soft limit to what it needs; where the hard limit
//! is too low it lowers its cap instead of failing accepts (and SQLite opens)
//! once the descriptors run out.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for all but connections: stdio, the listener, the
/// runtime's own, SQLite's files, TLS files read at start.
pub const HEADROOM: u64 = 64;

/// What to do about the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Raise the soft limit to this.
    pub raise_soft_to: Option<u64>,
    /// The cap on connections that fits.
    pub max_connections: usize,
}

/// The plan for `wanted` connections plus `headroom` under `soft`/`hard`
/// (`None`: unlimited).
pub fn plan(wanted: usize, headroom: u64, soft: Option<u64>, hard: Option<u64>) -> Plan {
    let (soft, hard) = (soft.unwrap_or(u64::MAX), hard.unwrap_or(u64::MAX));
    let need = u64::try_from(wanted)
        .unwrap_or(u64::MAX)
        .saturating_add(headroom);
    let usable = need.min(hard);
    let fits = usable.saturating_sub(headroom).max(1);
    Plan {
        raise_soft_to: (soft < usable).then_some(usable),
        max_connections: usize::try_from(fits).unwrap_or(usize::MAX).min(wanted),
    }
}

/// Raises the soft limit as far as `wanted` connections need and returns the
/// cap that fits, warning when it is lower than `wanted`.
pub fn fit(wanted: usize, headroom: u64) -> usize {
    let limit = getrlimit(Resource::Nofile);
    let plan = plan(wanted, headroom, limit.current, limit.maximum);
    let mut max_connections = plan.max_connections;
    if let Some(soft) = plan.raise_soft_to {
        let raised = Rlimit {
            current: Some(soft),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::info!(
                "raised the open-files limit from {} to {soft} for --max-connections {wanted}",
                shown(limit.current)
            ),
            Err(error) => {
                let soft = limit.current.unwrap_or(u64::MAX);
                max_connections = plan.max_connections.min(
                    usize::try_from(soft.saturating_sub(headroom).max(1)).unwrap_or(usize::MAX),
                );
                tracing::warn!("cannot raise the open-files limit from {soft}: {error}");
            }
        }
    }
    if max_connections < wanted {
        tracing::warn!(
            "--max-connections {wanted} lowered to {max_connections}: the open-files limit is {} \
             (hard) and {headroom} descriptors are kept for the database and the rest; raise it \
             (systemd: LimitNOFILE=) to serve more",
            shown(limit.maximum)
        );
    }
    max_connections
}

fn shown(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let cases = [
            // (wanted, soft, hard) -> (raise soft to, cap)
            ((1024, Some(20000), Some(20000)), (None, 1024)),
            // systemd's default: raise the soft limit, keep the cap.
            ((1024, Some(1024), Some(524288)), (Some(1088), 1024)),
            // A low hard limit: raise to it, lower the cap to what fits.
            ((1024, Some(256), Some(512)), (Some(512), 448)),
            ((1024, Some(512), Some(512)), (None, 448)),
            // Absurdly low: still one connection.
            ((1024, Some(10), Some(10)), (None, 1)),
            ((1024, None, None), (None, 1024)),
            ((1024, Some(100), None), (Some(1088), 1024)),
        ];
        for ((wanted, soft, hard), (raise, cap)) in cases {
            assert_eq!(
                plan(wanted, 64, soft, hard),
                Plan {
                    raise_soft_to: raise,
                    max_connections: cap
                },
                "wanted {wanted}, soft {soft:?}, hard {hard:?}"
            );
        }
    }
}
