//! Messages of the meta group (Raft group 0) that travel between nodes: the conductor registry
//! behind `GET /v1/mservices`, and the conductor membership and replica placement that
//! `magnum manage` changes.
use crate::ids::NodeId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What an operator declared a conductor to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Hosts replicas and may lead.
    Active,
    /// Hosts replicas but leads nothing: its leaderships are moved away (before an upgrade).
    Draining,
    /// Being removed: its replicas move to other nodes, then it is forgotten.
    Leaving,
}

/// A conductor of the deployment, with the addresses its peers use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub id: NodeId,
    /// `host:port` of its Raft listener.
    pub raft: String,
    /// `host:port` of its service listener.
    pub service: String,
    pub state: NodeState,
}

/// The meta group's view of where replicas are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementView {
    /// Replicas per data group wanted by the deployment (capped by the number of nodes).
    pub replicas: u32,
    pub shards: u32,
    pub nodes: Vec<NodeEntry>,
    /// Raft group id → nodes that host (or are being given) a replica of it.
    pub groups: BTreeMap<u64, Vec<NodeId>>,
}

/// The `binary` of every registry row.
pub const CONDUCTOR_BINARY: &str = "magnum-conductor";

/// One conductor in the registry (Magnum's `magnum_service` row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Stable small integer: the conductor's node id.
    pub id: u64,
    /// The node's service address (`host:port`).
    pub host: String,
    pub binary: String,
    pub report_count: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Crate version of the conductor that last reported.
    pub version: String,
    /// Feature version it supports (`version::FEATURE_VERSION`); rows and beats of releases
    /// before versioning decode as 1.
    #[serde(default = "base_version")]
    pub feature_version: u32,
    /// The API nodes this conductor heard from lately, as of its last heartbeat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_nodes: Vec<ApiNodeSeen>,
}

/// An API node a conductor heard from: its calls carry `wire::CALLER_HEADER`; `url` is empty
/// for API nodes before cluster versions, which do not say who they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiNodeSeen {
    pub url: String,
    pub feature_version: u32,
    /// Crate version; empty when unknown.
    pub version: String,
    pub last_seen: Timestamp,
}

/// How long an API node stays listed after a conductor last heard from it (an API node calls
/// at least every 5 s; a conductor reports every 10 s by default).
pub const API_NODE_WINDOW_SECS: i64 = 30;

/// The API nodes any conductor heard from within [`API_NODE_WINDOW_SECS`] of `now`, one entry
/// per URL (the latest), by URL.
pub fn recent_api_nodes<'a>(
    services: impl IntoIterator<Item = &'a ServiceRecord>,
    now: Timestamp,
) -> Vec<ApiNodeSeen> {
    let cutoff = now.plus_secs(-API_NODE_WINDOW_SECS);
    let mut by_url: BTreeMap<&str, &ApiNodeSeen> = BTreeMap::new();
    for s in services.into_iter().flat_map(|s| &s.api_nodes) {
        if s.last_seen < cutoff {
            continue;
        }
        let e = by_url.entry(&s.url).or_insert(s);
        if s.last_seen > e.last_seen {
            *e = s;
        }
    }
    by_url.into_values().cloned().collect()
}

impl ApiNodeSeen {
    /// How the operator reads it.
    pub fn name(&self) -> String {
        if self.url.is_empty() {
            "an API node before cluster versions".into()
        } else {
            format!("API node {}", self.url)
        }
    }
}

fn base_version() -> u32 {
    crate::version::BASE_VERSION
}

/// Meta-group mutations accepted from outside the group's own node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaRequest {
    /// Upsert the sender's registry row and count one more report; `at` is the sender's clock.
    Heartbeat {
        node: NodeId,
        host: String,
        version: String,
        at: Timestamp,
        #[serde(default = "base_version")]
        feature_version: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        api_nodes: Vec<ApiNodeSeen>,
    },
    /// Add a conductor to the deployment; replicas then move to it. Repeating it with the same
    /// addresses is a no-op.
    AddNode {
        id: NodeId,
        raft: String,
        service: String,
    },
    /// Drain (`Draining`), undrain (`Active`) or remove (`Leaving`) a conductor.
    SetNodeState { id: NodeId, state: NodeState },
    /// `magnum manage version finalize`: make `version` the active cluster version.
    SetClusterVersion { version: u32 },
}

/// Answer of a [`MetaRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    Service(ServiceRecord),
    Node(NodeEntry),
    /// The active cluster version after a `SetClusterVersion`.
    ClusterVersion(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaQuery {
    Services,
    Placement,
    /// The active cluster version (a conductor before versioning answers 400).
    ClusterVersion,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaQueryResult {
    /// Every registered conductor, by id.
    Services(Vec<ServiceRecord>),
    Placement(PlacementView),
    ClusterVersion(u32),
}

// The meta group's log: commands and what `apply` answers. They live here, beside the shard
// commands, so that one version table (`version.rs`) covers both.

/// Replicas per data group unless the bootstrap said otherwise.
pub const DEFAULT_REPLICAS: u32 = 3;

fn default_replicas() -> u32 {
    DEFAULT_REPLICAS
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub shards: u32,
    pub hash: String,
    /// Written by deployments bootstrapped before placement existed without it.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// The cluster version a fresh deployment starts at (the bootstrapping binary's feature
    /// version); not part of the stored row, which predates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_version: Option<u32>,
}

impl Bootstrap {
    /// Same shard layout: what a repeated bootstrap must agree on.
    pub fn same_layout(&self, other: &Self) -> bool {
        (self.shards, &self.hash, self.replicas) == (other.shards, &other.hash, other.replicas)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Fix the shard count and hash once; a repeat with the same values is a no-op.
    Bootstrap(Bootstrap),
    /// Upsert a conductor's registry row and count one more report. The time comes in the
    /// command so that `apply` stays deterministic.
    Heartbeat {
        node: u64,
        host: String,
        version: String,
        at: Timestamp,
        #[serde(default = "base_version")]
        feature_version: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        api_nodes: Vec<ApiNodeSeen>,
    },
    /// The first membership and placement: at bootstrap, or adopted from the Raft memberships
    /// of a deployment that predates placement. Only applies while no node is known.
    InitPlacement {
        nodes: Vec<NodeEntry>,
        /// Group id → replica set (`membership::placement::Placement`).
        placement: BTreeMap<u64, BTreeSet<NodeId>>,
    },
    AddNode {
        id: NodeId,
        raft: String,
        service: String,
    },
    SetNodeState {
        id: NodeId,
        state: NodeState,
    },
    /// Compare-and-set one group's replica set (the placement controller's steps).
    SetPlacement {
        group: u64,
        expected: BTreeSet<NodeId>,
        replicas: BTreeSet<NodeId>,
    },
    /// Drop a leaving node that no longer hosts anything.
    ForgetNode {
        id: NodeId,
    },
    /// Make `version` the active cluster version: never down; a repeat is a no-op. The leader
    /// proposes it only once every registered conductor reports at least `version` and
    /// `version::SET_CLUSTER_VERSION_DECODERS` (a conductor before versioning cannot decode it
    /// and its replica would halt).
    SetClusterVersion {
        version: u32,
    },
}

/// What a request from the network may propose: `MetaRequest` has only the variants clients
/// may send (bootstrap, placement and forgetting stay internal). `Err`: why it is bad input.
impl TryFrom<MetaRequest> for MetaCommand {
    type Error = String;

    fn try_from(req: MetaRequest) -> Result<Self, String> {
        Ok(match req {
            MetaRequest::Heartbeat {
                node,
                host,
                version,
                at,
                feature_version,
                api_nodes,
            } => MetaCommand::Heartbeat {
                node: node.0,
                host,
                version,
                at,
                feature_version,
                api_nodes,
            },
            MetaRequest::AddNode { id, raft, service } => {
                if raft.parse::<std::net::SocketAddr>().is_err()
                    || service.parse::<std::net::SocketAddr>().is_err()
                {
                    return Err(format!(
                        "addresses must be host:port with an IP address, got raft {raft:?} \
                         and service {service:?}"
                    ));
                }
                MetaCommand::AddNode { id, raft, service }
            }
            MetaRequest::SetNodeState { id, state } => MetaCommand::SetNodeState { id, state },
            MetaRequest::SetClusterVersion { version } => {
                MetaCommand::SetClusterVersion { version }
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaResponse {
    Ok(Bootstrap),
    Conflict(Bootstrap),
    Service(ServiceRecord),
    Node(NodeEntry),
    Done,
    /// Refused, with a message for the operator.
    Rejected(String),
    /// Answered by conductors before fail-stop (an undecodable entry now halts the group);
    /// kept so that their answers still decode during a rolling upgrade.
    Undecodable,
    /// The active cluster version after a `SetClusterVersion`.
    ClusterVersion(u32),
}
