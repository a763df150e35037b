//! What the reconciler needs from the cloud, as a trait so tests can inject faults and so the
//! reconciler stays ignorant of Heat's wire format.
pub mod failpoints;
pub mod heat;

use async_trait::async_trait;
use magnum_proto::{ClusterView, NodeGroup, Operation, ProjectId, StackOutputs, Trustor};
use std::collections::BTreeMap;

/// A stack as Heat names it: `name/id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackHandle {
    pub name: String,
    pub id: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StackState {
    pub status: String,
    pub reason: Option<String>,
    /// Mapped outputs, present when the stack was read with outputs.
    pub outputs: Option<StackOutputs>,
}

/// A cluster's trustee user as Keystone has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrusteeUser {
    pub id: String,
    pub name: String,
    pub domain_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The stack name is taken by a live stack (Heat 409 StackExists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Heat refused the request for good (400): the operation fails with this reason.
    #[error("{0}")]
    Permanent(String),
    /// 5xx, timeouts, connection errors, auth hiccups: retry with backoff.
    #[error("{0}")]
    Transient(String),
}

#[async_trait]
pub trait Cloud: Send + Sync + 'static {
    /// Deterministic stack name of a cluster.
    fn stack_name(&self, cluster: &ClusterView) -> String;
    async fn create_stack(
        &self,
        op: &Operation,
        cluster: &ClusterView,
    ) -> Result<StackHandle, CloudError>;
    async fn find_stack(
        &self,
        project: &ProjectId,
        name_or_id: &str,
    ) -> Result<Option<StackHandle>, CloudError>;
    /// `None` when Heat no longer knows the stack.
    async fn get_stack(
        &self,
        project: &ProjectId,
        stack: &StackHandle,
        op: &Operation,
        cluster: &ClusterView,
        with_outputs: bool,
    ) -> Result<Option<StackState>, CloudError>;
    async fn delete_stack(
        &self,
        project: &ProjectId,
        stack: &StackHandle,
    ) -> Result<(), CloudError>;
    /// Deterministic stack name of a non-default nodegroup.
    fn nodegroup_stack_name(&self, cluster: &ClusterView, ng: &NodeGroup) -> String {
        magnum_drivers::nodegroup_stack_name(&cluster.cluster.name, &ng.name, ng.uuid.0)
    }
    /// Creates a non-default nodegroup's own stack, joined to the cluster stack.
    async fn create_nodegroup_stack(
        &self,
        _op: &Operation,
        _cluster: &ClusterView,
        _ng: &NodeGroup,
    ) -> Result<StackHandle, CloudError> {
        Err(CloudError::Permanent(
            "This cloud does not support nodegroup stacks.".into(),
        ))
    }
    /// PATCH the operation's stack: an upgrade sends the new version, an update or resize the
    /// target nodegroup's current count (`op.rollback` decides Heat's rollback); the same call
    /// again converges to the same stack.
    async fn update_stack(
        &self,
        op: &Operation,
        cluster: &ClusterView,
        stack: &StackHandle,
    ) -> Result<(), CloudError>;
    /// PATCH the stack with these parameters only (CA rotation's new service-account keys),
    /// rollback as `op.rollback`; the same call again converges to the same stack.
    async fn patch_parameters(
        &self,
        op: &Operation,
        cluster: &ClusterView,
        stack: &StackHandle,
        parameters: BTreeMap<String, serde_json::Value>,
    ) -> Result<(), CloudError> {
        let _ = (op, cluster, stack, parameters);
        Err(CloudError::Permanent(
            "This cloud cannot update stack parameters.".into(),
        ))
    }
    /// Whether clusters get a trustee and a trust (a trustee domain is configured).
    fn trusts(&self) -> bool {
        false
    }
    /// Finds or creates the cluster's trustee user (`<cluster_uuid>_<project_id>` in the
    /// trustee domain) and gives it `password`; the same call again adopts the same user.
    async fn ensure_trustee(
        &self,
        _cluster: &ClusterView,
        _password: &str,
    ) -> Result<TrusteeUser, CloudError> {
        Err(CloudError::Permanent("This cloud has no trusts.".into()))
    }
    /// The trust from `trustor` (token opened) to the trustee on the cluster's project; one
    /// that exists already is returned, so a repeat never makes a second.
    async fn ensure_trust(
        &self,
        _cluster: &ClusterView,
        _trustee_user_id: &str,
        _trustor: &Trustor,
    ) -> Result<String, CloudError> {
        Err(CloudError::Permanent("This cloud has no trusts.".into()))
    }
    async fn set_trustee_password(
        &self,
        _cluster: &ClusterView,
        _user_id: &str,
        _password: &str,
    ) -> Result<(), CloudError> {
        Err(CloudError::Permanent("This cloud has no trusts.".into()))
    }
    /// Deletes the cluster's trustee user, found by name (Keystone deletes its trusts with it);
    /// one already gone is fine.
    async fn delete_trustee(&self, _cluster: &ClusterView) -> Result<(), CloudError> {
        Ok(())
    }
}
