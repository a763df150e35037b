//! Nodegroup operations, aggregation and upgrade in the shard state machine.
use crate::shard::persist;
use crate::shard::ShardState;
use magnum_proto::*;

pub(crate) const EPOCH: u64 = 1;

/// A shard with one cluster; shared with the status sync's tests (`sync_tests.rs`).
pub(crate) struct T {
    pub(crate) s: ShardState,
    i: u64,
    pub(crate) t: ClusterTemplate,
    pub(crate) c: ClusterId,
}

fn req(command: ShardCommand) -> ShardRequest {
    ShardRequest {
        request_id: Some(RequestId::new_v4()),
        command,
    }
}

impl T {
    /// A cluster whose create finished with an API address.
    pub(crate) fn new() -> Self {
        let mut t = fixtures::template(&ProjectId::from("p1"));
        t.labels.insert("kube_tag".into(), "v1.27.3".into());
        let mut x = T {
            s: ShardState::new(ShardId(0), 1),
            i: 0,
            t: t.clone(),
            c: ClusterId::new_v4(),
        };
        x.cmd(ShardCommand::CreateTemplate {
            template: t.clone(),
            max_per_project: None,
        })
        .unwrap();
        let (mut c, ngs, op) = fixtures::cluster_rows(&t, "k8s", 1, 2);
        c.labels = t.labels.clone();
        x.c = c.uuid;
        let oid = op.id;
        x.cmd(ShardCommand::CreateCluster {
            cluster: c,
            nodegroups: ngs,
            operation: op,
        })
        .unwrap();
        x.cmd(ShardCommand::TakeOwnership {
            node: NodeId(1),
            epoch: EPOCH,
        })
        .unwrap();
        let certs = ClusterCerts {
            ca_cert: "c".into(),
            ca_key: "k".into(),
            client_cert: "cc".into(),
            client_key: "ck".into(),
            etcd_ca_cert: None,
            etcd_ca_key: None,
            front_proxy_ca_cert: None,
            front_proxy_ca_key: None,
            service_account_key: None,
            service_account_private_key: None,
        };
        x.adv(oid, OpEvent::CertsGenerated { certs }).unwrap();
        x.adv(
            oid,
            OpEvent::StackCreated {
                stack_id: "cs".into(),
            },
        )
        .unwrap();
        x
    }

    pub(crate) fn finish_create(&mut self) {
        let op = self.op().id;
        let outputs = StackOutputs {
            api_address: Some("https://10.0.0.1:6443".into()),
            ..StackOutputs::default()
        };
        self.adv(
            op,
            OpEvent::CreateFinished {
                status: ClusterStatus::CREATE_COMPLETE,
                reason: None,
                outputs,
            },
        )
        .unwrap();
    }

    pub(crate) fn cmd(&mut self, c: ShardCommand) -> ShardResponse {
        self.i += 1;
        self.s.apply(self.i, &req(c))
    }

    fn adv_at(&mut self, epoch: u64, op: OpId, event: OpEvent) -> ShardResponse {
        let c = self.c;
        self.cmd(ShardCommand::Advance {
            epoch,
            cluster: c,
            op,
            event,
            at: Timestamp(5),
        })
    }

    pub(crate) fn adv(&mut self, op: OpId, event: OpEvent) -> ShardResponse {
        self.adv_at(EPOCH, op, event)
    }

    pub(crate) fn op(&self) -> Operation {
        self.s.operation(self.c).cloned().expect("an operation")
    }

    pub(crate) fn view(&self) -> ClusterView {
        self.s.view(self.c).expect("the cluster")
    }

    pub(crate) fn ng(&self, name: &str) -> NodeGroup {
        self.view()
            .nodegroups
            .into_iter()
            .find(|n| n.name == name)
            .expect("the nodegroup")
    }

    pub(crate) fn new_ng(&self, name: &str, count: u32, min: u32, max: Option<u32>) -> NodeGroup {
        let mut n = self.ng("default-worker");
        n.uuid = NodeGroupId::new_v4();
        n.name = name.into();
        n.node_count = count;
        n.min_node_count = min;
        n.max_node_count = max;
        n.node_labels = Labels::from([("zone".to_string(), "a".to_string())]);
        n.node_taints = vec![Taint {
            key: "gpu".into(),
            value: None,
            effect: "NoSchedule".into(),
        }];
        n
    }

    pub(crate) fn op_template(&self) -> OperationRequest {
        let mut op = fixtures::cluster_rows(&self.t, "x", 1, 1).2;
        op.id = OpId::new_v4();
        op
    }

    pub(crate) fn create_ng(&mut self, n: NodeGroup) -> ShardResponse {
        let operation = self.op_template();
        self.cmd(ShardCommand::CreateNodeGroup {
            nodegroup: n,
            operation,
            at: Timestamp(3),
        })
    }

    /// Creates `name` and drives its operation to `status`.
    pub(crate) fn ng_created(&mut self, name: &str, status: ClusterStatus, reason: Option<&str>) {
        let n = self.new_ng(name, 1, 0, None);
        self.create_ng(n).unwrap();
        let op = self.op().id;
        self.adv(op, OpEvent::StackCreateIntent).unwrap();
        self.adv(
            op,
            OpEvent::NodeGroupStackCreated {
                stack_id: format!("{name}-stack"),
            },
        )
        .unwrap();
        self.adv(
            op,
            OpEvent::NodeGroupCreateFinished {
                status,
                reason: reason.map(str::to_string),
                node_addresses: vec!["10.0.0.9".into()],
            },
        )
        .unwrap();
    }
}

pub(crate) fn conflict(r: ShardResponse) -> String {
    match r {
        Err(CommandError::Conflict(m)) => m,
        other => panic!("expected 409, got {other:?}"),
    }
}

pub(crate) fn bad(r: ShardResponse) -> String {
    match r {
        Err(CommandError::BadRequest(m)) => m,
        other => panic!("expected 400, got {other:?}"),
    }
}

#[test]
fn nodegroup_create_rules() {
    let mut x = T::new();
    let n = x.new_ng("ng1", 2, 0, None);
    assert!(conflict(x.create_ng(n.clone())).contains("API address"));
    x.finish_create();
    let mut master = n.clone();
    master.role = "master".into();
    bad(x.create_ng(master));
    let dup = x.new_ng("default-worker", 1, 0, None);
    assert!(conflict(x.create_ng(dup)).contains("already exists in the cluster"));
    assert!(conflict(x.create_ng(x.new_ng("b", 1, 2, None))).contains("min_node_count (2)"));
    assert!(conflict(x.create_ng(x.new_ng("b", 6, 0, Some(5)))).contains("max_node_count (5)"));
    assert!(conflict(x.create_ng(x.new_ng("b", 1, 3, Some(2)))).contains("min_node_count (3)"));
    // Nothing was written by the rejected commands.
    assert_eq!(x.view().nodegroups.len(), 2);
    assert!(x.s.operation(x.c).is_none());

    let Ok(CommandOk::Cluster(v)) = x.create_ng(n.clone()) else {
        panic!("create failed")
    };
    let row = v.nodegroups.iter().find(|r| r.name == "ng1").unwrap();
    assert_eq!(row.status, Some(ClusterStatus::CREATE_IN_PROGRESS));
    assert!(!row.is_default && row.id != 0);
    assert_eq!(row.node_taints.len(), 1);
    assert_eq!(v.cluster.status, ClusterStatus::UPDATE_IN_PROGRESS);
    let op = x.op();
    assert_eq!(op.kind, OpKind::NodeGroupCreate);
    assert_eq!(op.nodegroup, Some(n.uuid));
    assert_eq!(op.step, Step::CreateNodeGroupStack { attempt: 0 });
    // One operation per cluster.
    assert!(conflict(x.create_ng(x.new_ng("ng2", 1, 0, None))).contains("in progress"));
}

#[test]
fn nodegroup_create_completes_and_the_cluster_aggregates() {
    let mut x = T::new();
    x.finish_create();
    x.ng_created("ng1", ClusterStatus::CREATE_COMPLETE, None);
    let ng = x.ng("ng1");
    assert_eq!(ng.stack_id.as_deref(), Some("ng1-stack"));
    assert_eq!(ng.node_addresses, vec!["10.0.0.9".to_string()]);
    assert_eq!(x.view().cluster.status, ClusterStatus::UPDATE_COMPLETE);
    assert!(x.s.operation(x.c).is_none());

    x.ng_created("ng2", ClusterStatus::CREATE_FAILED, Some("quota"));
    let v = x.view();
    assert_eq!(v.cluster.status, ClusterStatus::UPDATE_FAILED);
    assert_eq!(v.cluster.status_reason.as_deref(), Some("ng2 failed"));
    assert_eq!(x.ng("ng2").status_reason.as_deref(), Some("quota"));
}

#[test]
fn nodegroup_events_need_the_current_epoch_and_step() {
    let mut x = T::new();
    x.finish_create();
    x.create_ng(x.new_ng("ng1", 1, 0, None)).unwrap();
    let op = x.op().id;
    let stale = x.adv_at(
        EPOCH + 1,
        op,
        OpEvent::NodeGroupStackCreated {
            stack_id: "s".into(),
        },
    );
    assert!(matches!(stale, Err(CommandError::StaleEpoch { .. })));
    // A finish before the stack was recorded is a late duplicate: ignored.
    x.adv(
        op,
        OpEvent::NodeGroupCreateFinished {
            status: ClusterStatus::CREATE_COMPLETE,
            reason: None,
            node_addresses: vec![],
        },
    )
    .unwrap();
    assert_eq!(x.op().step, Step::CreateNodeGroupStack { attempt: 0 });
    x.cmd(ShardCommand::TakeOwnership {
        node: NodeId(2),
        epoch: EPOCH + 1,
    })
    .unwrap();
    let old = x.adv(op, OpEvent::StackCreateIntent);
    assert!(matches!(old, Err(CommandError::StaleEpoch { .. })));
}

#[test]
fn nodegroup_update_gate_and_bounds() {
    let mut x = T::new();
    x.finish_create();
    x.ng_created("ng1", ClusterStatus::CREATE_COMPLETE, None);
    let (c, ng) = (x.c, x.ng("ng1").uuid);
    let upd = |min, max| ShardCommand::UpdateNodeGroup {
        cluster: c,
        nodegroup: ng,
        min_node_count: min,
        max_node_count: max,
        at: Timestamp(9),
    };
    assert!(conflict(x.cmd(upd(2, None))).contains("min_node_count (2)"));
    assert!(conflict(x.cmd(upd(0, Some(0)))).contains("max_node_count (0)"));
    x.cmd(upd(1, Some(4))).unwrap();
    let n = x.ng("ng1");
    assert_eq!((n.min_node_count, n.max_node_count), (1, Some(4)));
    assert_eq!(x.view().cluster.status, ClusterStatus::UPDATE_COMPLETE);
    x.ng_created("ng2", ClusterStatus::CREATE_FAILED, None);
    let ng2 = x.ng("ng2").uuid;
    let r = x.cmd(ShardCommand::UpdateNodeGroup {
        cluster: c,
        nodegroup: ng2,
        min_node_count: 0,
        max_node_count: None,
        at: Timestamp(9),
    });
    assert!(bad(r).contains("CREATE_FAILED"));
}

#[test]
fn nodegroup_delete_removes_the_row_when_the_stack_is_gone() {
    let mut x = T::new();
    x.finish_create();
    x.ng_created("ng1", ClusterStatus::CREATE_COMPLETE, None);
    let c = x.c;
    let del = |ng| ShardCommand::DeleteNodeGroup {
        cluster: c,
        nodegroup: ng,
        operation: fixtures::cluster_rows(&fixtures::template(&ProjectId::from("p1")), "x", 1, 1).2,
        at: Timestamp(7),
    };
    let default = x.ng("default-worker").uuid;
    bad(x.cmd(del(default)));
    let ng = x.ng("ng1").uuid;
    x.cmd(del(ng)).unwrap();
    assert_eq!(x.ng("ng1").status, Some(ClusterStatus::DELETE_IN_PROGRESS));
    assert_eq!(x.view().cluster.status, ClusterStatus::UPDATE_IN_PROGRESS);
    let op = x.op();
    assert_eq!(op.kind, OpKind::NodeGroupDelete);
    x.adv(op.id, OpEvent::StackDeleteIntent).unwrap();
    x.adv(
        op.id,
        OpEvent::NodeGroupStackDeleteRequested {
            nodegroup: ng,
            stack_id: "ng1-stack".into(),
        },
    )
    .unwrap();
    assert!(matches!(x.op().step, Step::WaitNodeGroupDelete { .. }));
    x.adv(op.id, OpEvent::NodeGroupDeleted { nodegroup: ng })
        .unwrap();
    assert_eq!(x.view().nodegroups.len(), 2);
    assert!(x.s.operation(c).is_none());
    // Default nodegroups only again, after an update: UPDATE_COMPLETE, not CREATE_COMPLETE.
    assert_eq!(x.view().cluster.status, ClusterStatus::UPDATE_COMPLETE);
}

#[test]
fn cluster_delete_takes_the_nodegroups_first() {
    let mut x = T::new();
    x.finish_create();
    x.ng_created("ng1", ClusterStatus::CREATE_COMPLETE, None);
    let c = x.c;
    x.cmd(ShardCommand::DeleteCluster {
        id: c,
        op: OpId::new_v4(),
        at: Timestamp(8),
        deadline: Timestamp(100),
    })
    .unwrap();
    let v = x.view();
    assert!(v
        .nodegroups
        .iter()
        .all(|n| n.status == Some(ClusterStatus::DELETE_IN_PROGRESS)));
    let op = x.op().id;
    let ng = x.ng("ng1").uuid;
    x.adv(op, OpEvent::NodeGroupDeleted { nodegroup: ng })
        .unwrap();
    assert_eq!(x.view().nodegroups.len(), 2);
    assert_eq!(x.view().cluster.status, ClusterStatus::DELETE_IN_PROGRESS);
    x.adv(op, OpEvent::DeleteFinished).unwrap();
    assert!(x.s.view(c).is_some(), "the trustee goes before the row");
    x.adv(op, OpEvent::TrusteeDeleted).unwrap();
    assert!(x.s.view(c).is_none());
}

#[test]
fn a_failed_cluster_delete_fails_every_nodegroup() {
    let mut x = T::new();
    x.finish_create();
    x.ng_created("ng1", ClusterStatus::CREATE_COMPLETE, None);
    let c = x.c;
    x.cmd(ShardCommand::DeleteCluster {
        id: c,
        op: OpId::new_v4(),
        at: Timestamp(8),
        deadline: Timestamp(100),
    })
    .unwrap();
    let op = x.op().id;
    x.adv(
        op,
        OpEvent::Failed {
            reason: "ng1: boom".into(),
        },
    )
    .unwrap();
    let v = x.view();
    assert_eq!(v.cluster.status, ClusterStatus::DELETE_FAILED);
    assert!(v
        .nodegroups
        .iter()
        .all(|n| n.status == Some(ClusterStatus::DELETE_FAILED)));
}

#[test]
fn nodegroup_rows_and_operations_reload() {
    let mut x = T::new();
    x.finish_create();
    x.create_ng(x.new_ng("ng1", 1, 0, None)).unwrap();
    let loaded = persist::reload(&mut x.s);
    assert_eq!(loaded.view(x.c), x.s.view(x.c));
    assert_eq!(loaded.operation(x.c), x.s.operation(x.c));
}

#[test]
fn rows_written_before_nodegroup_fields_still_load() {
    // An operation and a nodegroup as the previous release serialised them.
    let (c, ngs, req) =
        fixtures::cluster_rows(&fixtures::template(&ProjectId::from("p")), "c", 1, 1);
    let op = Operation::new(OpKind::Create, c.uuid, &req, String::new());
    let mut ngv = serde_json::to_value(&ngs[0]).unwrap();
    ngv.as_object_mut().unwrap().remove("node_labels");
    ngv.as_object_mut().unwrap().remove("node_taints");
    let back: NodeGroup = serde_json::from_value(ngv).unwrap();
    assert!(back.node_labels.is_empty() && back.node_taints.is_empty());
    let mut opv = serde_json::to_value(&op).unwrap();
    opv.as_object_mut().unwrap().remove("nodegroup");
    opv.as_object_mut().unwrap().remove("upgrade");
    let back: Operation = serde_json::from_value(opv).unwrap();
    assert_eq!(back.nodegroup, None);
}
