//! magnum-api: the Magnum v1 REST surface (service `container-infra`, `/v1`, port 9511).
//!
//! Owns: authentication (Keystone token → [`Identity`]), policy, microversions, request parsing
//! and validation with Magnum's messages, rendering rows into Magnum's JSON, forwarding each
//! mutation to the shard that owns the project with a fresh request id, and scatter-gather for
//! reads that span shards (public templates, admins' all-project views).
//!
//! Must not know: Raft, sled, Heat, or how conductors run operations. It talks to them only
//! through the [`Backend`] seam and the wire types of `magnum-proto`; Keystone and the
//! Glance/Nova/Neutron look-ups sit behind [`Authenticator`] and [`Lookups`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod backend;
pub mod coe;
pub mod config;
pub mod context;
pub mod error;
pub mod homes;
pub mod keystone;
pub mod lookups;
pub mod middleware;
pub mod names;
pub mod openapi;
pub mod openstack_lookups;
pub mod pagination;
pub mod patch;
pub mod policy;
pub mod pylit;
pub mod render;
pub mod routes;
pub mod server;
pub mod state;
pub mod store;
pub mod validate;
pub mod version;

pub use auth::{AuthError, Authenticator, Identity};
pub use backend::{Backend, BackendError};
pub use config::{
    ApiConfig, Settings, ValidationSettings, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT,
};
pub use error::ApiError;
pub use lookups::{Flavor, Image, Keypair, Lookup, LookupError, Lookups, Network, Subnet};
pub use magnum_drivers::openstack::Catalog;
pub use routes::router;
pub use server::{production_state, serve, serve_state, serve_state_limited, ApiServer};
pub use state::AppState;
pub use version::ApiVersion;
