//! Production [`Authenticator`]: Keystone v3 token validation through magnum-drivers.
//!
//! The API logs in with its own service credentials ([`ServiceSession`]: lazy password login,
//! re-login before expiry or after a 401) and validates each user token with
//! `GET /v3/auth/tokens`, as keystonemiddleware does; successes are cached briefly
//! ([`TokenCache`]) so that a burst of requests with one token costs one Keystone round trip.
use crate::auth::{AuthError, Authenticator, Identity};
use async_trait::async_trait;
use magnum_drivers::openstack::{
    Domain, HttpClient, HttpConfig, KeystoneClient, PasswordCredentials, ServiceSession, Token,
    TokenCache, TokenValidator, DEFAULT_TOKEN_CACHE_CAPACITY,
};
use magnum_drivers::Error;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct KeystoneSettings {
    /// Identity endpoint, with or without the trailing `/v3`.
    pub auth_url: String,
    pub user: String,
    pub password: String,
    pub project: String,
    /// Domain of both the service user and the service project (`default` is taken as the
    /// default domain's id, anything else as a domain name).
    pub domain: String,
    /// How long a validated token is trusted without asking Keystone again.
    pub cache_ttl: Duration,
    pub timeout: Duration,
}

pub struct KeystoneAuthenticator {
    validator: TokenValidator,
}

/// `http://ks:5000` and `http://ks:5000/v3/` both become `http://ks:5000/v3`.
pub fn v3_base(auth_url: &str) -> String {
    let trimmed = auth_url.trim_end_matches('/');
    if trimmed.ends_with("/v3") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v3")
    }
}

fn domain(d: &str) -> Domain {
    if d == "default" {
        Domain::Id(d.to_string())
    } else {
        Domain::Name(d.to_string())
    }
}

impl KeystoneAuthenticator {
    pub fn new(s: KeystoneSettings) -> Result<Self, String> {
        let http = HttpClient::new(&HttpConfig {
            request_timeout: s.timeout,
            ..HttpConfig::default()
        })
        .map_err(|e| e.to_string())?;
        let keystone =
            KeystoneClient::new(http, &v3_base(&s.auth_url)).map_err(|e| e.to_string())?;
        let creds = PasswordCredentials {
            username: s.user.clone(),
            password: s.password.clone(),
            user_domain: domain(&s.domain),
            project_name: s.project.clone(),
            project_domain: domain(&s.domain),
        };
        let session = Arc::new(ServiceSession::new(keystone, creds));
        Ok(Self {
            validator: TokenValidator::new(
                session,
                TokenCache::new(DEFAULT_TOKEN_CACHE_CAPACITY, s.cache_ttl),
            ),
        })
    }
}

fn identity(t: &Token, token: &str) -> Identity {
    Identity {
        user_id: t.user_id.clone(),
        user_name: t.user_name.clone(),
        // Domain- and system-scoped tokens have no project: every project policy then fails.
        project_id: t.project_id.clone().unwrap_or_default(),
        project_name: t.project_name.clone().unwrap_or_default(),
        roles: t.roles.clone(),
        token: token.to_string(),
        catalog: Arc::new(t.catalog.clone()),
    }
}

#[async_trait]
impl Authenticator for KeystoneAuthenticator {
    async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        match self.validator.validate(token).await {
            Ok(t) => Ok(identity(&t, token)),
            Err(Error::InvalidToken) => Err(AuthError::InvalidToken),
            Err(e) => Err(AuthError::Unavailable(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_normalised() {
        assert_eq!(v3_base("http://k:5000"), "http://k:5000/v3");
        assert_eq!(v3_base("http://k:5000/v3/"), "http://k:5000/v3");
        assert_eq!(domain("default"), Domain::Id("default".into()));
        assert_eq!(domain("Default"), Domain::Name("Default".into()));
    }
}
