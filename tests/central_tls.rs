//! HTTPS serving with a certificate made at run time (rcgen).
#![cfg(feature = "central")]

mod central_support;

use central_support::{Backend, TestDb, TestServer, config_a, event};
use kea_sync_agent::central::tls::{TlsError, load_acceptor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_events_and_pages_over_tls() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("should succeed");
    let dir = tempfile::tempdir().expect("should succeed");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("should succeed");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("should succeed");
    let acceptor = load_acceptor(&cert, &key).expect("should succeed");

    let db = TestDb::new(Backend::Sqlite);
    let server = TestServer::start(db.central(None, 1 << 20).await, Some(acceptor)).await;
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes())
                .expect("should succeed"),
        )
        .resolve("localhost", server.addr)
        .build()
        .expect("should succeed");
    let base = format!("https://localhost:{}", server.addr.port());
    let body = serde_json::to_vec(&event(1, "kea-tls", "applied", 1, Some(config_a())))
        .expect("should succeed");
    let stored = client
        .post(format!("{base}/v1/events"))
        .body(body)
        .send()
        .await
        .expect("should succeed");
    assert_eq!(stored.status().as_u16(), 201);
    let page = client
        .get(format!("{base}/"))
        .send()
        .await
        .expect("should succeed")
        .text()
        .await
        .expect("should succeed");
    assert!(page.contains("kea-tls"));

    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", server.addr.port()))
        .send()
        .await;
    assert!(plain.is_err() || !plain.expect("should succeed").status().is_success());
    server.stop().await;
}

#[test]
fn unusable_pem_files_are_named() {
    let dir = tempfile::tempdir().expect("should succeed");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not pem").expect("should succeed");
    assert!(matches!(
        load_acceptor(&junk, &junk),
        Err(TlsError::NoCertificate { .. })
    ));
    let missing = dir.path().join("missing.pem");
    let Err(error) = load_acceptor(&missing, &junk) else {
        panic!("a missing file was accepted")
    };
    assert!(error.to_string().contains("missing.pem"), "{error}");
}
