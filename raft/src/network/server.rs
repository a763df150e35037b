//! axum routes that feed incoming Raft RPCs to the right group.
//!
//! Only conductors speak Raft: the route requires a conductor certificate (or a plain peer on
//! a listener whose mode trusts the network), and a request must come from the node it names
//! as its sender (the leader of an append or transfer, the candidate of a vote), so one
//! conductor's certificate cannot speak for another. Bodies are bounded per RPC kind.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use magnum_net::{Peer, Role};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};

use super::batch::{Answer, Batch, BATCH_PATH, MAX_BATCH_BODY, PROTO_BATCH};
use super::snapshot::Receiver;
use super::stream::STREAM_PATH;
use super::{frame, Envelope, RpcKind, PROTO_CURRENT, PROTO_MIN};
use crate::codec::{self, CodecError};
use crate::failover::Pulse;
use crate::group::ORaft;
use crate::logic::StateMachineLogic;
use crate::quiesce::{self, Peers, Ping, MAX_PING_BYTES, PING_PATH};
use crate::registry::{GroupHandle, Registry};
use crate::types::{GroupId, ORaftError, TypeConfig, Vote};

pub(crate) fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route(BATCH_PATH, post(batch))
        .route(STREAM_PATH, post(stream))
        .route("/raft/v1/{gid}/{rpc}", post(handle))
        .route(PING_PATH, post(ping))
        .route_layer(axum::middleware::from_fn(|r, n| {
            magnum_net::server::allow(&[Role::Conductor], r, n)
        }))
        .with_state(registry)
}

/// A 200 carrying a bincode body.
fn octets(bytes: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response()
}

fn reject(status: StatusCode, msg: String) -> Response {
    tracing::debug!(%status, %msg, "raft rpc rejected");
    (status, msg).into_response()
}

/// The conductor the caller's certificate names (`None`: a plain peer, trusted by the
/// listener's mode).
fn sender_of(peer: Option<Extension<Peer>>) -> Result<Option<u64>, String> {
    match peer {
        Some(Extension(Peer::Verified(id))) => match id.conductor_id() {
            Some(n) => Ok(Some(n)),
            None => Err(format!("{id} is not a conductor")),
        },
        _ => Ok(None),
    }
}

async fn handle(
    State(registry): State<Arc<Registry>>,
    Path((gid, rpc)): Path<(GroupId, String)>,
    peer: Option<Extension<Peer>>,
    body: Body,
) -> Response {
    let Some(kind) = RpcKind::from_path(&rpc) else {
        return reject(StatusCode::NOT_FOUND, format!("unknown raft rpc {rpc:?}"));
    };
    let sender = match sender_of(peer) {
        Ok(s) => s,
        Err(m) => return reject(StatusCode::FORBIDDEN, m),
    };
    let body = match axum::body::to_bytes(body, kind.max_body()).await {
        Ok(b) => b,
        Err(e) => {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{rpc} body over {} bytes: {e}", kind.max_body()),
            )
        }
    };
    let env: Envelope = match codec::decode(&body) {
        Ok(env) => env,
        Err(e) => return reject(StatusCode::BAD_REQUEST, format!("bad envelope: {e}")),
    };
    if env.group != gid {
        return reject(
            StatusCode::BAD_REQUEST,
            format!("envelope group {} != path group {gid}", env.group),
        );
    }
    match serve(&registry, kind, sender, env).await {
        Ok(bytes) => octets(bytes),
        Err((status, msg)) => reject(status, msg),
    }
}

/// One RPC, on its own route, in a batch or on a stream: its envelope's version, its group,
/// then the group.
pub(super) async fn serve(
    registry: &Registry,
    kind: RpcKind,
    sender: Option<u64>,
    env: Envelope,
) -> Result<Vec<u8>, (StatusCode, String)> {
    if !(PROTO_MIN..=PROTO_CURRENT).contains(&env.proto) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported raft protocol {} (accept {PROTO_MIN}..={PROTO_CURRENT})",
                env.proto
            ),
        ));
    }
    // Unknown and not-yet-opened groups look the same from here; the client backs off.
    let Some(group) = registry.get(env.group) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("group {} is not open on this node", env.group),
        ));
    };
    group
        .call(kind, sender, env.payload)
        .await
        .map_err(|e| (StatusCode::BAD_REQUEST, e))
}

/// A batch of appends, votes and pre-votes of many groups (`batch.rs`): served concurrently,
/// each answer streamed as a frame as soon as it is ready.
async fn batch(
    State(registry): State<Arc<Registry>>,
    peer: Option<Extension<Peer>>,
    body: Body,
) -> Response {
    let sender = match sender_of(peer) {
        Ok(s) => s,
        Err(m) => return reject(StatusCode::FORBIDDEN, m),
    };
    let body = match axum::body::to_bytes(body, MAX_BATCH_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("batch body over {MAX_BATCH_BODY} bytes: {e}"),
            )
        }
    };
    let batch: Batch = match codec::decode(&body) {
        Ok(b) => b,
        Err(e) => return reject(StatusCode::BAD_REQUEST, format!("bad batch: {e}")),
    };
    if !(PROTO_BATCH..=PROTO_CURRENT).contains(&batch.proto) {
        return reject(
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported raft batch protocol {} (accept {PROTO_BATCH}..={PROTO_CURRENT})",
                batch.proto
            ),
        );
    }
    let answers: FuturesUnordered<_> = batch
        .items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let registry = registry.clone();
            async move {
                let result = match RpcKind::from_path(&item.rpc) {
                    // Snapshots stream on their own route.
                    Some(kind @ (RpcKind::Append | RpcKind::Vote | RpcKind::PreVote)) => {
                        serve(&registry, kind, sender, item.env).await
                    }
                    _ => Err((
                        StatusCode::NOT_FOUND,
                        format!("unknown raft rpc {:?} in a batch", item.rpc),
                    )),
                };
                let answer = Answer {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    result: result.map_err(|(s, m)| (s.as_u16(), m)),
                };
                frame(&answer)
                    .map(Bytes::from)
                    .map_err(std::io::Error::other)
            }
        })
        .collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(answers),
    )
        .into_response()
}

/// A peer's stream of batches (`stream.rs`), open until it ends its request.
async fn stream(
    State(registry): State<Arc<Registry>>,
    peer: Option<Extension<Peer>>,
    body: Body,
) -> Response {
    match sender_of(peer) {
        Ok(sender) => super::stream::serve(registry, sender, body),
        Err(m) => reject(StatusCode::FORBIDDEN, m),
    }
}

/// A peer's node-level ping (`quiesce.rs`): alive, and keeps these groups quiet.
async fn ping(
    State(registry): State<Arc<Registry>>,
    peer: Option<Extension<Peer>>,
    body: Body,
) -> Response {
    let body = match axum::body::to_bytes(body, MAX_PING_BYTES).await {
        Ok(b) => b,
        Err(e) => return reject(StatusCode::PAYLOAD_TOO_LARGE, format!("ping: {e}")),
    };
    let ping: Ping = match codec::decode(&body) {
        Ok(p) => p,
        Err(e) => return reject(StatusCode::BAD_REQUEST, format!("bad ping: {e}")),
    };
    if let Some(Extension(Peer::Verified(id))) = &peer {
        if id.conductor_id() != Some(ping.from) {
            return reject(
                StatusCode::FORBIDDEN,
                format!("{id} sent a ping in the name of node {}", ping.from),
            );
        }
    }
    match codec::encode(&quiesce::on_ping(&registry, &ping)) {
        Ok(bytes) => octets(bytes),
        Err(e) => reject(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The registry's view of one group's openraft instance.
pub(crate) struct RaftEndpoint<L: StateMachineLogic> {
    pub(crate) raft: ORaft<L>,
    pub(crate) snapshots: Arc<Receiver>,
    pub(crate) pulse: Arc<Pulse>,
    /// The node's view of its peers' pings and the leader lease they stand in for.
    pub(crate) peers: Arc<Peers>,
    pub(crate) lease: Duration,
}

impl<L: StateMachineLogic> GroupHandle for RaftEndpoint<L> {
    fn call(
        &self,
        kind: RpcKind,
        sender: Option<u64>,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let (raft, snapshots) = (self.raft.clone(), self.snapshots.clone());
        let (pulse, peers, lease) = (self.pulse.clone(), self.peers.clone(), self.lease);
        Box::pin(async move {
            let pulse_view = (pulse.as_ref(), peers.as_ref(), lease);
            dispatch(raft, &snapshots, pulse_view, kind, sender, payload).await
        })
    }

    fn raft_metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    fn pulse(&self) -> &Pulse {
        &self.pulse
    }

    fn set_ticking(&self, on: bool) {
        self.raft.runtime_config().tick(on);
    }

    fn campaign(&self) -> BoxFuture<'static, ()> {
        let raft = self.raft.clone();
        Box::pin(async move {
            if let Err(e) = raft.trigger().elect(true).await {
                tracing::debug!(error = %e, "pre-vote not started");
            }
        })
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let raft = self.raft.clone();
        Box::pin(async move {
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(error = %e, "raft core task ended abnormally");
            }
        })
    }
}

fn codec_err(e: CodecError) -> String {
    e.to_string()
}

/// A request must come from the node its vote names (leader or candidate). `None`: a plain
/// peer, trusted by the listener's mode.
pub(crate) fn check_sender(sender: Option<u64>, vote: &Vote) -> Result<(), String> {
    match sender {
        Some(n) if n != vote.leader_id.node_id => Err(format!(
            "conductor {n} sent a request in the name of node {}",
            vote.leader_id.node_id
        )),
        _ => Ok(()),
    }
}

async fn dispatch<L: StateMachineLogic>(
    raft: ORaft<L>,
    snapshots: &Receiver,
    (pulse, peers, lease): (&Pulse, &Peers, Duration),
    kind: RpcKind,
    sender: Option<u64>,
    payload: Vec<u8>,
) -> Result<Vec<u8>, String> {
    match kind {
        RpcKind::Append => {
            let req: AppendEntriesRequest<TypeConfig> =
                codec::decode(&payload).map_err(codec_err)?;
            check_sender(sender, &req.vote)?;
            let leader = req.vote.leader_id.node_id;
            // Entries from a leader wake a quiet group (a quiet leader's read-index rounds
            // come empty and do not: it would not heartbeat after them).
            if !req.entries.is_empty() && pulse.quiet.wake() {
                raft.runtime_config().tick(true);
            }
            let res = raft.append_entries(req).await;
            // Anything but a higher vote means this replica took the sender as its leader.
            if matches!(&res, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
                pulse.contact.touch(leader);
            }
            codec::encode(&res).map_err(codec_err)
        }
        RpcKind::Vote | RpcKind::PreVote => {
            let req: VoteRequest<TypeConfig> = codec::decode(&payload).map_err(codec_err)?;
            check_sender(sender, &req.vote)?;
            // A quiet group's voters get no heartbeats, so openraft's lease never stops a
            // candidate there: the leader's pings stand in for it.
            if !req.leadership_transfer
                && pulse
                    .quiet
                    .leader_alive(peers, lease, req.vote.leader_id.node_id)
            {
                let vote = raft.metrics().borrow_watched().vote;
                tracing::debug!(candidate = %req.vote, "vote refused: quiet group's leader is alive");
                let refused: Result<VoteResponse<TypeConfig>, ORaftError> =
                    Ok(VoteResponse::new(vote, None, false));
                return codec::encode(&refused).map_err(codec_err);
            }
            let res = match kind {
                RpcKind::Vote => raft.vote(req).await,
                _ => raft.pre_vote(req).await,
            };
            codec::encode(&res).map_err(codec_err)
        }
        RpcKind::Snapshot | RpcKind::SnapshotChunk => {
            let res = match kind {
                RpcKind::Snapshot => snapshots.v1(&raft, sender, &payload).await,
                _ => snapshots.chunk(&raft, sender, &payload).await,
            };
            // A leader streaming a snapshot is alive too (a long install sends no append).
            if res.is_ok() {
                if let Some(leader) = raft.metrics().borrow_watched().current_leader {
                    pulse.contact.touch(leader);
                }
            }
            res
        }
        RpcKind::TransferLeader => {
            let req: TransferLeaderRequest<TypeConfig> =
                codec::decode(&payload).map_err(codec_err)?;
            check_sender(sender, req.from_leader())?;
            let res: Result<TransferLeaderResponse<TypeConfig>, ORaftError> = raft
                .handle_transfer_leader(req)
                .await
                .map_err(ORaftError::Fatal);
            codec::encode(&res).map_err(codec_err)
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
