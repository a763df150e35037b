//! Wire contract between API nodes and conductors: the domain model that travels in commands and
//! query results, the per-shard command and query types, the stable project→shard hash, and the
//! forwarding client API nodes use to reach shard leaders.
//!
//! Owns: typed ids, resource rows, `ShardCommand`/`ShardQuery` and their results, the envelope and
//! protocol version, `shard_of`. Must not know: Raft, sled, Heat, HTTP routes of the public API.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod command;
pub mod federation;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod ids;
pub mod meta;
pub mod model;
pub mod operation;
pub mod query;
pub mod shard;
pub mod time;
pub mod version;
pub mod wire;

pub use client::{ClientError, ConductorClient};
pub use command::{
    CommandError, CommandOk, OpEvent, Origin, Resealed, SealedField, ShardCommand, ShardRequest,
    ShardResponse, StackOutputs, CANARY_MAX_KEY, CANARY_MAX_VALUE,
};
pub use federation::{Federation, FederationChange};
pub use ids::*;
pub use meta::{
    Bootstrap, MetaCommand, MetaQuery, MetaQueryResult, MetaReply, MetaRequest, NodeEntry,
    NodeState, PlacementView, ServiceRecord,
};
pub use model::*;
pub use operation::OperationRequest;
pub use query::{QueryResult, ShardQuery};
pub use shard::shard_of;
pub use time::Timestamp;
