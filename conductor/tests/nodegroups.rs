//! Nodegroup operations on three conductors in one process with an in-memory cloud: a
//! nodegroup's own stack is created exactly once across a leader shutdown mid-create, and the
//! nodegroup and cluster deletes remove every stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use magnum_conductor::cloud::{fake::FakeCloud, Cloud};
use magnum_proto::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn new_nodegroup(v: &ClusterView, name: &str, count: u32) -> NodeGroup {
    let mut n = v
        .nodegroups
        .iter()
        .find(|n| n.is_default && !n.is_master())
        .cloned()
        .unwrap();
    n.uuid = NodeGroupId::new_v4();
    n.name = name.into();
    n.node_count = count;
    n.is_default = false;
    n
}

fn ng_op(project: &ProjectId) -> OperationRequest {
    let t = magnum_proto::fixtures::template(project);
    let mut op = magnum_proto::fixtures::cluster_rows(&t, "x", 1, 1).2;
    op.id = OpId::new_v4();
    op
}

async fn wait_nodegroup(
    cl: &ConductorClient,
    shard: ShardId,
    id: ClusterId,
    name: &str,
    want: Option<ClusterStatus>,
) -> Option<NodeGroup> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = match cl.query(shard, &ShardQuery::Cluster { id }).await.unwrap() {
            QueryResult::Cluster(v) => v.map(|b| *b),
            other => panic!("{other:?}"),
        };
        let ng = v.and_then(|v| v.nodegroups.into_iter().find(|n| n.name == name));
        match (&ng, want) {
            (None, None) => return None,
            (Some(n), Some(w)) if n.status == Some(w) => return ng,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {want:?}: {ng:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodegroup_create_survives_a_leader_shutdown_with_one_stack() {
    let cloud = Arc::new(FakeCloud::with_create_delay(Duration::from_millis(800)));
    let mut c = start3(cloud.clone(), 1).await;
    let cl = client(&c);
    let project = ProjectId::from("proj-ng");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    let id = create_cluster(&cl, shard, &project).await;
    let v = wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE))
        .await
        .unwrap();
    let calls_before = *cloud.create_calls.lock().unwrap();
    let create = ShardCommand::CreateNodeGroup {
        nodegroup: new_nodegroup(&v, "ng1", 2),
        operation: ng_op(&project),
        at: Timestamp::now(),
    };
    send(&cl, shard, create).await.unwrap();
    // The nodegroup stack create is on its way: stop the leader before Heat answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while *cloud.create_calls.lock().unwrap() == calls_before {
        assert!(Instant::now() < deadline, "the create call never left");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leader = cl.leader_of(shard).await.unwrap().unwrap();
    if let Some(node) = c.nodes.get_mut(&leader.0).and_then(Option::take) {
        node.shutdown().await;
    }
    let ng = wait_nodegroup(&cl, shard, id, "ng1", Some(ClusterStatus::CREATE_COMPLETE))
        .await
        .unwrap();
    let v = wait_status(&cl, shard, id, Some(ClusterStatus::UPDATE_COMPLETE))
        .await
        .unwrap();
    assert_eq!(
        *cloud.ng_creates.lock().unwrap(),
        1,
        "exactly one nodegroup stack"
    );
    assert!(
        *cloud.create_calls.lock().unwrap() > calls_before + 1,
        "the new leader repeated the create and adopted the stack"
    );
    let name = magnum_drivers::nodegroup_stack_name(&v.cluster.name, "ng1", ng.uuid.0);
    assert_eq!(ng.stack_id, cloud.stack_id(&name));

    // The stopped node comes back; then the nodegroup goes, stack first.
    restart(&mut c, leader).await;
    let del = ShardCommand::DeleteNodeGroup {
        cluster: id,
        nodegroup: ng.uuid,
        operation: ng_op(&project),
        at: Timestamp::now(),
    };
    send(&cl, shard, del).await.unwrap();
    assert!(wait_nodegroup(&cl, shard, id, "ng1", None).await.is_none());
    let v = wait_status(&cl, shard, id, Some(ClusterStatus::UPDATE_COMPLETE))
        .await
        .unwrap();
    assert_eq!(v.nodegroups.len(), 2);
    assert!(!cloud.live_stacks().contains(&name));
    stop_all(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_delete_removes_nodegroup_stacks_before_the_cluster_stack() {
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud.clone(), 1).await;
    let cl = client(&c);
    let project = ProjectId::from("proj-ngd");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    let id = create_cluster(&cl, shard, &project).await;
    let v = wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE))
        .await
        .unwrap();
    for name in ["ng1", "ng2"] {
        let create = ShardCommand::CreateNodeGroup {
            nodegroup: new_nodegroup(&v, name, 1),
            operation: ng_op(&project),
            at: Timestamp::now(),
        };
        send(&cl, shard, create).await.unwrap();
        wait_nodegroup(&cl, shard, id, name, Some(ClusterStatus::CREATE_COMPLETE)).await;
    }
    // Resizing a nodegroup PATCHes its own stack with its own count.
    let ng1 = wait_nodegroup(&cl, shard, id, "ng1", Some(ClusterStatus::CREATE_COMPLETE))
        .await
        .unwrap();
    let resize = ShardCommand::ResizeCluster {
        id,
        nodegroup: ng1.uuid,
        node_count: 4,
        nodes_to_remove: vec![],
        operation: ng_op(&project),
        at: Timestamp::now(),
    };
    send(&cl, shard, resize).await.unwrap();
    wait_nodegroup(&cl, shard, id, "ng1", Some(ClusterStatus::UPDATE_COMPLETE)).await;
    assert_eq!(*cloud.updates.lock().unwrap(), vec![v.node_count() + 1 + 4]);
    let ng1_stack = magnum_drivers::nodegroup_stack_name(&v.cluster.name, "ng1", ng1.uuid.0);
    assert_eq!(*cloud.patched.lock().unwrap(), vec![ng1_stack]);
    assert_eq!(cloud.live_stacks().len(), 3);
    let del = ShardCommand::DeleteCluster {
        id,
        op: OpId::new_v4(),
        at: Timestamp::now(),
        deadline: Timestamp::now().plus_secs(600),
    };
    send(&cl, shard, del).await.unwrap();
    assert!(wait_status(&cl, shard, id, None).await.is_none());
    assert!(cloud.live_stacks().is_empty());
    let deleted = cloud.deleted.lock().unwrap().clone();
    assert_eq!(deleted.len(), 3, "{deleted:?}");
    assert_eq!(
        deleted[2],
        cloud.stack_name(&v),
        "the cluster stack goes last"
    );
    stop_all(&mut c).await;
}
