//! The internal plane as an attacker with network access sees it: what the conductor's service
//! listener refuses (issue 12), against three in-process conductors. A test binary of its own, so
//! that it does not share the machine with `conductors.rs`' parallel deployments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use magnum_conductor::cloud::fake::FakeCloud;
use magnum_proto::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shard leader's own commands, forged with the current epoch and sent to the service
/// listener as an attacker with network access would, are refused and change nothing; so is an
/// oversized body, at once; the data dirs are owner-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciler_commands_from_the_network_are_refused() {
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud, 1).await;
    let cl = client(&c);
    let project = ProjectId::from("proj-f");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    let id = create_cluster(&cl, shard, &project).await;
    let before = wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE))
        .await
        .unwrap();
    let epoch = match cl.query(shard, &ShardQuery::Ownership).await.unwrap() {
        QueryResult::Ownership { epoch, .. } => epoch,
        other => panic!("{other:?}"),
    };
    let at = Timestamp::now();
    let forged = [
        ShardCommand::SyncStatus {
            epoch,
            cluster: id,
            status: ClusterStatus::CREATE_FAILED,
            reason: Some("forged".into()),
            outputs: None,
            at,
        },
        ShardCommand::ObserveHealth {
            epoch,
            cluster: id,
            health_status: Some("UNHEALTHY".into()),
            health_status_reason: None,
            at,
        },
        ShardCommand::TakeOwnership {
            node: NodeId(1),
            epoch: epoch + 1,
        },
        ShardCommand::RestoreStackIds {
            epoch,
            stacks: [(id, "forged".to_string())].into(),
        },
    ];
    for cmd in forged {
        let name = format!("{cmd:?}");
        match cl.command(shard, &ShardRequest::from(cmd)).await {
            Err(ClientError::Rejected(m)) => {
                assert!(m.contains("shard leader's own loops"), "{name}: {m}")
            }
            other => panic!("{name} from the network: {other:?}"),
        }
    }
    let after = wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE))
        .await
        .unwrap();
    let key = |v: &ClusterView| {
        let c = &v.cluster;
        let reason = c.status_reason.clone();
        (
            c.status,
            reason,
            c.health_status.clone(),
            c.stack_id.clone(),
        )
    };
    assert_eq!(key(&after), key(&before), "nothing changed");
    // A body over the listener's limit is refused at once (413 is not retried to the deadline).
    let big = ShardCommand::Canary {
        key: "k".into(),
        value: "v".repeat(wire::MAX_INTERNAL_BODY),
    };
    let start = Instant::now();
    match cl.command(shard, &ShardRequest::from(big)).await {
        Err(ClientError::Rejected(m)) => assert!(m.contains("413"), "{m}"),
        other => panic!("an oversized body: {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // At rest: each data dir is the conductor's own.
    #[cfg(unix)]
    for cfg in c.cfgs.values() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cfg.data_dir)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{}", cfg.data_dir.display());
    }
    stop_all(&mut c).await;
}
