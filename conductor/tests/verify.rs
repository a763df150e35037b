//! `magnum manage verify` against three in-process conductors: clean replicas agree, and a
//! replica whose state was corrupted on disk is named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use magnum_conductor::cloud::fake::FakeCloud;
use magnum_conductor::verify::{verify, GroupCheck, Verdict};
use magnum_proto::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Verifies until every group passes (placement and voters settle after start).
async fn verify_clean(cl: &ConductorClient) -> Vec<GroupCheck> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let checks = verify(cl).await.unwrap();
        if checks.iter().all(|c| c.verdict == Verdict::Ok) {
            return checks;
        }
        assert!(Instant::now() < deadline, "never clean: {checks:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_clean_replicas_and_names_a_corrupted_one() {
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud, 2).await;
    let cl = client(&c);
    let project = ProjectId::from("p-verify");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    create_cluster(&cl, shard, &project).await;

    let checks = verify_clean(&cl).await;
    assert_eq!(checks.len(), 3, "meta and two shards: {checks:?}");
    assert!(checks.iter().all(GroupCheck::passes));

    // Corrupt the shard on one replica, behind its state machine's back.
    let group = u64::from(shard.0) + 1;
    let victim = checks[group as usize].equal[0];
    let g = c.nodes[&victim].as_ref().unwrap().shard(shard.0).unwrap();
    g.corrupt_for_test(b"zz-corrupt", b"x").await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let bad = loop {
        let checks = verify(&cl).await.unwrap();
        let bad = checks[group as usize].clone();
        if bad.verdict == Verdict::Differ {
            assert!(checks
                .iter()
                .filter(|c| c.group != group)
                .all(|c| c.verdict != Verdict::Differ));
            break bad;
        }
        assert!(Instant::now() < deadline, "corruption not seen: {checks:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(bad.differ, vec![victim], "{bad:?}");
    assert_eq!(bad.equal.len(), 2, "{bad:?}");
    assert!(!bad.passes());
    stop_all(&mut c).await;
}
