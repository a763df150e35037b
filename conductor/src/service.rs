//! The conductor's service listener: forwarded mutations and linearizable reads from API nodes,
//! and the topology they route by. JSON bodies in a versioned envelope (`magnum_proto::wire`).
use crate::logic::ShardLogic;
use crate::meta::MetaState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use magnum_proto::wire::{self, Envelope, GroupInfo, InternalError, NodeInfo, NotLeader, Topology};
use magnum_proto::{shard, NodeId, ShardCommand, ShardQuery, ShardRequest};
use magnum_raft::{Group, NodeAddr, WriteError};
use std::sync::Arc;

pub struct ServiceState {
    pub node: NodeId,
    pub meta: Group<MetaState>,
    pub shards: Vec<Group<ShardLogic>>,
}

pub fn router(state: Arc<ServiceState>) -> Router {
    Router::new()
        .route("/internal/v1/topology", get(topology))
        .route("/internal/v1/shards/{shard}/command", post(command))
        .route("/internal/v1/shards/{shard}/query", post(query))
        .with_state(state)
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(InternalError { error: msg.into() })).into_response()
}

fn not_leader(leader: Option<(u64, NodeAddr)>) -> Response {
    let leader = leader.map(|(id, addr)| NodeInfo { id: NodeId(id), service: addr.service });
    let status = StatusCode::from_u16(wire::NOT_LEADER_STATUS).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (status, Json(NotLeader { leader })).into_response()
}

fn write_error(e: WriteError) -> Response {
    match e {
        WriteError::NotLeader { leader } => not_leader(leader),
        other => error(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    let env: Envelope<T> = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed envelope: {e}")))?;
    if !env.version_ok() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("protocol version {} not in {}..={}", env.proto, wire::MIN_PROTO_VERSION, wire::PROTO_VERSION),
        ));
    }
    Ok(env.body)
}

fn shard_group(s: &ServiceState, shard: u32) -> Result<&Group<ShardLogic>, Response> {
    s.shards
        .get(shard as usize)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no shard {shard}")))
}

async fn command(State(s): State<Arc<ServiceState>>, Path(shard): Path<u32>, body: Bytes) -> Response {
    let req: ShardRequest = match decode(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    // Ownership and operation progress are the conductor's own business.
    if matches!(req.command, ShardCommand::TakeOwnership { .. } | ShardCommand::Advance { .. }) {
        return error(StatusCode::BAD_REQUEST, "internal command not accepted from clients");
    }
    let group = match shard_group(&s, shard) {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    let payload = match serde_json::to_vec(&req) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match group.write(payload).await {
        // The state machine's answer is already the JSON of a ShardResponse.
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => write_error(e),
    }
}

async fn query(State(s): State<Arc<ServiceState>>, Path(shard): Path<u32>, body: Bytes) -> Response {
    let q: ShardQuery = match decode(&body) {
        Ok(q) => q,
        Err(resp) => return resp,
    };
    let group = match shard_group(&s, shard) {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    match group.read(|l| l.state.query(&q)).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => write_error(e),
    }
}

async fn topology(State(s): State<Arc<ServiceState>>) -> Json<Topology> {
    let meta = s.meta.status();
    let nodes = meta
        .members
        .iter()
        .map(|(id, addr)| NodeInfo { id: NodeId(*id), service: addr.service.clone() })
        .collect();
    let groups = std::iter::once(meta.clone())
        .chain(s.shards.iter().map(|g| g.status()))
        .map(|g| GroupInfo { group: g.group, leader: g.leader.map(NodeId), term: g.term, last_applied: g.last_applied })
        .collect();
    Json(Topology { shards: s.shards.len() as u32, hash: shard::HASH_NAME.to_string(), node: s.node, nodes, groups })
}
