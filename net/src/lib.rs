//! The internal plane's transport.
//!
//! Every conductor port (Raft, service) and every internal client (API node → conductor,
//! conductor → conductor, `magnum manage`) speaks mutual TLS with certificates from one
//! deployment CA. A certificate says who holds it: its URI SAN `urn:magnum:<role>:<name>`
//! (role `conductor`, `api` or `operator`). Listeners hand that [`Peer`] to the handlers, which
//! authorise by role; clients check that the server is a conductor. Addresses are not part of
//! the identity, so a node may move without a new certificate (as with SPIFFE ids).
//!
//! [`Mode`] exists for rolling adoption: `plain` (no TLS, loudly warned), `permissive` (accepts
//! both on the same port by peeking at the first byte, speaks TLS and falls back to plain for a
//! peer that does not answer TLS yet), `strict` (TLS with a client certificate only).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod certs;
pub mod client;
pub mod key_mode;
mod material;
pub mod metrics;
pub mod server;
pub mod shed;
mod verify;

pub use client::InternalClient;
pub use material::Tls;
pub use server::{serve, Limits, Listener};

use std::fmt;
use std::path::PathBuf;

/// How a node treats the internal plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No TLS at all: anyone who reaches the ports drives the conductors.
    Plain,
    /// Accept plain and mutual TLS; speak TLS, falling back to plain per peer.
    Permissive,
    /// Mutual TLS only.
    Strict,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Permissive => "permissive",
            Mode::Strict => "strict",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(Mode::Plain),
            "permissive" => Ok(Mode::Permissive),
            "strict" => Ok(Mode::Strict),
            _ => Err(format!(
                "unknown internal TLS mode {s:?} (plain, permissive, strict)"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a certificate's holder is allowed to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Conductor,
    Api,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Conductor => "conductor",
            Role::Api => "api",
            Role::Operator => "operator",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "conductor" => Ok(Role::Conductor),
            "api" => Ok(Role::Api),
            "operator" => Ok(Role::Operator),
            _ => Err(format!("unknown role {s:?} (conductor, api, operator)")),
        }
    }
}

/// The holder of a certificate issued by the deployment CA.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub role: Role,
    /// The node id for conductors; a free-form name for API nodes and operators.
    pub name: String,
}

impl Identity {
    const URN_PREFIX: &'static str = "urn:magnum:";

    pub fn new(role: Role, name: impl Into<String>) -> Result<Self, NetError> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(NetError::BadName(name));
        }
        Ok(Self { role, name })
    }

    pub fn uri(&self) -> String {
        format!("{}{}:{}", Self::URN_PREFIX, self.role.as_str(), self.name)
    }

    pub fn from_uri(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix(Self::URN_PREFIX)?;
        let (role, name) = rest.split_once(':')?;
        Self::new(role.parse().ok()?, name).ok()
    }

    /// The conductor node id this identity names, if it is a conductor's.
    pub fn conductor_id(&self) -> Option<u64> {
        match self.role {
            Role::Conductor => self.name.parse().ok(),
            _ => None,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role.as_str(), self.name)
    }
}

/// Who sent a request, as the listener saw it. Handlers authorise on this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A verified client certificate.
    Verified(Identity),
    /// Plain HTTP to a listener in `plain` or `permissive` mode, which trusts the network.
    Plain,
    /// Plain HTTP to a strict listener: served the open routes (metrics) only.
    Anonymous,
}

impl Peer {
    /// Whether the peer may act as one of `roles`. Plain peers pass: a listener only accepts
    /// them when the operator chose a mode that trusts the network.
    pub fn is_one_of(&self, roles: &[Role]) -> bool {
        match self {
            Peer::Plain => true,
            Peer::Verified(id) => roles.contains(&id.role),
            Peer::Anonymous => false,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Verified(id) => id.fmt(f),
            Peer::Plain => f.write_str("plain"),
            Peer::Anonymous => f.write_str("anonymous"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("{0}: {1}")]
    Pem(PathBuf, String),
    #[error("{0}: no certificate in the file")]
    NoCertificate(PathBuf),
    #[error("{0}: the certificate carries no magnum identity (urn:magnum:<role>:<name>)")]
    NoIdentity(PathBuf),
    #[error("certificate name {0:?}: 1 to 64 characters of [A-Za-z0-9._-]")]
    BadName(String),
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Verifier(String),
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("listen on {0}: {1}")]
    Listen(std::net::SocketAddr, #[source] std::io::Error),
}

#[cfg(test)]
mod tests;
