//! The conductor's service listener: forwarded mutations and linearizable reads from API nodes,
//! and the topology they route by. JSON bodies in a versioned envelope (`magnum_proto::wire`).
use crate::logic::ShardLogic;
use crate::meta::{MetaCommand, MetaResponse, MetaState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use magnum_proto::wire::{self, Envelope, GroupInfo, InternalError, NodeInfo, NotLeader, Topology};
use magnum_proto::{
    shard, MetaQuery, MetaQueryResult, MetaRequest, NodeId, ShardCommand, ShardQuery, ShardRequest,
};
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
        .route(wire::META_COMMAND_PATH, post(meta_command))
        .route(wire::META_QUERY_PATH, post(meta_query))
        .with_state(state)
}

/// Every non-2xx answer of the service listener, turned into a response in one place.
enum SvcError {
    BadRequest(String),
    NotFound(String),
    NotLeader(Option<(u64, NodeAddr)>),
    Unavailable(String),
}

impl From<WriteError> for SvcError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotLeader { leader } => SvcError::NotLeader(leader),
            other => SvcError::Unavailable(other.to_string()),
        }
    }
}

impl IntoResponse for SvcError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            SvcError::NotLeader(leader) => {
                let leader = leader.map(|(id, addr)| NodeInfo {
                    id: NodeId(id),
                    service: addr.service,
                });
                let status = StatusCode::from_u16(wire::NOT_LEADER_STATUS)
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                return (status, Json(NotLeader { leader })).into_response();
            }
            SvcError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            SvcError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            SvcError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
        };
        (status, Json(InternalError { error: msg })).into_response()
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SvcError> {
    let env: Envelope<T> = serde_json::from_slice(body)
        .map_err(|e| SvcError::BadRequest(format!("malformed envelope: {e}")))?;
    if !env.version_ok() {
        return Err(SvcError::BadRequest(format!(
            "protocol version {} not in {}..={}",
            env.proto,
            wire::MIN_PROTO_VERSION,
            wire::PROTO_VERSION
        )));
    }
    Ok(env.body)
}

fn shard_group(s: &ServiceState, shard: u32) -> Result<&Group<ShardLogic>, SvcError> {
    s.shards
        .get(shard as usize)
        .ok_or_else(|| SvcError::NotFound(format!("no shard {shard}")))
}

async fn command(
    State(s): State<Arc<ServiceState>>,
    Path(shard): Path<u32>,
    body: Bytes,
) -> Result<Response, SvcError> {
    let req: ShardRequest = decode(&body)?;
    // Ownership and operation progress are the conductor's own business.
    if matches!(
        req.command,
        ShardCommand::TakeOwnership { .. } | ShardCommand::Advance { .. }
    ) {
        return Err(SvcError::BadRequest(
            "internal command not accepted from clients".into(),
        ));
    }
    let group = shard_group(&s, shard)?;
    let payload = serde_json::to_vec(&req).map_err(|e| SvcError::BadRequest(e.to_string()))?;
    let bytes = group.write(payload).await?;
    // The state machine's answer is already the JSON of a ShardResponse.
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response())
}

async fn query(
    State(s): State<Arc<ServiceState>>,
    Path(shard): Path<u32>,
    body: Bytes,
) -> Result<Response, SvcError> {
    let q: ShardQuery = decode(&body)?;
    let group = shard_group(&s, shard)?;
    let r = group.read(|l| l.state.query(&q)).await?;
    Ok(Json(r).into_response())
}

async fn meta_command(
    State(s): State<Arc<ServiceState>>,
    body: Bytes,
) -> Result<Response, SvcError> {
    // `MetaRequest` has only the variants clients may send (bootstrap stays internal).
    let cmd = match decode::<MetaRequest>(&body)? {
        MetaRequest::Heartbeat {
            node,
            host,
            version,
            at,
        } => MetaCommand::Heartbeat {
            node: node.0,
            host,
            version,
            at,
        },
    };
    let payload = serde_json::to_vec(&cmd).map_err(|e| SvcError::BadRequest(e.to_string()))?;
    let bytes = s.meta.write(payload).await?;
    match serde_json::from_slice::<MetaResponse>(&bytes) {
        Ok(MetaResponse::Service(rec)) => Ok(Json(rec).into_response()),
        Ok(other) => Err(SvcError::Unavailable(format!(
            "unexpected meta answer {other:?}"
        ))),
        Err(e) => Err(SvcError::Unavailable(format!(
            "undecodable meta answer: {e}"
        ))),
    }
}

async fn meta_query(State(s): State<Arc<ServiceState>>, body: Bytes) -> Result<Response, SvcError> {
    let r = match decode::<MetaQuery>(&body)? {
        MetaQuery::Services => {
            let v = s
                .meta
                .read(|m| m.services.values().cloned().collect())
                .await?;
            MetaQueryResult::Services(v)
        }
    };
    Ok(Json(r).into_response())
}

async fn topology(State(s): State<Arc<ServiceState>>) -> Json<Topology> {
    let meta = s.meta.status();
    let nodes = meta
        .members
        .iter()
        .map(|(id, addr)| NodeInfo {
            id: NodeId(*id),
            service: addr.service.clone(),
        })
        .collect();
    let groups = std::iter::once(meta.clone())
        .chain(s.shards.iter().map(|g| g.status()))
        .map(|g| GroupInfo {
            group: g.group,
            leader: g.leader.map(NodeId),
            term: g.term,
            last_applied: g.last_applied,
        })
        .collect();
    Json(Topology {
        shards: s.shards.len() as u32,
        hash: shard::HASH_NAME.to_string(),
        node: s.node,
        nodes,
        groups,
    })
}
