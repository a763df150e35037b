//! The HTTP client of the internal plane. In `permissive` mode it speaks TLS and, for a peer
//! whose handshake fails at connect (a node not yet switched), falls back to plain for a while;
//! no request is sent twice, since a connect error means nothing was sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Mode, NetError, Tls};

/// How long a peer that answered only plain is spoken to in plain before TLS is tried again.
const PLAIN_FALLBACK: Duration = Duration::from_secs(30);

/// HTTP/2 liveness pings of an idle or busy connection, and how long an answer may take.
const H2_PING: Duration = Duration::from_millis(500);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Fixed HTTP/2 flow-control windows, large enough that neither side ever waits for a window
/// on loopback or a LAN (a Raft batch is at most `2 * 4 MiB` plus envelopes, a snapshot goes
/// in chunks). The adaptive window measured bandwidth with a PING round per DATA frame
/// received: every RPC cost two more TLS records and syscalls each way.
pub const H2_STREAM_WINDOW: u32 = 16 << 20;
pub const H2_CONN_WINDOW: u32 = 64 << 20;

#[derive(Clone)]
pub struct InternalClient(Transport);

#[derive(Clone)]
enum Transport {
    Plain(reqwest::Client),
    Tls(reqwest::Client),
    Permissive {
        tls: reqwest::Client,
        plain: reqwest::Client,
        /// Peers that answered only plain, until when.
        plain_peers: Arc<Mutex<HashMap<String, Instant>>>,
    },
}

impl InternalClient {
    /// `configure` sets timeouts, headers and pools; it is applied to each underlying client.
    pub fn new(
        tls: &Tls,
        configure: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Result<Self, NetError> {
        // Internal traffic goes straight to peers, never through a proxy from the environment.
        // HTTP/2 (negotiated by ALPN, see `material::alpn`) keeps one connection per peer; its
        // pings close a connection whose peer went silent (paused, partitioned) within
        // `H2_PING + H2_PING_TIMEOUT`, so the next request dials again instead of waiting on it.
        let base = || {
            configure(
                reqwest::Client::builder()
                    .no_proxy()
                    .http2_initial_stream_window_size(H2_STREAM_WINDOW)
                    .http2_initial_connection_window_size(H2_CONN_WINDOW)
                    .http2_keep_alive_interval(H2_PING)
                    .http2_keep_alive_timeout(H2_PING_TIMEOUT)
                    .http2_keep_alive_while_idle(true),
            )
        };
        // A `Tls` has client material exactly when its mode is not plain.
        let transport = match tls.client_config() {
            None => Transport::Plain(base().build()?),
            Some(cfg) => {
                let secure = base().use_preconfigured_tls(cfg).build()?;
                match tls.mode() {
                    Mode::Permissive => Transport::Permissive {
                        tls: secure,
                        plain: base().build()?,
                        plain_peers: Arc::default(),
                    },
                    Mode::Strict | Mode::Plain => Transport::Tls(secure),
                }
            }
        };
        Ok(Self(transport))
    }

    /// Sends the request `build` makes from a client and the full URL of `path` at `addr`.
    pub async fn send(
        &self,
        addr: &str,
        path: &str,
        build: impl Fn(&reqwest::Client, String) -> reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        let plain_url = || format!("http://{addr}{path}");
        let tls_url = || format!("https://{addr}{path}");
        let (tls, plain, plain_peers) = match &self.0 {
            Transport::Plain(plain) => return build(plain, plain_url()).send().await,
            Transport::Tls(tls) => return build(tls, tls_url()).send().await,
            Transport::Permissive {
                tls,
                plain,
                plain_peers,
            } => (tls, plain, plain_peers),
        };
        let peers = || plain_peers.lock().unwrap_or_else(|p| p.into_inner());
        let plain_until = peers().get(addr).copied();
        if plain_until.is_some_and(|until| until > Instant::now()) {
            let res = build(plain, plain_url()).send().await;
            // The peer has switched to strict since: it answered before any handler ran, so
            // sending again over TLS cannot apply anything twice.
            if matches!(&res, Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED) {
                peers().remove(addr);
                return build(tls, tls_url()).send().await;
            }
            return res;
        }
        let res = build(tls, tls_url()).send().await;
        match &res {
            Err(e) if e.is_connect() => {
                let retry = build(plain, plain_url()).send().await;
                if retry.is_ok() {
                    tracing::warn!(%addr, "peer does not speak internal TLS yet; using plain HTTP for {PLAIN_FALLBACK:?}");
                    peers().insert(addr.to_string(), Instant::now() + PLAIN_FALLBACK);
                    return retry;
                }
                res
            }
            _ => res,
        }
    }
}
