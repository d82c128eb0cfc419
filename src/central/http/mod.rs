//! The HTTP face of the central: `POST /v1/events` (the upstream contract),
//! the JSON read API (`read.rs`) and the web page (`../web`), served over
//! plain TCP or TLS until the shutdown future completes, every connection
//! bounded in time and number (`limits.rs`, `listen.rs`).

pub mod limits;
mod listen;
mod read;

use super::access::ReadRefused;
use super::ingest::{Accepted, Central, IngestError};
use super::store::Stored;
use super::web;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use limits::ConnectionLimits;
pub use listen::SHUTDOWN_GRACE;

/// Serves `central` on `listener` (TLS when `tls` is given) within `limits`
/// until `shutdown` completes; requests in flight then get [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    central: Arc<Central>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    listen::serve_connections(listener, tls, router(central), limits, shutdown).await;
}

/// Every route of the central: posting events and the health check for
/// anyone who may (the ingest checks agent tokens), the rest for readers.
pub fn router(central: Arc<Central>) -> Router {
    let reads = Router::new()
        .route("/v1/servers", get(read::servers))
        .route(
            "/v1/servers/{server}/{service}/versions",
            get(read::versions),
        )
        .route(
            "/v1/servers/{server}/{service}/versions/{number}",
            get(read::version),
        )
        .route("/v1/servers/{server}/{service}/diff", get(read::diff))
        .route("/v1/servers/{server}/{service}/events", get(read::events))
        .route("/v1/stats", get(read::stats))
        .route("/v1/ha", get(read::ha))
        .merge(web::routes())
        .route_layer(middleware::from_fn_with_state(
            central.clone(),
            require_reader,
        ));
    Router::new()
        .route("/v1/events", post(post_event))
        .route("/healthz", get(read::healthz))
        .merge(reads)
        .with_state(central)
}

/// Lets a read through only for a user of `--users-file` (when given),
/// never for an agent's token.
async fn require_reader(
    State(central): State<Arc<Central>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match central.may_read(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => {
            tracing::warn!(%peer, path = request.uri().path(), "read refused: {refused}");
            let status = match refused {
                ReadRefused::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                ReadRefused::AgentToken => StatusCode::FORBIDDEN,
            };
            let mut response = ApiError::new(status, refused.to_string()).into_response();
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"kea-sync-central\", charset=\"UTF-8\""),
                );
            }
            response
        }
    }
}

/// The client's address, over TCP or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

async fn post_event(
    State(central): State<Arc<Central>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match central.ingest(&headers, body).await {
        Ok(accepted) => answer_accepted(accepted),
        Err(error) => {
            let status = error.status();
            match &error {
                IngestError::Store(_) => tracing::error!(%peer, status = status.as_u16(),
                    "database unavailable, answered 503 so the agent retries: {error}"),
                IngestError::Internal(_) => {
                    tracing::error!(%peer, status = status.as_u16(), "event not stored: {error}")
                }
                _ => tracing::warn!(%peer, status = status.as_u16(), "event refused: {error}"),
            }
            ApiError {
                status,
                message: error.to_string(),
                field: error.field().map(str::to_string),
            }
            .into_response()
        }
    }
}

fn answer_accepted(accepted: Accepted) -> Response {
    let Accepted {
        id,
        server,
        service,
        kind,
        stored,
    } = accepted;
    let status = match stored {
        Stored::New => {
            tracing::info!(%id, %server, %service, kind = kind.as_str(), "stored event");
            StatusCode::CREATED
        }
        Stored::Repeat => {
            tracing::info!(%id, %server, %service, "event already stored, nothing stored again");
            StatusCode::OK
        }
    };
    let body =
        json!({"id": id, "server": server, "service": service, "stored": stored == Stored::New});
    (status, axum::Json(body)).into_response()
}

/// A JSON error answer: `{"error": "...", "field": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message});
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still come: this connection is done.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<super::diff::DiffError> for ApiError {
    fn from(error: super::diff::DiffError) -> ApiError {
        use super::diff::DiffError;
        match error {
            DiffError::Store(error) => error.into(),
            DiffError::NoSuchVersion { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, error.to_string())
            }
            DiffError::NotJson(_) | DiffError::Failed(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        }
    }
}

impl From<super::store::StoreError> for ApiError {
    fn from(error: super::store::StoreError) -> ApiError {
        tracing::error!("database unavailable, answered 503: {error}");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
    }
}
