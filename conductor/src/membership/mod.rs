//! The conductors as a group: the meta group's state (registry, bootstrap, placement records:
//! `meta`), the pure placement rules (`placement`), the controller that moves replicas and
//! leadership one idempotent step at a time (`controller`), the replicas this node hosts and the
//! ownership loops it runs for them (`hosting`), and this node's registry heartbeat with the
//! API nodes it heard from (`api_nodes`), and the drain a graceful stop puts on the node and
//! lifts when it starts again (`stopping`).
pub mod api_nodes;
pub(crate) mod controller;
pub mod heartbeat;
pub(crate) mod hosting;
pub mod meta;
pub mod placement;
pub mod propose;
pub(crate) mod stopping;
