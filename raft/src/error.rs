//! The crate's error types.

use crate::types::{NodeAddr, NodeId};

/// Errors of node/group lifecycle and storage.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("invalid raft config: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("data dir belongs to node {found}, not {expected}")]
    NodeIdMismatch { expected: NodeId, found: NodeId },
    #[error("on-disk data version {0} is newer than this build supports")]
    DataVersion(u8),
    #[error("data upgrade: {0}")]
    Upgrade(String),
    #[error("group {0} is already open on this node")]
    GroupAlreadyOpen(u64),
    #[error("state machine load failed: {0}")]
    Load(String),
    #[error("initialize rejected: {0}")]
    Initialize(String),
    #[error("raft node is shut down")]
    ShutDown,
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// Not done now, may be later (a leadership transfer to a node not caught up).
    #[error("not ready: {0}")]
    NotReady(String),
}

impl From<std::io::Error> for RaftError {
    fn from(e: std::io::Error) -> Self {
        RaftError::Storage(e.to_string())
    }
}

/// Outcome of a proposal or a linearizable read that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Not proposed here: this replica is not the leader. Retry on `leader` if known.
    #[error("not leader; leader is {leader:?}")]
    NotLeader { leader: Option<(NodeId, NodeAddr)> },
    /// The proposal may or may not be committed (e.g. leader change mid-commit): retry only
    /// with an idempotency key the state machine deduplicates.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// This replica stopped (shutdown or storage failure). A pending write's outcome is unknown.
    #[error("raft group stopped: {0}")]
    Fatal(String),
}
