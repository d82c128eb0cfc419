//! The accept loop. Each TCP connection is counted against the caps
//! (`limits.rs`) before anything else, then gets its TLS handshake (HTTPS)
//! and its HTTP/1.1 in a task of its own, watched for the header and idle
//! deadlines. A shutdown stops accepting, lets requests in flight finish for
//! up to `SHUTDOWN_GRACE`, then closes what is left.

use super::Peer;
use super::limits::{Activity, Admission, Cap, Check, ConnectionLimits, Connections};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How long requests in flight may go on after a shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What a plain-HTTP client over a cap reads before the close.
fn refusal(cap: Cap) -> Vec<u8> {
    let error = match cap {
        Cap::Total => "too many connections to this central (--max-connections)",
        Cap::Peer => "too many connections from your address (--max-connections-per-peer)",
    };
    let body = serde_json::json!({ "error": error }).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accepts on `listener` and serves `app` until `shutdown` completes.
pub async fn serve_connections(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let counts = Arc::new(Mutex::new(Connections::default()));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let permit = match Permit::admit(&counts, peer.ip(), &limits) {
            Ok(permit) => permit,
            Err(cap) => {
                if tls.is_none() {
                    // Best effort, never waiting: a client that sent nothing yet reads it.
                    let _ = stream.try_write(&refusal(cap));
                }
                continue;
            }
        };
        let connection = Connection {
            peer,
            limits,
            app: app.clone(),
            stopping: stopping.clone(),
            _permit: permit,
        };
        tasks.spawn(connection.serve(stream, tls.clone()));
    }
    drop(listener);
    let _ = stop.send(true);
    let open = tasks.len();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} of {open} connections still busy {SHUTDOWN_GRACE:?} after the shutdown began: closed",
            tasks.len()
        );
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One admitted connection's place in the counts, given back when dropped.
struct Permit {
    counts: Arc<Mutex<Connections>>,
    ip: IpAddr,
}

impl Permit {
    /// Counts a connection from `ip`, or logs (once per streak) why not.
    fn admit(
        counts: &Arc<Mutex<Connections>>,
        ip: IpAddr,
        limits: &ConnectionLimits,
    ) -> Result<Permit, Cap> {
        let ip = ip.to_canonical();
        let admission = lock(counts).admit(ip, limits);
        match admission {
            Admission::Admitted {
                ended_total,
                ended_peer,
            } => {
                if let Some(refused) = ended_total {
                    tracing::info!(
                        "accepting connections again after refusing {refused} over --max-connections"
                    );
                }
                if let Some(refused) = ended_peer {
                    tracing::info!(peer = %ip, "accepting connections from {ip} again after refusing {refused}");
                }
                Ok(Permit {
                    counts: Arc::clone(counts),
                    ip,
                })
            }
            Admission::Refused { cap, first } => {
                if first {
                    match cap {
                        Cap::Total => tracing::warn!(
                            peer = %ip,
                            "refusing new connections: {} open, the --max-connections cap; \
                             logged again when one is accepted",
                            limits.max_connections
                        ),
                        Cap::Peer => tracing::warn!(
                            peer = %ip,
                            "refusing new connections from {ip}: {} open from it, the \
                             --max-connections-per-peer cap (raise it behind a load balancer or proxy)",
                            limits.max_connections_per_peer
                        ),
                    }
                }
                Err(cap)
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(refused) = lock(&self.counts).release(self.ip) {
            let ip = self.ip;
            tracing::info!(peer = %ip, "refused {refused} connections from {ip} until its last one closed");
        }
    }
}

/// An admitted connection, served in its own task.
struct Connection {
    peer: SocketAddr,
    limits: ConnectionLimits,
    app: Router,
    stopping: watch::Receiver<bool>,
    _permit: Permit,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let peer = self.peer;
        let Some(acceptor) = tls else {
            return self.http(stream).await;
        };
        let handshake = tokio::time::timeout(self.limits.header_timeout, acceptor.accept(stream));
        let established = tokio::select! {
            handshake = handshake => handshake,
            _ = self.stopping.changed() => return,
        };
        match established {
            Ok(Ok(stream)) => self.http(stream).await,
            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake not done within --header-timeout"),
        }
    }

    /// HTTP/1.1 on `stream` until the client or a deadline ends it.
    async fn http<S>(mut self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let activity = Arc::new(Mutex::new(Activity::new(Instant::now())));
        let io = TokioIo::new(Watched {
            stream,
            activity: Arc::clone(&activity),
        });
        let app = TowerToHyperService::new(self.app.clone());
        let watched = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(Peer(peer)));
            let in_flight = InFlight::start(&watched);
            let answer = app.call(request);
            async move {
                let answer = answer.await;
                drop(in_flight);
                answer
            }
        });
        // Our own deadlines replace hyper's header timeout, which would also
        // cut every kept-alive connection at the header timeout.
        let connection = http1::Builder::new()
            .header_read_timeout(None)
            .serve_connection(io, service);
        tokio::pin!(connection);
        let mut shutting_down = false;
        loop {
            let wake = match lock(&activity).check(Instant::now(), &self.limits) {
                Check::Until(at) => at,
                Check::Expired(why) => {
                    tracing::debug!(%peer, "connection closed: {why}");
                    return;
                }
            };
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(%peer, "connection ended: {error}");
                    }
                    return;
                }
                () = tokio::time::sleep_until(wake.into()) => {}
                _ = self.stopping.changed(), if !shutting_down => {
                    shutting_down = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A request being answered on a connection; done when dropped (answered or abandoned).
struct InFlight(Arc<Mutex<Activity>>);

impl InFlight {
    fn start(activity: &Arc<Mutex<Activity>>) -> InFlight {
        lock(activity).request_started(Instant::now());
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.0).request_done(Instant::now());
    }
}

/// A stream that notes in its connection's `Activity` when bytes move.
struct Watched<S> {
    stream: S,
    activity: Arc<Mutex<Activity>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            lock(&self.activity).read(Instant::now());
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            lock(&self.activity).wrote(Instant::now());
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            lock(&self.activity).wrote(Instant::now());
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
