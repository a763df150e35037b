//! Shared state of the router: the three seams and the settings.
use crate::auth::Authenticator;
use crate::backend::Backend;
use crate::config::Settings;
use crate::lookups::Lookups;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn Backend>,
    pub auth: Arc<dyn Authenticator>,
    pub lookups: Arc<dyn Lookups>,
    pub settings: Arc<Settings>,
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
        }
    }
}
