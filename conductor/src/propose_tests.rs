use super::*;
use magnum_proto::{ShardCommand, ShardId};
use magnum_raft::{RaftConfig, RaftNode};
use std::collections::BTreeMap;
use std::time::Duration;

fn canary() -> ShardCommand {
    ShardCommand::Canary {
        key: "k".into(),
        value: "v".into(),
    }
}

#[test]
fn the_gate_compares_with_the_active_version() {
    let c = canary();
    assert!(ActiveVersion::new(1).check(Kind::Shard(&c)).is_ok());
    // Active 0 stands in for a kind newer than the active version.
    let err = ActiveVersion::new(0).check(Kind::Shard(&c)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Canary is not available until every conductor runs a release that supports it and the \
         operator finalizes the upgrade (active cluster version 0, needs 1)"
    );
}

#[tokio::test]
async fn a_gated_command_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = RaftNode::open(1, dir.path(), RaftConfig::default()).unwrap();
    let g = node
        .open_group(1, ShardLogic::new(ShardId(0), 1))
        .await
        .unwrap();
    let me = NodeAddr {
        raft: "127.0.0.1:1".into(),
        service: "127.0.0.1:2".into(),
    };
    g.initialize(BTreeMap::from([(1, me)])).await.unwrap();
    let open = ShardLeader::new(g.clone(), ActiveVersion::new(1));
    let mut ok = false;
    for _ in 0..100 {
        if open.propose(canary()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the ungated canary commits");
    let before = g.status().last_log;

    let gated = ShardLeader::new(g.clone(), ActiveVersion::new(0));
    let err = gated.propose(canary()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProposeError::NotYetActive {
                needs: 1,
                active: 0,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(g.status().last_log, before, "nothing was proposed");
    drop((open, gated, g));
    node.shutdown().await;
}
