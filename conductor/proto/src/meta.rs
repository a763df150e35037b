//! Messages of the meta group (Raft group 0) that travel between nodes: the conductor registry
//! behind `GET /v1/mservices`, and the conductor membership and replica placement that
//! `magnum manage` changes.
use crate::ids::NodeId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
}

/// Answer of a [`MetaRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    Service(ServiceRecord),
    Node(NodeEntry),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaQuery {
    Services,
    Placement,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaQueryResult {
    /// Every registered conductor, by id.
    Services(Vec<ServiceRecord>),
    Placement(PlacementView),
}
