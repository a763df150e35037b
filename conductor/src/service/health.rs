//! Liveness and readiness probes (Kubernetes, Compose, load balancers), open to callers
//! without a certificate like `/metrics`. Liveness must not depend on peers: a restart cures
//! no lost quorum, so only readiness looks at the groups.
use crate::membership::hosting::Hosting;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use magnum_proto::wire::{HEALTHCHECK_PATH, READY_PATH};
use std::sync::Arc;

pub fn router(hosting: Arc<Hosting>) -> Router {
    Router::new()
        .route(HEALTHCHECK_PATH, get(|| async { "OK" }))
        .route(READY_PATH, get(ready))
        .with_state(hosting)
}

/// Ready while this node's meta replica knows a leader (it can route, register and follow the
/// placement) and none of its replicas halted.
async fn ready(State(h): State<Arc<Hosting>>) -> (StatusCode, String) {
    let meta = h.meta.status();
    let mut halted: Vec<String> = std::iter::once(meta.clone())
        .chain(h.shards().iter().map(|g| g.status()))
        .filter(|g| g.halted.is_some())
        .map(|g| format!("group {}", g.group))
        .collect();
    if meta.leader.is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the meta group has no leader this node knows\n".into(),
        );
    }
    if !halted.is_empty() {
        halted.sort();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: halted replicas: {}\n", halted.join(", ")),
        );
    }
    (StatusCode::OK, "ready\n".into())
}
