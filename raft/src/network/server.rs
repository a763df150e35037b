//! axum routes that feed incoming Raft RPCs to the right group.
//!
//! Only conductors speak Raft: the route requires a conductor certificate (or a plain peer on
//! a listener whose mode trusts the network), and a request must come from the node it names
//! as its sender (the leader of an append or transfer, the candidate of a vote), so one
//! conductor's certificate cannot speak for another. Bodies are bounded per RPC kind.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
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
use super::{Envelope, RpcKind, PROTO_CURRENT, PROTO_MIN};
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

/// One RPC, on its own route or in a batch: its envelope's version, its group, then the group.
async fn serve(
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
                answer.frame().map_err(std::io::Error::other)
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
mod tests {
    use super::super::batch::{take_frames, Batchers};
    use super::super::client::CallError;
    use super::*;

    /// Answers every RPC with its payload; a payload starting with `SLOW` after 2 s.
    struct Echo;

    const SLOW: u8 = 0xee;

    impl GroupHandle for Echo {
        fn call(
            &self,
            _kind: RpcKind,
            _sender: Option<u64>,
            payload: Vec<u8>,
        ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
            Box::pin(async move {
                if payload.first() == Some(&SLOW) {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Ok(payload)
            })
        }

        fn shutdown(&self) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }

        fn raft_metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
            unreachable!("not used by these tests")
        }

        fn pulse(&self) -> &Pulse {
            unreachable!("not used by these tests")
        }

        fn campaign(&self) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }

        fn set_ticking(&self, _on: bool) {}
    }

    #[tokio::test]
    async fn envelope_version_group_and_routing_are_checked() {
        let registry = Arc::new(Registry::default());
        assert!(registry.reserve(3));
        registry.publish(3, Arc::new(Echo));
        assert!(registry.reserve(5)); // still opening
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let server = magnum_net::serve(
            listener,
            router(registry),
            Router::new(),
            magnum_net::Tls::plain(),
            magnum_net::Limits::default(),
            cancel.clone(),
        );
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let post = |path: &str, body: Vec<u8>| {
            let req = http.post(format!("http://{addr}{path}")).body(body);
            async move { req.send().await.unwrap() }
        };
        let env = |proto: u16, group: GroupId| {
            codec::encode(&Envelope {
                proto,
                group,
                payload: vec![1, 2, 3],
            })
            .unwrap()
        };

        // The current version and the one before it (rolling upgrades) are both served.
        for proto in [PROTO_CURRENT, PROTO_CURRENT - 1] {
            let ok = post("/raft/v1/3/vote", env(proto, 3)).await;
            assert_eq!(ok.status(), StatusCode::OK, "protocol {proto}");
            assert_eq!(ok.bytes().await.unwrap().as_ref(), &[1, 2, 3]);
        }
        const { assert!(PROTO_MIN < PROTO_CURRENT) };

        let cases = [
            (
                "/raft/v1/3/vote",
                vec![0xff, 0xff, 0xff],
                StatusCode::BAD_REQUEST,
            ),
            (
                "/raft/v1/3/vote",
                env(PROTO_MIN - 1, 3),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/raft/v1/3/vote",
                env(PROTO_CURRENT + 1, 3),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/raft/v1/3/vote",
                env(PROTO_CURRENT, 4),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/raft/v1/4/vote",
                env(PROTO_CURRENT, 4),
                StatusCode::NOT_FOUND,
            ),
            (
                "/raft/v1/5/append",
                env(PROTO_CURRENT, 5),
                StatusCode::NOT_FOUND,
            ),
            (
                "/raft/v1/3/nope",
                env(PROTO_CURRENT, 3),
                StatusCode::NOT_FOUND,
            ),
            (
                "/raft/v1/x/vote",
                env(PROTO_CURRENT, 3),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (path, body, want) in cases {
            assert_eq!(post(path, body).await.status(), want, "{path}");
        }
        // Bodies are bounded per kind: a vote of 1 MiB is refused before it is decoded (413,
        // or the client's write cut off when the server closes without reading the rest).
        let big = http
            .post(format!("http://{addr}/raft/v1/3/vote"))
            .body(vec![0u8; 1 << 20])
            .send()
            .await;
        assert!(
            matches!(&big, Ok(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE) || big.is_err(),
            "{big:?}"
        );
        cancel.cancel();
        let _ = server.task.await;
    }

    /// A listener serving `router` on a free port; its address and stop handle.
    async fn listen(router: Router) -> (String, tokio_util::sync::CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cancel = tokio_util::sync::CancellationToken::new();
        magnum_net::serve(
            listener,
            router,
            Router::new(),
            magnum_net::Tls::plain(),
            magnum_net::Limits::default(),
            cancel.clone(),
        );
        (addr, cancel)
    }

    fn env(group: GroupId, payload: Vec<u8>) -> Envelope {
        Envelope {
            proto: 1,
            group,
            payload,
        }
    }

    fn batchers() -> (Arc<Batchers>, Arc<crate::metrics::Metrics>) {
        let http = super::super::client::http_client(&magnum_net::Tls::plain()).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new().unwrap());
        (Batchers::new(http, metrics.clone()), metrics)
    }

    /// Many groups' RPCs to one peer go in few requests, each caller gets its own answer, a
    /// slow group delays no other, and what a single route refuses is refused alike.
    #[tokio::test]
    async fn batches_coalesce_groups_and_answer_each_as_it_is_ready() {
        let registry = Arc::new(Registry::default());
        for g in 1..=64 {
            assert!(registry.reserve(g));
            registry.publish(g, Arc::new(Echo));
        }
        let (addr, cancel) = listen(router(registry)).await;
        let (b, metrics) = batchers();
        let peer = b.peer(2, &addr);
        let t = Duration::from_secs(5);

        let slow = peer.call(RpcKind::Append, env(7, vec![SLOW, 7]), t);
        let calls = (1..=64u64).map(|g| {
            let peer = peer.clone();
            async move {
                let started = std::time::Instant::now();
                let kind = [RpcKind::Append, RpcKind::Vote, RpcKind::PreVote][g as usize % 3];
                let got = peer.call(kind, env(g, vec![g as u8; 3]), t).await;
                (g, got.ok(), started.elapsed())
            }
        });
        let (slow, fast) = tokio::join!(slow, futures::future::join_all(calls));
        for (g, got, took) in fast {
            assert_eq!(got.as_deref(), Some(&[g as u8; 3][..]), "group {g}");
            assert!(took < Duration::from_secs(1), "group {g} waited {took:?}");
        }
        assert_eq!(slow.unwrap().as_ref(), &[SLOW, 7]);
        let text = metrics.render(&[]).unwrap();
        let count = |name: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert_eq!(count("magnum_raft_batched_rpcs_total"), 65.0, "{text}");
        let batches = count("magnum_raft_batches_total");
        assert!(batches < 65.0 / 4.0, "65 RPCs in {batches} batches");

        // Refused items: a group not open here, an RPC a batch cannot carry, a bad version.
        let not_open = peer.call(RpcKind::Vote, env(99, vec![1]), t).await;
        assert!(
            matches!(&not_open, Err(CallError::Unreachable(m)) if m.contains("404") && m.contains("not open")),
            "{not_open:?}"
        );
        let snapshot = peer.call(RpcKind::SnapshotChunk, env(1, vec![1]), t).await;
        assert!(
            matches!(snapshot, Err(CallError::Unsupported(_))),
            "{snapshot:?}"
        );
        let mut future = env(1, vec![1]);
        future.proto = PROTO_CURRENT + 1;
        let refused = peer.call(RpcKind::Vote, future, t).await;
        assert!(
            matches!(&refused, Err(CallError::Unreachable(m)) if m.contains("400")),
            "{refused:?}"
        );
        assert!(peer.batches());
        cancel.cancel();
    }

    /// A peer of an older release has no batch route: its RPCs go one by one, nothing lost.
    #[tokio::test]
    async fn a_peer_without_batches_gets_single_rpcs() {
        let registry = Arc::new(Registry::default());
        assert!(registry.reserve(3));
        registry.publish(3, Arc::new(Echo));
        let old = Router::new()
            .route("/raft/v1/{gid}/{rpc}", post(handle))
            .with_state(registry);
        let (addr, cancel) = listen(old).await;
        let (b, _) = batchers();
        let peer = b.peer(2, &addr);
        let t = Duration::from_secs(5);
        let got = peer.call(RpcKind::Vote, env(3, vec![4, 5]), t).await;
        assert_eq!(got.unwrap().as_ref(), &[4, 5]);
        assert!(!peer.batches(), "the peer is sent single RPCs for a while");
        let got = peer.call(RpcKind::Append, env(3, vec![6]), t).await;
        assert_eq!(got.unwrap().as_ref(), &[6]);
        cancel.cancel();
    }

    #[test]
    fn frames_are_taken_whole() {
        let a = Answer {
            index: 3,
            result: Ok(vec![1, 2, 3]),
        };
        let b = Answer {
            index: 4,
            result: Err((404, "not open".into())),
        };
        let mut buf = [a.frame().unwrap(), b.frame().unwrap()].concat();
        let mut tail = buf.split_off(buf.len() - 2);
        let got = take_frames(&mut buf).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].index, 3);
        buf.append(&mut tail);
        let got = take_frames(&mut buf).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].result, Err((404, "not open".to_string())));
        assert!(buf.is_empty());
        let mut junk = vec![3, 0, 0, 0, 0xff, 0xff, 0xff];
        assert!(take_frames(&mut junk).is_err());
    }

    #[test]
    fn a_request_must_come_from_the_node_it_names() {
        let vote = Vote::new_committed(7, 1);
        assert!(check_sender(Some(1), &vote).is_ok());
        assert!(
            check_sender(None, &vote).is_ok(),
            "plain peers: the mode trusts them"
        );
        let err = check_sender(Some(2), &vote).unwrap_err();
        assert!(
            err.contains("conductor 2") && err.contains("node 1"),
            "{err}"
        );
    }
}
