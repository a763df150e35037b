//! One-time repairs that a cluster version brings, applied through the log once that version is
//! active (the shard leader proposes them: `leader/migrate.rs`). Each records itself in the rows
//! (`Key::Migration`), so a new leader does not propose it again and a repeat changes nothing.
use crate::shard::ShardState;
use magnum_proto::*;
use std::collections::BTreeMap;

/// Version 2: restore the stack ids releases before it lost (`ShardCommand::RestoreStackIds`).
pub const STACK_IDS_RESTORED: &str = "stack_ids_restored";

impl ShardState {
    /// `answers`: every remembered answer, read from the stored rows.
    pub(super) fn restore_stack_ids(
        &mut self,
        stacks: &BTreeMap<ClusterId, String>,
        answers: BTreeMap<RequestId, (u64, ShardResponse)>,
    ) -> CommandOk {
        if self.rows.migrated(STACK_IDS_RESTORED) {
            return CommandOk::Done;
        }
        for (id, stack) in stacks {
            // Every replica writes the rows again, so one that lost the id gets it back.
            if let Some(c) = self.rows.cluster_mut(*id) {
                c.stack_id = Some(stack.clone());
            }
            if let Some(ngs) = self.rows.nodegroups_mut(*id) {
                for n in ngs.iter_mut().filter(|n| n.is_default) {
                    n.stack_id = Some(stack.clone());
                }
            }
        }
        // An answer embeds the cluster as the replica that applied it held it; a replica that
        // had lost the id answered without it. Every answer now shows the rows' id.
        let now: BTreeMap<ClusterId, Option<String>> = self
            .rows
            .clusters()
            .iter()
            .map(|(id, c)| (*id, c.stack_id.clone()))
            .collect();
        for (id, (index, mut resp)) in answers {
            if let Ok(CommandOk::Cluster(view)) = &mut resp {
                let stack = now.get(&view.cluster.uuid).cloned().flatten();
                view.cluster.stack_id = stack.clone();
                for n in view.nodegroups.iter_mut().filter(|n| n.is_default) {
                    n.stack_id = stack.clone();
                }
            }
            self.rows.remember_request(id, index, resp);
        }
        self.rows.mark_migrated(STACK_IDS_RESTORED);
        CommandOk::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::persist;
    use magnum_proto::fixtures::{self, certs};

    /// A replica: its state and the rows it wrote.
    #[derive(Clone)]
    struct Replica {
        s: ShardState,
        disk: BTreeMap<Vec<u8>, Vec<u8>>,
        i: u64,
    }

    impl Replica {
        fn apply(&mut self, id: RequestId, command: ShardCommand) -> ShardResponse {
            self.i += 1;
            let req = ShardRequest {
                request_id: Some(id),
                command,
            };
            let resp = self.s.apply_request(self.i, &req, &self.disk).unwrap();
            crate::shard::rows_tests::write_dirty(&mut self.s, &mut self.disk);
            resp
        }

        fn cmd(&mut self, command: ShardCommand) -> ShardResponse {
            self.apply(RequestId::new_v4(), command)
        }
    }

    /// The keys whose rows differ between two replicas.
    fn differing(a: &Replica, b: &Replica) -> Vec<String> {
        let keys: std::collections::BTreeSet<&Vec<u8>> =
            a.disk.keys().chain(b.disk.keys()).collect();
        keys.into_iter()
            .filter(|k| a.disk.get(*k) != b.disk.get(*k))
            .map(|k| k.escape_ascii().to_string())
            .collect()
    }

    /// Two replicas, one of which lost a cluster's stack id (as a release before version 2 did
    /// on a restart mid-create) and then answered a resize without it, hold the same rows after
    /// the repair; the repair is done once.
    #[test]
    fn replicas_converge_on_the_restored_ids() {
        let t = fixtures::template(&ProjectId::from("p1"));
        let (c, ngs, op) = fixtures::cluster_rows(&t, "k8s", 1, 1);
        let id = c.uuid;
        let mut good = Replica {
            s: ShardState::new(ShardId(0), 1),
            disk: BTreeMap::new(),
            i: 0,
        };
        let template = ShardCommand::CreateTemplate {
            template: t.clone(),
            max_per_project: None,
        };
        good.cmd(template).unwrap();
        let create = ShardCommand::CreateCluster {
            cluster: c,
            nodegroups: ngs,
            operation: op.clone(),
        };
        good.cmd(create).unwrap();
        let own = ShardCommand::TakeOwnership {
            node: NodeId(1),
            epoch: 1,
        };
        good.cmd(own).unwrap();
        let op_id = good.s.operation(id).unwrap().id;
        for event in [
            OpEvent::CertsGenerated { certs: certs() },
            OpEvent::TrusteeCreated { trustee: None },
            OpEvent::StackCreateIntent,
            OpEvent::StackCreated {
                stack_id: "sid-1".into(),
            },
            OpEvent::CreateFinished {
                status: ClusterStatus::CREATE_COMPLETE,
                reason: None,
                outputs: StackOutputs::default(),
            },
        ] {
            let adv = ShardCommand::Advance {
                epoch: 1,
                cluster: id,
                op: op_id,
                event,
                at: Timestamp(5),
            };
            good.cmd(adv).unwrap();
        }
        let mut lost = good.clone();
        lost.s.rows.cluster_mut(id).unwrap().stack_id = None;
        for n in lost.s.rows.nodegroups_mut(id).unwrap() {
            n.stack_id = None;
        }
        lost.s.take_dirty();
        let resize = ShardCommand::UpdateCluster {
            id,
            node_count: 2,
            rollback: false,
            operation: op,
            at: Timestamp(6),
        };
        let rid = RequestId::new_v4();
        assert!(good.apply(rid, resize.clone()).is_ok());
        assert!(lost.apply(rid, resize).is_ok());
        assert!(!differing(&good, &lost).is_empty());
        // Notifications carry the cluster as it was; the leader delivers and drops them.
        let ids: Vec<String> = good.s.rows().outbox().keys().cloned().collect();
        let delivered = ShardCommand::NotificationsDelivered { epoch: 1, ids };
        let rid = RequestId::new_v4();
        for r in [&mut good, &mut lost] {
            r.apply(rid, delivered.clone()).unwrap();
        }

        let restore = ShardCommand::RestoreStackIds {
            epoch: 1,
            stacks: BTreeMap::from([(id, "sid-1".to_string())]),
        };
        let rid = RequestId::new_v4();
        for r in [&mut good, &mut lost] {
            assert_eq!(r.apply(rid, restore.clone()), Ok(CommandOk::Done));
        }
        assert_eq!(differing(&good, &lost), Vec::<String>::new());
        assert!(good.s == lost.s);
        assert!(good.s.rows().migrated(STACK_IDS_RESTORED));
        let mut loaded = ShardState::new(ShardId(0), 1);
        persist::load(&mut loaded, &mut good.disk.clone().into_iter()).unwrap();
        assert_eq!(loaded, good.s, "the marker survives a restart");

        // Done once: a repeat with another id changes nothing.
        let again = ShardCommand::RestoreStackIds {
            epoch: 1,
            stacks: BTreeMap::from([(id, "other".to_string())]),
        };
        let before = good.s.rows().clone();
        assert_eq!(good.cmd(again), Ok(CommandOk::Done));
        assert_eq!(good.s.rows().cluster(id), before.cluster(id));
    }
}
