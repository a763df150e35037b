//! The operation step machine: how a reconciler's events move a cluster's active operation,
//! and how a finished operation settles its nodegroups and the cluster (reference §7.5).
use crate::shard::notify::Outcome;
use crate::shard::ShardState;
use magnum_proto::*;

impl ShardState {
    /// Move the cluster's active operation forward. Events that don't fit the current step are
    /// ignored: they are late duplicates, and the reconciler re-reads the state after each one.
    pub(super) fn advance(&mut self, id: ClusterId, event: &OpEvent, at: Timestamp) {
        if self.advance_nodegroup(id, event, at) {
            return;
        }
        // A copy, written back below when the event fits: the arms also change other rows.
        let Some(mut op) = self.rows.operation(id).cloned() else {
            return;
        };
        let target = op.nodegroup;
        let kind = op.kind;
        let previous = self.rows.cluster(id).map(|c| c.status);
        let mut upgraded: Option<UpgradeSpec> = None;
        let mut finished: Option<(ClusterStatus, Option<String>)> = None;
        let mut outputs: Option<&StackOutputs> = None;
        let mut remove_cluster = false;
        let mut restore: Option<u32> = None;
        match (event, &mut op.step) {
            (OpEvent::CertsGenerated { certs }, Step::GenerateCerts) => {
                self.rows.put_certs(id, certs.clone());
                op.step = match op.trustor {
                    Some(_) => Step::CreateTrustee,
                    None => Step::CreateStack {
                        stack_name: op.stack_name.clone(),
                        attempt: 0,
                    },
                };
            }
            (OpEvent::TrusteeCreated { trustee }, Step::CreateTrustee) => {
                if let Some(t) = trustee {
                    self.rows.put_trustee(id, t.clone());
                }
                // The token did its one job; it leaves the log's live state with it.
                op.trustor = None;
                op.step = Step::CreateStack {
                    stack_name: op.stack_name.clone(),
                    attempt: 0,
                };
            }
            (OpEvent::TrusteePasswordRotated { password }, Step::RotateTrusteePassword) => {
                if let Some(t) = self.rows.trustee_mut(id) {
                    t.password = password.clone();
                }
                op.step = Step::UpdateStack { attempt: 0 };
            }
            (OpEvent::CertsRotated { certs }, Step::RotateCerts) => {
                self.rows.put_certs(id, certs.clone());
                op.step = Step::UpdateStack { attempt: 0 };
            }
            (OpEvent::StackCreateIntent, Step::CreateStack { attempt, .. }) => *attempt += 1,
            (OpEvent::StackCreated { stack_id }, Step::CreateStack { .. }) => {
                op.step = Step::WaitCreate {
                    stack_id: stack_id.clone(),
                };
                op.retries = 0;
                op.last_error = None;
                if let Some(c) = self.rows.cluster_mut(id) {
                    c.stack_id = Some(stack_id.clone());
                }
                if let Some(ngs) = self.rows.nodegroups_mut(id) {
                    for n in ngs.iter_mut().filter(|n| n.is_default) {
                        n.stack_id = Some(stack_id.clone());
                    }
                }
            }
            (
                OpEvent::CreateFinished {
                    status,
                    reason,
                    outputs: o,
                },
                Step::WaitCreate { .. },
            ) => {
                finished = Some((*status, reason.clone()));
                outputs = Some(o);
            }
            (OpEvent::StackUpdateIntent, Step::UpdateStack { attempt }) => *attempt += 1,
            (OpEvent::StackUpdateRequested { stack_id }, Step::UpdateStack { .. }) => {
                op.step = Step::WaitUpdate {
                    stack_id: stack_id.clone(),
                };
                op.retries = 0;
                op.last_error = None;
            }
            (
                OpEvent::UpdateFinished {
                    status,
                    reason,
                    outputs: o,
                },
                Step::WaitUpdate { .. },
            ) => {
                finished = Some((*status, reason.clone()));
                outputs = Some(o);
                if op.kind == OpKind::Upgrade && !status.is_failed() {
                    upgraded = op.upgrade.clone();
                }
            }
            (OpEvent::StackDeleteIntent, Step::DeleteStack { attempt }) => *attempt += 1,
            (OpEvent::StackDeleteRequested { stack_id }, Step::DeleteStack { .. }) => {
                op.step = Step::WaitDelete {
                    stack_id: stack_id.clone(),
                };
                op.retries = 0;
                op.last_error = None;
            }
            // The trustee goes after the stack: the nodes use it until they are gone. Looked up by
            // name, not by record, so one made by a create the delete superseded goes too.
            (OpEvent::DeleteFinished, Step::DeleteStack { .. } | Step::WaitDelete { .. }) => {
                op.step = Step::DeleteTrustee;
                op.retries = 0;
                op.last_error = None;
            }
            (OpEvent::TrusteeDeleted, Step::DeleteTrustee) => remove_cluster = true,
            (OpEvent::Failed { reason }, _) => {
                let status = op.kind.failed_status();
                restore = op.restore_node_count.filter(|_| op.kind == OpKind::Update);
                finished = Some((status, Some(reason.clone())));
            }
            (OpEvent::TransientError { error }, _) => {
                op.retries = op.retries.saturating_add(1);
                op.last_error = Some(error.clone());
            }
            _ => return,
        }
        self.rows.put_operation(op);
        if remove_cluster {
            self.notify(id, "delete", Outcome::Success, at);
            self.rows.remove_cluster(id);
            return;
        }
        if let Some(n) = restore {
            self.restore_node_count(id, target, n);
        }
        if let Some(up) = &upgraded {
            self.complete_upgrade(id, target, up);
        }
        if let Some((status, reason)) = finished {
            self.rows.remove_operation(id);
            let previous = previous.unwrap_or(status);
            self.finish(id, kind, target, (status, reason), outputs, previous, at);
            let outcome = if status.is_failed() {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            self.notify(id, kind.action(), outcome, at);
        }
    }

    /// A finished operation's status goes to the nodegroups it acted on (the default ones for
    /// cluster operations, all of them for a delete), then the cluster's status follows (§7.5).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish(
        &mut self,
        id: ClusterId,
        kind: OpKind,
        target: Option<NodeGroupId>,
        (status, reason): (ClusterStatus, Option<String>),
        out: Option<&StackOutputs>,
        previous: ClusterStatus,
        at: Timestamp,
    ) {
        // A nodegroup of its own stack, or the default ones (the cluster stack).
        let own = target.and_then(|t| {
            self.rows
                .nodegroups(id)
                .iter()
                .find(|n| n.uuid == t && !n.is_default)
                .map(|n| n.uuid)
        });
        if let (None, Some(o)) = (own, out) {
            if let Some(c) = self.rows.cluster_mut(id) {
                c.api_address = o.api_address.clone();
                if o.coe_version.is_some() {
                    c.coe_version = o.coe_version.clone();
                }
            }
        }
        if let Some(ngs) = self.rows.nodegroups_mut(id) {
            let targets = ngs.iter_mut().filter(|n| match own {
                Some(t) => n.uuid == t,
                None => n.is_default || kind == OpKind::Delete,
            });
            for n in targets {
                n.status = Some(status);
                n.status_reason = reason.clone();
                n.updated_at = Some(at);
                if let Some(o) = out {
                    n.node_addresses = if n.is_master() {
                        o.master_addresses.clone()
                    } else {
                        o.node_addresses.clone()
                    };
                }
            }
        }
        self.settle(id, previous, Some((status, reason)), at);
    }
}
