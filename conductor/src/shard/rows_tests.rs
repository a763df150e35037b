//! Every change a command makes reaches the rows `logic` writes: after each command of a long
//! life (create, nodegroups, update, rotation, upgrade, delete, the small rows), a replica
//! rebuilt from the written rows equals the one that applied it.
use crate::shard::persist;
use crate::shard::{Key, ShardState};
use magnum_proto::fixtures::{self, certs};
use magnum_proto::*;
use std::collections::BTreeMap;

/// A shard state and the rows it wrote, as the store holds them.
struct Replica {
    s: ShardState,
    disk: BTreeMap<Vec<u8>, Vec<u8>>,
    i: u64,
    t: ClusterTemplate,
}

impl Replica {
    /// A replica of shard 0 of 1 with nothing applied; `t` is the template its clusters use.
    fn new(t: ClusterTemplate) -> Self {
        Self {
            s: ShardState::new(ShardId(0), 1),
            disk: BTreeMap::new(),
            i: 0,
            t,
        }
    }

    fn cmd(&mut self, command: ShardCommand) -> ShardResponse {
        self.i += 1;
        let req = ShardRequest {
            request_id: Some(RequestId::new_v4()),
            command,
        };
        let resp = self.s.apply_request(self.i, &req, &self.disk).unwrap();
        write_dirty(&mut self.s, &mut self.disk);
        let mut loaded = ShardState::new(self.s.shard, self.s.shards);
        persist::load(&mut loaded, &mut self.disk.clone().into_iter()).unwrap();
        assert_eq!(loaded, self.s, "reloaded after command {}", self.i);
        resp
    }

    fn adv(&mut self, cluster: ClusterId, event: OpEvent) {
        let op = self.s.operation(cluster).expect("an operation").id;
        self.cmd(ShardCommand::Advance {
            epoch: 1,
            cluster,
            op,
            event,
            at: Timestamp(5),
        })
        .unwrap();
    }

    /// The request of a command that starts an operation.
    fn op(&self) -> OperationRequest {
        fixtures::cluster_rows(&self.t, "x", 1, 1).2
    }

    fn update_finished(&mut self, c: ClusterId, status: ClusterStatus) {
        self.adv(c, OpEvent::StackUpdateIntent);
        self.adv(
            c,
            OpEvent::StackUpdateRequested {
                stack_id: "cs".into(),
            },
        );
        self.adv(
            c,
            OpEvent::UpdateFinished {
                status,
                reason: None,
                outputs: StackOutputs::default(),
            },
        );
    }
}

/// What `logic` does after each command: the changed rows to the store.
pub(super) fn write_dirty(s: &mut ShardState, disk: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
    for (key, v) in persist::take_writes(s).unwrap() {
        match v {
            Some(v) => disk.insert(key, v),
            None => disk.remove(&key),
        };
    }
}

fn trustee() -> TrusteeRecord {
    TrusteeRecord {
        user_id: "tu".into(),
        username: "c_p1".into(),
        domain_id: "d".into(),
        password: "sealed:pw1".into(),
        trust_id: "tr".into(),
    }
}

/// A cluster delete up to its stack gone (the trustee's delete is the last step left).
fn stack_deleted(x: &mut Replica, id: ClusterId) {
    x.cmd(ShardCommand::DeleteCluster {
        id,
        op: OpId::new_v4(),
        at: Timestamp(15),
        deadline: Timestamp(99),
    })
    .unwrap();
    x.adv(id, OpEvent::StackDeleteIntent);
    x.adv(id, OpEvent::DeleteFinished);
}

/// Cluster create to CREATE_COMPLETE, then a nodegroup's create and delete.
fn created_with_a_nodegroup(x: &mut Replica) -> ClusterId {
    let (c, ngs, mut op) = fixtures::cluster_rows(&x.t, "k8s", 1, 2);
    let id = c.uuid;
    op.trustor = Some(Trustor {
        user_id: "u".into(),
        roles: vec!["member".into()],
        token: "sealed:token".into(),
    });
    x.cmd(ShardCommand::CreateCluster {
        cluster: c,
        nodegroups: ngs,
        operation: op,
    })
    .unwrap();
    x.cmd(ShardCommand::TakeOwnership {
        node: NodeId(1),
        epoch: 1,
    })
    .unwrap();
    x.adv(id, OpEvent::CertsGenerated { certs: certs() });
    x.adv(
        id,
        OpEvent::TrusteeCreated {
            trustee: Some(trustee()),
        },
    );
    x.adv(id, OpEvent::StackCreateIntent);
    x.adv(
        id,
        OpEvent::StackCreated {
            stack_id: "cs".into(),
        },
    );
    x.adv(
        id,
        OpEvent::CreateFinished {
            status: ClusterStatus::CREATE_COMPLETE,
            reason: None,
            outputs: StackOutputs {
                api_address: Some("https://10.0.0.1:6443".into()),
                node_addresses: vec!["10.0.0.5".into()],
                ..StackOutputs::default()
            },
        },
    );
    let mut ng = x.s.view(id).unwrap().nodegroups[1].clone();
    ng.uuid = NodeGroupId::new_v4();
    ng.name = "ng1".into();
    let operation = x.op();
    x.cmd(ShardCommand::CreateNodeGroup {
        nodegroup: ng.clone(),
        operation,
        at: Timestamp(6),
    })
    .unwrap();
    x.adv(id, OpEvent::StackCreateIntent);
    x.adv(
        id,
        OpEvent::NodeGroupStackCreated {
            stack_id: "ng-stack".into(),
        },
    );
    x.adv(
        id,
        OpEvent::NodeGroupCreateFinished {
            status: ClusterStatus::CREATE_COMPLETE,
            reason: None,
            node_addresses: vec!["10.0.0.9".into()],
        },
    );
    x.cmd(ShardCommand::UpdateNodeGroup {
        cluster: id,
        nodegroup: ng.uuid,
        min_node_count: 1,
        max_node_count: Some(3),
        at: Timestamp(7),
    })
    .unwrap();
    let operation = x.op();
    x.cmd(ShardCommand::DeleteNodeGroup {
        cluster: id,
        nodegroup: ng.uuid,
        operation,
        at: Timestamp(8),
    })
    .unwrap();
    x.adv(
        id,
        OpEvent::NodeGroupStackDeleteRequested {
            nodegroup: ng.uuid,
            stack_id: "ng-stack".into(),
        },
    );
    x.adv(id, OpEvent::NodeGroupDeleted { nodegroup: ng.uuid });
    id
}

/// A failed update, a resize, a credential rotation and an upgrade, each to its end.
fn changed(x: &mut Replica, id: ClusterId) {
    let operation = x.op();
    x.cmd(ShardCommand::UpdateCluster {
        id,
        node_count: 5,
        rollback: true,
        operation,
        at: Timestamp(9),
    })
    .unwrap();
    x.adv(id, OpEvent::StackUpdateIntent);
    x.adv(
        id,
        OpEvent::TransientError {
            error: "503".into(),
        },
    );
    x.adv(
        id,
        OpEvent::Failed {
            reason: "no".into(),
        },
    );
    let worker = x.s.view(id).unwrap().nodegroups[1].uuid;
    let operation = x.op();
    x.cmd(ShardCommand::ResizeCluster {
        id,
        nodegroup: worker,
        node_count: 3,
        nodes_to_remove: vec!["n1".into()],
        operation,
        at: Timestamp(10),
    })
    .unwrap();
    x.update_finished(id, ClusterStatus::UPDATE_COMPLETE);
    let operation = x.op();
    x.cmd(ShardCommand::RotateCredential {
        id,
        operation,
        at: Timestamp(11),
    })
    .unwrap();
    x.adv(
        id,
        OpEvent::TrusteePasswordRotated {
            password: "sealed:pw2".into(),
        },
    );
    x.update_finished(id, ClusterStatus::UPDATE_COMPLETE);
    let mut newer = x.t.clone();
    newer.uuid = Some(TemplateId::new_v4());
    newer.labels.insert("kube_tag".into(), "v1.28.9".into());
    x.cmd(ShardCommand::CreateTemplate {
        template: newer.clone(),
        max_per_project: None,
    })
    .unwrap();
    let operation = x.op();
    x.cmd(ShardCommand::UpgradeCluster {
        id,
        nodegroup: worker,
        template: newer,
        max_batch_size: 1,
        operation,
        at: Timestamp(12),
    })
    .unwrap();
    x.update_finished(id, ClusterStatus::UPDATE_COMPLETE);
    x.cmd(ShardCommand::SetHealth {
        id,
        health_status: Some("HEALTHY".into()),
        health_status_reason: None,
        at: Timestamp(13),
    })
    .unwrap();
    x.cmd(ShardCommand::SyncStatus {
        epoch: 1,
        cluster: id,
        status: ClusterStatus::UPDATE_COMPLETE,
        reason: None,
        outputs: Some(StackOutputs::default()),
        at: Timestamp(14),
    })
    .unwrap();
}

#[test]
fn every_change_reaches_the_written_rows() {
    let t = fixtures::template(&ProjectId::from("p1"));
    let mut x = Replica::new(t.clone());
    x.cmd(ShardCommand::CreateTemplate {
        template: t,
        max_per_project: None,
    })
    .unwrap();
    let id = created_with_a_nodegroup(&mut x);
    changed(&mut x, id);
    let ids: Vec<String> = x.s.outbox().take(2).map(|n| n.id.clone()).collect();
    x.cmd(ShardCommand::NotificationsDelivered { epoch: 1, ids })
        .unwrap();
    stack_deleted(&mut x, id);
    // The reaper's tombstone, written before the last step; a deposed leader's is refused.
    let tombstone = Tombstone {
        cluster: id,
        nodegroup: None,
        project_id: ProjectId::from("p1"),
        stacks: vec!["x-abc".into(), "x-ng1-def".into()],
        deleted_at: Timestamp(15),
    };
    // A nodegroup's of the same cluster is a row of its own.
    let ng = NodeGroupId::new_v4();
    let ng_tombstone = Tombstone {
        nodegroup: Some(ng),
        stacks: vec!["x-ng2-fed".into()],
        ..tombstone.clone()
    };
    x.cmd(ShardCommand::RememberDeletedStacks {
        epoch: 1,
        tombstone: ng_tombstone.clone(),
    })
    .unwrap();
    let stale = x.cmd(ShardCommand::RememberDeletedStacks {
        epoch: 0,
        tombstone: tombstone.clone(),
    });
    assert!(
        matches!(stale, Err(CommandError::StaleEpoch { .. })),
        "{stale:?}"
    );
    x.cmd(ShardCommand::RememberDeletedStacks {
        epoch: 1,
        tombstone: tombstone.clone(),
    })
    .unwrap();
    x.adv(id, OpEvent::TrusteeDeleted);
    assert!(x.s.view(id).is_none());
    assert_eq!(x.s.rows().tombstones().get(&(id, None)), Some(&tombstone));
    assert_eq!(
        x.s.rows().tombstones().get(&(id, Some(ng))),
        Some(&ng_tombstone)
    );
    // The cluster's goes, the nodegroup's stays until it is named.
    x.cmd(ShardCommand::ForgetDeletedStacks {
        epoch: 1,
        clusters: vec![id, ClusterId::new_v4()],
        nodegroups: Vec::new(),
    })
    .unwrap();
    let left: Vec<_> = x.s.rows().tombstones().keys().copied().collect();
    assert_eq!(left, vec![(id, Some(ng))]);
    x.cmd(ShardCommand::ForgetDeletedStacks {
        epoch: 1,
        clusters: Vec::new(),
        nodegroups: vec![(id, ng)],
    })
    .unwrap();
    assert!(x.s.rows().tombstones().is_empty());

    let project = ProjectId::from("p1");
    let quota = Quota {
        id: 0,
        project_id: project.clone(),
        resource: "Cluster".into(),
        hard_limit: 3,
        created_at: Timestamp(1),
        updated_at: None,
    };
    x.cmd(ShardCommand::CreateQuota { quota }).unwrap();
    x.cmd(ShardCommand::UpdateQuota {
        project_id: project.clone(),
        resource: "Cluster".into(),
        hard_limit: 4,
        at: Timestamp(16),
    })
    .unwrap();
    x.cmd(ShardCommand::DeleteQuota {
        project_id: project,
        resource: "Cluster".into(),
    })
    .unwrap();
    x.cmd(ShardCommand::Canary {
        key: "probe/a".into(),
        value: "1".into(),
    })
    .unwrap();
    // The epoch moves with a new owner.
    x.cmd(ShardCommand::TakeOwnership {
        node: NodeId(2),
        epoch: 2,
    })
    .unwrap();
    assert!(!x.disk.is_empty());
}

/// Certificates and remembered answers live on disk only: memory forgets them once written,
/// the readers and a repeated request read them there (also after a restart), and a missing
/// answer fails the apply rather than applying the request again.
#[test]
fn stored_rows_are_read_from_disk_and_leave_memory() {
    let t = fixtures::template(&ProjectId::from("p1"));
    let mut x = Replica::new(t.clone());
    let rid = RequestId::new_v4();
    let create = ShardRequest {
        request_id: Some(rid),
        command: ShardCommand::CreateTemplate {
            template: t,
            max_per_project: None,
        },
    };
    x.i += 1;
    let first = x.s.apply_request(x.i, &create, &x.disk).unwrap();
    assert!(first.is_ok());
    write_dirty(&mut x.s, &mut x.disk);
    assert_eq!(
        x.s.rows().unwritten_answer(rid),
        None,
        "written, then forgotten"
    );
    let id = created_with_a_nodegroup(&mut x);
    assert_eq!(x.s.rows().unwritten_certs(id), None);
    assert_eq!(persist::stored_certs(&x.disk, id).unwrap(), Some(certs()));

    // The repeat answers from disk, on this replica and on one restarted from the disk.
    let mut restarted = ShardState::new(ShardId(0), 1);
    persist::load(&mut restarted, &mut x.disk.clone().into_iter()).unwrap();
    for s in [&mut x.s, &mut restarted] {
        assert_eq!(s.apply_request(100, &create, &x.disk), Ok(first.clone()));
        assert!(s.take_dirty().is_empty(), "a repeat changes nothing");
    }
    let mut lost = x.disk.clone();
    lost.remove(&persist::encode_key(&Key::Request(rid)));
    let err = x.s.apply_request(101, &create, &lost).unwrap_err();
    assert!(err.contains("missing"), "{err}");

    // Deleting the cluster deletes its certificates' row.
    stack_deleted(&mut x, id);
    x.adv(id, OpEvent::TrusteeDeleted);
    assert!(x.s.rows().cluster(id).is_none());
    assert_eq!(persist::stored_certs(&x.disk, id).unwrap(), None);
}

/// The list index walks what sorting the clusters would give: after an upsert of a row (its
/// keys unchanged) and a removal, per project and for all, both ways, from every marker.
#[test]
fn listed_is_the_sorted_cut_after_upsert_and_removal() {
    let t = fixtures::template(&ProjectId::from("p0"));
    let mut rows = crate::shard::Rows::default();
    let mut ids = Vec::new();
    for i in 0..9i64 {
        let (mut c, _, _) = fixtures::cluster_rows(&t, &format!("c{i}"), 1, 1);
        c.created_at = Timestamp(100 + i / 2); // pairs share a second
        c.project_id = ProjectId(format!("p{}", i % 3));
        ids.push(c.uuid);
        rows.insert_cluster(c);
    }
    let mut again = rows.cluster(ids[4]).unwrap().clone();
    again.status = ClusterStatus::CREATE_COMPLETE;
    rows.insert_cluster(again);
    rows.remove_cluster(ids[7]);
    for project in [None, Some("p1"), Some("p9")].map(|p| p.map(ProjectId::from)) {
        for (desc, after, rest) in list_cuts(&rows, project.as_ref()) {
            let got: Vec<_> = rows.listed(project.as_ref(), after, desc).collect();
            assert_eq!(got, rest, "{project:?} {desc} {after:?}");
        }
    }
    assert_eq!(rows.listed(None, None, false).count(), 8);
}

/// Every cut of `project`'s clusters (all when `None`) in list order, as sorting them gives it:
/// (desc, marker, the keys after the marker), for no marker and each key as the marker.
pub(super) fn list_cuts(
    rows: &crate::shard::Rows,
    project: Option<&ProjectId>,
) -> Vec<(
    bool,
    Option<crate::shard::rows::ListKey>,
    Vec<crate::shard::rows::ListKey>,
)> {
    let mut all: Vec<_> = rows
        .clusters()
        .values()
        .filter(|c| project.is_none_or(|p| &c.project_id == p))
        .map(|c| (c.created_at, c.uuid))
        .collect();
    all.sort();
    let mut cuts = Vec::new();
    for desc in [false, true] {
        let order: Vec<_> = match desc {
            false => all.clone(),
            true => all.iter().rev().copied().collect(),
        };
        cuts.push((desc, None, order.clone()));
        for (i, k) in order.iter().enumerate() {
            cuts.push((desc, Some(*k), order[i + 1..].to_vec()));
        }
    }
    cuts
}
