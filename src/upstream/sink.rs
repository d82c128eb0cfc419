//! Where events are delivered: the HTTP(S) upstream and exec hooks. Each
//! answer becomes a [`Disposition`] by a pure rule (`classify`).

use super::config::{HookConfig, UpstreamConfig};
use crate::http_client::{self, ClientError, ClientOptions};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

/// Bodies above this are gzip-encoded.
const GZIP_ABOVE: usize = 64 * 1024;
/// Longest wait between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Stored by the receiver (2xx): forget the event.
    Delivered,
    /// Not now (connection error, timeout, 408, 429, 5xx): try again, after
    /// `after` when the receiver said so.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// 401 or 403: the receiver does not take this agent's token (rotated
    /// on the central's side?). Not the event's fault: retried with the
    /// backoff until someone fixes the token, never buried.
    Unauthorized { why: String },
    /// Refused as sent (other 4xx): move to dead/ with this reply.
    Dead { reply: String },
}

/// Maps an HTTP answer to what to do. `retry_after` is the header's value.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now: SystemTime,
) -> Disposition {
    match status {
        200..=299 => Disposition::Delivered,
        408 | 429 | 500..=599 => Disposition::Retry {
            after: retry_after.and_then(|value| parse_retry_after(value, now)),
            why: format!("HTTP {status}: {}", excerpt(body)),
        },
        401 | 403 => Disposition::Unauthorized {
            why: format!(
                "HTTP {status}: {} (the receiver refuses this agent's token: check [upstream] token_file against the central's tokens; the events wait in the outbox)",
                excerpt(body)
            ),
        },
        _ => Disposition::Dead {
            reply: format!("HTTP {status}\n{body}"),
        },
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate(value)?;
    Some(when.duration_since(now).unwrap_or_default())
}

/// RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") via humantime's RFC 3339 parser.
fn httpdate(value: &str) -> Option<SystemTime> {
    let mut parts = value.split_whitespace().skip(1);
    let (day, month, year, time) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    humantime::parse_rfc3339(&format!("{year}-{month:02}-{day:0>2}T{time}Z")).ok()
}

/// Delay before attempt `attempt` (1-based): exponential from 500 ms,
/// capped, with `jitter` in 0..1 spreading agents apart; at least what the
/// receiver asked for.
pub fn retry_delay(attempt: u32, asked: Option<Duration>, jitter: f64) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1u32 << attempt.saturating_sub(1).min(8));
    let base = base.min(MAX_RETRY_DELAY);
    let jittered = base.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
    match asked {
        Some(asked) => asked.min(MAX_RETRY_DELAY * 10).max(jittered),
        None => jittered,
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Why a sink could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot read token file {path}: {source}")]
    TokenRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "token file {path} is readable by everyone (mode {mode:o}): chmod 600 it (or 640 with the agent's group)"
    )]
    TokenWorldReadable { path: PathBuf, mode: u32 },
    #[error("upstream {url}: {source}")]
    Client {
        url: String,
        #[source]
        source: ClientError,
    },
    #[error(
        "hook command is empty: give at least the program, e.g. command = [\"/usr/local/bin/notify-ipam\"]"
    )]
    EmptyHook,
}

/// The HTTP(S) upstream.
#[derive(Clone)]
pub struct HttpSink {
    url: String,
    client: reqwest::Client,
    token: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("HttpSink")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// Reads the token (refusing a world-readable file) and TLS files now.
    pub fn new(config: &UpstreamConfig) -> Result<HttpSink, SinkError> {
        let token = config.token_file.as_deref().map(read_token).transpose()?;
        let options = ClientOptions {
            ca_file: config.ca_file.clone(),
            client_cert: config.client_cert.clone(),
            client_key: config.client_key.clone(),
            timeout: config.timeout,
        };
        let client =
            http_client::build(&config.url, &options).map_err(|source| SinkError::Client {
                url: config.url.clone(),
                source,
            })?;
        Ok(HttpSink {
            url: config.url.clone(),
            client,
            token,
            timeout: config.timeout,
        })
    }

    /// The receiver's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs the event in file `path`; `last` (nothing queued behind it) asks the receiver
    /// to close the connection after its answer, so none is left for the pool to reap.
    pub async fn post(&self, id: &str, path: &Path, last: bool) -> Disposition {
        let (body, gzipped) = match read_body(path).await {
            Ok(body) => body,
            Err(error) => {
                return Disposition::Retry {
                    after: None,
                    why: format!("cannot read the queued event {}: {error}", path.display()),
                };
            }
        };
        // Large configs take time to upload and store: a MiB a second on top
        // (of the body as stored; gzip shrinks the upload, not the parsing).
        let sent = if gzipped { body.len() * 8 } else { body.len() };
        let timeout = self.timeout + Duration::from_secs((sent >> 20) as u64);
        let mut request = self
            .client
            .post(&self.url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", id)
            .header(
                reqwest::header::USER_AGENT,
                concat!("kea-sync-agent/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if gzipped {
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        if last {
            request = request.header(reqwest::header::CONNECTION, "close");
        }
        request = request.body(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let text = response.text().await.unwrap_or_default();
                classify(status, retry_after.as_deref(), &text, SystemTime::now())
            }
            Err(error) => Disposition::Retry {
                after: None,
                why: format!(
                    "{}; check that kea-sync-central runs there, or [upstream] url",
                    http_client::why_failed(&error)
                ),
            },
        }
    }
}

/// The body of the event in `path`, gzip-encoded (true) above
/// `GZIP_ABOVE`: streamed from the file, so only the compressed bytes are
/// held, on a blocking thread, so the agent's other work goes on.
async fn read_body(path: &Path) -> std::io::Result<(Vec<u8>, bool)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        gzip_from(file)
    })
    .await
    .map_err(std::io::Error::other)?
}

fn gzip_from(mut file: impl std::io::Read) -> std::io::Result<(Vec<u8>, bool)> {
    let mut head = Vec::with_capacity(GZIP_ABOVE + 1);
    (&mut file)
        .take(GZIP_ABOVE as u64 + 1)
        .read_to_end(&mut head)?;
    if head.len() <= GZIP_ABOVE {
        return Ok((head, false));
    }
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(1 << 20), flate2::Compression::fast());
    encoder.write_all(&head)?;
    std::io::copy(&mut file, &mut encoder)?;
    Ok((encoder.finish()?, true))
}

fn read_token(path: &Path) -> Result<String, SinkError> {
    let meta = std::fs::metadata(path).map_err(|source| SinkError::TokenRead {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(SinkError::TokenWorldReadable {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| SinkError::TokenRead {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.trim().to_string())
}

/// A command run with the event on stdin; exit 0 means delivered.
#[derive(Debug, Clone)]
pub struct HookSink {
    command: Vec<String>,
    timeout: Duration,
}

impl HookSink {
    /// Checks the command is not empty.
    pub fn new(config: &HookConfig) -> Result<HookSink, SinkError> {
        if config.command.is_empty() {
            return Err(SinkError::EmptyHook);
        }
        Ok(HookSink {
            command: config.command.clone(),
            timeout: config.timeout,
        })
    }

    /// The program, for messages.
    pub fn name(&self) -> &str {
        self.command.first().map(String::as_str).unwrap_or("")
    }

    /// Runs the hook once with the event in file `path` on stdin. Failures
    /// retry like a 5xx.
    pub async fn run(&self, path: &Path) -> Disposition {
        let retry = |why: String| Disposition::Retry { after: None, why };
        let Some((program, args)) = self.command.split_first() else {
            return retry("empty hook command".into());
        };
        // Opened first: a hook fed nothing would "deliver" an empty event.
        let mut file = match tokio::fs::File::open(path).await {
            Ok(file) => file,
            Err(error) => {
                return retry(format!(
                    "cannot read the queued event {}: {error}",
                    path.display()
                ));
            }
        };
        let spawned = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => return retry(format!("cannot run hook {program}: {error}")),
        };
        let io = async {
            if let Some(mut stdin) = child.stdin.take() {
                // A hook that does not read its input is its own business.
                let _ = tokio::io::copy(&mut file, &mut stdin).await;
                drop(stdin);
            }
            child.wait_with_output().await
        };
        match tokio::time::timeout(self.timeout, io).await {
            Err(_) => retry(format!(
                "hook {program} did not finish within {} s",
                self.timeout.as_secs()
            )),
            Ok(Err(error)) => retry(format!("hook {program}: {error}")),
            Ok(Ok(output)) if output.status.success() => Disposition::Delivered,
            Ok(Ok(output)) => retry(format!(
                "hook {program} exited with {}: {}",
                output.status,
                excerpt(String::from_utf8_lossy(&output.stderr).trim())
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let retry = |after: Option<u64>| move |d: &Disposition| matches!(d, Disposition::Retry { after: a, .. } if *a == after.map(Duration::from_secs));
        type Check = Box<dyn Fn(&Disposition) -> bool>;
        let cases: [(u16, Option<&str>, Check); 10] = [
            (200, None, Box::new(|d| *d == Disposition::Delivered)),
            (201, None, Box::new(|d| *d == Disposition::Delivered)),
            (408, None, Box::new(retry(None))),
            (429, Some("7"), Box::new(retry(Some(7)))),
            (
                503,
                Some("Sun, 06 Nov 1994 08:49:47 GMT"),
                Box::new(retry(Some(10))),
            ),
            (500, Some("garbage"), Box::new(retry(None))),
            (
                400,
                None,
                Box::new(
                    |d| matches!(d, Disposition::Dead { reply } if reply.starts_with("HTTP 400")),
                ),
            ),
            (
                401,
                None,
                Box::new(
                    |d| matches!(d, Disposition::Unauthorized { why } if why.contains("token_file")),
                ),
            ),
            (
                403,
                None,
                Box::new(|d| matches!(d, Disposition::Unauthorized { .. })),
            ),
            (
                413,
                None,
                Box::new(|d| matches!(d, Disposition::Dead { .. })),
            ),
        ];
        for (status, retry_after, check) in cases {
            let disposition = classify(status, retry_after, "body", now);
            assert!(
                check(&disposition),
                "{status} {retry_after:?} -> {disposition:?}"
            );
        }
    }

    #[test]
    fn retry_delay_grows_caps_and_honours_the_receiver() {
        assert_eq!(retry_delay(1, None, 1.0), Duration::from_millis(500));
        assert_eq!(retry_delay(2, None, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(1, None, 0.0), Duration::from_millis(250));
        assert_eq!(retry_delay(30, None, 1.0), MAX_RETRY_DELAY);
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(7)), 0.5),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn small_bodies_are_not_compressed() {
        let (body, gzipped) = gzip_from(&b"{}"[..]).expect("read");
        assert_eq!((body.as_slice(), gzipped), (&b"{}"[..], false));
        let edge = vec![b'a'; GZIP_ABOVE];
        assert_eq!(gzip_from(edge.as_slice()).expect("read"), (edge, false));
        let big = vec![b'a'; 3 * GZIP_ABOVE + 1];
        let (body, gzipped) = gzip_from(big.as_slice()).expect("read");
        assert!(gzipped && body.len() < big.len());
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut unzipped)
            .expect("gunzip");
        assert_eq!(unzipped, big, "the whole body, head and rest, in order");
    }

    #[tokio::test]
    async fn hook_is_not_run_without_its_event_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ran = dir.path().join("ran");
        let hook = HookSink::new(&HookConfig {
            command: vec!["touch".into(), ran.display().to_string()],
            timeout: Duration::from_secs(5),
        })
        .expect("hook");
        let missing = dir.path().join("01-missing.json");
        match hook.run(&missing).await {
            Disposition::Retry { why, .. } => assert!(why.contains("01-missing.json"), "{why}"),
            other => panic!("an unreadable event must be retried, got {other:?}"),
        }
        assert!(!ran.exists(), "the hook ran with no event on stdin");
        let event = dir.path().join("02-event.json");
        std::fs::write(&event, "{}").expect("write");
        assert!(matches!(hook.run(&event).await, Disposition::Delivered));
        assert!(ran.exists());
    }

    #[test]
    fn world_readable_token_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = read_token(&path).expect_err("world-readable");
        assert!(!error.to_string().contains("s3cret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_token(&path).expect("token"), "s3cret");
    }
}
