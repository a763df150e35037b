//! Resource rows as the shard state machine stores them. The public API renders them into
//! Magnum's JSON; the conductor drives them through operations.
use crate::ids::*;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub type Labels = BTreeMap<String, String>;

/// A cluster template (Magnum's `ClusterTemplate`), field names as on the wire.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterTemplate {
    pub uuid: Option<TemplateId>,
    pub name: Option<String>,
    pub project_id: Option<ProjectId>,
    pub user_id: Option<UserId>,
    pub coe: Option<String>,
    pub image_id: Option<String>,
    pub flavor_id: Option<String>,
    pub master_flavor_id: Option<String>,
    pub keypair_id: Option<String>,
    pub dns_nameserver: Option<String>,
    pub external_network_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub network_driver: Option<String>,
    pub volume_driver: Option<String>,
    pub apiserver_port: Option<i64>,
    pub docker_volume_size: Option<i64>,
    pub docker_storage_driver: Option<String>,
    pub cluster_distro: Option<String>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub registry_enabled: bool,
    pub insecure_registry: Option<String>,
    pub labels: Labels,
    pub tls_disabled: bool,
    pub public: bool,
    pub hidden: bool,
    pub server_type: Option<String>,
    pub master_lb_enabled: bool,
    pub floating_ip_enabled: bool,
    pub tags: Option<String>,
    pub driver: Option<String>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    /// Optimistic-concurrency counter: bumped on every update; an update names the version it
    /// was computed from so a concurrent PATCH is never lost.
    pub version: u64,
}

impl ClusterTemplate {
    pub fn id(&self) -> Option<TemplateId> {
        self.uuid
    }
}

macro_rules! statuses {
    ($($v:ident),* $(,)?) => {
        /// Magnum's `ClusterStatus` (mirrors Heat's stack states).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[allow(non_camel_case_types)]
        pub enum ClusterStatus { $($v),* }

        impl ClusterStatus {
            pub const ALL: &'static [ClusterStatus] = &[$(ClusterStatus::$v),*];

            pub fn as_str(self) -> &'static str {
                match self { $(ClusterStatus::$v => stringify!($v)),* }
            }
        }
    };
}

statuses!(
    CREATE_IN_PROGRESS,
    CREATE_FAILED,
    CREATE_COMPLETE,
    UPDATE_IN_PROGRESS,
    UPDATE_FAILED,
    UPDATE_COMPLETE,
    DELETE_IN_PROGRESS,
    DELETE_FAILED,
    DELETE_COMPLETE,
    RESUME_COMPLETE,
    RESUME_FAILED,
    RESTORE_COMPLETE,
    ROLLBACK_IN_PROGRESS,
    ROLLBACK_FAILED,
    ROLLBACK_COMPLETE,
    SNAPSHOT_COMPLETE,
    CHECK_COMPLETE,
    ADOPT_COMPLETE,
);

impl ClusterStatus {
    /// Statuses for which GET-one adds `faults` (reference §6.2).
    pub fn is_failed(self) -> bool {
        use ClusterStatus::*;
        matches!(
            self,
            CREATE_FAILED | UPDATE_FAILED | DELETE_FAILED | ROLLBACK_FAILED | RESUME_FAILED
        )
    }

    pub fn is_in_progress(self) -> bool {
        self.as_str().ends_with("_IN_PROGRESS")
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

/// A cluster row. `node_count`/`master_count` are derived from its nodegroups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub uuid: ClusterId,
    pub name: String,
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub cluster_template_id: TemplateId,
    pub keypair: Option<String>,
    pub docker_volume_size: Option<i64>,
    pub labels: Labels,
    pub master_flavor_id: Option<String>,
    pub flavor_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub floating_ip_enabled: bool,
    pub master_lb_enabled: bool,
    pub create_timeout: i64,
    pub discovery_url: Option<String>,
    pub status: ClusterStatus,
    pub status_reason: Option<String>,
    pub health_status: Option<String>,
    pub health_status_reason: Option<BTreeMap<String, String>>,
    pub api_address: Option<String>,
    pub stack_id: Option<String>,
    pub coe_version: Option<String>,
    pub container_version: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// A nodegroup row (every cluster has `default-master` and `default-worker`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeGroup {
    /// Unique across shards (assigned at apply from the log index); 0 in rows written before.
    #[serde(default)]
    pub id: u64,
    pub uuid: NodeGroupId,
    pub name: String,
    pub cluster_id: ClusterId,
    pub project_id: ProjectId,
    pub docker_volume_size: Option<i64>,
    pub labels: Labels,
    pub flavor_id: Option<String>,
    pub image_id: Option<String>,
    pub node_addresses: Vec<String>,
    pub node_count: u32,
    pub role: String,
    pub min_node_count: u32,
    pub max_node_count: Option<u32>,
    pub is_default: bool,
    pub stack_id: Option<String>,
    pub status: Option<ClusterStatus>,
    pub status_reason: Option<String>,
    pub version: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
    /// Kubernetes labels of the nodes (microversion 1.14).
    #[serde(default)]
    pub node_labels: Labels,
    /// Kubernetes taints of the nodes (microversion 1.14).
    #[serde(default)]
    pub node_taints: Vec<Taint>,
}

/// A Kubernetes node taint (`effect` is NoSchedule, PreferNoSchedule or NoExecute).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

impl NodeGroup {
    pub fn is_master(&self) -> bool {
        self.role == "master"
    }
}

/// A cluster with its nodegroups, as queries return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub cluster: Cluster,
    pub nodegroups: Vec<NodeGroup>,
    /// The trustee, password opened: set only by the reconciler for its cloud calls, never in
    /// query results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trustee: Option<TrusteeRecord>,
    /// Labels of the cluster's template, set by a single-cluster query when the template lives
    /// in the same shard, so that rendering the cluster (`labels_overridden`, ...) needs no
    /// second read. Absent from older conductors: the reader then looks the template up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_labels: Option<Labels>,
}

impl ClusterView {
    pub fn node_count(&self) -> u32 {
        self.nodegroups
            .iter()
            .filter(|n| !n.is_master())
            .map(|n| n.node_count)
            .sum()
    }

    pub fn master_count(&self) -> u32 {
        self.nodegroups
            .iter()
            .filter(|n| n.is_master())
            .map(|n| n.node_count)
            .sum()
    }

    pub fn master_addresses(&self) -> Vec<String> {
        self.nodegroups
            .iter()
            .filter(|n| n.is_master())
            .flat_map(|n| n.node_addresses.iter().cloned())
            .collect()
    }

    pub fn node_addresses(&self) -> Vec<String> {
        self.nodegroups
            .iter()
            .filter(|n| !n.is_master())
            .flat_map(|n| n.node_addresses.iter().cloned())
            .collect()
    }
}

/// PEM material of a cluster (reference §9): the kubernetes, etcd and front-proxy CAs and the
/// conductor's client certificate. Private keys are sealed by the conductor (rows written before
/// sealing hold clear PEM; those also have only the kubernetes CA).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCerts {
    pub ca_cert: String,
    pub ca_key: String,
    pub client_cert: String,
    pub client_key: String,
    #[serde(default)]
    pub etcd_ca_cert: Option<String>,
    #[serde(default)]
    pub etcd_ca_key: Option<String>,
    #[serde(default)]
    pub front_proxy_ca_cert: Option<String>,
    #[serde(default)]
    pub front_proxy_ca_key: Option<String>,
    /// Kubernetes service-account key pair handed to the stack by a CA rotation (public PEM,
    /// sealed private PEM); `None` until the first rotation.
    #[serde(default)]
    pub service_account_key: Option<String>,
    #[serde(default)]
    pub service_account_private_key: Option<String>,
}

/// Which of a cluster's CAs a request names (`ca_cert_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaKind {
    #[default]
    Kubernetes,
    Etcd,
    FrontProxy,
}

impl CaKind {
    /// Magnum's mapping: `etcd`, `front_proxy`/`front-proxy`, anything else the cluster CA.
    pub fn from_param(v: Option<&str>) -> Self {
        match v {
            Some("etcd") => CaKind::Etcd,
            Some("front_proxy") | Some("front-proxy") => CaKind::FrontProxy,
            _ => CaKind::Kubernetes,
        }
    }
}

impl ClusterCerts {
    /// `(certificate PEM, sealed key)` of a CA; rows from before the etcd and front-proxy CAs
    /// existed answer with the kubernetes CA, as they used to.
    pub fn ca(&self, kind: CaKind) -> (&str, &str) {
        fn pick<'a>(c: &'a Option<String>, k: &'a Option<String>) -> Option<(&'a str, &'a str)> {
            Some((c.as_deref()?, k.as_deref()?))
        }
        let other = match kind {
            CaKind::Kubernetes => None,
            CaKind::Etcd => pick(&self.etcd_ca_cert, &self.etcd_ca_key),
            CaKind::FrontProxy => pick(&self.front_proxy_ca_cert, &self.front_proxy_ca_key),
        };
        other.unwrap_or((self.ca_cert.as_str(), self.ca_key.as_str()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    Create,
    Delete,
    /// `PATCH /v1/clusters/{id}` of `node_count`: a stack update of the worker count.
    Update,
    /// `POST /v1/clusters/{id}/nodegroups`: a separate stack for the new nodegroup.
    NodeGroupCreate,
    /// `DELETE /v1/clusters/{id}/nodegroups/{ng}`: the nodegroup's stack goes, then its row.
    NodeGroupDelete,
    /// `POST /v1/clusters/{id}/actions/upgrade`: a rolling stack update to a new kube_tag.
    Upgrade,
    /// `PATCH /v1/certificates/{id}`: new CAs, then a stack update.
    RotateCa,
    /// `PATCH /v1/credentials/{id}`: new trustee credentials, then a stack update.
    RotateCredential,
}

impl OpKind {
    /// The verb of the operation in messages ("Cluster <verb> timed out").
    pub fn verb(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            OpKind::Update => "update",
            OpKind::NodeGroupCreate => "nodegroup create",
            OpKind::NodeGroupDelete => "nodegroup delete",
            OpKind::Upgrade => "upgrade",
            OpKind::RotateCa => "CA rotation",
            OpKind::RotateCredential => "credential rotation",
        }
    }

    /// The action name Magnum uses in notifications (every change but create/delete is an
    /// update; nodegroup operations update their cluster).
    pub fn action(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            _ => "update",
        }
    }

    /// The failed status the operation's targets end in.
    pub fn failed_status(self) -> ClusterStatus {
        match self {
            OpKind::Create | OpKind::NodeGroupCreate => ClusterStatus::CREATE_FAILED,
            OpKind::Delete | OpKind::NodeGroupDelete => ClusterStatus::DELETE_FAILED,
            OpKind::Update | OpKind::Upgrade | OpKind::RotateCa | OpKind::RotateCredential => {
                ClusterStatus::UPDATE_FAILED
            }
        }
    }
}

/// What an upgrade moves its nodegroup to (the new template's version labels).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeSpec {
    pub template_id: TemplateId,
    /// The new template's labels (the cluster takes them when its default nodegroup upgrades).
    pub labels: Labels,
    /// The new template's `kube_tag`.
    pub kube_tag: String,
    pub max_batch_size: u32,
}

/// Where an operation stands. Each external side effect is intent → act → record, so a new
/// leader resumes from the last committed step and repeats at most one idempotent call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Create: certificates not yet committed.
    GenerateCerts,
    /// Create: intent to create the stack committed (`attempt` counts intents); the stack may or
    /// may not exist in Heat.
    CreateStack { stack_name: String, attempt: u32 },
    /// Create: stack id recorded; poll until terminal.
    WaitCreate { stack_id: String },
    /// Delete: intent to delete committed; the stack may or may not be gone.
    DeleteStack { attempt: u32 },
    /// Delete: delete requested; poll until gone.
    WaitDelete { stack_id: String },
    /// Update: intent to PATCH the stack with the nodegroups' counts committed; re-sending the
    /// same PATCH after a failover converges to the same stack.
    UpdateStack { attempt: u32 },
    /// Update: PATCH accepted; poll until the update ends.
    WaitUpdate { stack_id: String },
    /// Nodegroup create: intent to create the nodegroup's stack committed.
    CreateNodeGroupStack { attempt: u32 },
    /// Nodegroup create: stack id recorded on the nodegroup; poll until terminal.
    WaitNodeGroupCreate { stack_id: String },
    /// Nodegroup delete: intent to delete the nodegroup's stack committed.
    DeleteNodeGroupStack { attempt: u32 },
    /// Nodegroup delete: delete requested; poll until gone.
    WaitNodeGroupDelete { stack_id: String },
    /// CA rotation: new certificates not yet committed.
    RotateCerts,
    /// Create: the trustee user and the trust (find-or-create, so a repeat after a failover
    /// adopts what the first attempt made) not yet recorded.
    CreateTrustee,
    /// Delete: the stack is gone; the trustee user (and with it the trust) goes next.
    DeleteTrustee,
    /// Credential rotation: the trustee's new password not yet recorded.
    RotateTrusteePassword,
}

/// The one active operation of a cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: OpId,
    pub cluster: ClusterId,
    pub kind: OpKind,
    pub step: Step,
    pub started_at: Timestamp,
    /// Conductor-side deadline, enforced even if Heat's timeout doesn't fire.
    pub deadline: Timestamp,
    /// Template as it was when the operation started (it may live in another shard).
    pub template: ClusterTemplate,
    /// Deterministic Heat stack name for this cluster.
    pub stack_name: String,
    /// Transient errors seen so far (for backoff and status display); reset on progress.
    pub retries: u32,
    pub last_error: Option<String>,
    /// Update: let Heat roll back a failed update (`PATCH ?rollback=True`).
    #[serde(default)]
    pub rollback: bool,
    /// Update: the worker count to restore when the update call fails for good.
    #[serde(default)]
    pub restore_node_count: Option<u32>,
    /// Resize: servers (ids or names) to remove first, through the stack's removal policy.
    #[serde(default)]
    pub nodes_to_remove: Vec<String>,
    /// The nodegroup the operation acts on (nodegroup create/delete, resize, upgrade); `None`
    /// for the cluster's default nodegroups.
    #[serde(default)]
    pub nodegroup: Option<NodeGroupId>,
    /// Upgrade: the target versions.
    #[serde(default)]
    pub upgrade: Option<UpgradeSpec>,
    /// Create: who delegates the cluster's trust; dropped once the trust exists.
    #[serde(default)]
    pub trustor: Option<Trustor>,
}

/// The user a cluster's trust comes from (reference §7: the creating user, impersonated, with
/// their roles in the project). Keystone lets only the trustor create a trust, so the create
/// carries the user's token: in clear from the API node to the conductor, which seals it
/// before proposing, so the Raft log holds only ciphertext.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trustor {
    pub user_id: String,
    pub roles: Vec<String>,
    pub token: String,
}

impl fmt::Debug for Trustor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trustor")
            .field("user_id", &self.user_id)
            .field("roles", &self.roles)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A cluster's Keystone trustee: the user `<cluster_uuid>_<project_id>` in the trustee domain
/// and the trust delegated to it, handed to the nodes as the stack's `trustee_*` and `trust_id`
/// parameters. The password is sealed at rest.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrusteeRecord {
    pub user_id: String,
    pub username: String,
    pub domain_id: String,
    pub password: String,
    pub trust_id: String,
}

impl fmt::Debug for TrusteeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrusteeRecord")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("domain_id", &self.domain_id)
            .field("password", &"<redacted>")
            .field("trust_id", &self.trust_id)
            .finish()
    }
}

/// A CADF notification in a shard's outbox (reference §10), written by `apply()` in the same
/// command as the transition it reports, and removed once the shard leader delivered it. The
/// `id` is the idempotency key the sink receives: a redelivery after a failover repeats it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    /// `magnum.cluster.create` / `.update` / `.delete`.
    pub event_type: String,
    /// `INFO` for pending and success, `ERROR` for failure.
    pub priority: String,
    /// The CADF event.
    pub payload: serde_json::Value,
    pub at: Timestamp,
}

/// The stacks of a deleted cluster or nodegroup, remembered for the orphan-stack reaper
/// (`leader/reap.rs`): a leader paused before its stack create can wake after a new leader
/// deleted the cluster (or the nodegroup) and create the stack again. Only stacks named here,
/// in this project, are ever reaped: the names are deterministic from the cluster's or the
/// nodegroup's uuid, so no user's or other deployment's stack matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub cluster: ClusterId,
    /// Set when the tombstone is a nodegroup's (cluster version 4): its own stack is gone, and
    /// the cluster may live on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodegroup: Option<NodeGroupId>,
    pub project_id: ProjectId,
    /// The cluster stack's name, then those of its nodegroups' own stacks; or the one stack of
    /// the nodegroup.
    pub stacks: Vec<String>,
    pub deleted_at: Timestamp,
}

/// A tombstone's key: its cluster, and its nodegroup if it is a nodegroup's.
pub type TombstoneKey = (ClusterId, Option<NodeGroupId>);

impl Tombstone {
    pub fn key(&self) -> TombstoneKey {
        (self.cluster, self.nodegroup)
    }
}

/// Quota row (only resource `Cluster` exists).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Unique across shards: the creating log index × shard count + shard (never reused).
    #[serde(default)]
    pub id: u64,
    pub project_id: ProjectId,
    pub resource: String,
    pub hard_limit: u32,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// Default `[quotas]max_clusters_per_project`.
pub const DEFAULT_CLUSTER_QUOTA: u32 = 20;
