//! Production [`Authenticator`]: Keystone v3 token validation through magnum-drivers.
//!
//! The API logs in with its own service credentials ([`ServiceSession`]: lazy password login,
//! re-login before expiry or after a 401) and validates each user token with
//! `GET /v3/auth/tokens`, as keystonemiddleware does. Three things keep a burst of requests from
//! turning into a burst of Keystone calls:
//!
//! * successes are cached for `cache_ttl` ([`TokenCache`]), tokens Keystone called invalid
//!   (404) for a shorter `invalid_ttl` ([`InvalidTokens`]); both are keyed by the token's
//!   SHA-256, never the token. Transient failures (5xx, timeouts, our own credentials refused)
//!   are not cached: the next request asks again.
//! * concurrent validations of one uncached token share one Keystone call (single flight).
//! * at most [`MAX_CONCURRENT_VALIDATIONS`] calls run at once, which also bounds the client's
//!   connections to Keystone (idle ones included) whatever the number of distinct tokens.
use crate::auth::{AuthError, Authenticator, Identity};
use async_trait::async_trait;
use magnum_drivers::openstack::{
    Domain, HttpClient, HttpConfig, KeystoneClient, PasswordCredentials, ServiceSession, Token,
    TokenCache, DEFAULT_TOKEN_CACHE_CAPACITY,
};
use magnum_drivers::Error;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{OnceCell, Semaphore};

/// Default of [`KeystoneAuthenticator::with_invalid_token_ttl`].
pub const DEFAULT_INVALID_TOKEN_TTL: Duration = Duration::from_secs(5);

/// Keystone validations in flight at once (and so connections to Keystone).
pub const MAX_CONCURRENT_VALIDATIONS: usize = 32;

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
    /// How long a validated token is trusted without asking Keystone again (a revoked token
    /// keeps working until then).
    pub cache_ttl: Duration,
    /// Timeout of one Keystone call, and of the wait for a free call slot.
    pub timeout: Duration,
}

type Key = [u8; 32];

fn key(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Tokens Keystone answered 404 for, by SHA-256, each refused without a call for one TTL;
/// bounded like [`TokenCache`] (the oldest entry goes first).
pub struct InvalidTokens {
    inner: Mutex<InvalidInner>,
    capacity: usize,
    ttl: Duration,
}

#[derive(Default)]
struct InvalidInner {
    until: HashMap<Key, Instant>,
    /// Insertion order, which is expiry order (one TTL for all). An entry whose time differs
    /// from the map's is stale (the key was inserted again) and is skipped.
    order: VecDeque<(Key, Instant)>,
}

impl InvalidInner {
    fn pop_oldest(&mut self) -> bool {
        let Some((k, t)) = self.order.pop_front() else {
            return false;
        };
        if self.until.get(&k) == Some(&t) {
            self.until.remove(&k);
        }
        true
    }
}

impl std::fmt::Debug for InvalidTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvalidTokens")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl InvalidTokens {
    /// At most `capacity` tokens (at least 1), each for `ttl` (zero: nothing is cached).
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(InvalidInner::default()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    fn contains(&self, k: &Key) -> bool {
        let now = Instant::now();
        lock(&self.inner).until.get(k).is_some_and(|t| *t > now)
    }

    fn insert(&self, k: Key) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        while inner.order.front().is_some_and(|(_, t)| *t <= now) {
            inner.pop_oldest();
        }
        while inner.until.len() >= self.capacity && !inner.until.contains_key(&k) {
            if !inner.pop_oldest() {
                break;
            }
        }
        let until = now + self.ttl;
        inner.until.insert(k, until);
        inner.order.push_back((k, until));
    }

    /// Entries (fresh or not yet dropped).
    pub fn len(&self) -> usize {
        lock(&self.inner).until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one validation found, shared by the requests that waited for it.
#[derive(Clone)]
enum Outcome {
    Valid(Arc<Token>),
    Invalid,
    Unavailable(String),
}

type Flights = Mutex<HashMap<Key, Arc<OnceCell<Outcome>>>>;

/// A request's share of a validation in flight; the last one out forgets it, so that later
/// requests consult the caches (or ask again after a transient failure).
struct Flight<'a> {
    flights: &'a Flights,
    key: Key,
    cell: Arc<OnceCell<Outcome>>,
}

impl<'a> Flight<'a> {
    fn join(flights: &'a Flights, key: Key) -> Self {
        let cell = lock(flights).entry(key).or_default().clone();
        Self { flights, key, cell }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut flights = lock(self.flights);
        // Clones are only taken under this lock: a count of 2 (map + us) means nobody waits.
        let ours = flights
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell));
        if ours && (self.cell.initialized() || Arc::strong_count(&self.cell) <= 2) {
            flights.remove(&self.key);
        }
    }
}

pub struct KeystoneAuthenticator {
    session: Arc<ServiceSession>,
    valid: TokenCache,
    invalid: InvalidTokens,
    flights: Flights,
    calls: Semaphore,
    wait_limit: Duration,
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
    /// Tokens Keystone calls invalid are remembered for [`DEFAULT_INVALID_TOKEN_TTL`].
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
        Ok(Self {
            session: Arc::new(ServiceSession::new(keystone, creds)),
            valid: TokenCache::new(DEFAULT_TOKEN_CACHE_CAPACITY, s.cache_ttl),
            invalid: InvalidTokens::new(DEFAULT_TOKEN_CACHE_CAPACITY, DEFAULT_INVALID_TOKEN_TTL),
            flights: Mutex::new(HashMap::new()),
            calls: Semaphore::new(MAX_CONCURRENT_VALIDATIONS),
            wait_limit: s.timeout,
        })
    }

    /// How long a token Keystone answered 404 for is refused without asking again (zero: not
    /// remembered). Short, since it only absorbs bursts of one bad token.
    pub fn with_invalid_token_ttl(mut self, ttl: Duration) -> Self {
        self.invalid = InvalidTokens::new(DEFAULT_TOKEN_CACHE_CAPACITY, ttl);
        self
    }

    async fn validate(&self, token: &str) -> Outcome {
        if let Some(t) = self.valid.get(token) {
            return Outcome::Valid(t);
        }
        let k = key(token);
        if self.invalid.contains(&k) {
            return Outcome::Invalid;
        }
        let flight = Flight::join(&self.flights, k);
        flight
            .cell
            .get_or_init(|| self.ask_keystone(token, &k))
            .await
            .clone()
    }

    /// One Keystone call for `token` (the leader of a flight).
    async fn ask_keystone(&self, token: &str, k: &Key) -> Outcome {
        // A flight that just ended may have filled a cache after we looked.
        if let Some(t) = self.valid.get(token) {
            return Outcome::Valid(t);
        }
        if self.invalid.contains(k) {
            return Outcome::Invalid;
        }
        let Ok(Ok(_permit)) = tokio::time::timeout(self.wait_limit, self.calls.acquire()).await
        else {
            return Outcome::Unavailable("too many token validations in progress".into());
        };
        match self.session.validate(token).await {
            Ok(t) => {
                let t = Arc::new(t);
                self.valid.insert(t.clone());
                Outcome::Valid(t)
            }
            Err(Error::InvalidToken) => {
                self.invalid.insert(*k);
                Outcome::Invalid
            }
            // Keystone down or slow, or our own token refused twice: not the token's fault.
            Err(e) => Outcome::Unavailable(e.to_string()),
        }
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
        match self.validate(token).await {
            Outcome::Valid(t) => Ok(identity(&t, token)),
            Outcome::Invalid => Err(AuthError::InvalidToken),
            Outcome::Unavailable(m) => Err(AuthError::Unavailable(m)),
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

    #[test]
    fn invalid_tokens_expire_and_are_bounded() {
        let cache = InvalidTokens::new(3, Duration::from_millis(50));
        for i in 0..10 {
            cache.insert(key(&format!("t{i}")));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.contains(&key("t9")));
        assert!(!cache.contains(&key("t0")));
        cache.insert(key("t9"));
        assert_eq!(cache.len(), 3);
        std::thread::sleep(Duration::from_millis(80));
        assert!(!cache.contains(&key("t9")));
        cache.insert(key("fresh"));
        assert_eq!(cache.len(), 1, "expired entries go at the next insert");

        let off = InvalidTokens::new(3, Duration::ZERO);
        off.insert(key("x"));
        assert!(off.is_empty());
    }
}
