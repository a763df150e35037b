//! One data shard's replicated state: the deterministic state machine (`state` and its
//! per-concern files), the rows it persists (`rows`, encoded by `persist`), and the glue to the
//! Raft state machine store (`logic`). No clock, no randomness, no I/O beyond the store. Depends
//! on nothing else in the crate: the leader's loops, the service and membership all build on it.
mod advance;
pub mod aggregate;
mod catalog;
mod clusters;
mod federation;
pub mod logic;
pub mod messages;
pub mod migrate;
mod nodegroups;
mod notify;
pub mod persist;
mod queries;
pub mod reseal;
mod rotate;
pub mod rows;
mod state;
mod sync;
mod update;
mod upgrade;

pub use logic::ShardLogic;
pub use rows::{Key, Rows};
pub use state::ShardState;

#[cfg(test)]
pub(crate) mod ng_tests;
#[cfg(test)]
pub(crate) mod rows_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust_tests;
#[cfg(test)]
mod update_tests;
