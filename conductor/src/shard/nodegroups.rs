//! Nodegroup create, update and delete (reference §4.3, §6.3), and how a finished operation
//! settles its nodegroups and the cluster's aggregated status (§7.5).
use crate::shard::aggregate::aggregate;
use crate::shard::messages;
use crate::shard::ShardState;
use magnum_proto::*;

/// Status gate of a nodegroup update: the nodegroup's own status (reference §6.2).
fn ng_updatable(s: Option<ClusterStatus>) -> bool {
    s.is_some_and(|s| {
        crate::shard::update::UPDATABLE.contains(&s)
            || matches!(
                s,
                ClusterStatus::UPDATE_IN_PROGRESS | ClusterStatus::UPDATE_FAILED
            )
    })
}

/// Upstream's `min ≤ node_count ≤ max`, `min ≤ max` checks (NodeGroupInvalidInput, 409).
pub(crate) fn check_bounds(
    name: &str,
    node_count: u32,
    min: u32,
    max: Option<u32>,
) -> Result<(), CommandError> {
    let bad = |attr: &str, expl: String| {
        Err(CommandError::Conflict(messages::nodegroup_invalid(
            attr, name, &expl,
        )))
    };
    if min > node_count {
        return bad(
            "node_count",
            format!(
                "node_count ({node_count}) should be greater or equal to min_node_count ({min})"
            ),
        );
    }
    if let Some(max) = max {
        if min > max {
            return bad(
                "max_node_count",
                format!("min_node_count ({min}) should be less or equal to max_node_count ({max})"),
            );
        }
        if node_count > max {
            return bad(
                "max_node_count",
                format!(
                    "node_count ({node_count}) should be less or equal to max_node_count ({max})"
                ),
            );
        }
    }
    Ok(())
}

impl ShardState {
    pub(crate) fn create_nodegroup(
        &mut self,
        index: u64,
        ng: &NodeGroup,
        req: &OperationRequest,
        at: Timestamp,
    ) -> ShardResponse {
        let id = ng.cluster_id;
        let Some(c) = self.rows.cluster(id) else {
            return Err(CommandError::NotFound(messages::cluster_not_found(
                &id.to_string(),
            )));
        };
        if c.api_address.is_none() {
            return Err(CommandError::Conflict(messages::api_address_unavailable()));
        }
        if ng.is_master() {
            return Err(CommandError::BadRequest(
                "Creating master nodegroups is currently not supported.".into(),
            ));
        }
        let ngs = self.rows.nodegroups(id);
        if ngs.iter().any(|n| n.name == ng.name) {
            return Err(CommandError::Conflict(messages::nodegroup_exists(
                &ng.name, id,
            )));
        }
        if ngs.iter().any(|n| n.uuid == ng.uuid) {
            return Err(CommandError::Conflict(format!(
                "A node group with UUID {} already exists.",
                ng.uuid
            )));
        }
        check_bounds(
            &ng.name,
            ng.node_count,
            ng.min_node_count,
            ng.max_node_count,
        )?;
        // One operation per cluster: a second stack action would race this one's.
        if let Some(o) = self.rows.operation(id) {
            return Err(CommandError::Conflict(messages::cluster_busy(
                id,
                o.kind.verb(),
            )));
        }
        let mut n = ng.clone();
        n.id = self.row_id(index, 0);
        n.is_default = false;
        n.project_id = c.project_id.clone();
        n.status = Some(ClusterStatus::CREATE_IN_PROGRESS);
        n.status_reason = None;
        n.stack_id = None;
        n.node_addresses = Vec::new();
        n.created_at = at;
        n.updated_at = None;
        let stack_name = magnum_drivers::nodegroup_stack_name(&c.name, &n.name, n.uuid.0);
        let mut op = Operation::new(OpKind::NodeGroupCreate, id, req, stack_name);
        op.nodegroup = Some(n.uuid);
        self.rows.push_nodegroup(id, n);
        self.rows.put_operation(op);
        self.rows
            .set_cluster_status(id, ClusterStatus::UPDATE_IN_PROGRESS, None, at);
        self.view(id)
            .map(|v| CommandOk::Cluster(Box::new(v)))
            .ok_or_else(|| CommandError::Internal("cluster vanished".into()))
    }

    pub(crate) fn update_nodegroup(
        &mut self,
        id: ClusterId,
        ng: NodeGroupId,
        min: u32,
        max: Option<u32>,
        at: Timestamp,
    ) -> ShardResponse {
        if self.rows.cluster(id).is_none() {
            return Err(CommandError::NotFound(messages::cluster_not_found(
                &id.to_string(),
            )));
        }
        let Some(n) = self.rows.nodegroup(id, ng) else {
            return Err(CommandError::NotFound(messages::nodegroup_not_found(
                &ng.to_string(),
            )));
        };
        if !ng_updatable(n.status) {
            return Err(CommandError::BadRequest(format!(
                "Updating a nodegroup when status is \"{}\" is not supported.",
                n.status.map_or("None", ClusterStatus::as_str)
            )));
        }
        check_bounds(&n.name, n.node_count, min, max)?;
        if let Some(n) = self.rows.nodegroup_mut(id, ng) {
            n.min_node_count = min;
            n.max_node_count = max;
            n.updated_at = Some(at);
        }
        // Upstream marks the cluster UPDATE_IN_PROGRESS and its poller settles it again at
        // once (no stack changes); without a running operation, settle it here.
        if self.rows.operation(id).is_none() {
            self.settle(id, ClusterStatus::UPDATE_IN_PROGRESS, None, at);
        }
        self.view(id)
            .map(|v| CommandOk::Cluster(Box::new(v)))
            .ok_or_else(|| CommandError::Internal("cluster vanished".into()))
    }

    pub(crate) fn delete_nodegroup(
        &mut self,
        id: ClusterId,
        ng: NodeGroupId,
        req: &OperationRequest,
        at: Timestamp,
    ) -> ShardResponse {
        let Some(c) = self.rows.cluster(id) else {
            return Err(CommandError::NotFound(messages::cluster_not_found(
                &id.to_string(),
            )));
        };
        let Some(n) = self.rows.nodegroup(id, ng) else {
            return Err(CommandError::NotFound(messages::nodegroup_not_found(
                &ng.to_string(),
            )));
        };
        if n.is_default {
            return Err(CommandError::BadRequest(
                "Deleting a default nodegroup is not supported.".into(),
            ));
        }
        match self.rows.operation(id) {
            None => {}
            // Deleting the nodegroup being created supersedes its create: the delete looks the
            // stack up by its deterministic name, so an in-flight create leaves no orphan.
            Some(o) if o.kind == OpKind::NodeGroupCreate && o.nodegroup == Some(ng) => {}
            Some(o) if o.kind == OpKind::NodeGroupDelete && o.nodegroup == Some(ng) => {
                return Ok(CommandOk::Done);
            }
            Some(o) => {
                return Err(CommandError::Conflict(messages::cluster_busy(
                    id,
                    o.kind.verb(),
                )))
            }
        }
        let stack_name = magnum_drivers::nodegroup_stack_name(&c.name, &n.name, n.uuid.0);
        let mut op = Operation::new(OpKind::NodeGroupDelete, id, req, stack_name);
        op.nodegroup = Some(ng);
        self.rows.put_operation(op);
        if let Some(n) = self.rows.nodegroup_mut(id, ng) {
            n.status = Some(ClusterStatus::DELETE_IN_PROGRESS);
            n.status_reason = None;
            n.updated_at = Some(at);
        }
        self.rows
            .set_cluster_status(id, ClusterStatus::UPDATE_IN_PROGRESS, None, at);
        Ok(CommandOk::Done)
    }

    /// Events of nodegroup operations (and of a cluster delete's nodegroup phase). Returns
    /// false when the event does not fit the operation's step (a late duplicate).
    pub(crate) fn advance_nodegroup(
        &mut self,
        id: ClusterId,
        event: &OpEvent,
        at: Timestamp,
    ) -> bool {
        // A copy, written back below unless the operation ends: the arms change other rows.
        let Some(mut op) = self.rows.operation(id).cloned() else {
            return false;
        };
        let target = op.nodegroup;
        let kind = op.kind;
        let mut ended = false;
        match (event, &mut op.step) {
            (OpEvent::StackCreateIntent, Step::CreateNodeGroupStack { attempt })
            | (OpEvent::StackDeleteIntent, Step::DeleteNodeGroupStack { attempt }) => {
                *attempt += 1;
            }
            (OpEvent::NodeGroupStackCreated { stack_id }, Step::CreateNodeGroupStack { .. }) => {
                op.step = Step::WaitNodeGroupCreate {
                    stack_id: stack_id.clone(),
                };
                op.retries = 0;
                op.last_error = None;
                self.with_nodegroup(id, target, |n| n.stack_id = Some(stack_id.clone()));
            }
            (
                OpEvent::NodeGroupCreateFinished {
                    status,
                    reason,
                    node_addresses,
                },
                Step::WaitNodeGroupCreate { .. },
            ) => {
                self.with_nodegroup(id, target, |n| {
                    n.status = Some(*status);
                    n.status_reason = reason.clone();
                    n.node_addresses = node_addresses.clone();
                    n.updated_at = Some(at);
                });
                ended = true;
            }
            (
                OpEvent::NodeGroupStackDeleteRequested {
                    nodegroup,
                    stack_id,
                },
                Step::DeleteNodeGroupStack { .. } | Step::DeleteStack { .. },
            ) => {
                if kind == OpKind::NodeGroupDelete {
                    op.step = Step::WaitNodeGroupDelete {
                        stack_id: stack_id.clone(),
                    };
                    op.retries = 0;
                    op.last_error = None;
                }
                self.with_nodegroup(id, Some(*nodegroup), |n| {
                    n.stack_id = Some(stack_id.clone())
                });
            }
            (
                OpEvent::NodeGroupDeleted { nodegroup },
                Step::DeleteNodeGroupStack { .. }
                | Step::WaitNodeGroupDelete { .. }
                | Step::DeleteStack { .. },
            ) => {
                if let Some(ngs) = self.rows.nodegroups_mut(id) {
                    ngs.retain(|n| n.is_default || n.uuid != *nodegroup);
                }
                ended = kind == OpKind::NodeGroupDelete && target == Some(*nodegroup);
            }
            _ => return false,
        }
        if ended {
            self.rows.remove_operation(id);
            self.settle_after_op(id, at);
        } else {
            self.rows.put_operation(op);
        }
        true
    }

    fn with_nodegroup(
        &mut self,
        id: ClusterId,
        ng: Option<NodeGroupId>,
        f: impl FnOnce(&mut NodeGroup),
    ) {
        if let Some(n) = ng.and_then(|ng| self.rows.nodegroup_mut(id, ng)) {
            f(n);
        }
    }

    /// A nodegroup operation ended: the cluster's status follows its nodegroups.
    fn settle_after_op(&mut self, id: ClusterId, at: Timestamp) {
        let previous = self
            .rows
            .cluster(id)
            .map_or(ClusterStatus::UPDATE_IN_PROGRESS, |c| c.status);
        self.settle(id, previous, None, at);
    }

    /// Sets the cluster's status from its nodegroups (§7.5). `direct` is the finished cluster
    /// operation's own status and reason, kept as-is when only default nodegroups exist.
    pub(crate) fn settle(
        &mut self,
        id: ClusterId,
        previous: ClusterStatus,
        direct: Option<(ClusterStatus, Option<String>)>,
        at: Timestamp,
    ) {
        let ngs = self.rows.nodegroups(id);
        let only_default = ngs.iter().all(|n| n.is_default);
        let (status, reason) = match direct {
            Some(d) if only_default => d,
            _ => aggregate(ngs, previous),
        };
        self.rows.set_cluster_status(id, status, reason, at);
    }
}
