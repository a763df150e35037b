//! Integration tests: each test runs its own simulator on an ephemeral port and talks HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod external;
mod faults;
mod heat;
mod keystone;
mod lookups;
mod requests;
mod trusts;
