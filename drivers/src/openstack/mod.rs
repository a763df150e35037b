//! Clients of the OpenStack services the conductor and the API talk to: Keystone v3 (service
//! session, token validation, trustee users and trusts), Heat v1 (stacks), and the
//! Glance/Nova/Neutron look-ups that template validation needs. All share one [`HttpClient`] (no redirects, timeouts) and take a
//! [`TokenProvider`].

mod catalog;
mod glance;
mod heat;
mod http;
mod identity;
mod keystone;
mod neutron;
mod nova;
mod session;

pub use catalog::{Catalog, CatalogEndpoint, CatalogService, Interface};
pub use glance::{Image, ImageClient};
pub use heat::{
    heat_url_for_project, status_of, CreateStack, DeleteOutcome, HeatClient, HeatResult,
    HeatStatus, Stack, StackAction, StackRef, StackState, StackSummary, UpdateStack,
};
pub use http::{
    HttpClient, HttpConfig, StaticToken, TokenProvider, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
};
pub use identity::{Trust, User};
pub use keystone::{Domain, KeystoneClient, PasswordCredentials, Token};
pub use neutron::{Network, NetworkClient, Subnet};
pub use nova::{ComputeClient, Flavor, Keypair};
pub use session::{
    ServiceSession, TokenCache, TokenValidator, DEFAULT_TOKEN_CACHE_CAPACITY,
    DEFAULT_TOKEN_CACHE_TTL, REFRESH_MARGIN,
};
