//! The `[upstream]` and `[[hook]]` settings, as the agent config gives them.

use std::path::PathBuf;
use std::time::Duration;

/// Default bound of the outbox, in events.
pub const DEFAULT_MAX_OUTBOX_EVENTS: usize = 10_000;
/// Default bound of the outbox, in bytes (1 GiB).
pub const DEFAULT_MAX_OUTBOX_BYTES: u64 = 1 << 30;
/// Default timeout of one delivery attempt.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Default timeout of one hook run.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where events go over HTTP(S).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub url: String,
    /// Bearer token file; must not be world-readable.
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub timeout: Duration,
}

/// A command that receives each event's JSON on stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookConfig {
    pub command: Vec<String>,
    pub timeout: Duration,
}

/// How much the outbox may hold (with or without an upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    pub max_events: usize,
    pub max_bytes: u64,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits {
            max_events: DEFAULT_MAX_OUTBOX_EVENTS,
            max_bytes: DEFAULT_MAX_OUTBOX_BYTES,
        }
    }
}

/// Reads "1GiB", "500 MB", "4096" as a byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size: expected a number with an optional unit (KiB, MiB, GiB, KB, MB, GB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{text}': use KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("size '{text}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        let cases = [
            ("4096", 4096),
            ("1GiB", 1 << 30),
            ("500 MB", 500_000_000),
            ("64KiB", 65536),
            ("2mib", 2 << 20),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in ["", "GiB", "1 TB", "-1", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
