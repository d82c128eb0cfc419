//! The JSON read API: the fleet, each server's versions and events, one
//! version's config, the diff of two versions, storage figures, health.

use super::ApiError;
use crate::central::diff::{Summary, load_diff};
use crate::central::ingest::Central;
use crate::central::store::{Store, VersionInfo};
use crate::central::{pairs, review, secrets};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

/// Versions per page unless `limit` says otherwise, and the most a page holds.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

pub async fn servers(State(central): State<Arc<Central>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"servers": central.store.servers().await?})))
}

pub async fn versions(
    State(central): State<Arc<Central>>,
    Path((server, service)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let limit = limit_param(&params)?;
    let before = int_param(&params, "before")?;
    known_server(&central.store, &server, &service).await?;
    let versions = central
        .store
        .versions(&server, &service, before, limit)
        .await?;
    let next_before = match versions.last() {
        Some(last) if versions.len() as i64 == limit && last.number > 1 => Some(last.number),
        _ => None,
    };
    Ok(Json(
        json!({"server": server, "service": service, "versions": versions, "next_before": next_before}),
    ))
}

pub async fn version(
    State(central): State<Arc<Central>>,
    Path((server, service, number)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let number = parse_int("version number", &number)?;
    let Some(stored) = central.store.version(&server, &service, number).await? else {
        return Err(not_found(format!(
            "no version {number} of {server}/{service}"
        )));
    };
    #[derive(Serialize)]
    struct Answer {
        server: String,
        service: String,
        version: VersionInfo,
        findings: Vec<review::Finding>,
        config: Box<RawValue>,
    }
    let not_json = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored config is not JSON: {e}"),
        )
    };
    // Secrets never leave the central; a large config is parsed off the async threads.
    let (info, config_json) = (stored.info, stored.config_json);
    let (redacted, findings) = tokio::task::spawn_blocking(move || {
        let mut config: Value = serde_json::from_str(&config_json)?;
        let findings = review::review(&config);
        secrets::redact(&mut config);
        serde_json::to_string(&config).map(|text| (text, findings))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(not_json)?;
    let config = RawValue::from_string(redacted).map_err(not_json)?;
    Ok(Json(Answer {
        server,
        service,
        version: info,
        findings,
        config,
    })
    .into_response())
}

pub async fn diff(
    State(central): State<Arc<Central>>,
    Path((server, service)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let from = int_param(&params, "from")?
        .ok_or_else(|| bad_request("query parameter `from` (a version number) is required"))?;
    let to = int_param(&params, "to")?
        .ok_or_else(|| bad_request("query parameter `to` (a version number) is required"))?;
    let (from, to, changes) = load_diff(&central.store, &server, &service, from, to).await?;
    let summary = Summary::of(&changes);
    Ok(Json(
        json!({"server": server, "service": service, "from": from, "to": to, "summary": summary, "changes": changes}),
    ))
}

pub async fn events(
    State(central): State<Arc<Central>>,
    Path((server, service)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let limit = limit_param(&params)?;
    known_server(&central.store, &server, &service).await?;
    let events = central.store.events(&server, &service, limit).await?;
    Ok(Json(
        json!({"server": server, "service": service, "events": events}),
    ))
}

/// `GET /v1/ha`: the fleet's HA relationships and what differs between partners.
pub async fn ha(State(central): State<Arc<Central>>) -> Result<Json<Value>, ApiError> {
    let relationships = pairs::fleet_relationships(&central.store).await?;
    Ok(Json(json!({ "relationships": relationships })))
}

pub async fn stats(State(central): State<Arc<Central>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"backend": central.store.backend(), "storage": central.store.stats().await?}),
    ))
}

pub async fn healthz(State(central): State<Arc<Central>>) -> Response {
    let backend = central.store.backend();
    match central.store.ping().await {
        Ok(()) => Json(json!({"status": "ok", "database": backend})).into_response(),
        Err(error) => {
            tracing::error!("health check: {error}");
            let body =
                json!({"status": "unavailable", "database": backend, "error": error.to_string()});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn known_server(store: &Store, server: &str, service: &str) -> Result<(), ApiError> {
    match store.server(server, service).await? {
        Some(_) => Ok(()),
        None => Err(not_found(format!("no events from {server}/{service}"))),
    }
}

fn limit_param(params: &HashMap<String, String>) -> Result<i64, ApiError> {
    match int_param(params, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        Some(_) => Err(bad_request(format!(
            "query parameter `limit` must be 1 to {MAX_LIMIT}"
        ))),
    }
}

fn int_param(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(text) => parse_int(&format!("query parameter `{name}`"), text).map(Some),
    }
}

fn parse_int(what: &str, text: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| bad_request(format!("{what} must be an integer, got {text:?}")))
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, message)
}
