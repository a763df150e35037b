//! The conductor's service listener: forwarded mutations and linearizable reads from API nodes,
//! and the topology they route by. JSON bodies in a versioned envelope (`magnum_proto::wire`).
use crate::membership::api_nodes::{self, ApiNodes};
use crate::membership::hosting::Hosting;
use crate::membership::meta::{MetaCommand, MetaResponse, MetaState};
use crate::membership::propose::MetaLeader;
use crate::propose::{ProposeError, ShardLeader};
use crate::shard::logic::ShardLogic;

mod caller;
mod export;
pub(crate) use export::EXPORT_DIR;
pub mod health;
mod sign;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use caller::Caller;
use magnum_net::server::allow;
use magnum_net::{Peer, Role};
use magnum_proto::version::Kind;
use magnum_proto::wire::{
    self, Done, Envelope, GroupDigest, GroupInfo, InternalError, MultiQuery, MultiQueryResult,
    NodeInfo, NotLeader, SetMembers, Topology, TransferLeader,
};
use magnum_proto::{
    shard, MetaQuery, MetaQueryResult, MetaReply, MetaRequest, NodeId, Origin, ShardCommand,
    ShardQuery, ShardRequest, ShardResponse,
};
use magnum_raft::{Group, GroupStatus, NodeAddr, WriteError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

pub struct ServiceState {
    pub node: NodeId,
    /// The API nodes that called (reported with the heartbeat).
    pub api_nodes: ApiNodes,
    pub hosting: Arc<Hosting>,
    /// Opens the sealed CA keys for signing.
    pub cert_key: crate::pki::sealing::CertKey,
    /// Validates the user tokens API nodes forward with a CSR (Keystone).
    pub cloud: Arc<dyn crate::cloud::Cloud>,
    /// The node's data dir (exports are staged in it).
    pub data_dir: std::path::PathBuf,
}

impl ServiceState {
    fn meta(&self) -> &Group<MetaState> {
        &self.hosting.meta
    }
}

/// How long a new replica may take to catch up before it is made a voter.
const CATCH_UP: Duration = Duration::from_secs(20);

/// Who may call what, by the role in the caller's certificate: API nodes send users' requests
/// (shard commands pass the `ShardCommand::origin` allow-list in `command`), conductors and
/// operators also change membership and leadership. Raft itself is on its own listener.
const ANY_NODE: &[Role] = &[Role::Conductor, Role::Api, Role::Operator];
const CONDUCTOR_OR_OPERATOR: &[Role] = &[Role::Conductor, Role::Operator];

pub fn router(state: Arc<ServiceState>) -> Router {
    let any_node = Router::new()
        .route(wire::TOPOLOGY_PATH, get(topology))
        .route("/internal/v1/shards/{shard}/command", post(command))
        .route("/internal/v1/shards/{shard}/query", post(query))
        .route(wire::MULTI_QUERY_PATH, post(multi_query))
        .route("/internal/v1/shards/{shard}/sign", post(sign::sign))
        .route(wire::META_QUERY_PATH, post(meta_query))
        .route("/internal/v1/groups/{group}/digest", get(digest))
        .route_layer(axum::middleware::from_fn(|r, n| allow(ANY_NODE, r, n)));
    let membership = Router::new()
        .route(wire::META_COMMAND_PATH, post(meta_command))
        .route("/internal/v1/groups/{group}/members", post(set_members))
        .route("/internal/v1/groups/{group}/transfer", post(transfer))
        // A backup holds every project's rows (sealed keys included): not for API nodes.
        .route("/internal/v1/groups/{group}/export", get(export::export))
        .route_layer(axum::middleware::from_fn(|r, n| {
            allow(CONDUCTOR_OR_OPERATOR, r, n)
        }));
    any_node
        .merge(membership)
        .layer(axum::extract::DefaultBodyLimit::max(
            wire::MAX_INTERNAL_BODY,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.api_nodes.clone(),
            api_nodes::record,
        ))
        .with_state(state)
}

/// Every non-2xx answer of the service listener, turned into a response in one place.
enum SvcError {
    BadRequest(String),
    NotFound(String),
    NotLeader(Option<(u64, NodeAddr)>),
    /// The command's kind needs a cluster version not yet finalized.
    NotYetActive(String),
    Unavailable(String),
    /// The user an API node forwards for may not do this ([`Caller`]).
    UserRefused(String),
}

/// Everything but a refusal by the state machine, which the caller answers itself.
impl From<ProposeError> for SvcError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NotLeader { hint } => SvcError::NotLeader(hint),
            e @ ProposeError::NotYetActive { .. } => SvcError::NotYetActive(e.to_string()),
            ProposeError::Rejected(e) => SvcError::BadRequest(e.to_string()),
            e @ (ProposeError::Raft(_) | ProposeError::Codec(_)) => {
                SvcError::Unavailable(e.to_string())
            }
        }
    }
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
            SvcError::NotYetActive(m) => (
                StatusCode::from_u16(wire::NOT_YET_ACTIVE_STATUS).unwrap_or(StatusCode::CONFLICT),
                m,
            ),
            SvcError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            SvcError::UserRefused(m) => {
                let marker = [(wire::USER_REFUSED_HEADER, "1")];
                let body = Json(InternalError { error: m });
                return (StatusCode::FORBIDDEN, marker, body).into_response();
            }
        };
        (status, Json(InternalError { error: msg })).into_response()
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SvcError> {
    Ok(decode_envelope(body)?.body)
}

/// The whole envelope, for the routes that serve a forwarded user ([`Envelope::user`]).
fn decode_envelope<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Envelope<T>, SvcError> {
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
    Ok(env)
}

/// This node's replica of `shard`; a shard hosted elsewhere answers "not leader" with a
/// replica that knows the leader.
fn shard_group(s: &ServiceState, shard: u32) -> Result<Group<ShardLogic>, SvcError> {
    if let Some(g) = s.hosting.shard(shard) {
        return Ok(g);
    }
    let shards = s
        .meta()
        .read_local(|m| m.bootstrap.as_ref().map_or(0, |b| b.shards));
    if shard >= shards {
        return Err(SvcError::NotFound(format!("no shard {shard}")));
    }
    Err(SvcError::NotLeader(s.hosting.replica_elsewhere(shard)))
}

/// The caller a request is served for ([`Caller`]); a missing peer is the anonymous one.
async fn caller_of(
    s: &ServiceState,
    peer: Option<Extension<Peer>>,
    user: Option<&wire::UserToken>,
) -> Result<Caller, SvcError> {
    let peer = peer.map_or(Peer::Anonymous, |Extension(p)| p);
    Caller::of(s, &peer, user).await
}

async fn command(
    State(s): State<Arc<ServiceState>>,
    peer: Option<Extension<Peer>>,
    Path(shard): Path<u32>,
    body: Bytes,
) -> Result<Response, SvcError> {
    let env: Envelope<ShardRequest> = decode_envelope(&body)?;
    let mut req = env.body;
    // Only what users ask comes from the network (`ShardCommand::origin`, an allow-list):
    // ownership, operation progress, status and health are the shard leader's own business.
    if req.command.origin() != Origin::Client {
        return Err(SvcError::BadRequest(format!(
            "{} is proposed only by the shard leader's own loops, not accepted from the network",
            Kind::Shard(&req.command).name()
        )));
    }
    let group = shard_group(&s, shard)?;
    let caller = caller_of(&s, peer, env.user.as_ref()).await?;
    if !matches!(caller, Caller::Trusted) {
        // On the leader's current rows: whose a row is never changes once written.
        group
            .read_leased(|l| caller.may_propose(&req.command, l.state.rows()))
            .await??;
    }
    // The creator's token (for the cluster's trust) enters the log only sealed.
    if let ShardCommand::CreateCluster { operation, .. } = &mut req.command {
        if let Some(t) = operation.trustor.as_mut() {
            t.token = s.cert_key.seal(&t.token);
        }
    }
    let leader = ShardLeader::new(group, s.meta().read_local(|m| m.active_version()));
    // The shard's own refusal is a 200 carrying `Err`: the API renders it.
    let answer: ShardResponse = match leader.propose(req).await {
        Ok(ok) => Ok(ok),
        Err(ProposeError::Rejected(e)) => Err(e),
        Err(e) => return Err(e.into()),
    };
    Ok(Json(answer).into_response())
}

async fn query(
    State(s): State<Arc<ServiceState>>,
    peer: Option<Extension<Peer>>,
    Path(shard): Path<u32>,
    body: Bytes,
) -> Result<Response, SvcError> {
    let env: Envelope<ShardQuery> = decode_envelope(&body)?;
    let group = shard_group(&s, shard)?;
    let caller = caller_of(&s, peer, env.user.as_ref()).await?;
    let q = caller.narrow(&env.body)?;
    let stored = group.stored();
    let r = group
        .read_leased(|l| caller.answer(&l.state, &stored, &q))
        .await?
        .map_err(|e| SvcError::Unavailable(format!("shard {shard}: {e}")))?;
    Ok(Json(r).into_response())
}

/// The same query on each asked shard this node leads; `None` for the others (the client asks
/// those alone and follows their leader hints).
async fn multi_query(
    State(s): State<Arc<ServiceState>>,
    peer: Option<Extension<Peer>>,
    body: Bytes,
) -> Result<Response, SvcError> {
    let env: Envelope<MultiQuery> = decode_envelope(&body)?;
    let caller = caller_of(&s, peer, env.user.as_ref()).await?;
    let m = env.body;
    let q = &caller.narrow(&m.query)?;
    let caller = &caller;
    let reads = m.shards.iter().map(|shard| {
        let group = s.hosting.shard(shard.0);
        async move {
            match group {
                // A shard this cannot answer is left to the client to ask alone.
                Some(g) => {
                    let stored = g.stored();
                    let r = g.read_leased(|l| caller.answer(&l.state, &stored, q)).await;
                    r.ok().and_then(Result::ok)
                }
                None => None,
            }
        }
    });
    let answers = futures::future::join_all(reads).await;
    Ok(Json(MultiQueryResult { answers }).into_response())
}

async fn meta_command(
    State(s): State<Arc<ServiceState>>,
    body: Bytes,
) -> Result<Response, SvcError> {
    let cmd = MetaCommand::try_from(decode::<MetaRequest>(&body)?).map_err(SvcError::BadRequest)?;
    match MetaLeader::new(s.meta().clone()).propose(cmd).await? {
        MetaResponse::Service(rec) => Ok(Json(MetaReply::Service(rec)).into_response()),
        MetaResponse::Node(n) => Ok(Json(MetaReply::Node(n)).into_response()),
        MetaResponse::ClusterVersion(v) => Ok(Json(MetaReply::ClusterVersion(v)).into_response()),
        other => Err(SvcError::Unavailable(format!(
            "unexpected meta answer {other:?}"
        ))),
    }
}

async fn meta_query(State(s): State<Arc<ServiceState>>, body: Bytes) -> Result<Response, SvcError> {
    let r = match decode::<MetaQuery>(&body)? {
        MetaQuery::Services => {
            let v = s
                .meta()
                .read_leased(|m| m.services.values().cloned().collect())
                .await?;
            MetaQueryResult::Services(v)
        }
        MetaQuery::Placement => MetaQueryResult::Placement(s.meta().read(|m| m.view()).await?),
        MetaQuery::ClusterVersion => {
            MetaQueryResult::ClusterVersion(s.meta().read(|m| m.cluster_version()).await?)
        }
    };
    Ok(Json(r).into_response())
}

/// The replica of `group` hosted here, if any (0 = meta).
fn hosted_status(s: &ServiceState, group: u64) -> Option<GroupStatus> {
    if group == wire::META_GROUP {
        return Some(s.meta().status());
    }
    let shard = u32::try_from(group.checked_sub(1)?).ok()?;
    s.hosting.shard(shard).map(|g| g.status())
}

/// Leader only: make `voters` the group's voters (learners first, then the membership change).
async fn set_members(
    State(s): State<Arc<ServiceState>>,
    Path(group): Path<u64>,
    body: Bytes,
) -> Result<Response, SvcError> {
    let req: SetMembers = decode(&body)?;
    if group == wire::META_GROUP || req.voters.is_empty() {
        return Err(SvcError::BadRequest(
            "only data groups, with at least one voter".into(),
        ));
    }
    let shard = u32::try_from(group - 1).map_err(|e| SvcError::BadRequest(e.to_string()))?;
    let g = shard_group(&s, shard)?;
    let st = g.status();
    if !st.is_leader {
        return Err(not_leader_of(&st));
    }
    for (id, a) in req.voters.iter().chain(req.learners.iter()) {
        if st.members.contains_key(&id.0) {
            continue;
        }
        let addr = NodeAddr {
            raft: a.raft.clone(),
            service: a.service.clone(),
        };
        match tokio::time::timeout(CATCH_UP, g.add_learner(id.0, addr, true)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(SvcError::Unavailable(format!(
                    "node {} did not catch up within {CATCH_UP:?}",
                    id.0
                )))
            }
        }
    }
    let voters: BTreeSet<u64> = req.voters.keys().map(|n| n.0).collect();
    if g.status().voters != voters {
        g.change_membership(voters.clone(), false).await?;
    }
    let keep: BTreeSet<u64> = req.learners.keys().map(|n| n.0).collect();
    let stale: BTreeSet<u64> = g
        .status()
        .members
        .keys()
        .filter(|n| !voters.contains(n) && !keep.contains(n))
        .copied()
        .collect();
    if !stale.is_empty() {
        g.remove_nodes(stale).await?;
    }
    Ok(Json(Done {}).into_response())
}

async fn transfer(
    State(s): State<Arc<ServiceState>>,
    Path(group): Path<u64>,
    body: Bytes,
) -> Result<Response, SvcError> {
    let req: TransferLeader = decode(&body)?;
    let st = match hosted_status(&s, group) {
        Some(st) => st,
        None => {
            let shard = u32::try_from(group.saturating_sub(1))
                .map_err(|e| SvcError::BadRequest(e.to_string()))?;
            return Err(shard_group(&s, shard)
                .err()
                .unwrap_or(SvcError::NotLeader(None)));
        }
    };
    if !st.is_leader {
        return Err(not_leader_of(&st));
    }
    if !st.voters.contains(&req.to.0) {
        return Err(SvcError::BadRequest(format!(
            "node {} is not a voter of group {group}",
            req.to.0
        )));
    }
    let res = if group == wire::META_GROUP {
        s.meta().transfer_leader(req.to.0).await
    } else {
        match s.hosting.shard((group - 1) as u32) {
            Some(g) => g.transfer_leader(req.to.0).await,
            None => return Err(SvcError::NotLeader(None)),
        }
    };
    res.map_err(|e| SvcError::Unavailable(e.to_string()))?;
    Ok(Json(Done {}).into_response())
}

/// This replica's digest of `group` (`magnum manage verify` compares replicas).
#[derive(serde::Deserialize)]
struct DigestParams {
    #[serde(default)]
    keys: bool,
}

async fn digest(
    State(s): State<Arc<ServiceState>>,
    Path(group): Path<u64>,
    Query(p): Query<DigestParams>,
) -> Result<Response, SvcError> {
    let (d, st) = if group == wire::META_GROUP {
        (digest_of(s.meta(), p.keys).await?, s.meta().status())
    } else {
        let g = u32::try_from(group.saturating_sub(1))
            .ok()
            .and_then(|shard| s.hosting.shard(shard))
            .ok_or_else(|| SvcError::NotFound(format!("group {group} is not hosted here")))?;
        (digest_of(&g, p.keys).await?, g.status())
    };
    Ok(Json(GroupDigest {
        group,
        node: s.node,
        applied_index: d.applied,
        digest: d.digest,
        halted: st.halted.map(|h| h.to_string()),
        keys: d.keys,
    })
    .into_response())
}

struct Digest {
    applied: Option<u64>,
    digest: String,
    keys: Option<BTreeMap<String, String>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 over length-prefixed key and value of every pair, in key order; with `keys`, also
/// each key's value hash.
async fn digest_of<L: magnum_raft::StateMachineLogic>(
    g: &Group<L>,
    keys: bool,
) -> Result<Digest, SvcError> {
    use sha2::{Digest as _, Sha256};
    g.scan_applied(|applied, pairs| {
        let mut h = Sha256::new();
        let mut per_key = keys.then(BTreeMap::new);
        for (k, v) in pairs {
            h.update((k.len() as u64).to_be_bytes());
            h.update(&k);
            h.update((v.len() as u64).to_be_bytes());
            h.update(&v);
            if let Some(m) = per_key.as_mut() {
                let name = k.escape_ascii().to_string();
                m.insert(name, hex(&Sha256::digest(&v)[..8]));
            }
        }
        Digest {
            applied,
            digest: hex(&h.finalize()),
            keys: per_key,
        }
    })
    .await
    .map_err(|e| SvcError::Unavailable(e.to_string()))
}

fn not_leader_of(st: &GroupStatus) -> SvcError {
    SvcError::NotLeader(
        st.leader
            .and_then(|l| st.members.get(&l).map(|a| (l, a.clone()))),
    )
}

fn group_info(g: &GroupStatus) -> GroupInfo {
    GroupInfo {
        group: g.group,
        leader: g.leader.map(NodeId),
        term: g.term,
        last_applied: g.last_applied,
        committed: g.committed,
        voters: g.voters.iter().copied().map(NodeId).collect(),
        learners: g
            .members
            .keys()
            .filter(|n| !g.voters.contains(n))
            .copied()
            .map(NodeId)
            .collect(),
        halted: g.halted.as_ref().map(ToString::to_string),
    }
}

async fn topology(State(s): State<Arc<ServiceState>>) -> Json<Topology> {
    let meta = s.meta().status();
    let (shards, registered, placement) = s.meta().read_local(|m| {
        (
            m.bootstrap.as_ref().map_or(0, |b| b.shards),
            m.nodes
                .values()
                .map(|n| NodeInfo {
                    id: n.id,
                    service: n.service.clone(),
                })
                .collect::<Vec<_>>(),
            m.view().groups,
        )
    });
    // Before the membership is recorded (or in a deployment that predates it), the meta
    // group's members are the nodes.
    let nodes = if registered.is_empty() {
        meta.members
            .iter()
            .map(|(id, addr)| NodeInfo {
                id: NodeId(*id),
                service: addr.service.clone(),
            })
            .collect()
    } else {
        registered
    };
    let groups = std::iter::once(meta.clone())
        .chain(s.hosting.shards().iter().map(|g| g.status()))
        .map(|g| group_info(&g))
        .collect();
    Json(Topology {
        shards,
        hash: shard::HASH_NAME.to_string(),
        node: s.node,
        nodes,
        groups,
        placement,
    })
}
