//! The operation contract: an API node sends what the user asked ([`OperationRequest`]) and the
//! shard's `apply()` alone builds the [`Operation`] from it ([`Operation::new`]), so the kind,
//! first step, stack name and bookkeeping of an operation are decided in one place.
use crate::ids::*;
use crate::model::*;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The user-derived part of an operation, carried by the shard commands that start one.
///
/// Its fields are a subset of [`Operation`]'s with the same names and serde attributes: a
/// command logged before this type existed carries a whole `Operation` under the same field
/// name and still decodes (serde ignores the other fields).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationRequest {
    pub id: OpId,
    pub started_at: Timestamp,
    /// Conductor-side deadline, enforced even if Heat's timeout doesn't fire.
    pub deadline: Timestamp,
    /// Template as it was when the user asked (it may live in another shard).
    pub template: ClusterTemplate,
    /// Create: who delegates the cluster's trust (the token sealed by the conductor).
    #[serde(default)]
    pub trustor: Option<Trustor>,
    /// What a conductor of cluster version 1 needs besides (see [`LegacyOperation`]).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<LegacyOperation>,
}

/// The rest of a whole [`Operation`], which conductors of cluster version 1 decode from a
/// command (they took the kind, first step and stack name from the API node). API nodes send it
/// until the previous release is one that has `OperationRequest`, so that such conductors can
/// still apply the command while versions are mixed; `apply()` here ignores it. A request
/// without it needs cluster version 2 (`version::min_version`): it never reaches a version 1 log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LegacyOperation {
    pub cluster: ClusterId,
    pub kind: OpKind,
    pub step: Step,
    pub stack_name: String,
    pub retries: u32,
}

impl OperationRequest {
    /// Adds the fields cluster version 1 conductors need to apply the command; `stack_name` is
    /// the one `apply()` derives (the cluster's, or the nodegroup's for nodegroup operations).
    pub fn readable_by_v1(mut self, kind: OpKind, cluster: ClusterId, stack_name: String) -> Self {
        self.legacy = Some(LegacyOperation {
            cluster,
            kind,
            step: kind.first_step(),
            stack_name,
            retries: 0,
        });
        self
    }
}

impl OpKind {
    /// Where an operation of this kind starts.
    pub fn first_step(self) -> Step {
        match self {
            OpKind::Create => Step::GenerateCerts,
            OpKind::Delete => Step::DeleteStack { attempt: 0 },
            OpKind::Update | OpKind::Upgrade => Step::UpdateStack { attempt: 0 },
            OpKind::NodeGroupCreate => Step::CreateNodeGroupStack { attempt: 0 },
            OpKind::NodeGroupDelete => Step::DeleteNodeGroupStack { attempt: 0 },
            OpKind::RotateCa => Step::RotateCerts,
            OpKind::RotateCredential => Step::RotateTrusteePassword,
        }
    }
}

impl Operation {
    /// A new operation of `kind` on `cluster` at its first step, with no retries. The
    /// kind-specific fields (`rollback`, `nodegroup`, `upgrade`, ...) start empty; `apply()`
    /// sets them from the command and the rows.
    pub fn new(
        kind: OpKind,
        cluster: ClusterId,
        req: &OperationRequest,
        stack_name: String,
    ) -> Self {
        Operation {
            id: req.id,
            cluster,
            kind,
            step: kind.first_step(),
            started_at: req.started_at,
            deadline: req.deadline,
            template: req.template.clone(),
            stack_name,
            retries: 0,
            last_error: None,
            rollback: false,
            restore_node_count: None,
            nodes_to_remove: Vec::new(),
            nodegroup: None,
            upgrade: None,
            trustor: req.trustor.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{ShardCommand, ShardRequest};

    fn request() -> OperationRequest {
        OperationRequest {
            id: OpId::new_v4(),
            started_at: Timestamp(1),
            deadline: Timestamp(2),
            template: ClusterTemplate::default(),
            trustor: None,
            legacy: None,
        }
    }

    fn operation(kind: OpKind) -> Operation {
        Operation::new(kind, ClusterId::new_v4(), &request(), "k8s-abc".into())
    }

    /// A command as logged before `OperationRequest`: a whole `Operation` under `operation`.
    #[test]
    fn a_command_logged_with_a_whole_operation_still_decodes() {
        let mut op = operation(OpKind::Update);
        op.retries = 3;
        op.rollback = true;
        op.nodegroup = Some(NodeGroupId::new_v4());
        op.trustor = Some(Trustor {
            user_id: "u".into(),
            roles: vec!["member".into()],
            token: "sealed:t".into(),
        });
        let old = serde_json::json!({
            "request_id": null,
            "command": {"UpdateCluster": {
                "id": op.cluster,
                "node_count": 3,
                "rollback": true,
                "operation": op,
                "at": 5,
            }},
        });
        let req: ShardRequest = serde_json::from_value(old).unwrap();
        let ShardCommand::UpdateCluster { operation, .. } = req.command else {
            panic!("{:?}", req.command)
        };
        assert_eq!(operation.id, op.id);
        assert_eq!(operation.started_at, op.started_at);
        assert_eq!(operation.deadline, op.deadline);
        assert_eq!(operation.template, op.template);
        assert_eq!(operation.trustor, op.trustor);
        let legacy = operation
            .legacy
            .expect("a whole operation carries the v1 fields");
        assert_eq!((legacy.cluster, legacy.retries), (op.cluster, 3));
    }

    /// What a version 1 conductor decodes from a command's `operation`: a whole `Operation`.
    /// Its apply overrides kind, step and the kind-specific fields and keeps the rest.
    #[test]
    fn a_request_readable_by_v1_decodes_as_a_whole_operation() {
        let cluster = ClusterId::new_v4();
        let req = request();
        let compact = serde_json::to_value(&req).unwrap();
        assert!(serde_json::from_value::<Operation>(compact).is_err());

        let req = req.readable_by_v1(OpKind::Create, cluster, "k8s-abc".into());
        let wire = serde_json::to_value(&req).unwrap();
        let old: Operation = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(
            old,
            Operation::new(OpKind::Create, cluster, &req, "k8s-abc".into())
        );
        // And this release reads it back with the fields it sent.
        assert_eq!(
            serde_json::from_value::<OperationRequest>(wire).unwrap(),
            req
        );
    }

    #[test]
    fn new_operations_start_at_their_kind_s_first_step() {
        let op = operation(OpKind::Create);
        assert_eq!(op.step, Step::GenerateCerts);
        assert_eq!((op.retries, op.stack_name.as_str()), (0, "k8s-abc"));
        assert_eq!(
            operation(OpKind::Upgrade).step,
            Step::UpdateStack { attempt: 0 }
        );
        assert_eq!(
            operation(OpKind::NodeGroupDelete).step,
            Step::DeleteNodeGroupStack { attempt: 0 }
        );
    }
}
