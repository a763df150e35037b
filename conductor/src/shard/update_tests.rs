//! Resize and upgrade of one nodegroup in the shard state machine.
use crate::shard::ng_tests::{bad, conflict, T};
use magnum_proto::*;

#[test]
fn resize_of_a_nodegroup_targets_it_and_restores_it() {
    let mut x = T::new();
    x.finish_create();
    x.ng_created("ng1", ClusterStatus::CREATE_COMPLETE, None);
    let ng = x.ng("ng1").uuid;
    let c = x.c;
    let operation = x.op_template();
    x.cmd(ShardCommand::ResizeCluster {
        id: c,
        nodegroup: ng,
        node_count: 3,
        nodes_to_remove: vec![],
        operation,
        at: Timestamp(6),
    })
    .unwrap();
    let op = x.op();
    assert_eq!(op.nodegroup, Some(ng));
    assert_eq!(x.ng("ng1").node_count, 3);
    assert_eq!(x.ng("default-worker").node_count, 2);
    x.adv(
        op.id,
        OpEvent::Failed {
            reason: "no".into(),
        },
    )
    .unwrap();
    assert_eq!(x.ng("ng1").node_count, 1);
    assert_eq!(x.ng("ng1").status, Some(ClusterStatus::UPDATE_FAILED));
    assert_eq!(
        x.ng("default-master").status,
        Some(ClusterStatus::CREATE_COMPLETE)
    );
    let v = x.view();
    assert_eq!(v.cluster.status, ClusterStatus::UPDATE_FAILED);
    assert_eq!(v.cluster.status_reason.as_deref(), Some("ng1 failed"));
}

fn upgrade_cmd(x: &T, t: &ClusterTemplate, ng: &str, batch: u32) -> ShardCommand {
    let mut operation = x.op_template();
    operation.template = x.t.clone();
    ShardCommand::UpgradeCluster {
        id: x.c,
        nodegroup: x.ng(ng).uuid,
        template: t.clone(),
        max_batch_size: batch,
        operation,
        at: Timestamp(6),
    }
}

#[test]
fn upgrade_rules() {
    let mut x = T::new();
    let mut newer = x.t.clone();
    newer.uuid = Some(TemplateId::new_v4());
    newer.labels.insert("kube_tag".into(), "v1.28.9".into());
    // Status gate: the create still runs.
    bad(x.cmd(upgrade_cmd(&x, &newer, "default-worker", 1)));
    x.finish_create();
    x.ng_created("ng1", ClusterStatus::CREATE_COMPLETE, None);
    let mut untagged = newer.clone();
    untagged.labels.remove("kube_tag");
    assert!(conflict(x.cmd(upgrade_cmd(&x, &untagged, "default-worker", 1))).contains("kube_tag"));
    let mut older = newer.clone();
    older.labels.insert("kube_tag".into(), "v1.26.0".into());
    assert!(bad(x.cmd(upgrade_cmd(&x, &older, "default-worker", 1))).contains("v1.26.0"));
    assert!(conflict(x.cmd(upgrade_cmd(&x, &newer, "ng1", 1))).contains("non-default"));
    let mut other_driver = newer.clone();
    other_driver.coe = Some("swarm".into());
    bad(x.cmd(upgrade_cmd(&x, &other_driver, "default-worker", 1)));
    bad(x.cmd(upgrade_cmd(&x, &newer, "default-worker", 0)));
    assert!(x.s.operation(x.c).is_none());
}

#[test]
fn upgrade_of_the_default_nodegroup_moves_the_cluster_to_the_template() {
    let mut x = T::new();
    x.finish_create();
    let mut newer = x.t.clone();
    newer.uuid = Some(TemplateId::new_v4());
    newer.labels.insert("kube_tag".into(), "v1.28.9".into());
    x.cmd(upgrade_cmd(&x, &newer, "default-worker", 2)).unwrap();
    let op = x.op();
    assert_eq!(op.kind, OpKind::Upgrade);
    assert_eq!(op.upgrade.as_ref().map(|u| u.max_batch_size), Some(2));
    assert_eq!(x.view().cluster.status, ClusterStatus::UPDATE_IN_PROGRESS);
    assert_eq!(
        x.ng("default-master").status,
        Some(ClusterStatus::UPDATE_IN_PROGRESS)
    );
    x.adv(op.id, OpEvent::StackUpdateIntent).unwrap();
    x.adv(
        op.id,
        OpEvent::StackUpdateRequested {
            stack_id: "cs".into(),
        },
    )
    .unwrap();
    x.adv(
        op.id,
        OpEvent::UpdateFinished {
            status: ClusterStatus::UPDATE_COMPLETE,
            reason: None,
            outputs: StackOutputs::default(),
        },
    )
    .unwrap();
    let v = x.view();
    assert_eq!(v.cluster.status, ClusterStatus::UPDATE_COMPLETE);
    assert_eq!(Some(v.cluster.cluster_template_id), newer.uuid);
    assert_eq!(v.cluster.labels["kube_tag"], "v1.28.9");
    assert_eq!(v.cluster.coe_version.as_deref(), Some("v1.28.9"));
    assert_eq!(x.ng("default-worker").labels["kube_tag"], "v1.28.9");
}

#[test]
fn a_failed_upgrade_keeps_the_template() {
    let mut x = T::new();
    x.finish_create();
    let old = x.view().cluster.cluster_template_id;
    let mut newer = x.t.clone();
    newer.uuid = Some(TemplateId::new_v4());
    newer.labels.insert("kube_tag".into(), "v1.28.9".into());
    x.cmd(upgrade_cmd(&x, &newer, "default-worker", 1)).unwrap();
    let op = x.op().id;
    x.adv(op, OpEvent::Failed { reason: "x".into() }).unwrap();
    let v = x.view();
    assert_eq!(v.cluster.status, ClusterStatus::UPDATE_FAILED);
    assert_eq!(v.cluster.cluster_template_id, old);
    assert_eq!(v.cluster.labels["kube_tag"], "v1.27.3");
}
