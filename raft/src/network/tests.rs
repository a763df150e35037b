//! Snapshot transfer across protocol versions: a v2 node installs a snapshot streamed in chunks
//! and one sent whole by a v1 peer; towards a v1 peer the sender falls back to one request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::network::RaftNetworkFactory;
use openraft::raft::SnapshotResponse;
use openraft::{Membership, Vote as OVote};

use super::client::NetworkFactory;
use super::{Envelope, SnapshotChunk, SnapshotRpc};
use crate::codec;
use crate::logic::{StateMachineLogic, StoredRows, WriteSet};
use crate::metrics::Metrics;
use crate::storage::snapfile::{PairWriter, SnapshotFile};
use crate::types::{
    LogId, NodeAddr, ORaftError, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, Vote,
};
use crate::{RaftConfig, RaftNode};

#[derive(Default)]
struct Kv(BTreeMap<Vec<u8>, Vec<u8>>);

impl StateMachineLogic for Kv {
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        self.0 = kv.collect();
        Ok(())
    }

    fn apply(
        &mut self,
        _: u64,
        _: &[u8],
        _: &mut WriteSet,
        _: &dyn StoredRows,
    ) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
}

fn log_id(index: u64) -> LogId {
    LogId::new(
        LeaderId {
            term: 1,
            node_id: 1,
        },
        index,
    )
}

fn vote() -> Vote {
    OVote {
        leader_id: LeaderId {
            term: 1,
            node_id: 1,
        },
        committed: true,
    }
}

fn meta() -> SnapshotMeta {
    let addr = |p: u16| NodeAddr {
        raft: format!("127.0.0.1:{p}"),
        service: String::new(),
    };
    let nodes = BTreeMap::from([(1, addr(1)), (2, addr(2))]);
    let m = Membership::new(vec![[1u64].into()], nodes).unwrap();
    SnapshotMeta {
        last_log_id: Some(log_id(10)),
        last_membership: StoredMembership::new(Some(log_id(1)), m),
    }
}

/// Raw state machine pairs (app keys carry the 0x01 prefix).
fn pairs() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..50u8).map(|i| (vec![1, b'k', i], vec![i; 40])).collect()
}

fn app_state() -> BTreeMap<Vec<u8>, Vec<u8>> {
    pairs()
        .into_iter()
        .map(|(k, v)| (k[1..].to_vec(), v))
        .collect()
}

/// A learner replica of group 1 serving Raft RPC.
async fn learner(dir: &std::path::Path) -> (Arc<RaftNode>, crate::Group<Kv>, String) {
    let node = RaftNode::open(2, dir, RaftConfig::default()).unwrap();
    let g = node.open_group(1, Kv::default()).await.unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    node.serve(l, tokio_util::sync::CancellationToken::new())
        .unwrap();
    (node, g, addr)
}

async fn post(addr: &str, rpc: &str, proto: u16, payload: Vec<u8>) -> reqwest::Response {
    let body = codec::encode(&Envelope {
        proto,
        group: 1,
        payload,
    })
    .unwrap();
    reqwest::Client::new()
        .post(format!("http://{addr}/raft/v1/1/{rpc}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_a_snapshot_sent_whole_by_a_v1_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, g, addr) = learner(tmp.path()).await;
    let req = SnapshotRpc {
        vote: vote(),
        meta: meta(),
        data: codec::encode_record(&pairs()).unwrap(),
    };
    let resp = post(&addr, "snapshot", 1, codec::encode(&req).unwrap()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let r: Result<SnapshotResponse<TypeConfig>, ORaftError> =
        codec::decode(&resp.bytes().await.unwrap()).unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(g.read_local(|kv| kv.0.clone()), app_state());
    assert_eq!(g.log_stats().snapshot, Some(10));
    assert_eq!(g.snapshot_counts().installed, 1);
    drop(g);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_a_snapshot_streamed_in_chunks_and_refuses_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, g, addr) = learner(&tmp.path().join("n2")).await;
    let mut w = PairWriter::create(&tmp.path().join("src.snap")).unwrap();
    for (k, v) in pairs() {
        w.put(&k, &v).unwrap();
    }
    let (path, total) = w.finish().unwrap();
    let bytes = std::fs::read(path).unwrap();
    let chunk = |offset: usize, end: usize| {
        codec::encode(&SnapshotChunk {
            vote: vote(),
            meta: meta(),
            offset: offset as u64,
            total,
            data: bytes[offset..end].to_vec(),
        })
        .unwrap()
    };
    let decode = |b: Bytes| -> Result<Option<SnapshotResponse<TypeConfig>>, ORaftError> {
        codec::decode(&b).unwrap()
    };
    let third = bytes.len() / 3;
    let r = post(&addr, "snapshot-chunk", 2, chunk(0, third)).await;
    assert!(decode(r.bytes().await.unwrap()).unwrap().is_none());
    // A gap is refused; the sender then starts over from 0.
    let r = post(&addr, "snapshot-chunk", 2, chunk(2 * third, bytes.len())).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    for (a, b) in [(0, third), (third, 2 * third)] {
        let r = post(&addr, "snapshot-chunk", 2, chunk(a, b)).await;
        assert!(decode(r.bytes().await.unwrap()).unwrap().is_none());
    }
    let r = post(&addr, "snapshot-chunk", 2, chunk(2 * third, bytes.len())).await;
    assert!(decode(r.bytes().await.unwrap()).unwrap().is_some());
    assert_eq!(g.read_local(|kv| kv.0.clone()), app_state());
    assert_eq!(g.snapshot_counts().installed, 1);
    // Only the installed snapshot is left in the group's dir.
    let files = std::fs::read_dir(tmp.path().join("n2/snapshots/g1"))
        .unwrap()
        .count();
    assert_eq!(files, 1);
    drop(g);
    node.shutdown().await;
}

/// What a v1 peer received: (rpc, envelope proto, pairs of a whole snapshot).
type Seen = Arc<Mutex<Vec<(String, u16, Vec<(Vec<u8>, Vec<u8>)>)>>>;

/// A peer of protocol v1: no `snapshot-chunk`; takes a whole snapshot.
async fn v1_peer(
    State(seen): State<Seen>,
    UrlPath((_gid, rpc)): UrlPath<(u64, String)>,
    body: Bytes,
) -> axum::response::Response {
    let env: Envelope = codec::decode(&body).unwrap();
    if rpc != "snapshot" {
        seen.lock().unwrap().push((rpc.clone(), env.proto, vec![]));
        return (StatusCode::NOT_FOUND, format!("unknown raft rpc {rpc:?}")).into_response();
    }
    let req: SnapshotRpc = codec::decode(&env.payload).unwrap();
    let pairs = codec::decode_record(&req.data).unwrap();
    seen.lock().unwrap().push((rpc, env.proto, pairs));
    let ok: Result<SnapshotResponse<TypeConfig>, ORaftError> =
        Ok(SnapshotResponse { vote: req.vote });
    codec::encode(&ok).unwrap().into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_a_v1_peer_the_whole_snapshot_in_one_request() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/raft/v1/{gid}/{rpc}", axum::routing::post(v1_peer))
        .with_state(seen.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await });

    let tmp = tempfile::tempdir().unwrap();
    let mut w = PairWriter::create(&tmp.path().join("s.snap")).unwrap();
    for (k, v) in pairs() {
        w.put(&k, &v).unwrap();
    }
    let (path, _) = w.finish().unwrap();
    let metrics = Metrics::new().unwrap();
    let mut factory = NetworkFactory {
        http: super::client::http_client(&magnum_net::Tls::plain()).unwrap(),
        self_id: 1,
        gid: 1,
        metrics: Arc::new(Metrics::new().unwrap()),
        group_metrics: metrics.group(1),
        batchers: None,
    };
    let peer = factory
        .new_client(
            2,
            &NodeAddr {
                raft: addr,
                service: String::new(),
            },
        )
        .await;
    let snapshot = Snapshot {
        meta: meta(),
        snapshot: SnapshotFile::open(&path).unwrap(),
    };
    let resp = super::snapshot::send(&peer, vote(), snapshot, Duration::from_secs(5)).await;
    assert!(matches!(resp, Ok(r) if r.vote == vote()));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "one refused chunk, one whole snapshot");
    assert_eq!(
        (seen[0].0.as_str(), seen[0].1),
        ("snapshot-chunk", super::RpcKind::SnapshotChunk.since())
    );
    assert_eq!((seen[1].0.as_str(), seen[1].1), ("snapshot", 1));
    assert_eq!(seen[1].2, pairs());
}
