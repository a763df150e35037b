//! Who is calling: the `Authenticator` seam (Keystone token → [`Identity`]).
use async_trait::async_trait;
use magnum_drivers::openstack::Catalog;
use magnum_proto::{ProjectId, UserId};
use std::sync::Arc;

/// A validated caller. Roles are Keystone's effective roles (implied roles included).
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub user_id: String,
    pub user_name: String,
    pub project_id: String,
    pub project_name: String,
    pub roles: Vec<String>,
    /// The caller's token, passed on to Glance/Nova/Neutron look-ups.
    pub token: String,
    /// The token's service catalog (empty when the authenticator has none, e.g. in tests).
    pub catalog: Arc<Catalog>,
}

impl Identity {
    /// oslo.policy compares roles case-insensitively.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    /// `context_is_admin` = `role:admin`; admins act on all projects (Magnum's `all_tenants`).
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }

    pub fn project(&self) -> ProjectId {
        ProjectId(self.project_id.clone())
    }

    pub fn user(&self) -> UserId {
        UserId(self.user_id.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown, expired or revoked token: 401.
    #[error("invalid or expired token")]
    InvalidToken,
    /// Keystone unreachable or answering errors: 503.
    #[error("identity service unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Authenticator: Send + Sync {
    async fn authenticate(&self, token: &str) -> Result<Identity, AuthError>;
}
