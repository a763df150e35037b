//! Multi-group Raft for the Magnum conductor: openraft 0.10 groups persisted in a key/value
//! engine (sled), talking over HTTP.
//!
//! This crate owns: one database per process with per-group log / meta / state-machine trees
//! and the durability contract (nothing is acknowledged to openraft before it is flushed); the
//! openraft glue (storage, network, snapshots); the Raft RPC transport (axum routes + a shared
//! reqwest pool, with a versioned envelope per message); and a small API to open groups,
//! propose, read linearizably and watch leadership. Storage sees the database only through a
//! narrow engine trait of ours (`storage::engine::KvEngine`); sled is its one implementation
//! (`storage::sled_engine`), so the engine can be replaced later.
//!
//! It must not know anything about Magnum, clusters, shards' meaning, Heat, or any HTTP API
//! other than Raft RPC: an application plugs in its deterministic [`StateMachineLogic`] and
//! decides what group ids mean.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backup;
mod codec;
mod config;
mod error;
mod failover;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod group;
mod logic;
mod metrics;
mod network;
mod node;
mod quiesce;
mod registry;
mod runtime;
mod storage;
mod types;
pub mod vote_audit;

pub use config::{Engine, RaftConfig};
pub use error::{RaftError, WriteError};
pub use group::{Group, GroupRole, GroupStatus, Halt, LogStats, EXIT_STORAGE_FAILURE};
pub use logic::{NoStoredRows, StateMachineLogic, StoredRows, WriteSet};
pub use metrics::{SnapshotCounts, METRICS_CONTENT_TYPE};
pub use node::RaftNode;
pub use runtime::DEFAULT_RAFT_THREADS;
pub use types::{GroupId, NodeAddr, NodeId};
