//! Token validation against an external Keystone (e.g. real Keystone 30), as keystonemiddleware
//! does for a real Heat, Nova, Neutron or Glance: `GET /v3/auth/tokens` with the service's own
//! token in `X-Auth-Token` and the caller's in `X-Subject-Token`. Validations are cached for
//! `cache_ttl` (never past the token's expiry) and each token is validated once at a time
//! however many requests carry it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use super::AuthContext;
use crate::error::SimError;
use crate::util::lock;

/// How long a validation is reused by default (our API node and conductors cache as long).
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);

/// A token Keystone does not know (404) stays unknown: remembered this long.
const INVALID_TTL: Duration = Duration::from_secs(60);

/// Cached validations at most; expired ones are dropped first, then all.
const MAX_CACHED: usize = 10_000;

/// The service token is renewed this long before it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(120);

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// An external Keystone v3 that issues the tokens cloud-sim's services accept, and the
/// credentials cloud-sim validates them with (a user with `admin` or `service` on a project,
/// as Keystone's `identity:validate_token` policy wants).
#[derive(Clone)]
pub struct ExternalKeystone {
    /// The v3 URL, e.g. `http://127.0.0.1:15000/v3`.
    pub url: String,
    pub user: String,
    pub password: String,
    pub project: String,
    /// The domain (name) of the user and of the project.
    pub domain: String,
    /// How long a validation (valid or not) is reused.
    pub cache_ttl: Duration,
}

impl fmt::Debug for ExternalKeystone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalKeystone")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("project", &self.project)
            .field("domain", &self.domain)
            .field("cache_ttl", &self.cache_ttl)
            .finish()
    }
}

/// Why a token was not accepted.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// Keystone does not know the token (or it expired, or was revoked).
    Invalid,
    /// Keystone could not be asked (down, or it refused our credentials).
    Unavailable(String),
}

#[derive(Clone)]
enum Verdict {
    Valid { who: AuthContext, until: Instant },
    Invalid { until: Instant },
}

impl Verdict {
    fn until(&self) -> Instant {
        match self {
            Verdict::Valid { until, .. } | Verdict::Invalid { until } => *until,
        }
    }
}

struct ServiceToken {
    id: String,
    renew_at: Instant,
}

pub(crate) struct RemoteKeystone {
    cfg: ExternalKeystone,
    v3: String,
    http: reqwest::Client,
    /// One login at a time; the others wait for its token.
    service: tokio::sync::Mutex<Option<ServiceToken>>,
    cache: Mutex<HashMap<String, Arc<OnceCell<Verdict>>>>,
}

#[derive(Deserialize)]
struct Envelope {
    token: Body,
}

#[derive(Deserialize)]
struct Body {
    expires_at: String,
    user: User,
    #[serde(default)]
    project: Option<IdOnly>,
    #[serde(default)]
    roles: Vec<Named>,
    #[serde(default, rename = "OS-TRUST:trust")]
    trust: Option<IdOnly>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    domain: Option<IdOnly>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

/// When `expires_at` (Keystone's ISO 8601) falls on the monotonic clock; `None` if unreadable.
fn instant_of(expires_at: &str) -> Option<Instant> {
    let at = OffsetDateTime::parse(expires_at, &Rfc3339).ok()?;
    let left = at - OffsetDateTime::now_utc();
    Some(Instant::now() + Duration::try_from(left).unwrap_or(Duration::ZERO))
}

impl RemoteKeystone {
    pub(crate) fn new(cfg: ExternalKeystone) -> Result<Self, SimError> {
        let v3 = cfg.url.trim_end_matches('/').to_string();
        if !(v3.starts_with("http://") || v3.starts_with("https://")) {
            return Err(SimError::Config(format!(
                "the external Keystone URL {v3:?} is not http(s)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| SimError::Config(format!("HTTP client: {e}")))?;
        Ok(RemoteKeystone {
            cfg,
            v3,
            http,
            service: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// What keystonemiddleware puts in `WWW-Authenticate` (`www_authenticate_uri`): the
    /// Keystone clients should go to.
    pub(crate) fn www_authenticate_uri(&self) -> &str {
        self.v3.strip_suffix("/v3").unwrap_or(&self.v3)
    }

    /// Who `token` belongs to.
    pub(crate) async fn validate(&self, token: &str) -> Result<AuthContext, Rejection> {
        let cell = self.cell(token);
        let verdict = cell
            .get_or_try_init(|| self.fetch(token))
            .await
            .map_err(Rejection::Unavailable)?;
        match verdict {
            Verdict::Valid { who, .. } => Ok(who.clone()),
            Verdict::Invalid { .. } => Err(Rejection::Invalid),
        }
    }

    /// The cache slot of `token`: a fresh or pending one, else a new one. A failed validation
    /// leaves its slot empty, so the next request asks again.
    fn cell(&self, token: &str) -> Arc<OnceCell<Verdict>> {
        let now = Instant::now();
        let fresh = |c: &OnceCell<Verdict>| c.get().is_none_or(|v| v.until() > now);
        let mut cache = lock(&self.cache);
        if let Some(c) = cache.get(token).filter(|c| fresh(c)) {
            return c.clone();
        }
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| fresh(c));
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        let c = Arc::new(OnceCell::new());
        cache.insert(token.to_string(), c.clone());
        c
    }

    async fn fetch(&self, token: &str) -> Result<Verdict, String> {
        let mut stale: Option<String> = None;
        // A second round only after Keystone refused our own (expired or revoked) token.
        for _ in 0..2 {
            let service = self.service_token(stale.as_deref()).await?;
            let r = self
                .http
                .get(format!("{}/auth/tokens?nocatalog", self.v3))
                .header("X-Auth-Token", &service)
                .header("X-Subject-Token", token)
                .send()
                .await
                .map_err(|e| format!("GET {}/auth/tokens: {e}", self.v3))?;
            match r.status().as_u16() {
                200 => {
                    let body: Envelope = r
                        .json()
                        .await
                        .map_err(|e| format!("token validation answer: {e}"))?;
                    return Ok(self.verdict(body.token));
                }
                404 => {
                    return Ok(Verdict::Invalid {
                        until: Instant::now() + INVALID_TTL.min(self.cfg.cache_ttl),
                    })
                }
                401 => stale = Some(service),
                s => {
                    return Err(format!(
                        "Keystone answered {s} to the validation of a token (does {} hold admin or service on {}?)",
                        self.cfg.user, self.cfg.project
                    ))
                }
            }
        }
        Err(format!(
            "Keystone refused the service credentials of {}",
            self.cfg.user
        ))
    }

    fn verdict(&self, t: Body) -> Verdict {
        let cached = Instant::now() + self.cfg.cache_ttl;
        let until = instant_of(&t.expires_at).map_or(cached, |e| e.min(cached));
        Verdict::Valid {
            who: AuthContext {
                user_id: t.user.id,
                user_name: t.user.name,
                project_id: t.project.map(|p| p.id),
                roles: t.roles.into_iter().map(|r| r.name).collect(),
                domain_id: t.user.domain.map(|d| d.id).unwrap_or_default(),
                trust_id: t.trust.map(|t| t.id),
            },
            until,
        }
    }

    /// cloud-sim's own token; a new one when there is none, it is due, or it is `stale`
    /// (refused by Keystone).
    async fn service_token(&self, stale: Option<&str>) -> Result<String, String> {
        let mut held = self.service.lock().await;
        if let Some(t) = held.as_ref() {
            if t.renew_at > Instant::now() && stale != Some(t.id.as_str()) {
                return Ok(t.id.clone());
            }
        }
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.cfg.user, "domain": {"name": self.cfg.domain},
                "password": self.cfg.password}}},
            "scope": {"project": {"name": self.cfg.project, "domain": {"name": self.cfg.domain}}}}});
        let r = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.v3))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST {}/auth/tokens: {e}", self.v3))?;
        if r.status().as_u16() != 201 {
            return Err(format!(
                "Keystone answered {} to the login of {} on project {}",
                r.status().as_u16(),
                self.cfg.user,
                self.cfg.project
            ));
        }
        let id = r
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or("Keystone's login answer has no X-Subject-Token")?;
        let body: Envelope = r.json().await.map_err(|e| format!("login answer: {e}"))?;
        let hour = Instant::now() + Duration::from_secs(3600);
        let renew_at = instant_of(&body.token.expires_at)
            .map_or(hour, |e| e.checked_sub(RENEW_MARGIN).unwrap_or(e).min(hour));
        tracing::info!(user = %self.cfg.user, keystone = %self.v3, "service token issued");
        *held = Some(ServiceToken {
            id: id.clone(),
            renew_at,
        });
        Ok(id)
    }
}
