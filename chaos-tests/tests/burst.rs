//! Issue 14, step 0, in CI size: a burst of cluster creates from 8 concurrent clients into one
//! project (one shard) of the multi-process topology. The consensus path must not notice: no
//! Raft term moves, no read fails, every create is accepted and completes with exactly one Heat
//! stack. The 1,000-create version with latencies is `benches/src/bin/burst.rs`.
use magnum_chaos_tests::burst::{self, Burst};
use magnum_chaos_tests::{Deployment, Options};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_creates_moves_no_term_and_every_cluster_completes() {
    let n = 100;
    let d = Deployment::up(
        "burst",
        Options {
            sim_args: format!("--max-stacks-per-tenant {}", n + 10),
            ..Options::default()
        },
    );
    let r = burst::run(
        &d,
        &Burst {
            creates: n,
            clients: 8,
            timeout: Duration::from_secs(600),
        },
    )
    .await;
    eprintln!("MEASURE burst: {}", r.summary());
    assert_eq!(r.accepted, n, "{r:?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        r.statuses.get("CREATE_COMPLETE").copied(),
        Some(n),
        "{:?}",
        r.statuses
    );
    assert_eq!((r.stacks, r.duplicate_stacks), (n, 0));
    assert_eq!(r.failed_reads, 0);
    assert!(
        r.moved_terms().is_empty(),
        "Raft terms moved during the burst: {:?}",
        r.moved_terms()
    );
}
