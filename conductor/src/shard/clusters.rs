//! Cluster create and delete (reference §4.2, §6.1): the rows and the operation each starts.
use crate::shard::messages;
use crate::shard::notify::Outcome;
use crate::shard::ShardState;
use magnum_proto::*;

impl ShardState {
    pub(super) fn create_cluster(
        &mut self,
        index: u64,
        c: &Cluster,
        ngs: &[NodeGroup],
        req: &OperationRequest,
    ) -> ShardResponse {
        if self.rows.cluster(c.uuid).is_some() {
            return Err(CommandError::Conflict(messages::cluster_exists(c.uuid)));
        }
        if shard_of(&c.project_id, self.shards) != self.shard {
            return Err(CommandError::BadRequest(format!(
                "Project {} does not live in shard {}.",
                c.project_id, self.shard
            )));
        }
        // A template of this shard must still exist; one of another shard was checked by the
        // API node (cross-shard references are registered by the operation).
        let tpl_project = req.template.project_id.as_ref();
        let local = tpl_project.is_none_or(|p| shard_of(p, self.shards) == self.shard);
        if local && !self.rows.templates().contains_key(&c.cluster_template_id) {
            return Err(CommandError::NotFound(messages::template_not_found(
                &c.cluster_template_id.to_string(),
            )));
        }
        let limit = self
            .rows
            .quotas()
            .get(&(c.project_id.clone(), "Cluster".to_string()))
            .map(|q| q.hard_limit)
            .unwrap_or(DEFAULT_CLUSTER_QUOTA);
        let used = self
            .rows
            .clusters()
            .values()
            .filter(|x| x.project_id == c.project_id)
            .count() as u64;
        if used >= u64::from(limit) {
            return Err(CommandError::Forbidden(messages::quota_exceeded(limit)));
        }
        let mut c = c.clone();
        c.status = ClusterStatus::CREATE_IN_PROGRESS;
        c.status_reason = None;
        let stack_name = magnum_drivers::stack_name(&c.name, c.uuid.0);
        let op = Operation::new(OpKind::Create, c.uuid, req, stack_name);
        let ngs: Vec<NodeGroup> = ngs
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, mut n)| {
                n.id = self.row_id(index, i as u64);
                n.cluster_id = c.uuid;
                n.status = Some(ClusterStatus::CREATE_IN_PROGRESS);
                n
            })
            .collect();
        self.rows.insert_cluster(c.clone());
        self.rows.put_nodegroups(c.uuid, ngs.clone());
        self.rows.put_operation(op);
        self.notify(c.uuid, "create", Outcome::Pending, c.created_at);
        Ok(CommandOk::Cluster(Box::new(ClusterView {
            cluster: c,
            nodegroups: ngs,
            trustee: None,
            template_labels: None,
        })))
    }

    /// Supersedes whatever operation the cluster had; a repeated delete is a no-op.
    pub(super) fn delete_cluster(
        &mut self,
        id: ClusterId,
        op_id: OpId,
        at: Timestamp,
        deadline: Timestamp,
    ) -> ShardResponse {
        if self.rows.cluster(id).is_none() {
            return Err(CommandError::NotFound(messages::cluster_not_found(
                &id.to_string(),
            )));
        }
        if let Some(op) = self.rows.operation(id) {
            if op.kind == OpKind::Delete {
                return Ok(CommandOk::Done);
            }
        }
        if let Some(cluster) = self.rows.cluster_mut(id) {
            cluster.status = ClusterStatus::DELETE_IN_PROGRESS;
            cluster.status_reason = None;
            cluster.updated_at = Some(at);
        }
        // The template and stack name of the operation it supersedes, if any (the leader
        // derives the stack's name itself when there is none).
        let previous = self.rows.remove_operation(id);
        let req = OperationRequest {
            id: op_id,
            started_at: at,
            deadline,
            template: previous
                .as_ref()
                .map(|o| o.template.clone())
                .unwrap_or_default(),
            trustor: None,
            legacy: None,
        };
        let stack_name = previous.map(|o| o.stack_name).unwrap_or_default();
        self.rows
            .put_operation(Operation::new(OpKind::Delete, id, &req, stack_name));
        if let Some(ngs) = self.rows.nodegroups_mut(id) {
            for n in ngs {
                n.status = Some(ClusterStatus::DELETE_IN_PROGRESS);
                n.updated_at = Some(at);
            }
        }
        self.notify(id, "delete", Outcome::Pending, at);
        Ok(CommandOk::Done)
    }

    /// The name of the cluster's stack, as its driver names it; empty for an unknown cluster.
    pub(super) fn stack_name(&self, id: ClusterId) -> String {
        self.rows
            .cluster(id)
            .map(|c| magnum_drivers::stack_name(&c.name, c.uuid.0))
            .unwrap_or_default()
    }
}
