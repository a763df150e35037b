//! CA rotation (`PATCH /v1/certificates/{id}`, reference §9) and credential rotation
//! (`PATCH /v1/credentials/{id}`, §4.5): the status gates, and the operation they start.
use crate::shard::messages;
use crate::shard::update::UPDATABLE;
use crate::shard::ShardState;
use magnum_proto::*;

impl ShardState {
    pub(crate) fn rotate_ca(
        &mut self,
        id: ClusterId,
        req: &OperationRequest,
        at: Timestamp,
    ) -> ShardResponse {
        self.quiet_cluster(id, "Rotating the CA certificate of a cluster")?;
        if req.template.tls_disabled {
            return Err(CommandError::BadRequest(format!(
                "Rotating the CA certificate on a non-TLS cluster is not supported, cluster: {id}"
            )));
        }
        self.start_rotation(id, req, OpKind::RotateCa, at);
        Ok(CommandOk::Done)
    }

    pub(crate) fn rotate_credential(
        &mut self,
        id: ClusterId,
        req: &OperationRequest,
        at: Timestamp,
    ) -> ShardResponse {
        let Some(c) = self.rows.cluster(id) else {
            return Err(CommandError::NotFound(messages::cluster_not_found(
                &id.to_string(),
            )));
        };
        let allowed = UPDATABLE.contains(&c.status)
            || matches!(
                c.status,
                ClusterStatus::UPDATE_IN_PROGRESS | ClusterStatus::UPDATE_FAILED
            );
        if !allowed {
            return Err(CommandError::BadRequest(format!(
                "Rotating the credentials of a cluster when status is \"{}\" is not supported.",
                c.status.as_str()
            )));
        }
        if self.rows.operation(id).is_some() {
            return Err(CommandError::BadRequest(format!(
                "Cluster {id} already has an operation in progress."
            )));
        }
        // A cluster made without a trust (a deployment without a trustee domain) has no
        // credentials to rotate: what Magnum answers for a driver without credential rotation.
        if !self.rows.trustees().contains_key(&id) {
            return Err(CommandError::BadRequest(
                "Credential rotation is not supported by driver.".into(),
            ));
        }
        self.start_rotation(id, req, OpKind::RotateCredential, at);
        Ok(CommandOk::Done)
    }

    fn start_rotation(
        &mut self,
        id: ClusterId,
        req: &OperationRequest,
        kind: OpKind,
        at: Timestamp,
    ) {
        self.rows
            .set_cluster_status(id, ClusterStatus::UPDATE_IN_PROGRESS, None, at);
        if let Some(ngs) = self.rows.nodegroups_mut(id) {
            for n in ngs.iter_mut().filter(|n| n.is_default) {
                n.status = Some(ClusterStatus::UPDATE_IN_PROGRESS);
                n.status_reason = None;
                n.updated_at = Some(at);
            }
        }
        let mut op = Operation::new(kind, id, req, self.stack_name(id));
        op.rollback = true; // upstream rotates with rollback enabled
        self.rows.put_operation(op);
        self.notify(id, "update", crate::shard::notify::Outcome::Pending, at);
    }
}
