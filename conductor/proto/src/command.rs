//! Commands a shard's Raft log carries, and their results. `apply()` re-checks every invariant
//! (quota, template exists / not in use, status gates, ownership epoch) so that a command built
//! from a stale read can never corrupt the shard.
use crate::federation::{Federation, FederationChange};
use crate::ids::*;
use crate::model::*;
use crate::operation::OperationRequest;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A forwarded mutation. `request_id` makes a retry after an unknown outcome apply once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRequest {
    pub request_id: Option<RequestId>,
    pub command: ShardCommand,
}

/// A command with no request id (the shard leader's own loops: nothing to deduplicate).
impl From<ShardCommand> for ShardRequest {
    fn from(command: ShardCommand) -> Self {
        Self {
            request_id: None,
            command,
        }
    }
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
        /// Most templates one project may own (the API node's
        /// `--max-templates-per-project`); refused beyond it at apply, so every replica
        /// decides alike. `None`: no bound (entries from before the bound, or an active
        /// cluster version below 2, whose replicas would not check it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_per_project: Option<u32>,
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
        operation: OperationRequest,
    },
    /// Supersedes whatever operation the cluster had. Carries its request as plain fields (the
    /// template and stack name come from the superseded operation), as logged since the start.
    DeleteCluster {
        id: ClusterId,
        op: OpId,
        at: Timestamp,
        deadline: Timestamp,
    },
    /// `PATCH /v1/clusters/{id}` of the default worker nodegroup's `node_count`: writes the new
    /// count and starts an update operation (`apply()` builds it from `operation`, what the
    /// user asked). Rejected unless the cluster is in a `*_COMPLETE` state.
    UpdateCluster {
        id: ClusterId,
        node_count: u32,
        rollback: bool,
        operation: OperationRequest,
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
        operation: OperationRequest,
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
    /// `POST /v1/federations`: stored complete (there is nothing to drive, reference §4.9).
    CreateFederation {
        federation: Federation,
    },
    /// `PATCH /v1/federations/{id}`; joins and leaves are checked against the row as applied.
    UpdateFederation {
        id: FederationId,
        change: FederationChange,
        at: Timestamp,
    },
    DeleteFederation {
        id: FederationId,
    },
    /// `POST /v1/clusters/{id}/nodegroups`: writes the nodegroup row (CREATE_IN_PROGRESS) and
    /// starts its create operation; the cluster goes UPDATE_IN_PROGRESS. Rejected unless the
    /// cluster has an API address, the name is free and the counts are within bounds.
    CreateNodeGroup {
        nodegroup: NodeGroup,
        operation: OperationRequest,
        at: Timestamp,
    },
    /// `PATCH /v1/clusters/{id}/nodegroups/{ng}` of the autoscaler bounds: saved directly (no
    /// stack parameter depends on them for non-default nodegroups).
    UpdateNodeGroup {
        cluster: ClusterId,
        nodegroup: NodeGroupId,
        min_node_count: u32,
        max_node_count: Option<u32>,
        at: Timestamp,
    },
    /// `DELETE /v1/clusters/{id}/nodegroups/{ng}`: starts the delete of the nodegroup's stack
    /// (superseding the nodegroup's own create); the row goes when the stack is gone.
    DeleteNodeGroup {
        cluster: ClusterId,
        nodegroup: NodeGroupId,
        operation: OperationRequest,
        at: Timestamp,
    },
    /// `POST /v1/clusters/{id}/actions/upgrade`: a rolling stack update of `nodegroup` to the
    /// version labels of `template` (status gate, tag and downgrade checks in `apply()`).
    UpgradeCluster {
        id: ClusterId,
        nodegroup: NodeGroupId,
        template: ClusterTemplate,
        max_batch_size: u32,
        operation: OperationRequest,
        at: Timestamp,
    },
    /// Status sync (reference §7.5) of a cluster with no active operation, by the shard leader:
    /// the stack changed or vanished under it. Rejected with `StaleOperation` once an operation
    /// owns the cluster again, and with `StaleEpoch` from a deposed leader.
    SyncStatus {
        epoch: u64,
        cluster: ClusterId,
        status: ClusterStatus,
        reason: Option<String>,
        /// Present when the stack was read with outputs.
        outputs: Option<StackOutputs>,
        at: Timestamp,
    },
    /// Status sync (reference §7.5) of a non-default nodegroup's own stack, by the shard leader,
    /// for a cluster with no active operation; the cluster's status is re-aggregated from its
    /// nodegroups. `DELETE_COMPLETE` drops the row (its stack went while it was deleting).
    SyncNodeGroupStatus {
        epoch: u64,
        cluster: ClusterId,
        nodegroup: NodeGroupId,
        status: ClusterStatus,
        reason: Option<String>,
        /// Present when the stack was read with outputs.
        node_addresses: Option<Vec<String>>,
        at: Timestamp,
    },
    /// Health poll result (reference §7.4), by the shard leader.
    ObserveHealth {
        epoch: u64,
        cluster: ClusterId,
        health_status: Option<String>,
        health_status_reason: Option<std::collections::BTreeMap<String, String>>,
        at: Timestamp,
    },
    /// `PATCH /v1/certificates/{id}` (reference §9): regenerate every CA and the client
    /// certificate, then update the stack with a new service-account key pair. Rejected unless
    /// the cluster is in a `*_COMPLETE` state with no operation running.
    RotateCa {
        id: ClusterId,
        operation: OperationRequest,
        at: Timestamp,
    },
    /// `PATCH /v1/credentials/{id}` (reference §4.5): a new trustee password, then a stack
    /// update carrying it.
    RotateCredential {
        id: ClusterId,
        operation: OperationRequest,
        at: Timestamp,
    },
    /// The shard leader delivered these outbox notifications to the sink; drop them.
    NotificationsDelivered {
        epoch: u64,
        ids: Vec<String>,
    },
    /// Cluster version 2's one-time repair, proposed by the shard leader once that version is
    /// active (`leader/migrate.rs`): releases before it did not persist the stack id a create
    /// recorded, so a replica restarted between a stack's create and the end of that create
    /// lost it. Sets each listed cluster's (and its default nodegroups') stack id, makes every
    /// remembered answer show each cluster's stack id as the rows now hold it (none once the
    /// cluster is gone), and records the repair as done; a repeat changes nothing.
    RestoreStackIds {
        epoch: u64,
        stacks: BTreeMap<ClusterId, String>,
    },
    /// Sealing-key rotation: values the shard leader found sealed under a previous key, sealed
    /// again under its primary one. Each replaces its field only if the field still holds
    /// `from` (a CA rotation or a new password in between wins; the next pass sees that).
    Reseal {
        epoch: u64,
        secrets: Vec<Resealed>,
    },
    /// A cluster's stacks are gone and its delete is about to finish, or a nodegroup's stack
    /// is gone and its row is about to go: remember their names (`Tombstone`) so the reaper can
    /// delete any stack a deposed leader creates under them later. Proposed by the shard leader
    /// before that last step; a repeat replaces the row with the same content.
    RememberDeletedStacks {
        epoch: u64,
        tombstone: Tombstone,
    },
    /// The reaper's watch over these deleted clusters' (and nodegroups') stack names has ended
    /// (retention).
    ForgetDeletedStacks {
        epoch: u64,
        clusters: Vec<ClusterId>,
        /// Nodegroups' tombstones (cluster version 4; version 3 replicas would not drop them).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        nodegroups: Vec<(ClusterId, NodeGroupId)>,
    },
}

/// One sealed value to replace ([`ShardCommand::Reseal`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resealed {
    pub cluster: ClusterId,
    pub field: SealedField,
    pub from: String,
    pub to: String,
}

/// Where the shard holds sealed values: a cluster's private keys, its trustee's password, and
/// the trustor's token of a create that has not made its trust yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SealedField {
    CaKey,
    ClientKey,
    EtcdCaKey,
    FrontProxyCaKey,
    ServiceAccountPrivateKey,
    TrusteePassword,
    TrustorToken,
}

impl SealedField {
    /// Whether the value is a key of the cluster's certificates (`ClusterCerts`).
    pub fn is_certificate(self) -> bool {
        !matches!(self, Self::TrusteePassword | Self::TrustorToken)
    }
}

/// Who may propose a shard command ([`ShardCommand::origin`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// What a user asks through an API node (and the canary of tests and benchmarks).
    Client,
    /// Only the shard leader's own loops (reconciler, status sync, health, notification
    /// delivery, version repairs), fenced by its ownership epoch: the service listener refuses
    /// these from the network.
    Leader,
}

impl ShardCommand {
    /// The allow-list of the service listener: every kind says who may send it. An exhaustive
    /// match, so a new kind has to be placed here.
    pub fn origin(&self) -> Origin {
        use ShardCommand as S;
        match self {
            S::CreateTemplate { .. }
            | S::UpdateTemplate { .. }
            | S::DeleteTemplate { .. }
            | S::CreateCluster { .. }
            | S::DeleteCluster { .. }
            | S::UpdateCluster { .. }
            | S::ResizeCluster { .. }
            | S::SetHealth { .. }
            | S::CreateQuota { .. }
            | S::UpdateQuota { .. }
            | S::DeleteQuota { .. }
            | S::Canary { .. }
            | S::CreateFederation { .. }
            | S::UpdateFederation { .. }
            | S::DeleteFederation { .. }
            | S::CreateNodeGroup { .. }
            | S::UpdateNodeGroup { .. }
            | S::DeleteNodeGroup { .. }
            | S::UpgradeCluster { .. }
            | S::RotateCa { .. }
            | S::RotateCredential { .. } => Origin::Client,
            S::TakeOwnership { .. }
            | S::Advance { .. }
            | S::SyncStatus { .. }
            | S::SyncNodeGroupStatus { .. }
            | S::ObserveHealth { .. }
            | S::NotificationsDelivered { .. }
            | S::RestoreStackIds { .. }
            | S::Reseal { .. }
            | S::RememberDeletedStacks { .. }
            | S::ForgetDeletedStacks { .. } => Origin::Leader,
        }
    }
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
    /// Nodegroup create: the nodegroup's stack exists (created or adopted).
    NodeGroupStackCreated {
        stack_id: String,
    },
    /// Nodegroup create: the stack reached a terminal state.
    NodeGroupCreateFinished {
        status: ClusterStatus,
        reason: Option<String>,
        node_addresses: Vec<String>,
    },
    /// A nodegroup's stack delete was requested (nodegroup delete, or cluster delete).
    NodeGroupStackDeleteRequested {
        nodegroup: NodeGroupId,
        stack_id: String,
    },
    /// A non-default nodegroup's stack is gone: drop its row (nodegroup delete, or the first
    /// phase of a cluster delete).
    NodeGroupDeleted {
        nodegroup: NodeGroupId,
    },
    /// CA rotation: the new certificates (keys sealed) replace the old ones.
    CertsRotated {
        certs: ClusterCerts,
    },
    /// Create: the trustee and trust exist (`None`: this deployment gives clusters no trust).
    TrusteeCreated {
        trustee: Option<TrusteeRecord>,
    },
    /// Delete: the trustee user and its trust are gone: drop the cluster and what it owns.
    TrusteeDeleted,
    /// Credential rotation: Keystone took the trustee's new password (sealed here).
    TrusteePasswordRotated {
        password: String,
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
    Federation(Box<Federation>),
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
