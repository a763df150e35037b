//! Probes (no token): `GET /healthcheck` answers `OK` while the process serves requests, as
//! upstream's oslo.middleware healthcheck does; `GET /readyz` answers 200 only while a
//! conductor answers a fresh topology read, so a load balancer or Kubernetes sends users only
//! to API nodes that can reach the conductors.
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;

pub async fn healthcheck() -> &'static str {
    "OK"
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, String) {
    match state.backend.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: no conductor answers: {e}\n"),
        ),
    }
}
