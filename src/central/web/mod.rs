//! The web page: server-rendered HTML (no scripts), the fleet at `/`, one
//! server's history at `/servers/{server}/{service}`, a diff at `.../diff`.

mod html;
pub mod render;

use super::diff::load_diff;
use super::http::ApiError;
use super::ingest::Central;
use super::time::now_millis;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::sync::Arc;

/// Versions and events listed on a server's page.
const HISTORY_SHOWN: i64 = 50;

/// The page routes.
pub fn routes() -> Router<Arc<Central>> {
    Router::new()
        .route("/", get(fleet))
        .route("/servers/{server}/{service}", get(server))
        .route("/servers/{server}/{service}/diff", get(diff))
        .route("/ha", get(ha))
}

async fn fleet(State(central): State<Arc<Central>>) -> Response {
    match central.store.servers().await {
        Ok(servers) => Html(render::fleet(&servers, now_millis())).into_response(),
        Err(error) => failed(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
    }
}

async fn server(
    State(central): State<Arc<Central>>,
    Path((server, service)): Path<(String, String)>,
) -> Response {
    let store = &central.store;
    let loaded = async {
        let Some(summary) = store.server(&server, &service).await? else {
            return Ok(None);
        };
        let versions = store
            .versions(&server, &service, None, HISTORY_SHOWN)
            .await?;
        let events = store.events(&server, &service, HISTORY_SHOWN).await?;
        let current = match summary.version {
            Some(number) => store.version(&server, &service, number).await?,
            None => None,
        };
        Ok::<_, super::store::StoreError>(Some((summary, versions, events, current)))
    };
    match loaded.await {
        Ok(Some((summary, versions, events, current))) => {
            let findings = match current {
                Some(stored) => super::review::review_stored(stored.config_json).await,
                None => Vec::new(),
            };
            Html(render::server(
                &summary,
                &versions,
                &events,
                &findings,
                now_millis(),
            ))
            .into_response()
        }
        Ok(None) => failed(
            StatusCode::NOT_FOUND,
            &format!("No events from {server} / {service}."),
        ),
        Err(error) => failed(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
    }
}

async fn diff(
    State(central): State<Arc<Central>>,
    Path((server, service)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let number = |name: &str| params.get(name).and_then(|v| v.parse::<i64>().ok());
    let (Some(from), Some(to)) = (number("from"), number("to")) else {
        return failed(
            StatusCode::BAD_REQUEST,
            "Give two version numbers: ?from=N&to=M.",
        );
    };
    match load_diff(&central.store, &server, &service, from, to).await {
        Ok((old, new, changes)) => {
            Html(render::diff(&server, &service, &old, &new, &changes)).into_response()
        }
        Err(error) => {
            let error = ApiError::from(error);
            failed(error.status, &error.message)
        }
    }
}

async fn ha(State(central): State<Arc<Central>>) -> Response {
    match super::pairs::fleet_relationships(&central.store).await {
        Ok(relationships) => Html(render::ha(&relationships)).into_response(),
        Err(error) => failed(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
    }
}

fn failed(status: StatusCode, message: &str) -> Response {
    (status, Html(render::error(message))).into_response()
}
