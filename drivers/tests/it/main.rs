//! Integration tests of the OpenStack clients against small in-process axum mocks on 127.0.0.1.
//! (Full fidelity comes later from deploy/cloud-sim; these mocks only model what each test needs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod heat;
mod identity;
mod keystone;
mod lookups;
mod mock;
mod sim_drivers;
