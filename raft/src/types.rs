//! Identifiers, the node address, and the openraft type configuration.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A conductor node's Raft id. Never reuse an id for a node that starts from an empty log.
pub type NodeId = u64;

/// A Raft group id. The application decides the numbering (e.g. 0 = meta, 1..=S = data shards).
pub type GroupId = u64;

/// Where a node can be reached. This is openraft's `Node` type, so it is replicated inside
/// membership log entries: keep it small and backward compatible.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeAddr {
    /// `host:port` of the node's Raft RPC listener (the server of [`crate::RaftNode::router`]).
    pub raft: String,
    /// The node's service listener; opaque to this crate.
    pub service: String,
}

/// Application command bytes carried in a normal log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Payload(pub(crate) Vec<u8>);

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payload[{}B]", self.0.len())
    }
}

/// Application response bytes returned by `apply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Response(pub(crate) Vec<u8>);

openraft::declare_raft_types!(
    /// openraft type configuration shared by every group of this crate.
    pub(crate) TypeConfig:
        D = Payload,
        R = Response,
        NodeId = NodeId,
        Node = NodeAddr,
);

pub(crate) type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub(crate) type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub(crate) type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot is a file, streamed rather than held in memory (`storage::snapfile`).
pub(crate) type Snapshot =
    openraft::type_config::alias::SnapshotOf<TypeConfig, crate::storage::snapfile::SnapshotFile>;
pub(crate) type ORaftError<E = openraft::errors::Infallible> =
    openraft::errors::RaftError<TypeConfig, E>;
pub(crate) type ForwardToLeader = openraft::errors::ForwardToLeader<TypeConfig>;
