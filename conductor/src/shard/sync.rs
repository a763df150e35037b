//! Apply of the shard leader's observations of clusters with no active operation: status sync
//! (reference §7.5) and health (§7.4). Both are fenced by the ownership epoch and yield to an
//! operation, which owns the cluster's status while it runs.
use crate::shard::messages;
use crate::shard::ShardState;
use magnum_proto::*;
use std::collections::BTreeMap;

impl ShardState {
    fn observation_allowed(&self, epoch: u64, id: ClusterId) -> Result<(), CommandError> {
        self.check_epoch(epoch)?;
        if self.rows.cluster(id).is_none() {
            return Err(CommandError::NotFound(messages::cluster_not_found(
                &id.to_string(),
            )));
        }
        if self.rows.operation(id).is_some() {
            return Err(CommandError::StaleOperation);
        }
        Ok(())
    }

    pub(crate) fn sync_status(
        &mut self,
        epoch: u64,
        id: ClusterId,
        status: ClusterStatus,
        reason: &Option<String>,
        outputs: Option<&StackOutputs>,
        at: Timestamp,
    ) -> ShardResponse {
        self.observation_allowed(epoch, id)?;
        // The cluster stack carries the default nodegroups; a deleting stack, all of them.
        let kind = if status.as_str().starts_with("DELETE") {
            OpKind::Delete
        } else {
            OpKind::Update
        };
        let previous = self.rows.cluster(id).map_or(status, |c| c.status);
        self.finish(
            id,
            kind,
            None,
            (status, reason.clone()),
            outputs,
            previous,
            at,
        );
        Ok(CommandOk::Done)
    }

    /// A non-default nodegroup's own stack changed or vanished: the row takes the status (or
    /// goes, for `DELETE_COMPLETE`) and the cluster is re-aggregated from all nodegroups.
    pub(crate) fn sync_nodegroup_status(
        &mut self,
        epoch: u64,
        (id, ng): (ClusterId, NodeGroupId),
        status: ClusterStatus,
        reason: &Option<String>,
        node_addresses: Option<&[String]>,
        at: Timestamp,
    ) -> ShardResponse {
        self.observation_allowed(epoch, id)?;
        let previous = self.rows.cluster(id).map_or(status, |c| c.status);
        let not_found = || CommandError::NotFound(messages::nodegroup_not_found(&ng.to_string()));
        // The default nodegroups follow the cluster stack (`sync_status`), not this command.
        let pos = self
            .rows
            .nodegroups(id)
            .iter()
            .position(|n| n.uuid == ng && !n.is_default)
            .ok_or_else(not_found)?;
        let ngs = self.rows.nodegroups_mut(id).ok_or_else(not_found)?;
        if status == ClusterStatus::DELETE_COMPLETE {
            ngs.remove(pos);
        } else {
            let n = &mut ngs[pos];
            n.status = Some(status);
            n.status_reason = reason.clone();
            n.updated_at = Some(at);
            if let Some(a) = node_addresses {
                n.node_addresses = a.to_vec();
            }
        }
        self.settle(id, previous, None, at);
        Ok(CommandOk::Done)
    }

    pub(crate) fn observe_health(
        &mut self,
        epoch: u64,
        id: ClusterId,
        status: &Option<String>,
        reason: &Option<BTreeMap<String, String>>,
        at: Timestamp,
    ) -> ShardResponse {
        // Health is polled during operations too (§7.4): only the epoch and the row matter.
        if let Err(e) = self.observation_allowed(epoch, id) {
            if e != CommandError::StaleOperation {
                return Err(e);
            }
        }
        if let Some(c) = self.rows.cluster_mut(id) {
            c.health_status = status.clone();
            c.health_status_reason = reason.clone();
            c.updated_at = Some(at);
        }
        Ok(CommandOk::Done)
    }
}
