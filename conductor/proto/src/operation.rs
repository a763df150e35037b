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

    fn operation(kind: OpKind) -> Operation {
        let req = OperationRequest {
            id: OpId::new_v4(),
            started_at: Timestamp(1),
            deadline: Timestamp(2),
            template: ClusterTemplate::default(),
            trustor: None,
        };
        Operation::new(kind, ClusterId::new_v4(), &req, "k8s-abc".into())
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
