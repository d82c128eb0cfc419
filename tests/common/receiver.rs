//! A real HTTPS receiver of the agent's upstream events (docs/upstream-api.md) for the
//! end-to-end tests: axum on tokio-rustls, with a CA and a server certificate for
//! 127.0.0.1/localhost made at run time (the CA is written to `ca.pem` for the agent).
//!
//! It runs on its own thread with its own tokio runtime, so plain (sync) tests drive it.
//! It stores every event it accepts (gunzipped, once per id, counting repeats), checks the
//! bearer token, and can be told at run time how to answer: accept, refuse with a status,
//! fail with 500, throttle with 429, stall, or go away entirely and come back on the same
//! port. Going away drops the whole runtime, so open connections close too.
#![allow(dead_code)] // each test uses its own subset

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

/// The path events are POSTed to.
pub const EVENTS_PATH: &str = "/v1/events";
/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long coming back may retry binding the old port.
const REBIND_FOR: Duration = Duration::from_secs(10);

/// How the receiver answers a POST.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Answer {
    /// Store the event: 201, or 200 when its id is already stored.
    #[default]
    Accept,
    /// Store the event, then answer 2xx only after this delay (a slow central).
    AcceptSlowly(Duration),
    /// Refuse with this status and body; nothing stored.
    Refuse(u16, String),
    /// 500; nothing stored.
    ServerError,
    /// 429 with `Retry-After: 1`; nothing stored.
    TooManyRequests,
    /// Never answer; nothing stored.
    Stall,
}

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// When its headers and body had arrived.
    pub at: Instant,
    /// Every header, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body's length as sent (compressed when gzip-encoded).
    pub body_bytes: usize,
    /// The event's id, when the body parsed.
    pub id: Option<String>,
    /// The status answered; None while (or when never) answered.
    pub status: Option<u16>,
}

impl SeenRequest {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An event the receiver stored, at the first arrival of its id.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub service: String,
    pub kind: String,
    pub sequence: u64,
    /// The request body, decompressed.
    pub body: Arc<Vec<u8>>,
    /// Arrivals of this id, the first included.
    pub deliveries: usize,
    /// Arrivals of this id whose body differed from the first one's.
    pub conflicting: usize,
}

impl StoredEvent {
    /// The whole event, parsed.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a stored event is JSON")
    }
}

/// The fields every event has, read without building the (possibly huge) config.
#[derive(serde::Deserialize)]
struct Head {
    id: String,
    service: String,
    kind: String,
    sequence: u64,
}

#[derive(Default)]
struct Record {
    standing: Answer,
    scripted: VecDeque<Answer>,
    requests: Vec<SeenRequest>,
    stored: Vec<StoredEvent>,
    by_id: HashMap<String, usize>,
}

struct Shared {
    token: String,
    record: Mutex<Record>,
    tls_failures: AtomicUsize,
}

impl Shared {
    fn record(&self) -> MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The server thread of one listening period.
struct Listening {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// The HTTPS receiver; stops listening on drop.
pub struct Receiver {
    /// `https://127.0.0.1:PORT/v1/events`
    pub url: String,
    pub port: u16,
    /// The CA that signed the server certificate (PEM), for the agent's `ca_file`.
    pub ca_file: PathBuf,
    /// The bearer token it expects.
    pub token: String,
    shared: Arc<Shared>,
    tls: Arc<ServerConfig>,
    listening: Option<Listening>,
    dir: Option<tempfile::TempDir>,
}

impl Receiver {
    /// Listens on a free 127.0.0.1 port, accepting events sent with `token`.
    pub fn start(token: &str) -> Receiver {
        let dir = tempfile::Builder::new()
            .prefix("upstream-receiver-")
            .tempdir()
            .expect("receiver temp dir");
        let ca = TestCa::new("kea-sync-agent test receiver CA");
        let ca_file = ca.write(dir.path());
        let tls = Arc::new(ca.server_config());
        let shared = Arc::new(Shared {
            token: token.to_string(),
            record: Mutex::new(Record::default()),
            tls_failures: AtomicUsize::new(0),
        });
        let (listening, port) = listen(0, &shared, &tls).expect("bind the receiver");
        Receiver {
            url: format!("https://127.0.0.1:{port}{EVENTS_PATH}"),
            port,
            ca_file,
            token: token.to_string(),
            shared,
            tls,
            listening: Some(listening),
            dir: Some(dir),
        }
    }

    /// Answers every later request with `answer` (after any scripted ones).
    pub fn set_answer(&self, answer: Answer) {
        self.shared.record().standing = answer;
    }

    /// Answers the next requests with `answers`, one each, before the standing answer.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.shared.record().scripted.extend(answers);
    }

    /// Stops listening and closes every open connection (requests in flight get no
    /// answer). Stored events are kept.
    pub fn go_away(&mut self) {
        if let Some(listening) = self.listening.take() {
            let _ = listening.stop.send(());
            listening.thread.join().expect("receiver thread panicked");
        }
    }

    /// Listens again on the same port.
    pub fn come_back(&mut self) {
        assert!(
            self.listening.is_none(),
            "the receiver is already listening"
        );
        let deadline = Instant::now() + REBIND_FOR;
        loop {
            match listen(self.port, &self.shared, &self.tls) {
                Ok((listening, _)) => {
                    self.listening = Some(listening);
                    return;
                }
                Err(error) if Instant::now() < deadline => {
                    eprintln!("receiver: rebinding port {}: {error}; retrying", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => panic!("receiver: cannot listen on {} again: {error}", self.port),
            }
        }
    }

    /// The stored events, in the order their ids first arrived.
    pub fn stored(&self) -> Vec<StoredEvent> {
        self.shared.record().stored.clone()
    }

    /// The stored events, parsed, in the order their ids first arrived.
    pub fn events(&self) -> Vec<Value> {
        self.stored().iter().map(StoredEvent::json).collect()
    }

    /// The stored event with `id`.
    pub fn event(&self, id: &str) -> Option<StoredEvent> {
        let record = self.shared.record();
        record.by_id.get(id).map(|&i| record.stored[i].clone())
    }

    /// Every POST seen, in arrival order, whatever was answered.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.record().requests.clone()
    }

    /// Every request header seen, request after request.
    pub fn headers(&self) -> Vec<Vec<(String, String)>> {
        self.requests().into_iter().map(|r| r.headers).collect()
    }

    /// TLS handshakes that failed (e.g. the client did not trust the certificate).
    pub fn tls_failures(&self) -> usize {
        self.shared.tls_failures.load(Ordering::SeqCst)
    }

    /// One line per request and per stored event, for failure messages.
    pub fn summary(&self) -> String {
        let record = self.shared.record();
        let mut out = String::new();
        for r in &record.requests {
            out += &format!(
                "request id={} status={:?}\n",
                r.id.as_deref().unwrap_or("-"),
                r.status
            );
        }
        for e in &record.stored {
            out += &format!(
                "stored {} #{} {} {} (deliveries {})\n",
                e.service, e.sequence, e.kind, e.id, e.deliveries
            );
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.go_away();
        if let Some(dir) = self.dir.take()
            && std::env::var("KEA_TEST_KEEP").is_ok_and(|v| v == "1")
        {
            eprintln!("KEA_TEST_KEEP: kept {}", dir.keep().display());
        }
    }
}

/// A certificate authority made at run time.
pub struct TestCa {
    cert_pem: String,
    cert_der: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        TestCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate to `dir/ca.pem`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.cert_pem).expect("write ca.pem");
        path
    }

    /// A TLS server config with a certificate for 127.0.0.1 and localhost signed by this CA.
    fn server_config(&self) -> ServerConfig {
        let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the server certificate");
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), self.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server TLS config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

/// Binds 127.0.0.1:`port` (0: any) and serves on a new thread and runtime.
fn listen(
    port: u16,
    shared: &Arc<Shared>,
    tls: &Arc<ServerConfig>,
) -> std::io::Result<(Listening, u16)> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shared = shared.clone();
    let acceptor = TlsAcceptor::from(tls.clone());
    let thread = std::thread::Builder::new()
        .name(format!("receiver-{port}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("receiver runtime");
            runtime.block_on(async move {
                let listener = match TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                let local = match listener.local_addr() {
                    Ok(local) => local,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(local.port()));
                let incoming = TlsIncoming::start(listener, local, acceptor, shared.clone());
                let app = Router::new()
                    .route(EVENTS_PATH, post(ingest))
                    .layer(DefaultBodyLimit::disable())
                    .with_state(shared);
                tokio::select! {
                    _ = async { axum::serve(incoming, app).await } => {}
                    _ = stopped => {}
                }
            });
            // Drops every task: the listener, open connections, stalled requests.
            runtime.shutdown_timeout(Duration::from_secs(5));
        })?;
    match ready_rx.recv() {
        Ok(Ok(port)) => Ok((Listening { stop, thread }, port)),
        Ok(Err(error)) => {
            let _ = thread.join();
            Err(error)
        }
        Err(_) => {
            let _ = thread.join();
            Err(std::io::Error::other("receiver thread died while starting"))
        }
    }
}

/// TLS connections, handshaken concurrently so a slow client does not block others.
struct TlsIncoming {
    connections: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsIncoming {
    fn start(
        listener: TcpListener,
        local: SocketAddr,
        acceptor: TlsAcceptor,
        shared: Arc<Shared>,
    ) -> TlsIncoming {
        let (tx, connections) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (acceptor, tx, shared) = (acceptor.clone(), tx.clone(), shared.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        _ => {
                            shared.tls_failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        TlsIncoming { connections, local }
    }
}

impl axum::serve::Listener for TlsIncoming {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// POST /v1/events: records the request, then answers as told.
async fn ingest(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let body_bytes = body.len();
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    // Big bodies take a while to inflate and scan: keep them off the async workers.
    let decoded = tokio::task::spawn_blocking(move || decode(gzipped, &body))
        .await
        .unwrap_or_else(|error| Err(format!("decoding panicked: {error}")));
    let head = decoded.as_ref().ok().map(|(_, head)| head);
    let index = {
        let mut record = shared.record();
        record.requests.push(SeenRequest {
            at: Instant::now(),
            headers: headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_string(), value)
                })
                .collect(),
            body_bytes,
            id: head.map(|h| h.id.clone()),
            status: None,
        });
        record.requests.len() - 1
    };
    let answer = |status: StatusCode, text: &str| {
        shared.record().requests[index].status = Some(status.as_u16());
        (status, text.to_string()).into_response()
    };
    let bearer = format!("Bearer {}", shared.token);
    if headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) != Some(bearer.as_bytes()) {
        return answer(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let (body, head) = match decoded {
        Ok(decoded) => decoded,
        Err(why) => return answer(StatusCode::BAD_REQUEST, &why),
    };
    let key = headers.get("idempotency-key").map(|v| v.as_bytes());
    if key != Some(head.id.as_bytes()) {
        return answer(
            StatusCode::BAD_REQUEST,
            "Idempotency-Key is not the event's id",
        );
    }
    let next = {
        let mut record = shared.record();
        match record.scripted.pop_front() {
            Some(scripted) => scripted,
            None => record.standing.clone(),
        }
    };
    match next {
        Answer::Accept => {
            let status = store(&shared, index, head, body, true);
            (status, "stored").into_response()
        }
        Answer::AcceptSlowly(delay) => {
            let status = store(&shared, index, head, body, false);
            tokio::time::sleep(delay).await;
            answer(status, "stored, slowly")
        }
        Answer::Refuse(status, text) => answer(
            StatusCode::from_u16(status).expect("a valid HTTP status"),
            &text,
        ),
        Answer::ServerError => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "receiver failing on purpose",
        ),
        Answer::TooManyRequests => {
            shared.record().requests[index].status = Some(429);
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                "slow down",
            )
                .into_response()
        }
        Answer::Stall => std::future::pending().await,
    }
}

/// The body (gunzipped when so encoded) and its head fields.
fn decode(gzipped: bool, body: &[u8]) -> Result<(Vec<u8>, Head), String> {
    let body = if gzipped {
        let mut inflated = Vec::with_capacity(body.len() * 8);
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut inflated)
            .map_err(|e| format!("bad gzip body: {e}"))?;
        inflated
    } else {
        body.to_vec()
    };
    let head: Head = serde_json::from_slice(&body).map_err(|e| format!("not a v1 event: {e}"))?;
    Ok((body, head))
}

/// Stores an event once per id: 201 the first time, 200 for a repeat. With `answered`,
/// request `index` shows that status at once, so whoever sees the event sees its answer.
fn store(shared: &Shared, index: usize, head: Head, body: Vec<u8>, answered: bool) -> StatusCode {
    let mut record = shared.record();
    let status = match record.by_id.get(&head.id).copied() {
        Some(i) => {
            let stored = &mut record.stored[i];
            stored.deliveries += 1;
            if *stored.body != body {
                stored.conflicting += 1;
            }
            StatusCode::OK
        }
        None => {
            let at = record.stored.len();
            record.by_id.insert(head.id.clone(), at);
            record.stored.push(StoredEvent {
                id: head.id,
                service: head.service,
                kind: head.kind,
                sequence: head.sequence,
                body: Arc::new(body),
                deliveries: 1,
                conflicting: 0,
            });
            StatusCode::CREATED
        }
    };
    if answered {
        record.requests[index].status = Some(status.as_u16());
    }
    status
}
