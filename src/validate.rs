//! Checking a config file exactly as Kea would load it, before anyone sends
//! config-reload: `kea-dhcp4 -t FILE` (out of process, so the serving daemon
//! never stalls), or, when that binary is absent, `config-test` with the
//! dialect-expanded document.

use crate::dialect::{self, Style};
use crate::kea::{ControlChannel, KeaError, Service};
use indexmap::IndexMap;
use serde_json::value::RawValue;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Directories searched for Kea's binaries besides PATH (sbin is often not
/// in a service user's PATH).
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// Kea's answer about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// Kea's own error text.
    Invalid(String),
}

/// How the verdict was reached, for logs and `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `BINARY -t FILE`.
    Binary(PathBuf),
    /// `config-test` through the given socket or URL.
    ConfigTest(String),
}

/// A verdict and where it came from.
#[derive(Debug, Clone)]
pub struct Validation {
    pub verdict: Verdict,
    pub method: Method,
}

/// Why no verdict could be had.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("cannot run validator {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("validator {binary} did not finish checking {file} within {} s", after.as_secs())]
    Timeout {
        binary: PathBuf,
        file: PathBuf,
        after: Duration,
    },
    #[error(
        "cannot validate {file}: {binary} is not installed (install Kea's server package or set `validator`) and no control channel is known for the config-test fallback"
    )]
    NoValidator { binary: String, file: PathBuf },
    #[error("config-test fallback for {file}: {source}")]
    ConfigTest {
        file: PathBuf,
        #[source]
        source: KeaError,
    },
}

/// Validates one service's config files.
#[derive(Debug, Clone)]
pub struct Validator {
    service: Service,
    binary: Option<PathBuf>,
    include_base: PathBuf,
    timeout: Duration,
}

impl Validator {
    /// `binary`: the validator to run (default: the service's daemon found
    /// in PATH or sbin). `include_base`: the directory Kea resolves relative
    /// includes against; the validator runs there.
    pub fn new(
        service: Service,
        binary: Option<PathBuf>,
        include_base: PathBuf,
        timeout: Duration,
    ) -> Validator {
        Validator {
            service,
            binary,
            include_base,
            timeout,
        }
    }

    /// The validator binary that would run, if it exists.
    pub fn binary(&self) -> Option<PathBuf> {
        match &self.binary {
            Some(path) => path.is_file().then(|| path.clone()),
            None => find_in_path(self.service.daemon_binary()),
        }
    }

    /// Checks `file` as Kea would load it.
    pub async fn validate(
        &self,
        file: &Path,
        fallback: Option<&ControlChannel>,
    ) -> Result<Validation, ValidateError> {
        if let Some(binary) = self.binary() {
            return self.run_binary(&binary, file).await;
        }
        let channel = fallback.ok_or_else(|| ValidateError::NoValidator {
            binary: self.binary_name(),
            file: file.to_path_buf(),
        })?;
        self.config_test(file, channel).await
    }

    fn binary_name(&self) -> String {
        match &self.binary {
            Some(path) => path.display().to_string(),
            None => self.service.daemon_binary().to_string(),
        }
    }

    async fn run_binary(&self, binary: &Path, file: &Path) -> Result<Validation, ValidateError> {
        // Absolute, because the validator runs in the include base.
        let file_arg = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let child = tokio::process::Command::new(binary)
            .arg("-t")
            .arg(&file_arg)
            .current_dir(&self.include_base)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ValidateError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| ValidateError::Timeout {
                binary: binary.to_path_buf(),
                file: file.to_path_buf(),
                after: self.timeout,
            })?
            .map_err(|source| ValidateError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let verdict = if output.status.success() {
            Verdict::Valid
        } else {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            Verdict::Invalid(kea_error_text(&stderr, &stdout))
        };
        Ok(Validation {
            verdict,
            method: Method::Binary(binary.to_path_buf()),
        })
    }

    async fn config_test(
        &self,
        file: &Path,
        channel: &ControlChannel,
    ) -> Result<Validation, ValidateError> {
        let method = Method::ConfigTest(channel.endpoint());
        let expanded = match dialect::expand_file(file, &self.include_base, Style::Compact) {
            Ok(expanded) => expanded,
            // A file Kea could not read is Kea's "invalid", not our failure.
            Err(error) => {
                return Ok(Validation {
                    verdict: Verdict::Invalid(error.to_string()),
                    method,
                });
            }
        };
        let document = match service_document(&expanded.json, self.service) {
            Ok(document) => document,
            Err(why) => {
                return Ok(Validation {
                    verdict: Verdict::Invalid(format!("{}: {why}", file.display())),
                    method,
                });
            }
        };
        let reply =
            channel
                .config_test(document)
                .await
                .map_err(|source| ValidateError::ConfigTest {
                    file: file.to_path_buf(),
                    source,
                })?;
        let verdict = if reply.outcome.is_ok() {
            Verdict::Valid
        } else {
            Verdict::Invalid(reply.text)
        };
        Ok(Validation { verdict, method })
    }
}

/// Picks `{"Dhcp4": {...}}` out of a whole expanded file: config-test takes
/// exactly that one key (and refuses the `hash` key config-get adds).
pub fn service_document(json: &str, service: Service) -> Result<Box<RawValue>, String> {
    let top: IndexMap<String, Box<RawValue>> =
        serde_json::from_str(json).map_err(|e| format!("the top level is not a map ({e})"))?;
    let key = service.config_key();
    let body = top
        .get(key)
        .ok_or_else(|| format!("no \"{key}\" map at the top level"))?;
    let mut document = IndexMap::new();
    document.insert(key, body);
    serde_json::value::to_raw_value(&document).map_err(|e| e.to_string())
}

/// Kea's own words from a failed `-t` run: the "Error encountered:" or
/// "Syntax check failed with:" line, else the ERROR log lines, else all.
fn kea_error_text(stderr: &str, stdout: &str) -> String {
    const PREFIXES: [&str; 2] = ["Error encountered: ", "Syntax check failed with: "];
    let summary: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter_map(|line| {
            PREFIXES
                .iter()
                .find_map(|p| line.split_once(p).map(|(_, rest)| rest))
        })
        .collect();
    if !summary.is_empty() {
        return summary.join("; ");
    }
    let errors: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|line| line.contains(" ERROR ") || line.contains(" FATAL "))
        .collect();
    if !errors.is_empty() {
        return errors.join("; ");
    }
    let all = format!("{}{}", stderr.trim(), stdout.trim());
    if all.is_empty() {
        "the validator failed without saying why".into()
    } else {
        all
    }
}

/// Finds an executable in PATH, then in the sbin directories.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_prefers_keas_summary_line() {
        let cases = [
            (
                "Syntax check failed with: syn.json:1.24: syntax error, unexpected }, expecting ]\n",
                "",
                "syn.json:1.24: syntax error, unexpected }, expecting ]",
            ),
            (
                "Error encountered: subnet configuration failed: bad pool (bad.json:1:23)\n",
                "2026 INFO x\n2026 ERROR [kea] DHCP4_PARSER_FAIL failed\n",
                "subnet configuration failed: bad pool (bad.json:1:23)",
            ),
            (
                "",
                "2026 ERROR [kea] DHCP4_PARSER_FAIL failed\n",
                "2026 ERROR [kea] DHCP4_PARSER_FAIL failed",
            ),
            ("", "", "the validator failed without saying why"),
        ];
        for (stderr, stdout, expected) in cases {
            assert_eq!(kea_error_text(stderr, stdout), expected);
        }
    }

    #[test]
    fn service_document_keeps_only_the_service_key() {
        let json = r#"{"Dhcp4": {"subnet4": []}, "Logging": {}, "hash": "X"}"#;
        let document = service_document(json, Service::Dhcp4).expect("document");
        assert_eq!(document.get(), r#"{"Dhcp4":{"subnet4": []}}"#);
        assert!(service_document(json, Service::Dhcp6).is_err());
        assert!(service_document("[1]", Service::Dhcp4).is_err());
    }
}
