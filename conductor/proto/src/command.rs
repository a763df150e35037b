//! Commands a shard's Raft log carries, and their results. `apply()` re-checks every invariant
//! (quota, template exists / not in use, status gates, ownership epoch) so that a command built
//! from a stale read can never corrupt the shard.
use crate::ids::*;
use crate::model::*;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A forwarded mutation. `request_id` makes a retry after an unknown outcome apply once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRequest {
    pub request_id: Option<RequestId>,
    pub command: ShardCommand,
}

// Commands are built once and serialised; boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ShardCommand {
    /// First act of a new shard leader; reconcilers start only once it is applied.
    TakeOwnership {
        node: NodeId,
        epoch: u64,
    },
    CreateTemplate {
        template: ClusterTemplate,
    },
    /// `template.version` names the version the update was computed from.
    UpdateTemplate {
        template: ClusterTemplate,
        at: Timestamp,
    },
    DeleteTemplate {
        id: TemplateId,
    },
    /// Writes the cluster row, its default nodegroups and its create operation atomically.
    CreateCluster {
        cluster: Cluster,
        nodegroups: Vec<NodeGroup>,
        operation: Operation,
    },
    /// Supersedes whatever operation the cluster had.
    DeleteCluster {
        id: ClusterId,
        op: OpId,
        at: Timestamp,
        deadline: Timestamp,
    },
    /// `PATCH /v1/clusters/{id}` of the default worker nodegroup's `node_count`: writes the new
    /// count and starts an update operation (`operation` carries the id, deadline, template and
    /// stack name; the shard fills in kind and step). Rejected unless the cluster is in a
    /// `*_COMPLETE` state.
    UpdateCluster {
        id: ClusterId,
        node_count: u32,
        rollback: bool,
        operation: Operation,
        at: Timestamp,
    },
    /// `POST /v1/clusters/{id}/actions/resize`: like `UpdateCluster` for a named worker
    /// nodegroup, with servers to remove; also accepted while an update runs or after one
    /// failed (the cluster autoscaler), superseding that update.
    ResizeCluster {
        id: ClusterId,
        nodegroup: NodeGroupId,
        node_count: u32,
        nodes_to_remove: Vec<String>,
        operation: Operation,
        at: Timestamp,
    },
    /// `PATCH /v1/clusters/{id}` of only the health fields: saved directly, no operation.
    SetHealth {
        id: ClusterId,
        health_status: Option<String>,
        health_status_reason: Option<std::collections::BTreeMap<String, String>>,
        at: Timestamp,
    },
    /// A reconciler's progress report; rejected unless `epoch` is the shard's current one and
    /// `op` is still the cluster's active operation.
    Advance {
        epoch: u64,
        cluster: ClusterId,
        op: OpId,
        event: OpEvent,
        at: Timestamp,
    },
    /// `POST /v1/quotas`: 409 if the project already has a row for the resource.
    CreateQuota {
        quota: Quota,
    },
    /// `PATCH /v1/quotas/{project}/{resource}`: 404 without a row.
    UpdateQuota {
        project_id: ProjectId,
        resource: String,
        hard_limit: u32,
        at: Timestamp,
    },
    DeleteQuota {
        project_id: ProjectId,
        resource: String,
    },
    /// A small key/value write through the whole write path (forwarding, Raft, apply), for
    /// operators' health probes, the crash tests and the replication benchmark. Overwrites.
    Canary {
        key: String,
        value: String,
    },
    /// `PATCH /v1/certificates/{id}` (reference §9): regenerate every CA and the client
    /// certificate, then update the stack with a new service-account key pair. Rejected unless
    /// the cluster is in a `*_COMPLETE` state with no operation running.
    RotateCa {
        id: ClusterId,
        operation: Operation,
        at: Timestamp,
    },
    /// `PATCH /v1/credentials/{id}` (reference §4.5): a new trustee password, then a stack
    /// update carrying it.
    RotateCredential {
        id: ClusterId,
        operation: Operation,
        at: Timestamp,
    },
    /// The shard leader delivered these outbox notifications to the sink; drop them.
    NotificationsDelivered {
        epoch: u64,
        ids: Vec<String>,
    },
}

/// Bounds of [`ShardCommand::Canary`], checked in `apply()`.
pub const CANARY_MAX_KEY: usize = 256;
pub const CANARY_MAX_VALUE: usize = 4096;

/// What a reconciler learned or is about to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OpEvent {
    CertsGenerated {
        certs: ClusterCerts,
    },
    /// Intent: about to (re)send the stack create.
    StackCreateIntent,
    StackCreated {
        stack_id: String,
    },
    /// Intent: about to (re)send the stack update.
    StackUpdateIntent,
    StackUpdateRequested {
        stack_id: String,
    },
    UpdateFinished {
        status: ClusterStatus,
        reason: Option<String>,
        outputs: StackOutputs,
    },
    /// Intent: about to (re)send the stack delete.
    StackDeleteIntent,
    StackDeleteRequested {
        stack_id: String,
    },
    CreateFinished {
        status: ClusterStatus,
        reason: Option<String>,
        outputs: StackOutputs,
    },
    /// The stack is gone: drop the cluster and everything it owns.
    DeleteFinished,
    /// Permanent failure: the operation ends `<KIND>_FAILED` with this reason.
    Failed {
        reason: String,
    },
    /// A retryable error (Heat 5xx, timeout); recorded for backoff and display.
    TransientError {
        error: String,
    },
    /// CA rotation: the new certificates (keys sealed) replace the old ones.
    CertsRotated {
        certs: ClusterCerts,
    },
}

/// What the driver read from a finished stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StackOutputs {
    pub api_address: Option<String>,
    pub master_addresses: Vec<String>,
    pub node_addresses: Vec<String>,
    pub coe_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommandOk {
    Template(Box<ClusterTemplate>),
    Cluster(Box<ClusterView>),
    Owned { epoch: u64 },
    Quota(Quota),
    Done,
}

/// Rejections, each carrying Magnum's message so the API can answer without translating.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("stale ownership epoch (current {current})")]
    StaleEpoch { current: u64 },
    #[error("operation is no longer active")]
    StaleOperation,
    #[error("{0}")]
    Internal(String),
}

pub type ShardResponse = Result<CommandOk, CommandError>;
