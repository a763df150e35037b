//! The production Keystone validator's caches, against a fake Keystone that counts its calls:
//! a burst of one invalid token costs one call (single flight, then the negative cache until
//! its TTL), valid tokens are cached for their TTL, failures reaching Keystone are not cached,
//! and many distinct tokens never have more than `MAX_CONCURRENT_VALIDATIONS` calls in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::{FakeLookups, MemBackend};
use magnum_api::keystone::{KeystoneAuthenticator, KeystoneSettings, MAX_CONCURRENT_VALIDATIONS};
use magnum_api::{serve_state_limited, ApiServer, AppState, Settings};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVICE_TOKEN: &str = "service-token";

/// Keystone's `/v3/auth/tokens`: login gives `SERVICE_TOKEN`; validation answers 200 for
/// subjects starting with `valid`, 503 while `down`, 401 while `refuse_service`, else 404.
#[derive(Default)]
struct FakeKeystone {
    validations: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    peers: Mutex<HashSet<SocketAddr>>,
    delay_ms: AtomicU64,
    down: AtomicBool,
    refuse_service: AtomicBool,
}

fn token_body(user: &str) -> Value {
    json!({"token": {
        "methods": ["password"],
        "user": {"id": user, "name": user, "domain": {"id": "default", "name": "Default"}},
        "project": {"id": "project-a", "name": "a", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}],
        "expires_at": "2099-01-01T00:00:00.000000Z",
        "issued_at": "2024-01-01T00:00:00.000000Z",
        "catalog": []
    }})
}

fn keystone_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "title": "x", "message": message}});
    (status, Json(body)).into_response()
}

async fn login() -> Response {
    let mut r = (StatusCode::CREATED, Json(token_body("magnum"))).into_response();
    r.headers_mut()
        .insert("x-subject-token", SERVICE_TOKEN.parse().unwrap());
    r
}

async fn validate(
    State(ks): State<Arc<FakeKeystone>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    ks.peers.lock().unwrap().insert(peer);
    let now = ks.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    ks.max_in_flight.fetch_max(now, Ordering::SeqCst);
    ks.validations.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ks.delay_ms.load(Ordering::SeqCst))).await;
    ks.in_flight.fetch_sub(1, Ordering::SeqCst);
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let subject = header("x-subject-token").to_string();
    if header("x-auth-token") != SERVICE_TOKEN || ks.refuse_service.load(Ordering::SeqCst) {
        return keystone_error(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        );
    }
    if ks.down.load(Ordering::SeqCst) {
        return keystone_error(StatusCode::SERVICE_UNAVAILABLE, "down");
    }
    if subject.starts_with("valid") {
        return (StatusCode::OK, Json(token_body(&subject))).into_response();
    }
    keystone_error(
        StatusCode::NOT_FOUND,
        &format!("Could not find token: {subject}."),
    )
}

async fn fake_keystone() -> (String, Arc<FakeKeystone>) {
    let ks = Arc::new(FakeKeystone::default());
    let app = Router::new()
        .route("/v3/auth/tokens", get(validate).post(login))
        .with_state(ks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (format!("http://{addr}/v3"), ks)
}

/// An API node validating against `auth_url`; its base URL.
async fn api(auth_url: &str, cache_ttl: Duration, invalid_ttl: Duration) -> (String, ApiServer) {
    let auth = KeystoneAuthenticator::new(KeystoneSettings {
        auth_url: auth_url.into(),
        user: "magnum".into(),
        password: "secret".into(),
        project: "service".into(),
        domain: "default".into(),
        cache_ttl,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
    .with_invalid_token_ttl(invalid_ttl);
    let state = AppState::new(
        Arc::new(MemBackend::new(4)),
        Arc::new(auth),
        Arc::new(FakeLookups),
        Settings::new(auth_url),
    );
    // Bursts of 200 concurrent requests here are about Keystone, not shedding.
    let server = serve_state_limited("127.0.0.1:0".parse().unwrap(), state, 1024)
        .await
        .unwrap();
    (format!("http://{}", server.local_addr), server)
}

async fn get_clusters(http: &reqwest::Client, api: &str, token: &str) -> (u16, Value, String) {
    let r = http
        .get(format!("{api}/v1/clusters"))
        .header("X-Auth-Token", token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, r.json().await.unwrap_or(Value::Null), www)
}

/// `n` concurrent requests with `token(i)`; their statuses, bodies and `WWW-Authenticate`.
async fn burst(
    http: &reqwest::Client,
    api: &str,
    n: usize,
    token: impl Fn(usize) -> String,
) -> Vec<(u16, Value, String)> {
    let calls = (0..n).map(|i| {
        let (http, api, token) = (http.clone(), api.to_string(), token(i));
        tokio::spawn(async move { get_clusters(&http, &api, &token).await })
    });
    let mut out = Vec::new();
    for c in futures::future::join_all(calls).await {
        out.push(c.unwrap());
    }
    out
}

fn calls(ks: &FakeKeystone) -> usize {
    ks.validations.load(Ordering::SeqCst)
}

fn assert_401(r: &(u16, Value, String), auth_url: &str) {
    assert_eq!(r.0, 401, "{}", r.1);
    assert_eq!(
        r.1,
        json!({"error": {"code": 401, "title": "Unauthorized",
            "message": "The request you have made requires authentication."}})
    );
    assert_eq!(r.2, format!("Keystone uri=\"{auth_url}\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_one_invalid_token_costs_one_keystone_call() {
    let (auth_url, ks) = fake_keystone().await;
    // Keystone takes a while, so the whole burst arrives while the first call is in flight.
    ks.delay_ms.store(200, Ordering::SeqCst);
    let (api, server) = api(
        &auth_url,
        Duration::from_secs(60),
        Duration::from_millis(500),
    )
    .await;
    let http = reqwest::Client::new();

    let t0 = Instant::now();
    let answers = burst(&http, &api, 200, |_| "not-a-token".to_string()).await;
    println!(
        "200 concurrent requests, one invalid token: {} Keystone call(s) in {:?}",
        calls(&ks),
        t0.elapsed()
    );
    assert_eq!(answers.len(), 200);
    for a in &answers {
        assert_401(a, &auth_url);
    }
    assert_eq!(calls(&ks), 1, "one call for the whole burst");

    // Remembered as invalid for the negative TTL, then asked again once.
    ks.delay_ms.store(0, Ordering::SeqCst);
    for _ in 0..20 {
        assert_401(&get_clusters(&http, &api, "not-a-token").await, &auth_url);
    }
    assert_eq!(calls(&ks), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_401(&get_clusters(&http, &api, "not-a-token").await, &auth_url);
    assert_401(&get_clusters(&http, &api, "not-a-token").await, &auth_url);
    assert_eq!(calls(&ks), 2, "one more call after the negative TTL");

    // A different invalid token is a different entry.
    assert_401(&get_clusters(&http, &api, "other-bad").await, &auth_url);
    assert_eq!(calls(&ks), 3);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keystone_failures_are_not_cached() {
    let (auth_url, ks) = fake_keystone().await;
    let (api, server) = api(&auth_url, Duration::from_secs(60), Duration::from_secs(60)).await;
    let http = reqwest::Client::new();

    // 5xx: 503 in Magnum's envelope, and the next request asks again.
    ks.down.store(true, Ordering::SeqCst);
    for expected_calls in 1..=3 {
        let (status, body, _) = get_clusters(&http, &api, "valid-user").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["errors"][0]["code"], "server", "{body}");
        assert_eq!(calls(&ks), expected_calls);
    }
    ks.down.store(false, Ordering::SeqCst);
    let (status, body, _) = get_clusters(&http, &api, "valid-user").await;
    assert_eq!(status, 200, "Keystone is back: {body}");
    assert_eq!(calls(&ks), 4);

    // Our own token refused (401, again after a fresh login) is not the subject token's fault:
    // 503, not cached as invalid.
    ks.refuse_service.store(true, Ordering::SeqCst);
    let before = calls(&ks);
    let (status, _, _) = get_clusters(&http, &api, "valid-other").await;
    assert_eq!(status, 503);
    assert_eq!(
        calls(&ks),
        before + 2,
        "validation retried once after a re-login"
    );
    ks.refuse_service.store(false, Ordering::SeqCst);
    let (status, _, _) = get_clusters(&http, &api, "valid-other").await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn valid_tokens_are_cached_for_the_configured_ttl() {
    let (auth_url, ks) = fake_keystone().await;
    ks.delay_ms.store(100, Ordering::SeqCst);
    let (api, server) = api(
        &auth_url,
        Duration::from_millis(500),
        Duration::from_secs(5),
    )
    .await;
    let http = reqwest::Client::new();

    let answers = burst(&http, &api, 200, |_| "valid-alice".to_string()).await;
    assert!(answers.iter().all(|a| a.0 == 200), "{:?}", answers[0]);
    assert_eq!(calls(&ks), 1, "one call for a burst of one valid token");
    ks.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(get_clusters(&http, &api, "valid-alice").await.0, 200);
    assert_eq!(calls(&ks), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get_clusters(&http, &api, "valid-alice").await.0, 200);
    assert_eq!(calls(&ks), 2, "asked again once the entry expired");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distinct_tokens_are_validated_with_bounded_concurrency() {
    let (auth_url, ks) = fake_keystone().await;
    ks.delay_ms.store(20, Ordering::SeqCst);
    let (api, server) = api(&auth_url, Duration::from_secs(60), Duration::from_secs(5)).await;
    let http = reqwest::Client::new();

    let t0 = Instant::now();
    let answers = burst(&http, &api, 200, |i| format!("bad-{i}")).await;
    let max = ks.max_in_flight.load(Ordering::SeqCst);
    let peers = ks.peers.lock().unwrap().len();
    println!(
        "200 distinct invalid tokens: {} calls, at most {max} at once, {peers} connections, {:?}",
        calls(&ks),
        t0.elapsed()
    );
    assert!(answers.iter().all(|a| a.0 == 401));
    assert_eq!(calls(&ks), 200, "distinct tokens are distinct calls");
    assert!(max <= MAX_CONCURRENT_VALIDATIONS, "{max} calls at once");
    // The login's connection, plus at most one per call slot (hyper may race a new
    // connection against one being released, hence the slack).
    assert!(
        peers <= 2 * MAX_CONCURRENT_VALIDATIONS + 1,
        "{peers} connections"
    );
    server.shutdown().await;
}
