//! openraft network client over the node's shared `reqwest::Client` pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RPCTypes};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::batch::{classify, Batchers, PeerBatcher, MAX_BATCH_BYTES};
use super::{Envelope, RpcKind};
use crate::codec;
use crate::metrics::{GroupMetrics, Metrics};
use crate::storage::snapfile::SnapshotFile;
use crate::types::{GroupId, NodeAddr, NodeId, ORaftError, Snapshot, TypeConfig, Vote};
use axum::body::Bytes;

/// Builds one HTTP client per process: keep-alive pool shared by all groups and peers.
pub(crate) fn http_client(
    tls: &magnum_net::Tls,
) -> Result<magnum_net::InternalClient, magnum_net::NetError> {
    magnum_net::InternalClient::new(tls, |b| {
        b.tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(60))
    })
}

/// openraft network factory of one group.
pub(crate) struct NetworkFactory {
    pub(crate) http: magnum_net::InternalClient,
    pub(crate) self_id: NodeId,
    pub(crate) gid: GroupId,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) group_metrics: GroupMetrics,
    /// The node's per-peer batchers; `None`: every RPC on its own request.
    pub(crate) batchers: Option<Arc<Batchers>>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> PeerClient {
        PeerClient {
            http: self.http.clone(),
            self_id: self.self_id,
            target,
            gid: self.gid,
            addr: node.raft.clone(),
            metrics: self.metrics.clone(),
            group_metrics: self.group_metrics.clone(),
            batcher: self.batchers.as_ref().map(|b| b.peer(target, &node.raft)),
        }
    }
}

/// RPC client from this node's replica of `gid` to `target`'s replica.
pub(crate) struct PeerClient {
    http: magnum_net::InternalClient,
    self_id: NodeId,
    target: NodeId,
    gid: GroupId,
    addr: String,
    metrics: Arc<Metrics>,
    group_metrics: GroupMetrics,
    batcher: Option<Arc<PeerBatcher>>,
}

/// Why a call failed, before it is shaped into openraft's error types.
#[derive(Clone, Debug)]
pub(crate) enum CallError {
    /// The peer does not know this RPC (an older version).
    Unsupported(String),
    /// Peer down, group not open there, incompatible, or remote raft stopped: back off.
    Unreachable(String),
    /// Sent but the request failed in flight: openraft may retry at once.
    Network(String),
    Timeout(Duration),
}

impl PeerClient {
    pub(crate) async fn call<Req, Resp>(
        &self,
        kind: RpcKind,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let res = self.try_call(kind, req, timeout).await;
        if let Err(e) = &res {
            let reason = match e {
                CallError::Unsupported(_) => "unsupported",
                CallError::Unreachable(_) => "unreachable",
                CallError::Network(_) => "network",
                CallError::Timeout(_) => "timeout",
            };
            self.metrics.rpc_error(self.target, kind.path(), reason);
        }
        res
    }

    async fn try_call<Req, Resp>(
        &self,
        kind: RpcKind,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let payload = codec::encode(req).map_err(|e| CallError::Network(e.to_string()))?;
        let env = Envelope {
            proto: kind.since(),
            group: self.gid,
            payload,
        };
        let batcher = self.batcher.as_ref().filter(|b| {
            matches!(kind, RpcKind::Append | RpcKind::Vote | RpcKind::PreVote)
                && env.payload.len() <= MAX_BATCH_BYTES
                && b.batches()
        });
        let bytes = match batcher {
            Some(b) => b.call(kind, env, timeout).await?,
            None => {
                let body = codec::encode(&env).map_err(|e| CallError::Network(e.to_string()))?;
                post_one(&self.http, &self.addr, self.gid, kind, body.into(), timeout).await?
            }
        };
        let res: Result<Resp, ORaftError> = codec::decode(&bytes).map_err(|e| {
            CallError::Unreachable(format!("{}: undecodable response: {e}", self.addr))
        })?;
        res.map_err(|e| CallError::Unreachable(format!("{}: remote raft: {e}", self.addr)))
    }

    fn rpc_error(&self, action: RPCTypes, e: CallError) -> RPCError<TypeConfig> {
        match e {
            CallError::Unreachable(m) | CallError::Unsupported(m) => {
                RPCError::Unreachable(Unreachable::from_string(m))
            }
            CallError::Network(m) => RPCError::Network(NetworkError::from_string(m)),
            CallError::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: self.self_id,
                target: self.target,
                timeout,
            }),
        }
    }
}

/// One RPC on its own route (`POST /raft/v1/{gid}/{rpc}`, body the bincode envelope); the
/// answer's body.
pub(crate) async fn post_one(
    http: &magnum_net::InternalClient,
    addr: &str,
    gid: GroupId,
    kind: RpcKind,
    body: Bytes,
    timeout: Duration,
) -> Result<Bytes, CallError> {
    let path = format!("/raft/v1/{gid}/{}", kind.path());
    let url = format!("{addr}{path}");
    let resp = http
        .send(addr, &path, |h, url| {
            h.post(url)
                .timeout(timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body.clone())
        })
        .await
        .map_err(|e| classify(&url, timeout, e))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(refused(&url, status.as_u16(), text));
    }
    resp.bytes().await.map_err(|e| classify(&url, timeout, e))
}

/// A peer's refusal of one RPC (its route's status and text, or a batch item's).
pub(crate) fn refused(url: &str, status: u16, text: String) -> CallError {
    // A 404 is typically the group not opened yet on the peer (startup race), or an RPC an
    // older peer does not know.
    if status == 404 && text.starts_with("unknown raft rpc") {
        return CallError::Unsupported(format!("{url}: {text}"));
    }
    CallError::Unreachable(format!("{url}: HTTP {status}: {text}"))
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RpcKind::Append, &rpc, option.soft_ttl())
            .await
            .map_err(|e| self.rpc_error(RPCTypes::AppendEntries, e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RpcKind::Vote, &rpc, option.soft_ttl())
            .await
            .map_err(|e| self.rpc_error(RPCTypes::Vote, e))
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RpcKind::PreVote, &rpc, option.soft_ttl())
            .await
            .map_err(|e| self.rpc_error(RPCTypes::Vote, e))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let res = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            res = super::snapshot::send(self, vote, snapshot, option.soft_ttl()) => res,
        };
        match res {
            Ok(r) => {
                self.group_metrics.sent.inc();
                Ok(r)
            }
            Err(CallError::Unreachable(m)) | Err(CallError::Unsupported(m)) => {
                Err(StreamingError::Unreachable(Unreachable::from_string(m)))
            }
            Err(CallError::Network(m)) => {
                Err(StreamingError::Network(NetworkError::from_string(m)))
            }
            Err(CallError::Timeout(timeout)) => Err(StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: self.self_id,
                target: self.target,
                timeout,
            })),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RpcKind::TransferLeader, &req, option.soft_ttl())
            .await
            .map_err(|e| self.rpc_error(RPCTypes::TransferLeader, e))
    }
}
