//! A node's TLS material: loaded from its dir, swapped in place when the files change (polled)
//! or on SIGHUP, so certificates rotate without a restart. rustls configs are built once and
//! read the current material at every handshake.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use tokio_util::sync::CancellationToken;

use crate::certs::{self, CA_CERT, NODE_CERT, NODE_KEY};
use crate::verify::{ConductorVerifier, CurrentClientVerifier, CurrentKey};
use crate::{Identity, Mode, NetError, Role};

/// How often a node looks at its certificate files.
const RELOAD_POLL: Duration = Duration::from_secs(5);

/// One consistent set of files: key, certificate, trust bundle.
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) client_verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    pub(crate) identity: Identity,
    pub(crate) not_after: Option<time::OffsetDateTime>,
}

pub(crate) type Current = Arc<RwLock<Arc<Loaded>>>;

/// A node's internal-plane TLS: its mode and, unless plain, its reloadable material.
#[derive(Clone)]
pub struct Tls {
    mode: Mode,
    material: Option<Arc<Material>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.mode)
            .field("identity", &self.identity())
            .finish()
    }
}

struct Material {
    dir: PathBuf,
    current: Current,
    stamp: Mutex<Vec<Option<SystemTime>>>,
    server: Arc<rustls::ServerConfig>,
    client: rustls::ClientConfig,
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// HTTP/2 first: every RPC to a peer shares one connection, so a request that times out
/// resets its stream instead of costing a new TLS handshake (with HTTP/1.1 each in-flight RPC
/// needs a connection of its own, and under load handshakes that miss the RPC budget are
/// abandoned and retried without end). A peer that offers no ALPN (an older release) is spoken
/// to in HTTP/1.1.
fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

impl Tls {
    /// No TLS: every listener accepts anyone on the network.
    pub fn plain() -> Self {
        Self {
            mode: Mode::Plain,
            material: None,
        }
    }

    /// Loads `dir` (ca.crt, node.crt, node.key). The certificate must name a `role`: a
    /// conductor started with an API node's certificate is a configuration error.
    pub fn load(dir: &Path, mode: Mode, role: Role) -> Result<Self, NetError> {
        if mode == Mode::Plain {
            return Ok(Self::plain());
        }
        let loaded = load_dir(dir)?;
        if loaded.identity.role != role {
            return Err(NetError::Verifier(format!(
                "{}: the certificate is {}'s, this process is a {}",
                dir.join(NODE_CERT).display(),
                loaded.identity,
                role.as_str()
            )));
        }
        let current: Current = Arc::new(RwLock::new(Arc::new(loaded)));
        let provider = provider();
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(Arc::new(CurrentClientVerifier::new(current.clone())))
            .with_cert_resolver(Arc::new(CurrentKey(current.clone())));
        server.alpn_protocols = alpn();
        let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ConductorVerifier::new(
                current.clone(),
                provider,
            )))
            .with_client_cert_resolver(Arc::new(CurrentKey(current.clone())));
        client.alpn_protocols = alpn();
        let stamp = Mutex::new(stamps(dir));
        Ok(Self {
            mode,
            material: Some(Arc::new(Material {
                dir: dir.to_path_buf(),
                current,
                stamp,
                server: Arc::new(server),
                client,
            })),
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// This node's identity, unless plain.
    pub fn identity(&self) -> Option<Identity> {
        self.material
            .as_ref()
            .map(|m| current(&m.current).identity.clone())
    }

    /// Expiry of this node's certificate, unless plain.
    pub fn not_after(&self) -> Option<time::OffsetDateTime> {
        self.material
            .as_ref()
            .and_then(|m| current(&m.current).not_after)
    }

    pub(crate) fn server_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.material.as_ref().map(|m| m.server.clone())
    }

    pub(crate) fn client_config(&self) -> Option<rustls::ClientConfig> {
        self.material.as_ref().map(|m| m.client.clone())
    }

    /// Reloads the files if any changed since the last load. A set that does not load (a key
    /// that does not match its certificate half-way through a rotation, a bad file) leaves the
    /// current one in place and is retried on the next poll.
    pub fn reload_if_changed(&self) -> Result<bool, NetError> {
        let Some(m) = &self.material else {
            return Ok(false);
        };
        let now = stamps(&m.dir);
        {
            let seen = m.stamp.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return Ok(false);
            }
        }
        self.reload_now()?;
        *m.stamp.lock().unwrap_or_else(|p| p.into_inner()) = now;
        Ok(true)
    }

    /// Reloads the files unconditionally (SIGHUP).
    pub fn reload_now(&self) -> Result<(), NetError> {
        let Some(m) = &self.material else {
            return Ok(());
        };
        let loaded = load_dir(&m.dir)?;
        let old = current(&m.current).identity.clone();
        if loaded.identity != old {
            return Err(NetError::Verifier(format!(
                "{}: the new certificate is {}'s, this process is {old}; keeping the old one",
                m.dir.display(),
                loaded.identity
            )));
        }
        *m.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        tracing::info!(dir = %m.dir.display(), "internal TLS certificates reloaded");
        Ok(())
    }

    /// Polls the files and listens for SIGHUP until `cancel`.
    pub fn spawn_reloader(&self, cancel: CancellationToken) {
        if self.material.is_none() {
            return;
        }
        let tls = self.clone();
        tokio::spawn(async move {
            let mut hup = hangup();
            let mut tick = tokio::time::interval(RELOAD_POLL);
            loop {
                let forced = tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => false,
                    _ = next(&mut hup) => true,
                };
                let res = if forced {
                    tls.reload_now().map(|()| true)
                } else {
                    tls.reload_if_changed()
                };
                if let Err(e) = res {
                    tracing::warn!(error = %e, "internal TLS reload failed; keeping the current certificates");
                }
            }
        });
    }
}

pub(crate) fn current(c: &Current) -> Arc<Loaded> {
    c.read().unwrap_or_else(|p| p.into_inner()).clone()
}

#[cfg(unix)]
fn hangup() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(unix)]
async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
fn hangup() -> Option<()> {
    None
}

#[cfg(not(unix))]
async fn next(_: &mut Option<()>) {
    std::future::pending().await
}

fn stamps(dir: &Path) -> Vec<Option<SystemTime>> {
    [CA_CERT, NODE_CERT, NODE_KEY]
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join(f))
                .and_then(|m| m.modified())
                .ok()
        })
        .collect()
}

fn load_dir(dir: &Path) -> Result<Loaded, NetError> {
    let provider = provider();
    let cert_path = dir.join(NODE_CERT);
    let chain = certs::read_certs(&cert_path)?;
    let identity = chain
        .first()
        .and_then(certs::identity_of)
        .ok_or_else(|| NetError::NoIdentity(cert_path.clone()))?;
    let not_after = chain.first().and_then(certs::not_after);
    let key_path = dir.join(NODE_KEY);
    check_private(&key_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| NetError::Pem(key_path.clone(), e.to_string()))?;
    let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        NetError::Pem(
            key_path,
            format!("does not fit {}: {e}", cert_path.display()),
        )
    })?;
    let mut roots = RootCertStore::empty();
    for ca in certs::read_certs(&dir.join(CA_CERT))? {
        roots.add(ca)?;
    }
    let roots = Arc::new(roots);
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider)
        .build()
        .map_err(|e| NetError::Verifier(e.to_string()))?;
    Ok(Loaded {
        key: Arc::new(key),
        roots,
        client_verifier,
        identity,
        not_after,
    })
}

/// A private key readable by others is refused, as ssh does ([`crate::key_mode`]).
fn check_private(path: &Path) -> Result<(), NetError> {
    let meta = std::fs::metadata(path).map_err(|e| NetError::Io(path.to_path_buf(), e))?;
    match crate::key_mode::too_open(&meta) {
        Some(why) => Err(NetError::Pem(path.to_path_buf(), why)),
        None => Ok(()),
    }
}
