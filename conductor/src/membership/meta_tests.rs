use super::*;
use crate::propose::ActiveVersion;
use magnum_proto::{NodeId, NodeState};
use magnum_raft::{NoStoredRows, NodeAddr, RaftConfig, RaftNode};
use std::collections::BTreeSet;
use std::time::Duration;

fn beat(node: u64, host: &str, at: i64) -> Vec<u8> {
    beat_v(node, host, at, 2)
}

fn beat_v(node: u64, host: &str, at: i64, feature_version: u32) -> Vec<u8> {
    serde_json::to_vec(&MetaCommand::Heartbeat {
        node,
        host: host.into(),
        version: "1.2.3".into(),
        at: Timestamp(at),
        feature_version,
        api_nodes: Vec::new(),
    })
    .unwrap()
}

fn apply(m: &mut MetaState, payload: &[u8]) -> (MetaResponse, usize) {
    let mut w = WriteSet::new();
    let out = m.apply(1, payload, &mut w, &NoStoredRows).unwrap();
    (serde_json::from_slice(&out).unwrap(), w.len())
}

#[test]
fn heartbeat_upserts_and_counts() {
    let mut m = MetaState::default();
    let (r, writes) = apply(&mut m, &beat(2, "10.0.0.2:9512", 100));
    assert_eq!(writes, 1);
    let MetaResponse::Service(first) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        first,
        ServiceRecord {
            id: 2,
            host: "10.0.0.2:9512".into(),
            binary: "magnum-conductor".into(),
            report_count: 1,
            created_at: Timestamp(100),
            updated_at: Timestamp(100),
            version: "1.2.3".into(),
            feature_version: 2,
            api_nodes: Vec::new(),
        }
    );
    apply(&mut m, &beat(1, "10.0.0.1:9512", 150));
    let (r, _) = apply(&mut m, &beat(2, "10.0.0.9:9512", 200));
    let MetaResponse::Service(second) = r else {
        panic!("{r:?}")
    };
    assert_eq!(second.report_count, 2);
    assert_eq!(second.created_at, Timestamp(100));
    assert_eq!(second.updated_at, Timestamp(200));
    assert_eq!(second.host, "10.0.0.9:9512");
    // A beat with an older clock counts but does not move updated_at back.
    apply(&mut m, &beat(2, "10.0.0.9:9512", 50));
    assert_eq!(m.services[&2].report_count, 3);
    assert_eq!(m.services[&2].updated_at, Timestamp(200));
    assert_eq!(m.services.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
}

#[test]
fn apply_is_deterministic() {
    let (mut a, mut b) = (MetaState::default(), MetaState::default());
    for p in [beat(1, "h1", 10), beat(3, "h3", 11), beat(1, "h1", 12)] {
        let mut wa = WriteSet::new();
        let mut wb = WriteSet::new();
        assert_eq!(
            a.apply(1, &p, &mut wa, &NoStoredRows),
            b.apply(1, &p, &mut wb, &NoStoredRows)
        );
    }
    assert_eq!(a.services, b.services);
    let mut w = WriteSet::new();
    let err = a
        .apply(4, b"nonsense", &mut w, &NoStoredRows)
        .expect_err("halts the group");
    assert!(err.contains("undecodable command"), "{err}");
    assert!(w.is_empty());
}

async fn open(dir: &std::path::Path) -> (std::sync::Arc<RaftNode>, magnum_raft::Group<MetaState>) {
    let node = RaftNode::open(1, dir, RaftConfig::default()).unwrap();
    let g = node.open_group(0, MetaState::default()).await.unwrap();
    (node, g)
}

async fn write_until_ok(g: &magnum_raft::Group<MetaState>, payload: Vec<u8>) {
    for _ in 0..200 {
        if g.write(payload.clone()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader");
}

#[tokio::test]
async fn registry_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (node, g) = open(dir.path()).await;
    let me = NodeAddr {
        raft: "127.0.0.1:1".into(),
        service: "127.0.0.1:2".into(),
    };
    g.initialize(BTreeMap::from([(1, me)])).await.unwrap();
    write_until_ok(&g, beat(1, "127.0.0.1:2", 10)).await;
    write_until_ok(&g, beat(1, "127.0.0.1:2", 20)).await;
    write_until_ok(&g, beat(7, "127.0.0.7:2", 30)).await;
    let before = g.read_local(|m| m.services.clone());
    drop(g);
    node.shutdown().await;
    drop(node);

    let (node, g) = open(dir.path()).await;
    let after = g.read_local(|m| m.services.clone());
    assert_eq!(after, before);
    assert_eq!(after[&1].report_count, 2);
    assert_eq!(after[&7].created_at, Timestamp(30));
    drop(g);
    node.shutdown().await;
}

fn cmd(c: MetaCommand) -> Vec<u8> {
    serde_json::to_vec(&c).unwrap()
}

fn add(id: u64) -> Vec<u8> {
    cmd(MetaCommand::AddNode {
        id: NodeId(id),
        raft: format!("127.0.0.1:{}", 100 + id),
        service: format!("127.0.0.1:{}", 200 + id),
    })
}

fn set_state(id: u64, state: NodeState) -> Vec<u8> {
    cmd(MetaCommand::SetNodeState {
        id: NodeId(id),
        state,
    })
}

fn ids(v: &[u64]) -> BTreeSet<NodeId> {
    v.iter().map(|i| NodeId(*i)).collect()
}

#[test]
fn membership_commands_check_their_preconditions() {
    let mut m = MetaState::default();
    // Before any member is known every heartbeat is taken (bootstrap, old deployments).
    assert!(matches!(
        apply(&mut m, &beat(9, "h", 1)).0,
        MetaResponse::Service(_)
    ));
    assert!(matches!(apply(&mut m, &add(1)).0, MetaResponse::Node(_)));
    assert!(matches!(apply(&mut m, &add(2)).0, MetaResponse::Node(_)));
    // Idempotent with the same addresses, refused with others or with a taken address.
    assert!(matches!(apply(&mut m, &add(2)).0, MetaResponse::Node(_)));
    let other = cmd(MetaCommand::AddNode {
        id: NodeId(2),
        raft: "127.0.0.1:1".into(),
        service: "127.0.0.1:2".into(),
    });
    assert!(matches!(apply(&mut m, &other).0, MetaResponse::Rejected(_)));
    let dup = cmd(MetaCommand::AddNode {
        id: NodeId(3),
        raft: "127.0.0.1:101".into(),
        service: "127.0.0.1:9".into(),
    });
    assert!(matches!(apply(&mut m, &dup).0, MetaResponse::Rejected(_)));
    // Now a non-member's heartbeat is refused.
    assert!(matches!(
        apply(&mut m, &beat(9, "h", 2)).0,
        MetaResponse::Rejected(_)
    ));
    assert!(matches!(
        apply(&mut m, &beat(1, "h", 2)).0,
        MetaResponse::Service(_)
    ));
    assert!(matches!(
        apply(&mut m, &set_state(7, NodeState::Draining)).0,
        MetaResponse::Rejected(_)
    ));
    // Placement is compare-and-set.
    let place = |expected: &[u64], to: &[u64]| {
        cmd(MetaCommand::SetPlacement {
            group: 1,
            expected: ids(expected),
            replicas: ids(to),
        })
    };
    assert_eq!(apply(&mut m, &place(&[], &[1, 2])).0, MetaResponse::Done);
    assert!(matches!(
        apply(&mut m, &place(&[], &[2])).0,
        MetaResponse::Rejected(_)
    ));
    // A leaving node is forgotten only once it hosts nothing; it cannot come back meanwhile.
    assert!(matches!(
        apply(&mut m, &set_state(2, NodeState::Leaving)).0,
        MetaResponse::Node(_)
    ));
    assert!(matches!(
        apply(&mut m, &set_state(1, NodeState::Leaving)).0,
        MetaResponse::Rejected(_)
    ));
    assert!(matches!(
        apply(&mut m, &set_state(2, NodeState::Active)).0,
        MetaResponse::Rejected(_)
    ));
    let forget = cmd(MetaCommand::ForgetNode { id: NodeId(2) });
    assert!(matches!(
        apply(&mut m, &forget).0,
        MetaResponse::Rejected(_)
    ));
    assert_eq!(apply(&mut m, &place(&[1, 2], &[1])).0, MetaResponse::Done);
    assert_eq!(apply(&mut m, &forget).0, MetaResponse::Done);
    assert!(!m.nodes.contains_key(&NodeId(2)));
}

#[tokio::test]
async fn membership_and_placement_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (node, g) = open(dir.path()).await;
    let me = NodeAddr {
        raft: "127.0.0.1:1".into(),
        service: "127.0.0.1:2".into(),
    };
    g.initialize(BTreeMap::from([(1, me)])).await.unwrap();
    write_until_ok(&g, add(1)).await;
    write_until_ok(&g, add(4)).await;
    write_until_ok(&g, set_state(4, NodeState::Draining)).await;
    write_until_ok(
        &g,
        cmd(MetaCommand::SetPlacement {
            group: 3,
            expected: ids(&[]),
            replicas: ids(&[1, 4]),
        }),
    )
    .await;
    let before = g.read_local(|m| m.view());
    drop(g);
    node.shutdown().await;
    drop(node);
    let (node, g) = open(dir.path()).await;
    assert_eq!(g.read_local(|m| m.view()), before);
    assert_eq!(before.nodes[1].state, NodeState::Draining);
    drop(g);
    node.shutdown().await;
}

#[test]
fn a_row_that_cannot_be_encoded_fails_the_apply() {
    let mut m = MetaState::default();
    let mut w = WriteSet::new();
    crate::shard::persist::FAIL_ENCODING.set(true);
    let r = m.apply(1, &add(1), &mut w, &NoStoredRows);
    crate::shard::persist::FAIL_ENCODING.set(false);
    let err = r.expect_err("the apply fails");
    assert!(err.contains("cannot be encoded"), "{err}");
    // The failure does not stick to the next command.
    assert!(m
        .apply(2, &beat(1, "h", 1), &mut WriteSet::new(), &NoStoredRows)
        .is_ok());
}

fn set_version(version: u32) -> Vec<u8> {
    cmd(MetaCommand::SetClusterVersion { version })
}

#[test]
fn cluster_version_goes_up_never_down_and_laggards_are_named() {
    let active = ActiveVersion::default();
    let mut m = MetaState::new(active.clone());
    // No version row: a deployment from before versioning.
    assert_eq!(m.cluster_version(), 1);
    apply(&mut m, &add(1));
    apply(&mut m, &add(2));
    apply(&mut m, &beat_v(1, "h1", 1, 3));
    apply(&mut m, &beat_v(2, "h2", 1, 2));
    // Above what conductor 2 supports: the proposer's check names it.
    assert_eq!(
        m.laggards(3, Timestamp(0)),
        vec!["conductor 2 supports 2".to_string()]
    );
    assert!(m.laggards(2, Timestamp(0)).is_empty());
    assert_eq!(
        apply(&mut m, &set_version(2)).0,
        MetaResponse::ClusterVersion(2)
    );
    assert_eq!(active.get(), 2, "the node's cache follows the apply");
    // Idempotent: no write.
    assert_eq!(
        apply(&mut m, &set_version(2)),
        (MetaResponse::ClusterVersion(2), 0)
    );
    // Never down.
    assert!(matches!(
        apply(&mut m, &set_version(1)).0,
        MetaResponse::Rejected(_)
    ));
    // A registered conductor that never reported counts as 1.
    apply(&mut m, &add(3));
    apply(&mut m, &beat_v(2, "h2", 2, 3));
    assert_eq!(
        m.laggards(3, Timestamp(0)),
        vec!["conductor 3 supports 1".to_string()]
    );
}

#[test]
fn old_heartbeats_decode_as_version_1_and_bootstrap_sets_the_version() {
    let old = br#"{"Heartbeat":{"node":1,"host":"h","version":"0.1.0","at":5}}"#;
    let mut m = MetaState::default();
    let MetaResponse::Service(rec) = apply(&mut m, old).0 else {
        panic!("an old heartbeat is taken")
    };
    assert_eq!(rec.feature_version, 1);

    let b = |v| {
        cmd(MetaCommand::Bootstrap(Bootstrap {
            shards: 2,
            hash: "fnv1a".into(),
            replicas: 3,
            cluster_version: v,
        }))
    };
    let mut fresh = MetaState::default();
    assert!(matches!(
        apply(&mut fresh, &b(Some(2))).0,
        MetaResponse::Ok(_)
    ));
    assert_eq!(fresh.cluster_version(), 2);
    // A repeat by another binary is the same layout, and changes no version.
    assert!(matches!(
        apply(&mut fresh, &b(Some(5))).0,
        MetaResponse::Ok(_)
    ));
    assert!(matches!(apply(&mut fresh, &b(None)).0, MetaResponse::Ok(_)));
    assert_eq!(fresh.cluster_version(), 2);
}

/// API nodes a conductor reported count as laggards while they are recent.
#[test]
fn api_nodes_reported_by_heartbeats_are_laggards_while_recent() {
    use magnum_proto::meta::{ApiNodeSeen, API_NODE_WINDOW_SECS};
    let mut m = MetaState::default();
    apply(&mut m, &add(1));
    let seen = |url: &str, fv| ApiNodeSeen {
        url: url.into(),
        feature_version: fv,
        version: String::new(),
        last_seen: Timestamp(1_000_000_000),
    };
    let beat = cmd(MetaCommand::Heartbeat {
        node: 1,
        host: "h1".into(),
        version: "1".into(),
        at: Timestamp(1_000_000_000),
        feature_version: 2,
        api_nodes: vec![seen("", 1), seen("http://api-2", 2)],
    });
    apply(&mut m, &beat);
    let soon = Timestamp(1_000_000_000).plus_secs(5);
    assert_eq!(
        m.laggards(2, soon),
        vec!["an API node before cluster versions supports 1".to_string()]
    );
    assert_eq!(
        m.laggards(3, soon).len(),
        3,
        "the conductor and both API nodes"
    );
    let later = Timestamp(1_000_000_000).plus_secs(API_NODE_WINDOW_SECS + 1);
    assert!(
        m.laggards(2, later).is_empty(),
        "a stopped API node drops out"
    );
}
