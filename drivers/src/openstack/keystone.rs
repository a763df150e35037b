//! Keystone v3: password authentication and token validation.

use std::fmt;

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

use super::catalog::Catalog;
use super::http::{self, HttpClient};
use crate::error::{Error, Result};

const SERVICE: &str = "keystone";

/// A domain named by id or by name (Keystone accepts either in auth requests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// `{"id": ...}`, e.g. `default`.
    Id(String),
    /// `{"name": ...}`, e.g. `Default`.
    Name(String),
}

impl Domain {
    fn to_json(&self) -> serde_json::Value {
        match self {
            Domain::Id(id) => serde_json::json!({ "id": id }),
            Domain::Name(name) => serde_json::json!({ "name": name }),
        }
    }
}

/// Password credentials scoped to a project.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordCredentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// The user's domain.
    pub user_domain: Domain,
    /// Project to scope the token to.
    pub project_name: String,
    /// The project's domain.
    pub project_domain: Domain,
}

impl fmt::Debug for PasswordCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("user_domain", &self.user_domain)
            .field("project_name", &self.project_name)
            .field("project_domain", &self.project_domain)
            .finish()
    }
}

impl PasswordCredentials {
    fn request_body(&self) -> serde_json::Value {
        serde_json::json!({
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.username,
                            "domain": self.user_domain.to_json(),
                            "password": self.password,
                        }
                    }
                },
                "scope": {
                    "project": {
                        "name": self.project_name,
                        "domain": self.project_domain.to_json(),
                    }
                }
            }
        })
    }
}

/// A Keystone v3 token: who, in which scope, with which roles, until when, and the catalog.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The token itself (`X-Subject-Token`).
    pub id: String,
    /// Expiry.
    pub expires_at: OffsetDateTime,
    /// Issue time, if given.
    pub issued_at: Option<OffsetDateTime>,
    /// Auth methods, e.g. `["password"]`.
    pub methods: Vec<String>,
    /// User id.
    pub user_id: String,
    /// User name.
    pub user_name: String,
    /// The user's domain id.
    pub user_domain_id: Option<String>,
    /// The user's domain name.
    pub user_domain_name: Option<String>,
    /// Project id (project-scoped tokens).
    pub project_id: Option<String>,
    /// Project name.
    pub project_name: Option<String>,
    /// The project's domain id.
    pub project_domain_id: Option<String>,
    /// The project's domain name.
    pub project_domain_name: Option<String>,
    /// Domain id (domain-scoped tokens).
    pub domain_id: Option<String>,
    /// Domain name (domain-scoped tokens).
    pub domain_name: Option<String>,
    /// True for system-scoped tokens.
    pub system_scoped: bool,
    /// Effective role names in the scope.
    pub roles: Vec<String>,
    /// Trust id for trust-scoped tokens.
    pub trust_id: Option<String>,
    /// The service catalog (empty for `?nocatalog`).
    pub catalog: Catalog,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("id", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("user_id", &self.user_id)
            .field("user_name", &self.user_name)
            .field("project_id", &self.project_id)
            .field("project_name", &self.project_name)
            .field("domain_id", &self.domain_id)
            .field("system_scoped", &self.system_scoped)
            .field("roles", &self.roles)
            .field("trust_id", &self.trust_id)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// True if the token carries the role (case-insensitive, as oslo.policy compares).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    /// True if the token has expired at `now`.
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }
}

#[derive(Deserialize)]
struct TokenEnvelope {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    expires_at: String,
    #[serde(default)]
    issued_at: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    user: NamedWithDomain,
    #[serde(default)]
    project: Option<NamedWithDomain>,
    #[serde(default)]
    domain: Option<IdName>,
    #[serde(default)]
    system: Option<serde_json::Value>,
    #[serde(default)]
    roles: Vec<IdName>,
    #[serde(default, rename = "OS-TRUST:trust")]
    trust: Option<IdName>,
    #[serde(default)]
    catalog: Catalog,
}

#[derive(Deserialize)]
struct NamedWithDomain {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    domain: Option<IdName>,
}

#[derive(Deserialize)]
struct IdName {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

fn parse_time(field: &str, s: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::InvalidResponse(format!("keystone: bad {field} {s:?}: {e}")))
}

impl TokenBody {
    fn into_token(self, id: String) -> Result<Token> {
        let expires_at = parse_time("expires_at", &self.expires_at)?;
        let issued_at = self
            .issued_at
            .as_deref()
            .map(|s| parse_time("issued_at", s))
            .transpose()?;
        let (user_domain_id, user_domain_name) = split_domain(self.user.domain);
        let (project_id, project_name, project_domain_id, project_domain_name) = match self.project
        {
            Some(p) => {
                let (did, dname) = split_domain(p.domain);
                (Some(p.id), Some(p.name), did, dname)
            }
            None => (None, None, None, None),
        };
        let (domain_id, domain_name) = split_domain(self.domain);
        Ok(Token {
            id,
            expires_at,
            issued_at,
            methods: self.methods,
            user_id: self.user.id,
            user_name: self.user.name,
            user_domain_id,
            user_domain_name,
            project_id,
            project_name,
            project_domain_id,
            project_domain_name,
            domain_id,
            domain_name,
            system_scoped: self.system.is_some(),
            roles: self.roles.into_iter().filter_map(|r| r.name).collect(),
            trust_id: self.trust.and_then(|t| t.id),
            catalog: self.catalog,
        })
    }
}

fn split_domain(d: Option<IdName>) -> (Option<String>, Option<String>) {
    match d {
        Some(d) => (d.id, d.name),
        None => (None, None),
    }
}

/// Client of Keystone's `/v3/auth/tokens`.
#[derive(Debug, Clone)]
pub struct KeystoneClient {
    pub(super) http: HttpClient,
    pub(super) auth_url: Url,
    tokens_url: Url,
}

impl KeystoneClient {
    /// `auth_url` is the identity v3 endpoint, e.g. `http://host/identity/v3`.
    pub fn new(http: HttpClient, auth_url: &str) -> Result<Self> {
        let auth_url = http::parse_url("Keystone auth", auth_url)?;
        let tokens_url = http::join(&auth_url, &["auth", "tokens"])?;
        Ok(KeystoneClient {
            http,
            auth_url,
            tokens_url,
        })
    }

    /// The identity v3 endpoint this client talks to.
    pub fn auth_url(&self) -> &Url {
        &self.auth_url
    }

    /// `POST /v3/auth/tokens` with a password, scoped to a project. 201 → the token (id from
    /// `X-Subject-Token`); 401 → [`Error::Unauthorized`].
    #[tracing::instrument(name = "keystone.password_auth", skip_all, fields(user = %creds.username, project = %creds.project_name))]
    pub async fn password_auth(&self, creds: &PasswordCredentials) -> Result<Token> {
        self.issue_token(&creds.request_body()).await
    }

    /// `POST /v3/auth/tokens` with `body`: 201 → the token (id from `X-Subject-Token`).
    pub(super) async fn issue_token(&self, body: &serde_json::Value) -> Result<Token> {
        let request = self
            .http
            .request(Method::POST, self.tokens_url.clone())
            .json(body);
        let response = http::send(SERVICE, request).await?;
        if !response.status().is_success() {
            return Err(http::error_from_response(SERVICE, response).await);
        }
        let id = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::InvalidResponse("keystone: no X-Subject-Token in the answer".into())
            })?;
        let body: TokenEnvelope = http::read_json(SERVICE, response).await?;
        body.token.into_token(id)
    }

    /// `GET /v3/projects/{id}` with `token`: whether the project exists (404 → false).
    #[tracing::instrument(name = "keystone.project_exists", skip_all, fields(project = %id))]
    pub async fn project_exists(&self, token: &str, id: &str) -> Result<bool> {
        let url = http::join(&self.auth_url, &["projects", id])?;
        let request = self
            .http
            .request(Method::GET, url)
            .header("X-Auth-Token", token);
        let response = http::send(SERVICE, request).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(http::error_from_response(SERVICE, response).await),
        }
    }

    /// `GET /v3/auth/tokens` with `X-Auth-Token: service_token` and `X-Subject-Token: subject_token`.
    /// 200 → the subject's token; 404 (or a token that cannot be sent as a header) →
    /// [`Error::InvalidToken`]; 401 → [`Error::Unauthorized`] (the service token is bad).
    #[tracing::instrument(name = "keystone.validate", skip_all)]
    pub async fn validate(&self, service_token: &str, subject_token: &str) -> Result<Token> {
        if subject_token.is_empty() || HeaderValue::from_str(subject_token).is_err() {
            return Err(Error::InvalidToken);
        }
        let request = self
            .http
            .request(Method::GET, self.tokens_url.clone())
            .header("X-Auth-Token", service_token)
            .header("X-Subject-Token", subject_token);
        let response = http::send(SERVICE, request).await?;
        match response.status() {
            s if s.is_success() => {
                let body: TokenEnvelope = http::read_json(SERVICE, response).await?;
                body.token.into_token(subject_token.to_string())
            }
            StatusCode::NOT_FOUND => Err(Error::InvalidToken),
            _ => Err(http::error_from_response(SERVICE, response).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_keystone_token_body() {
        let body = serde_json::json!({"token": {
            "methods": ["password"],
            "user": {"domain": {"id": "default", "name": "Default"}, "id": "u1", "name": "admin", "password_expires_at": null},
            "audit_ids": ["x"],
            "expires_at": "2015-11-09T01:42:57.527363Z",
            "issued_at": "2015-11-09T00:42:57.527404Z",
            "project": {"domain": {"id": "default", "name": "Default"}, "id": "p1", "name": "admin"},
            "is_domain": false,
            "roles": [{"id": "r1", "name": "admin"}, {"id": "r2", "name": "member"}],
            "catalog": [{"endpoints": [{"id": "e", "interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://h/heat-api/v1/p1"}], "id": "s", "type": "orchestration", "name": "heat"}]
        }});
        let env: TokenEnvelope = serde_json::from_value(body).unwrap();
        let t = env.token.into_token("tok".into()).unwrap();
        assert_eq!(t.user_id, "u1");
        assert_eq!(t.project_id.as_deref(), Some("p1"));
        assert_eq!(t.project_domain_name.as_deref(), Some("Default"));
        assert_eq!(t.roles, vec!["admin", "member"]);
        assert!(t.has_role("Member"));
        assert_eq!(t.expires_at.unix_timestamp(), 1447033377);
        assert!(t
            .catalog
            .endpoint("orchestration", Default::default(), None)
            .is_some());
        assert!(!format!("{t:?}").contains("tok\""));
    }

    #[test]
    fn request_body_shape() {
        let c = PasswordCredentials {
            username: "magnum".into(),
            password: "secret".into(),
            user_domain: Domain::Name("Default".into()),
            project_name: "service".into(),
            project_domain: Domain::Id("default".into()),
        };
        let b = c.request_body();
        assert_eq!(
            b["auth"]["identity"]["password"]["user"]["domain"]["name"],
            "Default"
        );
        assert_eq!(b["auth"]["scope"]["project"]["domain"]["id"], "default");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
