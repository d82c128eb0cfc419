//! Shared by the tests/central_*.rs suites: a throwaway PostgreSQL from
//! Debian's packages, a database per backend, the central served on
//! 127.0.0.1:0, and realistic v1 events.
#![allow(dead_code)]

use kea_sync_agent::central::dburl::DbUrl;
use kea_sync_agent::central::http;
use kea_sync_agent::central::ingest::Central;
use kea_sync_agent::central::store::Store;
use kea_sync_agent::central::tokens::Tokens;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// `on_both_backends!(a, b)`: tests `sqlite::a`, `postgres::a`, ... calling the
/// suite's `async fn a(backend: Backend)` once per backend (the suite imports `Backend`).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),*) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}

/// The two store backends; every storage test runs on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A PostgreSQL cluster in a temp dir, listening only on a unix socket in that
/// dir, stopped when dropped.
pub struct TempPostgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// Server options beyond the unix socket (TLS on 127.0.0.1).
    extra_options: String,
}

impl TempPostgres {
    /// initdb + pg_ctl start as the `postgres` user (the tests run as root).
    pub fn start() -> TempPostgres {
        let pg = TempPostgres::init();
        pg.start_again();
        pg
    }

    /// Also listening on 127.0.0.1 with TLS on (`cert_pem`, `key_pem`);
    /// pg_hba.conf there takes TLS connections only (trust), plain ones are refused.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> TempPostgres {
        let mut pg = TempPostgres::init();
        let data = pg.dir.path().join("data");
        std::fs::write(data.join("server.crt"), cert_pem).expect("write server.crt");
        std::fs::write(data.join("server.key"), key_pem).expect("write server.key");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
        for file in ["server.crt", "server.key", "pg_hba.conf"] {
            let path = data.join(file).display().to_string();
            run("chown", &["postgres:postgres", &path]);
            run("chmod", &["0600", &path]);
        }
        pg.extra_options =
            "-c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
                .to_string();
        pg.start_again();
        pg
    }

    /// The TCP port (with `start_tls`, on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn init() -> TempPostgres {
        let bin = postgres_bin();
        let dir = tempfile::Builder::new()
            .prefix("central-pg.")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().display().to_string();
        run("chown", &["postgres:postgres", &root]);
        let data = format!("{root}/data");
        let initdb = [
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ];
        run_as_postgres(&bin.join("initdb"), &initdb);
        TempPostgres {
            port: free_port(),
            bin,
            dir,
            extra_options: "-c listen_addresses=''".to_string(),
        }
    }

    /// The `--db` URL (unix socket in the temp dir).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@:{}/postgres?host={}",
            self.port,
            self.dir.path().display()
        )
    }

    /// Stops the server (the database goes down under the central).
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts the server (again).
    pub fn start_again(&self) {
        let options = format!(
            "-k {} -p {} {} -c fsync=off",
            self.dir.path().display(),
            self.port,
            self.extra_options
        );
        let log = self.dir.path().join("postgres.log");
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            &log.display().to_string(),
            "-o",
            &options,
        ]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data").display().to_string();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        run_as_postgres(&self.bin.join("pg_ctl"), &all);
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["stop", "-m", "immediate", "-w"])
            .output();
    }
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/install-deps as root")
    })
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().expect(program);
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_as_postgres(program: &Path, args: &[&str]) {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser (the tests must run as root to start PostgreSQL)");
    assert!(
        output.status.success(),
        "{} failed (tests run as root): {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A fresh database of one backend, removed when dropped.
pub struct TestDb {
    pub url: String,
    pub postgres: Option<TempPostgres>,
    _dir: TempDir,
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}/central.db", dir.path().display()),
                postgres: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let pg = TempPostgres::start();
                TestDb {
                    url: pg.url(),
                    postgres: Some(pg),
                    _dir: dir,
                }
            }
        }
    }

    pub fn db_url(&self) -> DbUrl {
        DbUrl::parse(&self.url).expect("test database URL")
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.db_url(), 4).await.expect("open store")
    }

    pub async fn central(&self, tokens: Option<&str>, max_body_bytes: usize) -> Central {
        Central::new(
            self.open().await,
            tokens.map(|t| Tokens::parse(t).expect("tokens")),
            max_body_bytes,
        )
    }
}

/// The central served on 127.0.0.1:0 until dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub central: Arc<Central>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(central: Central, tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
        TestServer::start_within(central, tls, http::ConnectionLimits::default()).await
    }

    /// [`TestServer::start`] with other connection limits.
    pub async fn start_within(
        central: Central,
        tls: Option<tokio_rustls::TlsAcceptor>,
        limits: http::ConnectionLimits,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let central = Arc::new(central);
        let (stop, stopped) = oneshot::channel();
        let served = Arc::clone(&central);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            http::serve(listener, tls, served, limits, shutdown).await;
        });
        TestServer {
            addr,
            central,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A valid ULID, distinct per `n`.
pub fn ulid(n: u32) -> String {
    format!("01J{:0>23}", n)
}

/// A v1 event; `config` is added when given.
pub fn event(n: u32, host: &str, kind: &str, sequence: u32, config: Option<Value>) -> Value {
    let mut event = json!({
        "schema": "kea-sync-agent/event/v1",
        "id": ulid(n),
        "agent": {"host": host, "machine_id": "0123456789abcdef", "version": "0.1.0"},
        "service": "dhcp4",
        "kea_version": "2.2.0",
        "kind": kind,
        "sequence": sequence,
        "file": {"path": "/etc/kea/kea-dhcp4.conf", "sha256": "f00d"},
        "config_hash": format!("hash-{n}"),
        "text": format!("{kind} #{sequence}"),
        "detected_at": "2025-01-31T12:00:00.000Z",
        "applied_at": "2025-01-31T12:00:00.250Z",
        "queued_at": "2025-01-31T12:00:00.300Z"
    });
    if kind == "drift" {
        event["drift"] = json!({"file_sha256": "f00d", "live_hash": "beef"});
    }
    if let Some(config) = config {
        event["config"] = config;
    }
    event
}

/// Config A of the diff tests: two subnets, pools, reservations, an option.
pub fn config_a() -> Value {
    json!({"Dhcp4": {
        "valid-lifetime": 4000,
        "interfaces-config": {"interfaces": ["eth0"]},
        "option-data": [{"code": 6, "name": "domain-name-servers", "space": "dhcp4", "data": "192.0.2.1"}],
        "subnet4": [
            {"id": 1, "subnet": "192.0.2.0/24",
             "pools": [{"pool": "192.0.2.10 - 192.0.2.20"}],
             "reservations": [
                {"hw-address": "aa:bb:cc:dd:ee:01", "ip-address": "192.0.2.101"},
                {"hw-address": "aa:bb:cc:dd:ee:02", "ip-address": "192.0.2.102"}
             ]},
            {"id": 2, "subnet": "198.51.100.0/24"}
        ]
    }})
}

/// Config B: subnet 2 gone, subnet 3 new, a reservation changed, removed and
/// added, an option changed and one added, valid-lifetime changed.
pub fn config_b() -> Value {
    json!({"Dhcp4": {
        "valid-lifetime": 7200,
        "interfaces-config": {"interfaces": ["eth0"]},
        "option-data": [
            {"code": 6, "name": "domain-name-servers", "space": "dhcp4", "data": "192.0.2.53"},
            {"code": 15, "name": "domain-name", "space": "dhcp4", "data": "example.org"}
        ],
        "subnet4": [
            {"id": 1, "subnet": "192.0.2.0/24",
             "pools": [{"pool": "192.0.2.10 - 192.0.2.20"}],
             "reservations": [
                {"hw-address": "aa:bb:cc:dd:ee:01", "ip-address": "192.0.2.111"},
                {"hw-address": "aa:bb:cc:dd:ee:03", "ip-address": "192.0.2.103"}
             ]},
            {"id": 3, "subnet": "203.0.113.0/24"}
        ]
    }})
}

/// `config` with every object's keys reversed: same content, other text.
pub fn reordered(config: &Value) -> Value {
    match config {
        Value::Object(map) => Value::Object(
            map.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reordered(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(reordered).collect()),
        other => other.clone(),
    }
}

/// A large config (`subnets` subnets with 10 reservations each), ~`subnets` * 1 KB.
pub fn large_config(subnets: u32, variant: u32) -> Value {
    let subnet4: Vec<Value> = (0..subnets)
        .map(|i| {
            let (a, b) = (10 + i / 256, i % 256);
            let reservations: Vec<Value> = (0..10)
                .map(|r| json!({"hw-address": format!("02:00:{:02x}:{:02x}:{:02x}:{r:02x}", a % 256, b, variant % 256), "ip-address": format!("{a}.{b}.0.{}", 100 + r), "hostname": format!("host-{i}-{r}")}))
                .collect();
            json!({"id": i + 1, "subnet": format!("{a}.{b}.0.0/24"), "pools": [{"pool": format!("{a}.{b}.0.10 - {a}.{b}.0.90")}], "reservations": reservations})
        })
        .collect();
    json!({"Dhcp4": {"valid-lifetime": 4000 + variant, "subnet4": subnet4}})
}

/// gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}
