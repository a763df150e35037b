//! `GET /metrics` on the service listener: the Prometheus text of this node's Raft groups
//! (magnum-raft renders it; this crate only serves it), the transport's counters
//! (magnum-net), the sealing-key rotation's progress (`leader/reseal.rs`), the orphan-stack
//! reaper's counters (`leader/reap.rs`) and the batched stack looks' (`cloud/feed.rs`). Served
//! to anyone, without a certificate: nothing in it is secret.
use crate::leader::reap::ReapStats;
use crate::leader::reseal::ResealStatus;
use crate::leader::LeaderConfig;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use magnum_raft::RaftNode;
use std::sync::Arc;

pub const METRICS_PATH: &str = "/metrics";

type Leaders = (ResealStatus, ReapStats);

/// `leader`: where the shard leaders' loops publish what they count.
pub fn router(node: Arc<RaftNode>, leader: &LeaderConfig) -> Router {
    let leaders: Leaders = (leader.reseal.clone(), leader.reap_stats.clone());
    Router::new()
        .route(METRICS_PATH, get(metrics))
        .with_state((node, leaders))
}

async fn metrics(State((node, (reseal, reap))): State<(Arc<RaftNode>, Leaders)>) -> Response {
    match node.metrics_text() {
        Ok(mut text) => {
            text.push_str(&magnum_net::metrics::text());
            text.push_str(&reseal.text());
            text.push_str(&reap.text());
            text.push_str(&crate::cloud::feed::metrics_text());
            (
                [(header::CONTENT_TYPE, magnum_raft::METRICS_CONTENT_TYPE)],
                text,
            )
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
