//! What the reconciler needs from the cloud, as a trait so tests can inject faults and so the
//! reconciler stays ignorant of Heat's wire format.
pub mod failpoints;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod feed;
pub mod heat;
mod target;

use async_trait::async_trait;
use magnum_drivers::openstack::StackState as Phase;
pub use magnum_drivers::openstack::{HeatStatus, StackAction};
pub use magnum_drivers::{ScaleSpec, UpgradeSpec};
use magnum_proto::{ClusterStatus, ClusterView, NodeGroup, ProjectId, StackOutputs, Trustor};
use std::collections::BTreeMap;
pub use target::{OpTag, Target};

/// A stack as Heat names it: `name/id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackHandle {
    pub name: String,
    pub id: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StackState {
    pub status: HeatStatus,
    pub reason: Option<String>,
    /// Mapped outputs, present when the stack was read with outputs.
    pub outputs: Option<StackOutputs>,
    /// Parameters as Heat reports them (all strings); empty when the cloud reports none.
    pub parameters: BTreeMap<String, String>,
    /// Heat's `updated_time`: when the stack's last update started; `None` while never updated.
    pub updated: Option<String>,
}

/// A stack as a listing shows it: no outputs, no parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Glance {
    pub status: HeatStatus,
    pub reason: Option<String>,
    /// Heat's `updated_time`, as in [`StackState::updated`].
    pub updated: Option<String>,
}

impl Glance {
    /// The stack state this glance tells (no outputs, no parameters).
    pub fn state(&self) -> StackState {
        StackState {
            status: self.status,
            reason: self.reason.clone(),
            outputs: None,
            parameters: BTreeMap::new(),
            updated: self.updated.clone(),
        }
    }
}

/// What a batched look at one stack found ([`Cloud::look_stack`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Look {
    /// The listing shows it.
    Listed(Glance),
    /// The listing does not show it: deleted, or hidden from listings; only a GET says which.
    NotListed,
    /// Not looked at in a batch (no listing across projects here, or the listing failed): GET it.
    Unbatched,
}

/// A cluster's trustee user as Keystone has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrusteeUser {
    pub id: String,
    pub name: String,
    pub domain_id: String,
}

/// Whom a user's Keystone token speaks for, as Keystone answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUser {
    pub user_id: String,
    /// `None` for a token not scoped to a project.
    pub project_id: Option<String>,
    pub roles: Vec<String>,
}

impl TokenUser {
    /// oslo.policy compares roles case-insensitively.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case("admin"))
    }
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

/// What an update PATCHes: the per-call part of [`Cloud::update_stack`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StackUpdate {
    /// A nodegroup's new count (`rollback` decides Heat's rollback).
    Scale(ScaleSpec),
    Upgrade(UpgradeSpec),
}

/// The stack statuses callers compare with (not `ClusterStatus`'s variants of the same names).
pub mod heat_status {
    use super::{HeatStatus, Phase, StackAction};

    pub const DELETE_COMPLETE: HeatStatus = HeatStatus {
        action: StackAction::Delete,
        state: Phase::Complete,
    };
    pub const DELETE_FAILED: HeatStatus = HeatStatus {
        action: StackAction::Delete,
        state: Phase::Failed,
    };
    pub const DELETE_IN_PROGRESS: HeatStatus = HeatStatus {
        action: StackAction::Delete,
        state: Phase::InProgress,
    };
}

/// The cluster status of the same name; `None` for stack statuses Magnum has no equivalent of
/// (e.g. `SUSPEND_COMPLETE`, `CHECK_FAILED`).
pub fn cluster_status(s: HeatStatus) -> Option<ClusterStatus> {
    use ClusterStatus::*;
    use Phase::{Complete, Failed, InProgress};
    use StackAction::*;
    Some(match (s.action, s.state) {
        (Create, InProgress) => CREATE_IN_PROGRESS,
        (Create, Failed) => CREATE_FAILED,
        (Create, Complete) => CREATE_COMPLETE,
        (Update, InProgress) => UPDATE_IN_PROGRESS,
        (Update, Failed) => UPDATE_FAILED,
        (Update, Complete) => UPDATE_COMPLETE,
        (Delete, InProgress) => DELETE_IN_PROGRESS,
        (Delete, Failed) => DELETE_FAILED,
        (Delete, Complete) => DELETE_COMPLETE,
        (Resume, Complete) => RESUME_COMPLETE,
        (Resume, Failed) => RESUME_FAILED,
        (Restore, Complete) => RESTORE_COMPLETE,
        (Rollback, InProgress) => ROLLBACK_IN_PROGRESS,
        (Rollback, Failed) => ROLLBACK_FAILED,
        (Rollback, Complete) => ROLLBACK_COMPLETE,
        (Snapshot, Complete) => SNAPSHOT_COMPLETE,
        (Check, Complete) => CHECK_COMPLETE,
        (Adopt, Complete) => ADOPT_COMPLETE,
        _ => return None,
    })
}

#[async_trait]
pub trait Cloud: Send + Sync + 'static {
    /// Deterministic stack name of a cluster.
    fn stack_name(&self, cluster: &ClusterView) -> String;
    async fn create_stack(&self, target: &Target<'_>) -> Result<StackHandle, CloudError>;
    async fn find_stack(
        &self,
        project: &ProjectId,
        name_or_id: &str,
    ) -> Result<Option<StackHandle>, CloudError>;
    /// `None` when Heat no longer knows the stack. Outputs need the target's driver.
    async fn get_stack(
        &self,
        target: &Target<'_>,
        stack: &StackHandle,
        with_outputs: bool,
    ) -> Result<Option<StackState>, CloudError>;
    async fn delete_stack(
        &self,
        project: &ProjectId,
        stack: &StackHandle,
    ) -> Result<(), CloudError>;
    /// One stack's status out of a listing shared with every other look made meanwhile
    /// (`feed.rs`): what pollers ask first, so that a stack still moving or unchanged costs no
    /// GET of its own. Never fails: anything but a listing that shows the stack says "GET it".
    async fn look_stack(&self, project: &ProjectId, stack: &StackHandle) -> Look {
        let _ = (project, stack);
        Look::Unbatched
    }
    /// Deterministic stack name of a non-default nodegroup.
    fn nodegroup_stack_name(&self, cluster: &ClusterView, ng: &NodeGroup) -> String {
        magnum_drivers::nodegroup_stack_name(&cluster.cluster.name, &ng.name, ng.uuid.0)
    }
    /// Creates a non-default nodegroup's own stack, joined to the cluster stack.
    async fn create_nodegroup_stack(
        &self,
        _target: &Target<'_>,
        _ng: &NodeGroup,
    ) -> Result<StackHandle, CloudError> {
        Err(CloudError::Permanent(
            "This cloud does not support nodegroup stacks.".into(),
        ))
    }
    /// PATCH `stack` (the cluster's, or a nodegroup's own); the same call again converges to the
    /// same stack.
    async fn update_stack(
        &self,
        target: &Target<'_>,
        stack: &StackHandle,
        update: &StackUpdate,
    ) -> Result<(), CloudError>;
    /// PATCH the stack with these parameters only (CA rotation's new service-account keys,
    /// a credential rotation's trustee password); the same call again converges to the same
    /// stack.
    async fn patch_parameters(
        &self,
        target: &Target<'_>,
        stack: &StackHandle,
        parameters: BTreeMap<String, serde_json::Value>,
        rollback: bool,
    ) -> Result<(), CloudError> {
        let _ = (target, stack, parameters, rollback);
        Err(CloudError::Permanent(
            "This cloud cannot update stack parameters.".into(),
        ))
    }
    /// Keystone's answer about a user's token (`GET /v3/auth/tokens` with the service token);
    /// `None` when Keystone does not know it (expired, revoked, made up).
    async fn token_user(&self, _token: &str) -> Result<Option<TokenUser>, CloudError> {
        Err(CloudError::Permanent(
            "This cloud cannot validate user tokens.".into(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_drivers::openstack::status_of;

    #[test]
    fn cluster_status_is_the_status_of_the_same_name() {
        let actions = [
            "INIT", "CREATE", "DELETE", "UPDATE", "ROLLBACK", "SUSPEND", "RESUME", "ADOPT",
            "SNAPSHOT", "CHECK", "RESTORE",
        ];
        for a in actions {
            for p in ["IN_PROGRESS", "COMPLETE", "FAILED"] {
                let name = format!("{a}_{p}");
                let s = status_of(&name).unwrap();
                assert_eq!(cluster_status(s), ClusterStatus::parse(&name), "{name}");
            }
        }
        use heat_status::*;
        assert_eq!(DELETE_COMPLETE.to_string(), "DELETE_COMPLETE");
        assert_eq!(DELETE_FAILED.to_string(), "DELETE_FAILED");
        assert_eq!(DELETE_IN_PROGRESS.to_string(), "DELETE_IN_PROGRESS");
    }
}
