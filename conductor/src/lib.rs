//! The conductor: the per-shard domain state machine, the meta group, and the loops that drive
//! each cluster's Heat stack from the shard leader.
//!
//! Folders by concern; dependencies point one way (ARCHITECTURE.md, "Codemap"):
//! `node` → `service` → `membership` → `leader` → `propose` → {`shard`, `cloud`, `pki`}.
//! `propose` (and `membership::propose`) are the only code that writes to a group's log.
//! Must not know: the public REST API's wire format (that is `magnum-api`), how Raft stores or
//! transports bytes (that is `magnum-raft`), HOT templates or Heat's HTTP API (that is
//! `magnum-drivers`).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backup;
pub mod cloud;
pub mod leader;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod pki;
pub mod propose;
pub mod service;
pub mod shard;
pub mod verify;

pub use shard::ShardState;
