//! The way of one pushed event into the store, in order:
//! 1. bearer token -> the server's identity (401 without/unknown),
//! 2. body read with a bound (413) and a deadline (408), gzip undone with a bound (413),
//! 3. JSON parsed and checked against the v1 schema (400 naming the field),
//! 4. the config canonicalised and hashed (the body is stored once per hash),
//! 5. one transaction: repeat ids store nothing (200), new ones everything (201);
//!    a database that fails answers 503 so the agent retries.

use super::access::{self, ReadRefused};
use super::body::{self, BodyError};
use super::canonical::CanonicalConfig;
use super::event::{self, Event, EventError};
use super::secrets;
use super::store::{self, ConfigBody, Incoming, Store, StoreError, Stored};
use super::time::now_millis;
use super::tokens::Tokens;
use super::users::Users;
use crate::event::Kind;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Why an event was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing bearer token (Authorization: Bearer TOKEN)")]
    MissingToken,
    #[error("unknown bearer token")]
    UnknownToken,
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("body is not JSON: {0}")]
    Json(serde_json::Error),
    #[error("not a valid v1 event: {0}")]
    Schema(#[from] EventError),
    #[error("Idempotency-Key {header:?} is not the event's id {id:?}")]
    IdempotencyKey { header: String, id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error while {0}")]
    Internal(String),
}

impl IngestError {
    /// The HTTP status the agent gets (docs/upstream-api.md, "The answer").
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::MissingToken | IngestError::UnknownToken => StatusCode::UNAUTHORIZED,
            IngestError::Body(BodyError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Body(BodyError::UnsupportedEncoding(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::Body(BodyError::TimedOut { .. }) => StatusCode::REQUEST_TIMEOUT,
            IngestError::Body(BodyError::Read(_)) | IngestError::Body(BodyError::BadGzip(_)) => {
                StatusCode::BAD_REQUEST
            }
            IngestError::Json(_) | IngestError::Schema(_) | IngestError::IdempotencyKey { .. } => {
                StatusCode::BAD_REQUEST
            }
            IngestError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The event field at fault, for 400 answers.
    pub fn field(&self) -> Option<&str> {
        match self {
            IngestError::Schema(error) => Some(&error.field),
            IngestError::IdempotencyKey { .. } => Some("id"),
            _ => None,
        }
    }
}

/// Bodies up to this size (not gzipped) are parsed on the request's own task;
/// larger ones go to the blocking pool, a few at a time.
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// `--body-timeout`'s default: a 64 MB body at ~1 MB/s, or a few MB on a poor link.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Content hashes remembered as stored, so most events skip the pre-check query.
const KNOWN_CONFIGS_REMEMBERED: usize = 100_000;

/// What the central needs to take events and answer reads.
pub struct Central {
    pub store: Store,
    /// `None`: no authentication, the server identity is `agent.host`.
    tokens: Option<Tokens>,
    /// Who may read (`--users-file`); `None`: reads are open.
    users: Option<Users>,
    /// `--store-secrets`: false redacts secrets before storing.
    store_secrets: bool,
    /// Bound on the body, before and after gzip.
    max_body_bytes: usize,
    /// The whole body must arrive within this (`--body-timeout`).
    body_timeout: Duration,
    /// Bounds the CPU-heavy steps (gunzip, parse, hash, compress) running at once.
    cpu: Semaphore,
    /// Content hashes known to be stored (config bodies are never deleted).
    known_configs: Mutex<HashSet<String>>,
}

/// An event taken: stored now or stored before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    pub server: String,
    pub service: String,
    pub kind: Kind,
    pub stored: Stored,
}

impl Central {
    /// A central over `store`; `tokens: None` accepts events from anyone.
    pub fn new(store: Store, tokens: Option<Tokens>, max_body_bytes: usize) -> Central {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Central {
            store,
            tokens,
            users: None,
            store_secrets: true,
            max_body_bytes,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            cpu: Semaphore::new(cpus),
            known_configs: Mutex::new(HashSet::new()),
        }
    }

    /// Reads need a user of `users` (`--users-file`).
    pub fn with_readers(self, users: Option<Users>) -> Central {
        Central { users, ..self }
    }

    /// `--body-timeout`: a body not whole within `timeout` is answered 408.
    pub fn with_body_timeout(self, body_timeout: Duration) -> Central {
        Central {
            body_timeout,
            ..self
        }
    }

    /// `--store-secrets false`: secrets are redacted before they are stored.
    pub fn with_store_secrets(self, store_secrets: bool) -> Central {
        Central {
            store_secrets,
            ..self
        }
    }

    /// Whether a read with `headers` is allowed.
    pub fn may_read(&self, headers: &HeaderMap) -> Result<(), ReadRefused> {
        access::may_read(self.users.as_ref(), self.tokens.as_ref(), headers)
    }

    /// Takes one `POST /v1/events` request.
    pub async fn ingest(&self, headers: &HeaderMap, body: Body) -> Result<Accepted, IngestError> {
        let identity = authenticate(self.tokens.as_ref(), headers)?;
        let raw = body::read_within(body, self.max_body_bytes, self.body_timeout).await?;
        let encoding = header_text(headers, header::CONTENT_ENCODING.as_str());
        let limit = self.max_body_bytes;
        let keep = self.store_secrets;
        let (event, canonical) = if encoding.is_none() && raw.len() <= INLINE_PARSE_BYTES && keep {
            parse(None, raw, limit)?
        } else {
            self.cpu_bound("parsing the event", move || {
                parse_keeping(encoding.as_deref(), raw, limit, keep)
            })
            .await??
        };
        if let Some(key) = header_text(headers, "idempotency-key")
            && key != event.id
        {
            return Err(IngestError::IdempotencyKey {
                header: key,
                id: event.id,
            });
        }
        let server = identity.unwrap_or_else(|| event.agent_host.clone());
        let accepted = Accepted {
            id: event.id.clone(),
            server: server.clone(),
            service: event.service.clone(),
            kind: event.kind,
            stored: Stored::Repeat,
        };
        let config = match canonical {
            None => None,
            Some(CanonicalConfig { hash, json }) => {
                let json_bytes = i64::try_from(json.len()).unwrap_or(i64::MAX);
                // Compress only a body the store lacks, and not for a repeated event.
                let gzip = if self.is_known(&hash) {
                    None
                } else {
                    let (event_known, config_known) =
                        self.store.precheck(&event.id, Some(&hash)).await?;
                    if event_known {
                        return Ok(accepted);
                    }
                    match config_known {
                        true => None,
                        false => Some(
                            self.cpu_bound("compressing the config", move || {
                                store::gzip(json.as_bytes())
                            })
                            .await?,
                        ),
                    }
                };
                Some(ConfigBody {
                    hash,
                    json_bytes,
                    gzip,
                })
            }
        };
        let hash = config.as_ref().map(|c| c.hash.clone());
        let incoming = Incoming {
            server,
            event,
            config,
            received_ms: now_millis(),
        };
        match self.store.ingest(incoming).await {
            Ok(stored) => {
                if let Some(hash) = hash {
                    self.remember(hash);
                }
                Ok(Accepted { stored, ..accepted })
            }
            Err(error) => {
                // Should the database have lost the body, the retry checks again.
                if let Some(hash) = hash {
                    self.known().remove(&hash);
                }
                Err(error.into())
            }
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known_configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_known(&self, hash: &str) -> bool {
        self.known().contains(hash)
    }

    fn remember(&self, hash: String) {
        let mut known = self.known();
        if known.len() >= KNOWN_CONFIGS_REMEMBERED {
            known.clear();
        }
        known.insert(hash);
    }

    async fn cpu_bound<T: Send + 'static>(
        &self,
        doing: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, IngestError> {
        let _permit = self
            .cpu
            .acquire()
            .await
            .map_err(|_| IngestError::Internal(doing.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| IngestError::Internal(doing.to_string()))
    }
}

/// The identity a request's bearer token gives: `Ok(None)` when no tokens are configured.
pub fn authenticate(
    tokens: Option<&Tokens>,
    headers: &HeaderMap,
) -> Result<Option<String>, IngestError> {
    let Some(tokens) = tokens else {
        return Ok(None);
    };
    let value =
        header_text(headers, header::AUTHORIZATION.as_str()).ok_or(IngestError::MissingToken)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(IngestError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(IngestError::MissingToken);
    }
    tokens
        .name_of(token.trim())
        .map(|name| Some(name.to_string()))
        .ok_or(IngestError::UnknownToken)
}

/// Steps 2-4 for a body already read: decode, parse, check, canonicalise.
/// The config stays raw text until canonicalised: no value tree of 50 MB.
pub fn parse(
    encoding: Option<&str>,
    raw: Vec<u8>,
    limit: usize,
) -> Result<(Event, Option<CanonicalConfig>), IngestError> {
    parse_keeping(encoding, raw, limit, true)
}

/// [`parse`], with the config's secrets redacted unless `keep_secrets`
/// (`--store-secrets false`: they are then never stored).
pub fn parse_keeping(
    encoding: Option<&str>,
    raw: Vec<u8>,
    limit: usize,
    keep_secrets: bool,
) -> Result<(Event, Option<CanonicalConfig>), IngestError> {
    let json = body::decode(encoding, raw, limit)?;
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(&json) {
                Err(syntax) => IngestError::Json(syntax),
                Ok(_) => IngestError::Schema(event::not_an_object()),
            },
        );
    }
    let mut deserializer = serde_json::Deserializer::from_slice(&json);
    let decoded = event::decode::<&RawValue, _>(&mut deserializer);
    let (event, config) = match decoded {
        Ok(decoded) => decoded,
        // A syntax error is the JSON's fault, not the schema's: say where.
        Err(error) => {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(&json) {
                    Err(syntax) if !event::is_schema_error(&syntax) => IngestError::Json(syntax),
                    _ => IngestError::Schema(error),
                },
            );
        }
    };
    deserializer.end().map_err(IngestError::Json)?;
    let canonical = match config.map(RawValue::get) {
        None | Some("null") => None,
        Some(text) if !text.starts_with('{') => {
            return Err(EventError {
                field: "config".into(),
                problem: event::NOT_A_CONFIG.into(),
            }
            .into());
        }
        Some(text) if keep_secrets => {
            Some(CanonicalConfig::of_json(text).map_err(IngestError::Json)?)
        }
        Some(text) => {
            let mut config: serde_json::Value =
                serde_json::from_str(text).map_err(IngestError::Json)?;
            secrets::redact(&mut config);
            Some(CanonicalConfig::of_json(&config.to_string()).map_err(IngestError::Json)?)
        }
    };
    Ok((event, canonical))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_tokens_name_the_server() {
        let tokens = Tokens::parse("kea1 s3cret\n").expect("should succeed");
        let mut headers = HeaderMap::new();
        assert!(matches!(
            authenticate(Some(&tokens), &headers),
            Err(IngestError::MissingToken)
        ));
        assert_eq!(authenticate(None, &headers).expect("should succeed"), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert!(matches!(
            authenticate(Some(&tokens), &headers),
            Err(IngestError::UnknownToken)
        ));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer s3cret"),
        );
        assert_eq!(
            authenticate(Some(&tokens), &headers)
                .expect("should succeed")
                .as_deref(),
            Some("kea1")
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(matches!(
            authenticate(Some(&tokens), &headers),
            Err(IngestError::MissingToken)
        ));
    }

    #[test]
    fn statuses_follow_the_contract() {
        let too_large = IngestError::Body(BodyError::TooLarge {
            limit: 1,
            decompressed: true,
        });
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let bad_json = parse(None, b"{\"schema\":".to_vec(), 100).expect_err("should be refused");
        assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
        assert!(bad_json.to_string().contains("line 1"), "{bad_json}");
        let schema = parse(None, b"{}".to_vec(), 100).expect_err("should be refused");
        assert_eq!(schema.field(), Some("schema"));
        let store = IngestError::Store(StoreError::Unavailable {
            backend: "sqlite",
            detail: "disk full".into(),
        });
        assert_eq!(store.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
