//! The kea-sync-central binary itself: serve, log, authenticate, stop on SIGTERM,
//! and refuse bad start-up input with a clear message.
#![cfg(feature = "central")]

mod central_support;

use central_support::{config_a, event};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_kea-sync-central");

/// A running `kea-sync-central serve`; its stderr lines arrive on `lines`.
struct Central {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Central {
    fn start(args: &[&str]) -> Central {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .env("KEA_SYNC_CENTRAL_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kea-sync-central");
        let stderr = child.stderr.take().expect("stderr");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Central {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for a log line containing `text`.
    fn wait_for(&mut self, text: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {text:?}; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    fn base_url(&mut self) -> String {
        let line = self.wait_for("listening on http://");
        let start = line.find("http://").expect("should succeed");
        line[start..]
            .split_whitespace()
            .next()
            .expect("should succeed")
            .to_string()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        self.wait_for("stopped");
        self.child.wait().expect("wait")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_with_tokens_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("should succeed");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# fleet\nkea-north s3cret\n").expect("should succeed");
    let db = format!("sqlite://{}/central.db", dir.path().display());
    let mut central = Central::start(&[
        "--db",
        &db,
        "--listen",
        "127.0.0.1:0",
        "--tokens-file",
        tokens.to_str().expect("should succeed"),
    ]);
    let base = central.base_url();
    assert!(!central.log.iter().any(|l| l.contains("NO AUTHENTICATION")));

    let body = serde_json::to_vec(&event(1, "host", "applied", 1, Some(config_a())))
        .expect("should succeed");
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("{base}/v1/events"))
        .body(body.clone())
        .send()
        .await
        .expect("should succeed");
    assert_eq!(refused.status().as_u16(), 401);
    central.wait_for("event refused: missing bearer token");
    let stored = client
        .post(format!("{base}/v1/events"))
        .bearer_auth("s3cret")
        .body(body)
        .send()
        .await
        .expect("should succeed");
    assert_eq!(stored.status().as_u16(), 201);
    central.wait_for("stored event");
    let servers = client
        .get(format!("{base}/v1/servers"))
        .send()
        .await
        .expect("should succeed")
        .text()
        .await
        .expect("should succeed");
    assert!(servers.contains("\"server\":\"kea-north\""), "{servers}");
    assert!(central.terminate().success());
}

#[test]
fn warns_loudly_without_tokens() {
    let dir = tempfile::tempdir().expect("should succeed");
    let db = format!("sqlite://{}/central.db", dir.path().display());
    let mut central = Central::start(&["--db", &db, "--listen", "127.0.0.1:0"]);
    central.wait_for("NO AUTHENTICATION");
    central.base_url();
    assert!(central.terminate().success());
}

#[test]
fn refuses_bad_start_up_input() {
    let dir = tempfile::tempdir().expect("should succeed");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "kea1 a\nkea2\n").expect("should succeed");
    let db = format!("sqlite://{}/central.db", dir.path().display());
    // Exit 6 (NOTCONFIGURED: the unit does not restart) for what a restart
    // cannot fix; 1 for a database that is down (retried).
    let cases: [(&[&str], &str, i32); 4] = [
        (&["--db", "mysql://x"], "bad database URL", 6),
        (
            &[
                "--db",
                &db,
                "--tokens-file",
                tokens.to_str().expect("should succeed"),
            ],
            "line 2: expected `NAME TOKEN`",
            6,
        ),
        (
            &[
                "--db",
                &db,
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            "/nonexistent/cert.pem",
            6,
        ),
        (
            &[
                "--db",
                "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
            ],
            "cannot open the postgres database",
            1,
        ),
    ];
    for (args, message, code) in cases {
        let output = Command::new(BIN)
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .expect("should succeed");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
