//! `GET /metrics` on the service listener: the Prometheus text of this node's Raft groups
//! (magnum-raft renders it; this crate only serves it) and the transport's counters
//! (magnum-net). Served to anyone, without a certificate: nothing in it is secret.
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use magnum_raft::RaftNode;
use std::sync::Arc;

pub const METRICS_PATH: &str = "/metrics";

pub fn router(node: Arc<RaftNode>) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics))
        .with_state(node)
}

async fn metrics(State(node): State<Arc<RaftNode>>) -> Response {
    match node.metrics_text() {
        Ok(mut text) => {
            text.push_str(&magnum_net::metrics::text());
            (
                [(header::CONTENT_TYPE, magnum_raft::METRICS_CONTENT_TYPE)],
                text,
            )
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
