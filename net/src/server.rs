//! The accept loop of every listener: TLS or plain by peeking at the first byte, the peer's
//! identity handed to handlers as a request extension, a cap on open connections, a timeout on
//! the TLS handshake and on reading request headers, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::certs::identity_of;
use crate::{Mode, NetError, Peer, Role, Tls};

/// First byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// Concurrent requests on one HTTP/2 connection; more wait for a slot at the client.
const H2_MAX_STREAMS: u32 = 2048;

/// Bounds of one listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Open connections; the next one is closed at once (before any read), so a flood costs
    /// file descriptors only up to this.
    pub max_connections: usize,
    /// From accept to the first byte, and for the TLS handshake.
    pub handshake_timeout: Duration,
    /// For the request line and headers of each request (slowloris).
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// A listener serving until its token is cancelled.
pub struct Listener {
    pub local_addr: SocketAddr,
    pub task: JoinHandle<()>,
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, NetError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| NetError::Listen(addr, e))
}

/// Serves `private` to authenticated peers (and to plain ones when the mode allows plain) and
/// `open` (metrics, health: nothing secret, nothing that changes state) to everyone. Until
/// `cancel`; then in-flight requests finish (up to 5 s).
pub fn serve(
    listener: TcpListener,
    private: Router,
    open: Router,
    tls: Tls,
    limits: Limits,
    cancel: CancellationToken,
) -> Listener {
    let local_addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let full = private.merge(open.clone());
    let anonymous = open.fallback(tls_required);
    let task = tokio::spawn(async move {
        let conns = Arc::new(Semaphore::new(limits.max_connections));
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => r,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%local_addr, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = conns.clone().try_acquire_owned() else {
                crate::metrics::connection("over_limit");
                tracing::debug!(%local_addr, "connection limit reached; closing a new connection");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (tls, full, anonymous, cancel) =
                (tls.clone(), full.clone(), anonymous.clone(), cancel.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let Some((io, peer)) = classify(stream, &tls, limits.handshake_timeout).await
                else {
                    return;
                };
                let router = match peer {
                    Peer::Verified(_) | Peer::Plain => full,
                    Peer::Anonymous => anonymous,
                };
                serve_connection(io, router, peer, limits, cancel).await;
            });
        }
        // Wait for open connections to finish their requests.
        let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(Duration::from_secs(5), conns.acquire_many(all)).await;
    });
    Listener { local_addr, task }
}

type Io = Either<tokio_rustls::server::TlsStream<TcpStream>, TcpStream>;

/// Decides how to talk to a new connection, from its first byte and the mode.
async fn classify(stream: TcpStream, tls: &Tls, timeout: Duration) -> Option<(Io, Peer)> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return None,
    }
    if first[0] != TLS_HANDSHAKE {
        let peer = match tls.mode() {
            Mode::Plain | Mode::Permissive => Peer::Plain,
            Mode::Strict => Peer::Anonymous,
        };
        crate::metrics::connection(if peer == Peer::Plain {
            "plain"
        } else {
            "anonymous"
        });
        return Some((Either::Right(stream), peer));
    }
    let config = tls.server_config()?;
    let accepted = tokio::time::timeout(
        timeout,
        tokio_rustls::TlsAcceptor::from(config).accept(stream),
    )
    .await;
    let stream = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            crate::metrics::connection("refused");
            tracing::info!(error = %e, "internal TLS handshake refused");
            return None;
        }
        Err(_) => {
            crate::metrics::connection("refused");
            return None;
        }
    };
    crate::metrics::connection("tls");
    let id = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(identity_of)?;
    Some((Either::Left(stream), Peer::Verified(id)))
}

async fn serve_connection(
    io: Io,
    router: Router,
    peer: Peer,
    limits: Limits,
    cancel: CancellationToken,
) {
    let svc = router.map_request(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // One HTTP/2 connection carries every group's RPCs from a peer (a few hundred shards each
    // with a request in flight), and a client that stopped answering pings is dropped.
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(crate::client::H2_STREAM_WINDOW)
        .initial_connection_window_size(crate::client::H2_CONN_WINDOW)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(10)))
        .keep_alive_timeout(Duration::from_secs(10));
    let conn =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// What a peer without a certificate gets from a strict listener, beyond the open routes.
async fn tls_required() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        "this port requires mutual TLS with a certificate of the deployment CA (see SECURITY.md)\n",
    )
        .into_response()
}

/// Route layer: only peers of `roles` (and plain peers, where the mode lets them in).
pub async fn allow(roles: &'static [Role], req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or(Peer::Anonymous);
    if peer.is_one_of(roles) {
        return next.run(req).await;
    }
    tracing::warn!(%peer, path = %req.uri().path(), "internal request refused: wrong role");
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    (
        StatusCode::FORBIDDEN,
        format!(
            "{peer} may not call this; it needs a certificate of role {}\n",
            names.join(" or ")
        ),
    )
        .into_response()
}
