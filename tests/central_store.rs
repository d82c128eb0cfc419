//! The store, on SQLite and on a real PostgreSQL: the same test bodies run on
//! each backend. Events go through the ingest pipeline without HTTP.
#![cfg(feature = "central")]

#[macro_use]
mod central_support;

use axum::body::Body;
use axum::http::HeaderMap;
use central_support::{Backend, TestDb, config_a, config_b, event, reordered};
use kea_sync_agent::central::ingest::{Central, IngestError};
use kea_sync_agent::central::store::{ServerSummary, Store, Stored};
use serde_json::Value;
use std::sync::Arc;

const MAX_BODY: usize = 64 * 1024 * 1024;

async fn post(central: &Central, body: &Value) -> Result<Stored, IngestError> {
    let bytes = serde_json::to_vec(body).expect("should succeed");
    central
        .ingest(&HeaderMap::new(), Body::from(bytes))
        .await
        .map(|a| a.stored)
}

async fn numbers(store: &Store, server: &str, before: Option<i64>, limit: i64) -> Vec<i64> {
    store
        .versions(server, "dhcp4", before, limit)
        .await
        .expect("should succeed")
        .iter()
        .map(|v| v.number)
        .collect()
}

/// The stored state of `server`'s dhcp4.
async fn server_summary(store: &Store, server: &str) -> ServerSummary {
    store
        .server(server, "dhcp4")
        .await
        .expect("should succeed")
        .expect("the server is known")
}

/// Versions, config dedup by content hash, repeats, paging, flags, history.
async fn versions_dedup_and_flags(backend: Backend) {
    let db = TestDb::new(backend);
    let central = db.central(None, MAX_BODY).await;
    let store = &central.store;

    assert_eq!(
        post(&central, &event(1, "kea1", "applied", 1, Some(config_a())))
            .await
            .expect("should succeed"),
        Stored::New
    );
    assert_eq!(
        post(&central, &event(1, "kea1", "applied", 1, Some(config_a())))
            .await
            .expect("should succeed"),
        Stored::Repeat
    );
    let first = store.stats().await.expect("should succeed");
    assert_eq!((first.events, first.versions, first.configs), (1, 1, 1));

    // The same config again, and again with its keys in another order: new
    // versions, no new body.
    post(&central, &event(2, "kea1", "applied", 2, Some(config_a())))
        .await
        .expect("should succeed");
    post(
        &central,
        &event(3, "kea1", "snapshot", 3, Some(reordered(&config_a()))),
    )
    .await
    .expect("should succeed");
    let same = store.stats().await.expect("should succeed");
    assert_eq!((same.events, same.versions, same.configs), (3, 3, 1));
    assert_eq!(same.config_bytes, first.config_bytes);

    post(&central, &event(4, "kea1", "applied", 4, Some(config_b())))
        .await
        .expect("should succeed");
    let more = store.stats().await.expect("should succeed");
    assert_eq!((more.versions, more.configs), (4, 2));
    assert!(more.config_bytes > first.config_bytes);
    assert!(more.config_json_bytes > more.config_bytes / 2, "{more:?}");

    assert_eq!(numbers(store, "kea1", None, 50).await, [4, 3, 2, 1]);
    assert_eq!(numbers(store, "kea1", None, 2).await, [4, 3]);
    assert_eq!(numbers(store, "kea1", Some(3), 2).await, [2, 1]);
    let one = store
        .version("kea1", "dhcp4", 1)
        .await
        .expect("should succeed")
        .expect("should succeed");
    assert_eq!(
        serde_json::from_str::<Value>(&one.config_json).expect("should succeed"),
        config_a()
    );
    assert_eq!(one.info.kind, "applied");
    let three = store
        .version("kea1", "dhcp4", 3)
        .await
        .expect("should succeed")
        .expect("should succeed");
    assert_eq!(three.info.content_hash, one.info.content_hash);
    assert!(
        store
            .version("kea1", "dhcp4", 99)
            .await
            .expect("should succeed")
            .is_none()
    );

    // Flags: a reject stays open through a drift; applied closes both.
    let flags = |s: &kea_sync_agent::central::store::ServerSummary| (s.drift_open, s.reject_open);
    post(&central, &event(5, "kea1", "rejected", 5, None))
        .await
        .expect("should succeed");
    assert_eq!(
        flags(
            &store
                .server("kea1", "dhcp4")
                .await
                .expect("should succeed")
                .expect("should succeed")
        ),
        (false, true)
    );
    post(&central, &event(6, "kea1", "drift", 6, None))
        .await
        .expect("should succeed");
    let summary = store
        .server("kea1", "dhcp4")
        .await
        .expect("should succeed")
        .expect("should succeed");
    assert_eq!(flags(&summary), (true, true));
    assert_eq!(
        (
            summary.version,
            summary.last_event_kind.as_str(),
            summary.last_sequence
        ),
        (Some(4), "drift", 6)
    );
    post(&central, &event(7, "kea1", "rejected", 7, None))
        .await
        .expect("should succeed");
    assert_eq!(
        flags(
            &store
                .server("kea1", "dhcp4")
                .await
                .expect("should succeed")
                .expect("should succeed")
        ),
        (true, true)
    );
    post(&central, &event(8, "kea1", "applied", 8, Some(config_b())))
        .await
        .expect("should succeed");
    let summary = store
        .server("kea1", "dhcp4")
        .await
        .expect("should succeed")
        .expect("should succeed");
    assert_eq!(flags(&summary), (false, false));
    assert_eq!(summary.version, Some(5));
    assert_eq!(
        summary.content_hash.as_deref(),
        Some(
            store
                .version("kea1", "dhcp4", 4)
                .await
                .expect("should succeed")
                .expect("should succeed")
                .info
                .content_hash
                .as_str()
        )
    );

    // History newest first; events without config make no version.
    let events = store
        .events("kea1", "dhcp4", 3)
        .await
        .expect("should succeed");
    let kinds: Vec<(&str, Option<i64>)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.version))
        .collect();
    assert_eq!(
        kinds,
        [("applied", Some(5)), ("rejected", None), ("drift", None)]
    );

    // A second server numbers its own versions.
    post(&central, &event(9, "kea2", "snapshot", 1, Some(config_a())))
        .await
        .expect("should succeed");
    assert_eq!(numbers(store, "kea2", None, 50).await, [1]);
    let servers = store.servers().await.expect("should succeed");
    assert_eq!(
        servers
            .iter()
            .map(|s| s.server.as_str())
            .collect::<Vec<_>>(),
        ["kea1", "kea2"]
    );
    assert_eq!(store.stats().await.expect("should succeed").configs, 2);
}

/// A drift carries the config Kea runs after a config-set: it becomes a
/// version marked as a drift, the server's current one, with the flag raised.
async fn drift_config_is_a_version_marked_drift(backend: Backend) {
    let db = TestDb::new(backend);
    let central = db.central(None, MAX_BODY).await;
    let store = &central.store;
    post(&central, &event(1, "kea1", "applied", 1, Some(config_a())))
        .await
        .expect("should succeed");
    assert_eq!(
        post(&central, &event(2, "kea1", "drift", 2, Some(config_b())))
            .await
            .expect("should succeed"),
        Stored::New
    );
    let drift = store
        .version("kea1", "dhcp4", 2)
        .await
        .expect("should succeed")
        .expect("the drift made version 2");
    assert_eq!(drift.info.kind, "drift");
    assert_eq!(
        serde_json::from_str::<Value>(&drift.config_json).expect("should succeed"),
        config_b()
    );
    let summary = server_summary(store, "kea1").await;
    assert_eq!(summary.version, Some(2));
    assert_eq!(
        summary.content_hash.as_deref(),
        Some(drift.info.content_hash.as_str())
    );
    assert!(
        summary.drift_open,
        "a drift stays open until applied or snapshot"
    );
    let events = store
        .events("kea1", "dhcp4", 1)
        .await
        .expect("should succeed");
    assert_eq!(events[0].version, Some(2));
    post(&central, &event(3, "kea1", "applied", 3, Some(config_a())))
        .await
        .expect("should succeed");
    let summary = server_summary(store, "kea1").await;
    assert_eq!((summary.version, summary.drift_open), (Some(3), false));
}

/// A rejected edit's rollback and Kea's serving are kept with the event; events
/// that do not say (older agents, validation rejects) keep neither.
async fn rollback_and_serving_are_kept_with_the_event(backend: Backend) {
    let db = TestDb::new(backend);
    let central = db.central(None, MAX_BODY).await;
    post(&central, &event(1, "kea1", "applied", 1, Some(config_a())))
        .await
        .expect("should succeed");
    let mut rolled_back = event(2, "kea1", "rejected", 2, None);
    rolled_back["rolled_back"] = serde_json::json!(true);
    rolled_back["serving"] = serde_json::json!(false);
    post(&central, &rolled_back).await.expect("should succeed");
    let events = central
        .store
        .events("kea1", "dhcp4", 2)
        .await
        .expect("should succeed");
    let said: Vec<(&str, Option<bool>, Option<bool>)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.rolled_back, e.serving))
        .collect();
    assert_eq!(
        said,
        [
            ("rejected", Some(true), Some(false)),
            ("applied", None, None)
        ]
    );
}

/// Reopening runs no migration twice and keeps the data.
async fn migrations_are_versioned(backend: Backend) {
    let db = TestDb::new(backend);
    let central = db.central(None, MAX_BODY).await;
    post(&central, &event(1, "kea1", "applied", 1, Some(config_a())))
        .await
        .expect("should succeed");
    drop(central);
    let again = db.open().await;
    assert_eq!(again.stats().await.expect("should succeed").versions, 1);
    again.ping().await.expect("should succeed");
}

/// Concurrent events of one service get gapless numbers; concurrent repeats store once.
async fn concurrent_ingest(backend: Backend) {
    let db = TestDb::new(backend);
    let central = Arc::new(db.central(None, MAX_BODY).await);
    let mut tasks = Vec::new();
    for n in 0..24u32 {
        let central = Arc::clone(&central);
        let config = serde_json::json!({"Dhcp4": {"valid-lifetime": n % 3}});
        tasks.push(tokio::spawn(async move {
            post(
                &central,
                &event(100 + n, "kea1", "applied", n + 1, Some(config)),
            )
            .await
        }));
    }
    for n in 0..8u32 {
        let central = Arc::clone(&central);
        tasks.push(tokio::spawn(async move {
            post(
                &central,
                &event(500, "kea2", "applied", 1, Some(config_a())),
            )
            .await
        }));
        let _ = n;
    }
    let mut new = 0;
    for task in tasks {
        if task.await.expect("should succeed").expect("should succeed") == Stored::New {
            new += 1;
        }
    }
    assert_eq!(new, 25);
    let store = &central.store;
    assert_eq!(
        numbers(store, "kea1", None, 100).await,
        (1..=24).rev().collect::<Vec<i64>>()
    );
    let stats = store.stats().await.expect("should succeed");
    assert_eq!((stats.events, stats.versions, stats.configs), (25, 25, 4));
}

on_both_backends!(
    versions_dedup_and_flags,
    drift_config_is_a_version_marked_drift,
    rollback_and_serving_are_kept_with_the_event,
    migrations_are_versioned,
    concurrent_ingest
);
