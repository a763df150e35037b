//! Cluster updates (`PATCH /v1/clusters/{id}`, reference §6.6): the worker count starts an
//! update operation; health fields are saved directly.
use crate::shard::messages;
use crate::shard::ShardState;
use magnum_proto::*;
use std::collections::BTreeMap;

/// Status gate of update, upgrade and CA rotation (reference §6.2).
pub(crate) const UPDATABLE: [ClusterStatus; 8] = [
    ClusterStatus::CREATE_COMPLETE,
    ClusterStatus::UPDATE_COMPLETE,
    ClusterStatus::RESUME_COMPLETE,
    ClusterStatus::RESTORE_COMPLETE,
    ClusterStatus::ROLLBACK_COMPLETE,
    ClusterStatus::SNAPSHOT_COMPLETE,
    ClusterStatus::CHECK_COMPLETE,
    ClusterStatus::ADOPT_COMPLETE,
];

impl ShardState {
    /// The status gate of reference §6.2 for an operation on a quiet cluster: one of the
    /// `*_COMPLETE` states and no operation running. `doing` starts the 400's message.
    pub(crate) fn quiet_cluster(
        &self,
        id: ClusterId,
        doing: &str,
    ) -> Result<&Cluster, CommandError> {
        let Some(c) = self.rows.cluster(id) else {
            return Err(CommandError::NotFound(messages::cluster_not_found(
                &id.to_string(),
            )));
        };
        if !UPDATABLE.contains(&c.status) || self.rows.operation(id).is_some() {
            return Err(CommandError::BadRequest(format!(
                "{doing} when status is \"{}\" is not supported.",
                c.status.as_str()
            )));
        }
        Ok(c)
    }

    pub(crate) fn update_cluster(
        &mut self,
        id: ClusterId,
        node_count: u32,
        rollback: bool,
        req: &OperationRequest,
        at: Timestamp,
    ) -> ShardResponse {
        self.quiet_cluster(id, "Updating a cluster")?;
        let Some(worker) = self
            .rows
            .nodegroups(id)
            .iter()
            .find(|n| n.is_default && !n.is_master())
        else {
            return Err(CommandError::BadRequest(
                "The cluster has no default worker nodegroup.".into(),
            ));
        };
        if worker.node_count == node_count {
            // Nothing changes: no stack update (Magnum returns without an RPC either).
            return Ok(CommandOk::Done);
        }
        let ng = worker.uuid;
        let mut op = Operation::new(OpKind::Update, id, req, self.stack_name(id));
        op.rollback = rollback;
        self.start_update(ng, node_count, op, at);
        Ok(CommandOk::Done)
    }

    pub(crate) fn resize_cluster(
        &mut self,
        id: ClusterId,
        ng: NodeGroupId,
        node_count: u32,
        nodes_to_remove: &[String],
        req: &OperationRequest,
        at: Timestamp,
    ) -> ShardResponse {
        let Some(c) = self.rows.cluster(id) else {
            return Err(CommandError::NotFound(messages::cluster_not_found(
                &id.to_string(),
            )));
        };
        let resizable = UPDATABLE.contains(&c.status)
            || matches!(
                c.status,
                ClusterStatus::UPDATE_FAILED | ClusterStatus::UPDATE_IN_PROGRESS
            );
        // Only an update may be superseded (the autoscaler resizes while one runs).
        let busy = self
            .rows
            .operation(id)
            .is_some_and(|o| o.kind != OpKind::Update);
        if !resizable || busy {
            return Err(CommandError::BadRequest(format!(
                "Resizing a cluster when status is \"{}\" is not supported.",
                c.status.as_str()
            )));
        }
        let Some(n) = self.rows.nodegroup(id, ng) else {
            return Err(CommandError::NotFound(format!(
                "Nodegroup {ng} could not be found."
            )));
        };
        if n.is_master() {
            return Err(CommandError::BadRequest(
                "Resizing a master nodegroup is not supported.".into(),
            ));
        }
        if node_count < n.min_node_count || n.max_node_count.is_some_and(|m| node_count > m) {
            return Err(CommandError::BadRequest(format!(
                "Resizing {} outside the allowed range: min_node_count = {}, max_node_count = {}",
                n.name,
                n.min_node_count,
                n.max_node_count
                    .map_or_else(|| "None".to_string(), |m| m.to_string())
            )));
        }
        let ng = n.uuid;
        let mut op = Operation::new(OpKind::Update, id, req, self.stack_name(id));
        op.nodes_to_remove = nodes_to_remove.to_vec();
        self.start_update(ng, node_count, op, at);
        Ok(CommandOk::Done)
    }

    pub(crate) fn set_health(
        &mut self,
        id: ClusterId,
        status: &Option<String>,
        reason: &Option<BTreeMap<String, String>>,
        at: Timestamp,
    ) -> ShardResponse {
        let Some(c) = self.rows.cluster_mut(id) else {
            return Err(CommandError::NotFound(messages::cluster_not_found(
                &id.to_string(),
            )));
        };
        c.health_status = status.clone();
        c.health_status_reason = reason.clone();
        c.updated_at = Some(at);
        Ok(CommandOk::Done)
    }

    /// Sets the nodegroup's new count and starts (or supersedes) the cluster's update `op`.
    fn start_update(&mut self, ng: NodeGroupId, node_count: u32, mut op: Operation, at: Timestamp) {
        let id = op.cluster;
        let mut previous = None;
        if let Some(n) = self.rows.nodegroup_mut(id, ng) {
            previous = Some(n.node_count);
            n.node_count = node_count;
            n.status = Some(ClusterStatus::UPDATE_IN_PROGRESS);
            n.status_reason = None;
            n.updated_at = Some(at);
        }
        self.rows
            .set_cluster_status(id, ClusterStatus::UPDATE_IN_PROGRESS, None, at);
        op.nodegroup = Some(ng);
        op.restore_node_count = previous;
        self.rows.put_operation(op);
        self.notify(id, "update", crate::shard::notify::Outcome::Pending, at);
    }

    /// A failed update call puts the nodegroup's count back (reference §6.6); `None` is the
    /// default worker (operations persisted before `nodegroup` existed).
    pub(crate) fn restore_node_count(
        &mut self,
        id: ClusterId,
        ng: Option<NodeGroupId>,
        count: u32,
    ) {
        let target = self.rows.nodegroups(id).iter().find(|n| match ng {
            Some(ng) => n.uuid == ng,
            None => n.is_default && !n.is_master(),
        });
        if let Some(w) = target.map(|n| n.uuid) {
            if let Some(w) = self.rows.nodegroup_mut(id, w) {
                w.node_count = count;
            }
        }
    }
}
