//! Keystone: login, validation, the service session and the validation cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use magnum_drivers::openstack::{
    Domain, Interface, KeystoneClient, PasswordCredentials, ServiceSession, TokenCache,
    TokenProvider, TokenValidator,
};
use magnum_drivers::Error;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::mock;

#[derive(Default)]
struct Ks {
    logins: AtomicUsize,
    validations: AtomicUsize,
    /// Service tokens Keystone still accepts.
    live: Mutex<Vec<String>>,
    /// Lifetime of issued tokens.
    lifetime_secs: Mutex<i64>,
}

fn token_body(user: &str, lifetime_secs: i64) -> Value {
    let expires = OffsetDateTime::now_utc() + time::Duration::seconds(lifetime_secs);
    let expires = expires
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({"token": {
        "methods": ["password"],
        "user": {"id": format!("{user}-id"), "name": user, "domain": {"id": "default", "name": "Default"}},
        "project": {"id": "proj-id", "name": "service", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r1", "name": "admin"}, {"id": "r2", "name": "member"}],
        "expires_at": expires,
        "issued_at": "2026-01-01T00:00:00.000000Z",
        "audit_ids": ["a"],
        "catalog": [
            {"id": "s1", "type": "orchestration", "name": "heat", "endpoints": [
                {"id": "e1", "interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://heat.example/heat-api/v1/proj-id"}
            ]}
        ]
    }})
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})),
    )
        .into_response()
}

async fn issue(State(ks): State<Arc<Ks>>, Json(body): Json<Value>) -> Response {
    let user = &body["auth"]["identity"]["password"]["user"];
    if user["password"] != "secret" || user["domain"]["name"] != "Default" {
        return unauthorized();
    }
    assert_eq!(body["auth"]["scope"]["project"]["name"], "service");
    let n = ks.logins.fetch_add(1, Ordering::SeqCst) + 1;
    let id = format!("svc-token-{n}");
    ks.live.lock().unwrap().push(id.clone());
    let lifetime = *ks.lifetime_secs.lock().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("X-Subject-Token", id.parse().unwrap());
    (
        StatusCode::CREATED,
        headers,
        Json(token_body("magnum", lifetime)),
    )
        .into_response()
}

async fn validate(State(ks): State<Arc<Ks>>, headers: HeaderMap) -> Response {
    ks.validations.fetch_add(1, Ordering::SeqCst);
    let caller = headers
        .get("X-Auth-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ks.live.lock().unwrap().iter().any(|t| t == caller) {
        return unauthorized();
    }
    match headers.get("X-Subject-Token").and_then(|v| v.to_str().ok()) {
        Some("user-good") => {
            let mut h = HeaderMap::new();
            h.insert("X-Subject-Token", "user-good".parse().unwrap());
            (StatusCode::OK, h, Json(token_body("alice", 3600))).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": 404, "title": "Not Found", "message": "Could not find token."}})),
        )
            .into_response(),
    }
}

async fn keystone(lifetime_secs: i64) -> (Arc<Ks>, String) {
    let ks = Arc::new(Ks::default());
    *ks.lifetime_secs.lock().unwrap() = lifetime_secs;
    let router = Router::new()
        .route("/identity/v3/auth/tokens", post(issue).get(validate))
        .with_state(ks.clone());
    let base = mock::serve(router).await;
    (ks, format!("{base}/identity/v3"))
}

fn creds(password: &str) -> PasswordCredentials {
    PasswordCredentials {
        username: "magnum".into(),
        password: password.into(),
        user_domain: Domain::Name("Default".into()),
        project_name: "service".into(),
        project_domain: Domain::Name("Default".into()),
    }
}

#[tokio::test]
async fn password_auth_and_validate() {
    let (_ks, auth_url) = keystone(3600).await;
    let client = KeystoneClient::new(mock::http(), &auth_url).unwrap();
    let token = client.password_auth(&creds("secret")).await.unwrap();
    assert_eq!(token.id, "svc-token-1");
    assert_eq!(token.user_name, "magnum");
    assert_eq!(token.project_id.as_deref(), Some("proj-id"));
    assert_eq!(token.roles, vec!["admin", "member"]);
    assert_eq!(
        token
            .catalog
            .endpoint("orchestration", Interface::Public, Some("RegionOne"))
            .unwrap()
            .as_str(),
        "http://heat.example/heat-api/v1/proj-id"
    );

    let user = client.validate(&token.id, "user-good").await.unwrap();
    assert_eq!(user.id, "user-good");
    assert_eq!(user.user_name, "alice");

    assert_eq!(
        client.validate(&token.id, "user-bad").await.unwrap_err(),
        Error::InvalidToken
    );
    assert_eq!(
        client.validate(&token.id, "bad\ntoken").await.unwrap_err(),
        Error::InvalidToken
    );
    assert!(matches!(
        client.validate("not-a-service-token", "user-good").await,
        Err(Error::Unauthorized(_))
    ));
}

#[tokio::test]
async fn wrong_password_is_unauthorized() {
    let (_ks, auth_url) = keystone(3600).await;
    let client = KeystoneClient::new(mock::http(), &auth_url).unwrap();
    let err = client.password_auth(&creds("wrong")).await.unwrap_err();
    assert_eq!(
        err,
        Error::Unauthorized("The request you have made requires authentication.".into())
    );
}

#[tokio::test]
async fn session_logs_in_lazily_once_and_again_after_a_401() {
    let (ks, auth_url) = keystone(3600).await;
    let session = ServiceSession::new(
        KeystoneClient::new(mock::http(), &auth_url).unwrap(),
        creds("secret"),
    );
    assert_eq!(
        ks.logins.load(Ordering::SeqCst),
        0,
        "no login before first use"
    );

    let t1 = session.token().await.unwrap();
    let t2 = session.token().await.unwrap();
    assert_eq!(t1.id, t2.id);
    assert_eq!(ks.logins.load(Ordering::SeqCst), 1);
    assert!(session
        .endpoint("orchestration", Interface::Public, None)
        .await
        .is_ok());
    assert!(matches!(
        session.endpoint("compute", Interface::Public, None).await,
        Err(Error::NoEndpoint { .. })
    ));

    // Keystone forgets our token: validation gets a 401, the session logs in again and retries once.
    ks.live.lock().unwrap().clear();
    let user = session.validate("user-good").await.unwrap();
    assert_eq!(user.user_name, "alice");
    assert_eq!(ks.logins.load(Ordering::SeqCst), 2);
    assert_eq!(session.token().await.unwrap().id, "svc-token-2");

    // As a TokenProvider: invalidating the current token forces a new login.
    let provider: &dyn TokenProvider = &session;
    let current = provider.token().await.unwrap();
    assert!(provider.invalidate(&current).await);
    assert_eq!(provider.token().await.unwrap(), "svc-token-3");
}

#[tokio::test]
async fn session_relogs_in_before_expiry() {
    // Tokens live 2 s: the session refreshes at half the lifetime.
    let (ks, auth_url) = keystone(2).await;
    let session = ServiceSession::new(
        KeystoneClient::new(mock::http(), &auth_url).unwrap(),
        creds("secret"),
    );
    let first = session.token().await.unwrap();
    assert_eq!(session.token().await.unwrap().id, first.id);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = session.token().await.unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(ks.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_login() {
    let (ks, auth_url) = keystone(3600).await;
    let session = Arc::new(ServiceSession::new(
        KeystoneClient::new(mock::http(), &auth_url).unwrap(),
        creds("secret"),
    ));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = session.clone();
            tokio::spawn(async move { s.token().await.unwrap().id.clone() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "svc-token-1");
    }
    assert_eq!(ks.logins.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn validator_caches_successes_only() {
    let (ks, auth_url) = keystone(3600).await;
    let session = Arc::new(ServiceSession::new(
        KeystoneClient::new(mock::http(), &auth_url).unwrap(),
        creds("secret"),
    ));
    let validator = TokenValidator::new(session, TokenCache::new(100, Duration::from_millis(300)));

    for _ in 0..3 {
        assert_eq!(
            validator.validate("user-good").await.unwrap().user_name,
            "alice"
        );
    }
    assert_eq!(ks.validations.load(Ordering::SeqCst), 1);

    for _ in 0..2 {
        assert_eq!(
            validator.validate("user-bad").await.unwrap_err(),
            Error::InvalidToken
        );
    }
    assert_eq!(
        ks.validations.load(Ordering::SeqCst),
        3,
        "failures are not cached"
    );

    tokio::time::sleep(Duration::from_millis(400)).await;
    validator.validate("user-good").await.unwrap();
    assert_eq!(
        ks.validations.load(Ordering::SeqCst),
        4,
        "entry expired after the TTL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_validations_of_one_token_share_one_call() {
    let (ks, auth_url) = keystone(3600).await;
    let session = Arc::new(ServiceSession::new(
        KeystoneClient::new(mock::http(), &auth_url).unwrap(),
        creds("secret"),
    ));
    let validator = Arc::new(TokenValidator::new(session, TokenCache::default()));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let v = validator.clone();
            tokio::spawn(async move { v.validate("user-good").await.unwrap().user_name.clone() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "alice");
    }
    assert_eq!(ks.validations.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unreachable_keystone_is_transient() {
    let url = format!("{}/identity/v3", mock::closed_port_url().await);
    let client = KeystoneClient::new(mock::http(), &url).unwrap();
    let err = client.password_auth(&creds("secret")).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}
