//! The conductor: the per-shard domain state machine, the meta group, and the reconcilers that
//! drive each cluster's Heat stack from the shard leader.
//!
//! Owns: `ShardState` (deterministic apply of every project-owned row), the ownership epoch,
//! durable operations and their reconciler, the conductor process (Raft groups + internal service
//! API). Must not know: the public REST API's wire format (that is `magnum-api`), how Raft stores
//! or transports bytes (that is `magnum-raft`), HOT templates or Heat's HTTP API (that is
//! `magnum-drivers`).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod aggregate;
pub mod certs;
pub mod cloud;
mod controller;
pub mod csr;
pub mod failpoints;
pub mod health;
pub mod heartbeat;
pub mod heat_cloud;
mod hosting;
pub mod logic;
pub mod messages;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod notify;
mod ownership;
pub mod persist;
pub mod placement;
pub mod reconciler;
pub mod sealing;
pub mod service;
pub mod state;
mod state_federation;
mod state_nodegroups;
mod state_notify;
mod state_rotate;
mod state_sync;
mod state_update;
mod state_upgrade;
pub mod sync;

pub use state::ShardState;

#[cfg(test)]
mod state_ng_tests;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod state_trust_tests;
