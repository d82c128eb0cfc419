//! Slow and hostile clients against the central, on real loopback sockets and
//! SQLite: thousands of stalled connections of several kinds beside a
//! working agent, the caps in all and per peer address, and the binary
//! fitting its cap to the open-files limit. Timeouts are small and set by the
//! test; the bounds asserted are generous (the machine is shared).
#![cfg(feature = "central")]

mod central_support;

use central_support::{Backend, TestDb, TestServer, config_a, event};
use kea_sync_agent::central::http::ConnectionLimits;
use kea_sync_agent::central::nofile;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Stalled clients of each kind.
const PER_KIND: usize = 600;
/// The timeouts the central runs with here.
const TIMEOUT: Duration = Duration::from_secs(4);
/// How long a stalled client may stay open at most before the test fails:
/// many times the timeouts, so a slow machine does not fail it.
const CLOSED_WITHIN: Duration = Duration::from_secs(40);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    /// Connects and sends nothing.
    Silent,
    /// Half a request line.
    HalfLine,
    /// A POST's headers, then half its body.
    HalfBody,
    /// A request's head one byte a second, never finished ("slow loris").
    Drip,
    /// One whole request answered, then kept alive and silent.
    KeptIdle,
}

const STALLS: [Stall; 5] = [
    Stall::Silent,
    Stall::HalfLine,
    Stall::HalfBody,
    Stall::Drip,
    Stall::KeptIdle,
];

/// How a stalled client ended.
#[derive(Debug)]
struct Ended {
    stall: Stall,
    /// Everything the central sent it.
    read: Vec<u8>,
    /// The central closed it (EOF or reset) within `CLOSED_WITHIN`.
    closed: bool,
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP connection to `server` from the loopback address `from`.
async fn connect_from(from: IpAddr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind source");
    socket.connect(server).await.expect("connect")
}

/// The half of a POST the HalfBody clients send: full headers, half the body.
fn half_post(n: usize) -> Vec<u8> {
    let body = serde_json::to_vec(&event(
        100_000 + n as u32,
        &format!("kea-stalled-{n}"),
        "applied",
        1,
        Some(config_a()),
    ))
    .expect("event");
    let mut request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: central\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body[..body.len() / 2]);
    request
}

/// Opens a stalled client of kind `stall` and returns once it has stalled;
/// the task it hands back ends when the central closes the connection.
async fn stall(
    stall: Stall,
    n: usize,
    server: SocketAddr,
    closed: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Ended> {
    let mut stream = connect_from(loopback(1), server).await;
    let mut read = Vec::new();
    match stall {
        Stall::Silent | Stall::Drip => {}
        Stall::HalfLine => stream.write_all(b"POST /v1/ev").await.expect("write"),
        Stall::HalfBody => stream.write_all(&half_post(n)).await.expect("write"),
        Stall::KeptIdle => {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: central\r\n\r\n")
                .await
                .expect("write");
            // Wait for the whole answer (its body ends in "}"), so the
            // connection is idle from here on.
            let mut buf = [0u8; 4096];
            while !read.ends_with(b"}") {
                let got = stream.read(&mut buf).await.expect("read the answer");
                assert!(got > 0, "closed before answering /healthz");
                read.extend_from_slice(&buf[..got]);
            }
        }
    }
    tokio::spawn(async move {
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        let mut drip = b"GET /healthz HTTP/1.1\r\nX-Slow: ".iter().cycle();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let ended = loop {
            if started.elapsed() > CLOSED_WITHIN {
                break false;
            }
            tokio::select! {
                got = stream.read(&mut buf) => match got {
                    Ok(0) | Err(_) => break true,
                    Ok(got) => read.extend_from_slice(&buf[..got]),
                },
                _ = tick.tick(), if stall == Stall::Drip => {
                    let byte = [*drip.next().unwrap_or(&b'x')];
                    if stream.write_all(&byte).await.is_err() {
                        break true;
                    }
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        };
        if ended {
            closed.fetch_add(1, Ordering::SeqCst);
        }
        Ended {
            stall,
            read,
            closed: ended,
        }
    })
}

/// Reads until the central closes the connection; panics if it does not
/// within `CLOSED_WITHIN`.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(got) => read.extend_from_slice(&buf[..got]),
            }
        }
    };
    tokio::time::timeout(CLOSED_WITHIN, reading)
        .await
        .expect("the central closes the connection");
    String::from_utf8_lossy(&read).into_owned()
}

/// GET /healthz from `from` until it is admitted (answered 200, not 503):
/// the central frees a place as soon as it sees a close.
async fn healthz_once_admitted(from: IpAddr, server: SocketAddr) {
    let deadline = Instant::now() + CLOSED_WITHIN;
    loop {
        let mut stream = connect_from(from, server).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: central\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let answer = read_to_close(&mut stream).await;
        if answer.starts_with("HTTP/1.1 200") {
            return;
        }
        // A reset (the 503 lost to the unread request) reads as nothing.
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
            "{answer:?}"
        );
        assert!(Instant::now() < deadline, "{from} still refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post_event(client: &reqwest::Client, server: &TestServer, n: u32, host: &str) -> u16 {
    let body = serde_json::to_vec(&event(n, host, "applied", 1, Some(config_a()))).expect("event");
    client
        .post(server.url("/v1/events"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the agent's POST is answered")
        .status()
        .as_u16()
}

async fn servers(server: &TestServer) -> String {
    let answer = reqwest::get(server.url("/v1/servers"))
        .await
        .expect("GET /v1/servers is answered");
    assert_eq!(answer.status().as_u16(), 200);
    answer.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_beside_a_working_agent() {
    // Both ends of every connection are in this process.
    nofile::fit(2 * PER_KIND * STALLS.len() + 200, 64);
    let db = TestDb::new(Backend::Sqlite);
    let central = db.central(None, 1 << 20).await.with_body_timeout(TIMEOUT);
    let limits = ConnectionLimits {
        header_timeout: TIMEOUT,
        idle_timeout: TIMEOUT,
        max_connections: 10_000,
        max_connections_per_peer: 10_000,
    };
    let server = TestServer::start_within(central, None, limits).await;

    let began = Instant::now();
    let closed = Arc::new(AtomicUsize::new(0));
    let mut stalled = Vec::new();
    for n in 0..PER_KIND {
        for kind in STALLS {
            stalled.push(stall(kind, n, server.addr, Arc::clone(&closed)).await);
        }
    }
    let total = stalled.len();
    let set_up = began.elapsed();

    // The agent posts and a reader reads while all of them hang. Its client
    // drops a kept-alive connection sooner than the central's idle timeout
    // closes it, as the agent's own does (http_client::POOL_IDLE against the
    // default 60 s): otherwise the second POST below races the central's
    // close of the first one's connection and is reset.
    let agent = reqwest::Client::builder()
        .pool_idle_timeout(TIMEOUT / 2)
        .build()
        .expect("client");
    assert_eq!(post_event(&agent, &server, 1, "kea-agent").await, 201);
    assert!(servers(&server).await.contains("kea-agent"));
    let closed_by_then = closed.load(Ordering::SeqCst);
    let answered = began.elapsed();
    assert!(
        closed_by_then < total / 2,
        "{closed_by_then} of {total} stalled clients were closed before the agent was answered \
         ({set_up:?} to set them up): the test did not run beside them"
    );

    let mut ended = Vec::with_capacity(total);
    for task in stalled {
        ended.push(task.await.expect("stalled client task"));
    }
    let all_closed = began.elapsed();
    let open: Vec<Stall> = ended
        .iter()
        .filter(|e| !e.closed)
        .map(|e| e.stall)
        .collect();
    assert!(
        open.is_empty(),
        "{} of {total} stalled clients still open after {CLOSED_WITHIN:?}, e.g. {:?}",
        open.len(),
        &open[..open.len().min(5)]
    );
    for end in &ended {
        let read = String::from_utf8_lossy(&end.read);
        match end.stall {
            // Closed without an answer: they never asked a whole question.
            Stall::Silent | Stall::HalfLine | Stall::Drip => {
                assert!(read.is_empty(), "{:?} read {read:?}", end.stall)
            }
            Stall::HalfBody => assert!(read.starts_with("HTTP/1.1 408"), "{read:?}"),
            Stall::KeptIdle => assert!(read.starts_with("HTTP/1.1 200"), "{read:?}"),
        }
    }
    // The stalled bodies stored nothing; the agent still gets in.
    let listed = servers(&server).await;
    assert!(!listed.contains("kea-stalled"), "{listed}");
    assert_eq!(post_event(&agent, &server, 2, "kea-agent").await, 201);
    eprintln!(
        "{total} stalled clients set up in {set_up:?}; agent answered at {answered:?} \
         ({closed_by_then} closed by then); all closed at {all_closed:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_peer_cap_refuses_one_address_but_not_another() {
    let db = TestDb::new(Backend::Sqlite);
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(60),
        max_connections: 100,
        max_connections_per_peer: 20,
        ..ConnectionLimits::default()
    };
    let server = TestServer::start_within(db.central(None, 1 << 20).await, None, limits).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect_from(loopback(1), server.addr).await);
    }
    for _ in 0..3 {
        let mut over = connect_from(loopback(1), server.addr).await;
        let answer = read_to_close(&mut over).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
        assert!(answer.contains("Retry-After: 5"), "{answer:?}");
        assert!(answer.contains("--max-connections-per-peer"), "{answer:?}");
    }
    let other = reqwest::Client::builder()
        .local_address(loopback(2))
        .build()
        .expect("client");
    assert_eq!(post_event(&other, &server, 1, "kea-other").await, 201);

    // Once its connections close, the first address gets in again.
    drop(held);
    healthz_once_admitted(loopback(1), server.addr).await;
    let first = reqwest::Client::builder()
        .local_address(loopback(1))
        .build()
        .expect("client");
    assert_eq!(post_event(&first, &server, 2, "kea-first").await, 201);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_cap_refuses_everyone_until_a_connection_closes() {
    let db = TestDb::new(Backend::Sqlite);
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(60),
        max_connections: 10,
        max_connections_per_peer: 64,
        ..ConnectionLimits::default()
    };
    let server = TestServer::start_within(db.central(None, 1 << 20).await, None, limits).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(connect_from(loopback(1), server.addr).await);
    }
    let mut over = connect_from(loopback(2), server.addr).await;
    let answer = read_to_close(&mut over).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("--max-connections)"), "{answer:?}");

    held.pop();
    healthz_once_admitted(loopback(2), server.addr).await;
    server.stop().await;
}

/// `kea-sync-central serve` under `prlimit --nofile=SOFT:HARD`, killed when dropped.
struct Limited {
    child: std::process::Child,
    log: Vec<String>,
    lines: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Limited {
    fn start(nofile: &str, args: &[&str]) -> Limited {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = format!("sqlite://{}/central.db", dir.path().display());
        let mut child = Command::new("prlimit")
            .arg(format!("--nofile={nofile}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_kea-sync-central"))
            .args(["serve", "--db", &db, "--listen", "127.0.0.1:0"])
            .args(args)
            .env("KEA_SYNC_CENTRAL_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("prlimit (util-linux) and kea-sync-central");
        let stderr = child.stderr.take().expect("stderr");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Limited {
            child,
            log: Vec::new(),
            lines,
            _dir: dir,
        }
    }

    fn wait_for(&mut self, text: &str) -> String {
        loop {
            match self.lines.recv_timeout(CLOSED_WITHIN) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {text:?}:\n{}", self.log.join("\n")),
            }
        }
    }

    fn addr(&mut self) -> SocketAddr {
        let line = self.wait_for("listening on http://");
        let start = line.find("http://").expect("url") + "http://".len();
        line[start..]
            .split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .expect("address")
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_fits_its_cap_to_the_open_files_limit_and_keeps_its_timeouts() {
    // A hard limit too low for the default 1024: the cap comes down, with a warning.
    let mut low = Limited::start("200:200", &["--header-timeout", "1s"]);
    let warning = low.wait_for("lowered to");
    assert!(
        warning.contains("--max-connections 1024 lowered to 128"),
        "{warning}"
    );
    let addr = low.addr();
    let mut silent = connect_from(loopback(1), addr).await;
    assert_eq!(read_to_close(&mut silent).await, "");
    drop(low);

    // Only the soft limit low (systemd's case): raised, the cap kept.
    let mut soft = Limited::start("300:5000", &[]);
    soft.wait_for("raised the open-files limit from 300 to 1096");
    let _ = soft.addr();
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", soft.child.id())).expect("limits");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["1096", "5000"],
        "{open_files}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_clients_are_closed_and_an_agent_still_gets_in() {
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let acceptor = kea_sync_agent::central::tls::load_acceptor(&cert, &key).expect("TLS acceptor");
    let db = TestDb::new(Backend::Sqlite);
    let limits = ConnectionLimits {
        header_timeout: TIMEOUT,
        idle_timeout: TIMEOUT,
        ..ConnectionLimits::default()
    };
    let server =
        TestServer::start_within(db.central(None, 1 << 20).await, Some(acceptor), limits).await;

    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).expect("root");
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    // Half never start the handshake, half finish it and then ask nothing.
    let mut silent = Vec::new();
    let mut shook_hands = Vec::new();
    for n in 0..20 {
        let tcp = connect_from(loopback(3), server.addr).await;
        if n % 2 == 0 {
            silent.push(tcp);
        } else {
            let name = ServerName::try_from("localhost").expect("name");
            shook_hands.push(connector.connect(name, tcp).await.expect("handshake"));
        }
    }
    let agent = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("cert"),
        )
        .resolve("localhost", server.addr)
        .build()
        .expect("client");
    let body =
        serde_json::to_vec(&event(1, "kea-tls", "applied", 1, Some(config_a()))).expect("event");
    let stored = agent
        .post(format!(
            "https://localhost:{}/v1/events",
            server.addr.port()
        ))
        .body(body)
        .send()
        .await
        .expect("the agent's POST is answered");
    assert_eq!(stored.status().as_u16(), 201);

    for mut stream in silent {
        assert_eq!(read_to_close(&mut stream).await, "");
    }
    for mut stream in shook_hands {
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(CLOSED_WITHIN, stream.read(&mut buf))
            .await
            .expect("the central closes the TLS connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    server.stop().await;
}
