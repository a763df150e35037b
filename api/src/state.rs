//! Shared state of the router: the three seams, the settings and the cluster→shard cache.
use crate::auth::Authenticator;
use crate::backend::Backend;
use crate::config::Settings;
use crate::homes::ClusterHomes;
use crate::lookups::Lookups;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn Backend>,
    pub auth: Arc<dyn Authenticator>,
    pub lookups: Arc<dyn Lookups>,
    pub settings: Arc<Settings>,
    /// The API node's only routing cache besides the client's leader map.
    pub homes: Arc<ClusterHomes>,
}

impl AppState {
    pub fn new(
        backend: Arc<dyn Backend>,
        auth: Arc<dyn Authenticator>,
        lookups: Arc<dyn Lookups>,
        settings: Settings,
    ) -> Self {
        Self {
            backend,
            auth,
            lookups,
            settings: Arc::new(settings),
            homes: Arc::default(),
        }
    }
}
