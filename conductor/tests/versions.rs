//! The cluster version across in-process conductors: a fresh deployment starts at this
//! binary's feature version, and finalizing a higher one is refused while a conductor reports
//! an older feature version, accepted once every one reports it.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_conductor::cloud::fake::FakeCloud;
use magnum_proto::version::FEATURE_VERSION;
use magnum_proto::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn active(cl: &ConductorClient) -> u32 {
    match cl.meta_query(&MetaQuery::ClusterVersion).await.unwrap() {
        MetaQueryResult::ClusterVersion(v) => v,
        other => panic!("{other:?}"),
    }
}

/// A heartbeat as conductor `id` would send it, reporting `feature_version`.
async fn report(cl: &ConductorClient, c: &Cluster3, id: u64, feature_version: u32) {
    let req = MetaRequest::Heartbeat {
        node: NodeId(id),
        host: c.cfgs[&id].service_listen.to_string(),
        version: "9.9.9".into(),
        at: Timestamp::now(),
        feature_version,
        api_nodes: Vec::new(),
    };
    cl.meta_command(&req).await.unwrap();
}

#[tokio::test]
async fn finalize_waits_for_every_conductor() {
    // Real beats only at start, so the reports below stay as written.
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3_beating(cloud, 1, Duration::from_secs(3600)).await;
    let cl = client(&c);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Beats may land before the bootstrap record that sets the version.
    while cl.services().await.unwrap().len() < 3 || active(&cl).await != FEATURE_VERSION {
        assert!(
            Instant::now() < deadline,
            "never registered at {FEATURE_VERSION}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let services = cl.services().await.unwrap();
    assert!(services
        .iter()
        .all(|s| s.feature_version == FEATURE_VERSION));

    let next = FEATURE_VERSION + 1;
    report(&cl, &c, 1, next).await;
    report(&cl, &c, 2, next).await;
    let set = MetaRequest::SetClusterVersion { version: next };
    match cl.meta_command(&set).await {
        Err(ClientError::Rejected(m)) => assert!(
            m.contains(&format!("conductor 3 supports {FEATURE_VERSION}")),
            "{m}"
        ),
        other => panic!("finalize while conductor 3 lags: {other:?}"),
    }
    assert_eq!(active(&cl).await, FEATURE_VERSION);

    report(&cl, &c, 3, next).await;
    match cl.meta_command(&set).await.unwrap() {
        MetaReply::ClusterVersion(v) => assert_eq!(v, next),
        other => panic!("{other:?}"),
    }
    assert_eq!(active(&cl).await, next);
    // Never down.
    let down = MetaRequest::SetClusterVersion {
        version: FEATURE_VERSION,
    };
    assert!(matches!(
        cl.meta_command(&down).await,
        Err(ClientError::Rejected(_))
    ));
    stop_all(&mut c).await;
}
