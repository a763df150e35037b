//! Messages of the meta group (Raft group 0) that travel between nodes: the conductor registry
//! behind `GET /v1/mservices`.
use crate::ids::NodeId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

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
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaQuery {
    Services,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaQueryResult {
    /// Every registered conductor, by id.
    Services(Vec<ServiceRecord>),
}
