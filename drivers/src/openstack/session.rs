//! The service's own Keystone session (lazy login, cached token, re-login before expiry or after a
//! 401) and a bounded TTL cache of validated user tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use super::catalog::Interface;
use super::http::TokenProvider;
use super::keystone::{KeystoneClient, PasswordCredentials, Token};
use crate::error::{Error, Result};

/// Re-login this long before the token expires (or at half its lifetime if that is shorter).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

struct Current {
    token: Arc<Token>,
    refresh_at: Instant,
}

/// Holds the service credentials and a cached service token.
///
/// The first call logs in; later calls reuse the token until shortly before it expires. Concurrent
/// callers wait for a single login. [`ServiceSession::invalidate`] (called by clients after a 401)
/// forces the next call to log in again.
pub struct ServiceSession {
    keystone: KeystoneClient,
    credentials: PasswordCredentials,
    current: tokio::sync::Mutex<Option<Current>>,
}

impl std::fmt::Debug for ServiceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSession")
            .field("auth_url", &self.keystone.auth_url().as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl ServiceSession {
    /// Creates a session; nothing is sent until the first call.
    pub fn new(keystone: KeystoneClient, credentials: PasswordCredentials) -> Self {
        ServiceSession {
            keystone,
            credentials,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The Keystone client used by this session.
    pub fn keystone(&self) -> &KeystoneClient {
        &self.keystone
    }

    /// A valid service token, logging in if there is none or it is about to expire.
    pub async fn token(&self) -> Result<Arc<Token>> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let token = Arc::new(self.keystone.password_auth(&self.credentials).await?);
        let refresh_at =
            Instant::now() + refresh_delay(token.expires_at, OffsetDateTime::now_utc());
        tracing::info!(expires_at = %token.expires_at, "logged in to keystone");
        *current = Some(Current {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }

    /// Forgets the cached token if it is `token_id` (a request with it was refused with 401).
    pub async fn invalidate(&self, token_id: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| c.token.id == token_id) {
            *current = None;
        }
    }

    /// The endpoint of `service_type` from the service token's catalog.
    pub async fn endpoint(
        &self,
        service_type: &str,
        interface: Interface,
        region: Option<&str>,
    ) -> Result<Url> {
        self.token()
            .await?
            .catalog
            .require_endpoint(service_type, interface, region)
    }

    /// Validates a user's token with the service token; a 401 (our token went bad) triggers one
    /// re-login and retry. Not cached: see [`TokenValidator`].
    pub async fn validate(&self, subject_token: &str) -> Result<Token> {
        let service = self.token().await?;
        match self.keystone.validate(&service.id, subject_token).await {
            Err(Error::Unauthorized(msg)) => {
                tracing::info!(%msg, "service token refused while validating, logging in again");
                self.invalidate(&service.id).await;
                let service = self.token().await?;
                self.keystone.validate(&service.id, subject_token).await
            }
            other => other,
        }
    }
}

impl TokenProvider for ServiceSession {
    fn token(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move { Ok(ServiceSession::token(self).await?.id.clone()) })
    }

    fn invalidate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            ServiceSession::invalidate(self, token).await;
            true
        })
    }
}

/// How long to keep a token issued now that expires at `expires_at`.
fn refresh_delay(expires_at: OffsetDateTime, now: OffsetDateTime) -> Duration {
    let lifetime = Duration::try_from(expires_at - now).unwrap_or(Duration::ZERO);
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    lifetime - margin
}

/// Default bound of [`TokenCache`].
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 10_000;
/// Default maximum time a validated token is trusted without asking Keystone again.
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);

struct Entry {
    token: Arc<Token>,
    valid_until: Instant,
}

/// A bounded cache of validated tokens, keyed by the SHA-256 of the token (the token itself is not
/// kept as a key). An entry lives until `min(expires_at, max_ttl)`. Only successful validations are
/// inserted.
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    capacity: usize,
    max_ttl: Duration,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("max_ttl", &self.max_ttl)
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(DEFAULT_TOKEN_CACHE_CAPACITY, DEFAULT_TOKEN_CACHE_TTL)
    }
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    /// A cache holding at most `capacity` tokens (at least 1), each for at most `max_ttl`.
    pub fn new(capacity: usize, max_ttl: Duration) -> Self {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            max_ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached token, if present and still fresh.
    pub fn get(&self, token: &str) -> Option<Arc<Token>> {
        let k = key(token);
        let mut entries = self.lock();
        match entries.get(&k) {
            Some(e) if Instant::now() < e.valid_until => Some(e.token.clone()),
            Some(_) => {
                entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Caches a validated token until `min(expires_at, now + max_ttl)`; tokens already expired are
    /// not cached. When full, expired entries are dropped first, then the one that expires soonest.
    pub fn insert(&self, token: Arc<Token>) {
        let remaining = Duration::try_from(token.expires_at - OffsetDateTime::now_utc())
            .unwrap_or(Duration::ZERO);
        let ttl = remaining.min(self.max_ttl);
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let k = key(&token.id);
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&k) {
            entries.retain(|_, e| e.valid_until > now);
            if entries.len() >= self.capacity {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.valid_until)
                    .map(|(k, _)| *k)
                {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            k,
            Entry {
                token,
                valid_until: now + ttl,
            },
        );
    }

    /// Number of entries (fresh or not yet evicted).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Validates user tokens through a [`ServiceSession`], caching successes in a [`TokenCache`].
#[derive(Debug)]
pub struct TokenValidator {
    session: Arc<ServiceSession>,
    cache: TokenCache,
    /// One gate per token being validated (by its SHA-256): concurrent callers of one uncached
    /// token wait for the first call's answer instead of each asking Keystone.
    flights: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenValidator {
    /// Combines a session and a cache.
    pub fn new(session: Arc<ServiceSession>, cache: TokenCache) -> Self {
        TokenValidator {
            session,
            cache,
            flights: Mutex::default(),
        }
    }

    /// The cached token or Keystone's answer. Errors (including [`Error::InvalidToken`]) are never
    /// cached.
    #[tracing::instrument(name = "keystone.validate_cached", skip_all)]
    pub async fn validate(&self, subject_token: &str) -> Result<Arc<Token>> {
        if let Some(t) = self.cache.get(subject_token) {
            return Ok(t);
        }
        let k = key(subject_token);
        let gate = self.lock_flights().entry(k).or_default().clone();
        let answer = {
            let _turn = gate.lock().await;
            match self.cache.get(subject_token) {
                Some(t) => Ok(t),
                None => self.session.validate(subject_token).await.map(|t| {
                    let t = Arc::new(t);
                    self.cache.insert(t.clone());
                    t
                }),
            }
        };
        // The last caller out forgets the gate (the map holds one reference, this caller one).
        let mut flights = self.lock_flights();
        if flights
            .get(&k)
            .is_some_and(|g| Arc::ptr_eq(g, &gate) && Arc::strong_count(g) == 2)
        {
            flights.remove(&k);
        }
        answer
    }

    fn lock_flights(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>> {
        self.flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The underlying session.
    pub fn session(&self) -> &Arc<ServiceSession> {
        &self.session
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openstack::Catalog;

    fn token(id: &str, expires_in: time::Duration) -> Arc<Token> {
        Arc::new(Token {
            id: id.into(),
            expires_at: OffsetDateTime::now_utc() + expires_in,
            issued_at: None,
            methods: vec![],
            user_id: "u".into(),
            user_name: "u".into(),
            user_domain_id: None,
            user_domain_name: None,
            project_id: Some("p".into()),
            project_name: None,
            project_domain_id: None,
            project_domain_name: None,
            domain_id: None,
            domain_name: None,
            system_scoped: false,
            roles: vec![],
            trust_id: None,
            catalog: Catalog::default(),
        })
    }

    #[test]
    fn refresh_delay_keeps_a_margin() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            refresh_delay(now + time::Duration::hours(1), now),
            Duration::from_secs(3300)
        );
        assert_eq!(
            refresh_delay(now + time::Duration::minutes(2), now),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_delay(now - time::Duration::minutes(2), now),
            Duration::ZERO
        );
    }

    #[test]
    fn cache_respects_ttl_and_expiry() {
        let cache = TokenCache::new(10, Duration::from_millis(50));
        cache.insert(token("a", time::Duration::hours(1)));
        cache.insert(token("expired", time::Duration::seconds(-1)));
        assert!(cache.get("a").is_some());
        assert!(cache.get("expired").is_none());
        assert!(cache.get("other").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(cache.get("a").is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_is_bounded() {
        let cache = TokenCache::new(3, Duration::from_secs(60));
        for i in 0..10 {
            cache.insert(token(
                &format!("t{i}"),
                time::Duration::hours(1) + time::Duration::seconds(i),
            ));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get("t9").is_some());
    }
}
