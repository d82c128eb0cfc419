//! The admin API's HTTP/1.1 server (hyper), on the unix admin socket and,
//! read-only, on `[agent] metrics_listen`. One task per connection, each
//! with a header deadline: a client that connects and sends nothing holds
//! only its own task. A shutdown stops accepting; connections in flight end
//! by themselves (every answer is quick, an apply is bounded by its check).

use super::view::{self, OutboxNow};
use super::{ApplyRequest, ApplySender, SharedBoard};
use crate::kea::Service;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::upstream::outbox::{Entry, Revive};
use crate::upstream::{Deliveries, OutboxHandle};
use bytes_body::Body;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// How long a client may take to send its request's head.
const HEADER_DEADLINE: Duration = Duration::from_secs(10);
/// Largest request body (a retry's list of ids).
const MAX_BODY: usize = 64 * 1024;

mod bytes_body {
    pub type Body = http_body_util::Full<hyper::body::Bytes>;
}

/// What every connection's handler reads.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub board: SharedBoard,
    pub outbox: OutboxHandle,
    pub deliveries: Deliveries,
    pub metrics: Metrics,
    pub apply: ApplySender,
}

/// Accepts on `listener` until `shutdown`; `read_only` (TCP) serves only
/// the GET endpoints.
pub async fn serve<L: Listener>(
    listener: L,
    state: AdminState,
    read_only: bool,
    mut shutdown: Shutdown,
) {
    loop {
        let stream = tokio::select! {
            () = shutdown.requested() => break,
            accepted = listener.accept_one() => match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!("admin API: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(request, &state, read_only).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_DEADLINE)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!("admin API connection: {error}");
            }
        });
    }
    tracing::debug!("admin API stopped");
}

/// A listener the admin API accepts on (unix socket or TCP).
pub trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_one(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

async fn answer(request: Request<Incoming>, state: &AdminState, read_only: bool) -> Response<Body> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let method = request.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/v1/status") => json_response(StatusCode::OK, &status(state)),
        (Method::GET, "/v1/events") => {
            let limit = param(&query, "limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(50);
            let board = state.board.lock();
            let skip = board.events.len().saturating_sub(limit);
            let events: Vec<Value> = board.events.iter().skip(skip).cloned().collect();
            json_response(StatusCode::OK, &json!({ "events": events }))
        }
        (Method::GET, "/v1/outbox") => json_response(StatusCode::OK, &outbox(state)),
        (Method::GET, "/metrics") => {
            update_outbox_metrics(state);
            Response::builder()
                .header(
                    hyper::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .body(Body::from(state.metrics.encode()))
                .unwrap_or_default()
        }
        (Method::POST, "/v1/apply") if !read_only => apply(state, &query).await,
        (Method::POST, "/v1/outbox/retry") if !read_only => {
            let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(error) => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        &format!("cannot read the body: {error}"),
                    );
                }
            };
            retry(state, &body)
        }
        (_, "/v1/apply" | "/v1/outbox/retry") if read_only => problem(
            StatusCode::FORBIDDEN,
            "read-only listener: apply and retry only on the admin socket",
        ),
        (
            _,
            "/v1/status" | "/v1/events" | "/v1/outbox" | "/metrics" | "/v1/apply"
            | "/v1/outbox/retry",
        ) => problem(StatusCode::METHOD_NOT_ALLOWED, "wrong method for this path"),
        _ => problem(
            StatusCode::NOT_FOUND,
            "no such path: GET /v1/status, /v1/events?limit=N, /v1/outbox, /metrics; POST /v1/apply?service=NAME, /v1/outbox/retry",
        ),
    }
}

fn status(state: &AdminState) -> Value {
    with_outbox(state, |now| {
        let board = state.board.lock();
        view::status(
            &board,
            now,
            |s| state.deliveries.service(s),
            SystemTime::now(),
        )
    })
}

fn outbox(state: &AdminState) -> Value {
    with_outbox(state, |now| {
        view::outbox(now, |id| state.deliveries.attempts(id), SystemTime::now())
    })
}

/// `answer` given what the outbox holds now.
fn with_outbox(state: &AdminState, answer: impl FnOnce(&OutboxNow) -> Value) -> Value {
    let (queued, dead) = outbox_now(state);
    answer(&OutboxNow {
        queued: &queued,
        dead: &dead,
        dropped: state.outbox.dropped(),
    })
}

fn outbox_now(state: &AdminState) -> (Vec<Entry>, Vec<crate::upstream::outbox::DeadEntry>) {
    let queued = state.outbox.entries();
    let dead = state.outbox.dead().unwrap_or_else(|error| {
        tracing::warn!("admin API: {error}");
        Vec::new()
    });
    (queued, dead)
}

/// The outbox's gauges as of now, just before a scrape.
fn update_outbox_metrics(state: &AdminState) {
    let (queued, dead) = outbox_now(state);
    let metrics = &state.metrics;
    metrics.outbox_events.set(queued.len() as i64);
    metrics
        .outbox_bytes
        .set(queued.iter().map(|e| e.bytes as i64).sum());
    let oldest = queued.iter().filter_map(Entry::queued_at).min();
    metrics.outbox_oldest_age.set(
        oldest
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map_or(0.0, |age| age.as_secs_f64()),
    );
    metrics.dead_events.set(dead.len() as i64);
    let dropped = state.outbox.dropped();
    let counted = metrics.dropped_events.get();
    if dropped > counted {
        metrics.dropped_events.inc_by(dropped - counted);
    }
}

async fn apply(state: &AdminState, query: &str) -> Response<Body> {
    let Some(name) = param(query, "service") else {
        return problem(
            StatusCode::BAD_REQUEST,
            "POST /v1/apply?service=dhcp4|dhcp6|d2",
        );
    };
    let service: Service = match name.parse() {
        Ok(service) => service,
        Err(error) => return problem(StatusCode::BAD_REQUEST, &error),
    };
    let (reply, answer) = oneshot::channel();
    if state
        .apply
        .send(ApplyRequest { service, reply })
        .await
        .is_err()
    {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping");
    }
    match answer.await {
        Ok(applied) => json_response(
            StatusCode::OK,
            &serde_json::to_value(applied).unwrap_or_default(),
        ),
        // The daemon dropped the request: it does not manage the service, or it is stopping.
        Err(_) => problem(
            StatusCode::NOT_FOUND,
            &format!(
                "the daemon gave no answer for {service}: it does not manage it, or it is stopping"
            ),
        ),
    }
}

fn retry(state: &AdminState, body: &[u8]) -> Response<Body> {
    #[derive(serde::Deserialize)]
    struct Asked {
        #[serde(default)]
        all: bool,
        #[serde(default)]
        ids: Vec<String>,
    }
    let asked: Asked = match serde_json::from_slice(body) {
        Ok(asked) => asked,
        Err(error) => {
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("body: {{\"all\": true}} or {{\"ids\": [...]}} ({error})"),
            );
        }
    };
    let which = match (asked.all, asked.ids.is_empty()) {
        (true, _) => Revive::All,
        (false, false) => Revive::Ids(asked.ids),
        (false, true) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "give \"all\": true or some \"ids\"",
            );
        }
    };
    match state.outbox.revive(&which) {
        Ok(revived) => {
            for entry in &revived {
                tracing::info!(event = %entry.id, service = %entry.service, sequence = entry.sequence,
                    "dead event queued again (outbox retry)");
            }
            let ids: Vec<&str> = revived.iter().map(|e| e.id.as_str()).collect();
            json_response(StatusCode::OK, &json!({ "queued": ids }))
        }
        Err(error) => problem(StatusCode::CONFLICT, &error.to_string()),
    }
}

/// A query parameter's value.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn problem(status: StatusCode, text: &str) -> Response<Body> {
    json_response(status, &json!({ "error": text }))
}
