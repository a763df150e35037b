//! Running an API node: production seams wired from [`ApiConfig`], an HTTP listener, and a
//! handle to stop it.
use crate::config::{ApiConfig, Settings};
use crate::error::ApiError;
use crate::keystone::{KeystoneAuthenticator, KeystoneSettings};
use crate::openstack_lookups::OpenStackLookups;
use crate::routes::router;
use crate::state::AppState;
use magnum_net::shed::InFlight;
use magnum_proto::wire::Caller;
use magnum_proto::ConductorClient;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running API node.
pub struct ApiServer {
    pub local_addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// Keeps this node known to the conductors (`announce`).
    announce: Option<JoinHandle<()>>,
}

impl ApiServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), and waits for the server
    /// task.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(a) = self.announce.take() {
            a.abort();
        }
        match (&mut self.task).await {
            Ok(()) => tracing::info!(addr = %self.local_addr, "magnum API stopped"),
            Err(e) => tracing::error!(error = %e, "API server task failed"),
        }
    }
}

/// The production state: conductors through [`ConductorClient`], Keystone, and the caller's
/// Glance/Nova/Neutron.
pub fn production_state(cfg: &ApiConfig) -> Result<AppState, ApiError> {
    production_parts(cfg).map(|(state, _)| state)
}

/// The production state and its conductor client. The client's calls carry this node's URL and
/// versions (`wire::CALLER_HEADER`), which conductors report to `magnum manage version show`.
fn production_parts(cfg: &ApiConfig) -> Result<(AppState, ConductorClient), ApiError> {
    if cfg.conductors.is_empty() {
        return Err(ApiError::Config("no conductor addresses given".into()));
    }
    let url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.listen));
    let backend = ConductorClient::new_as(
        cfg.conductors.clone(),
        cfg.forward_deadline,
        &Caller::Api { url },
        &cfg.tls,
    )
    .map_err(|e| ApiError::Config(e.to_string()))?;
    let auth = KeystoneAuthenticator::new(KeystoneSettings {
        auth_url: cfg.auth_url.clone(),
        user: cfg.service_user.clone(),
        password: cfg.service_password.clone(),
        project: cfg.service_project.clone(),
        domain: cfg.service_domain.clone(),
        cache_ttl: cfg.token_cache_ttl,
        timeout: cfg.openstack_timeout,
    })
    .map_err(ApiError::Config)?
    .with_invalid_token_ttl(cfg.invalid_token_cache_ttl);
    let lookups = OpenStackLookups::new(
        &cfg.endpoint_interface,
        cfg.region.clone(),
        cfg.openstack_timeout,
    )
    .map_err(ApiError::Config)?;
    let state = AppState::new(
        Arc::new(backend.clone()),
        Arc::new(auth),
        Arc::new(lookups),
        Settings::from_config(cfg),
    );
    Ok((state, backend))
}

/// How often an idle API node still calls a conductor, so that it stays in the conductors'
/// list of API nodes (`version show`, finalize) and its topology stays fresh.
const ANNOUNCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

async fn announce(client: ConductorClient) {
    let mut tick = tokio::time::interval(ANNOUNCE_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = client.refresh_topology().await {
            tracing::debug!(error = %e, "topology refresh failed; retrying next tick");
        }
    }
}

/// Binds `cfg.listen` and serves the API until [`ApiServer::shutdown`].
pub async fn serve(cfg: ApiConfig) -> Result<ApiServer, ApiError> {
    let (state, client) = production_parts(&cfg)?;
    let limits = magnum_net::Limits {
        max_connections: cfg.max_connections,
        ..magnum_net::Limits::default()
    };
    let mut server = serve_with(cfg.listen, state, cfg.max_in_flight, limits).await?;
    cfg.tls.spawn_reloader(server.stop.clone());
    server.announce = Some(tokio::spawn(announce(client)));
    Ok(server)
}

/// Serves a router built on `state` (for tests and embedders with their own seams).
pub async fn serve_state(listen: SocketAddr, state: AppState) -> Result<ApiServer, ApiError> {
    serve_state_limited(listen, state, crate::config::DEFAULT_MAX_IN_FLIGHT).await
}

/// [`serve_state`] with another bound of requests in flight.
pub async fn serve_state_limited(
    listen: SocketAddr,
    state: AppState,
    max_in_flight: usize,
) -> Result<ApiServer, ApiError> {
    let limits = magnum_net::Limits {
        max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
        ..magnum_net::Limits::default()
    };
    serve_with(listen, state, max_in_flight, limits).await
}

/// The public listener: plain HTTP (TLS for users terminates at the load balancer, as with
/// upstream's WSGI deployments), the connection cap and header-read timeout of every listener,
/// and at most `max_in_flight` requests at once; the rest get Magnum's 503 with Retry-After.
async fn serve_with(
    listen: SocketAddr,
    state: AppState,
    max_in_flight: usize,
    limits: magnum_net::Limits,
) -> Result<ApiServer, ApiError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ApiError::Bind {
            addr: listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ApiError::Bind {
        addr: listen,
        source,
    })?;
    let in_flight = InFlight::new(max_in_flight, "api", overloaded);
    let app = router(state).layer(axum::middleware::from_fn_with_state(
        in_flight,
        magnum_net::shed::layer,
    ));
    let stop = CancellationToken::new();
    let listener = magnum_net::serve(
        listener,
        app,
        axum::Router::new(),
        magnum_net::Tls::plain(),
        limits,
        stop.clone(),
    );
    tracing::info!(%local_addr, "magnum API listening");
    Ok(ApiServer {
        local_addr,
        stop,
        task: listener.task,
        announce: None,
    })
}

fn overloaded() -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::Unavailable("The service is overloaded. Please retry later.".into()).into_response()
}
