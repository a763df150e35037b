//! # magnum-cloud-sim
//!
//! A local stand-in for the OpenStack services Magnum's API and conductor talk to, faithful to
//! their wire formats, with latency and fault injection. One HTTP listener serves every
//! service under a devstack-like path prefix:
//!
//! | prefix | service |
//! |---|---|
//! | `/identity` (`/identity/v3/...`) | Keystone v3: discovery, `auth/tokens` (password, token, trust scope), `auth/catalog`, projects, domains, users (create, find, show, password PATCH, delete), `OS-TRUST/trusts` (create, list, show, delete) |
//! | `/heat-api/v1/{project_id}/...` | Heat v1: stacks, resources, events, outputs, simulated engine |
//! | `/image/v2/...` | Glance image look-ups |
//! | `/compute/v2.1/...` | Nova flavor and keypair look-ups, quota sets (`os-quota-sets/{project_id}`) |
//! | `/networking/v2.0/...` | Neutron network and subnet look-ups |
//! | `/sim/...` | the admin API below (no token) |
//!
//! ```no_run
//! # async fn demo() -> Result<(), magnum_cloud_sim::SimError> {
//! use magnum_cloud_sim::{serve, SimConfig};
//! let sim = serve(SimConfig { listen: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
//!     container_infra_url: None, time_scale: 0.01, ..SimConfig::default() }).await?;
//! println!("OS_AUTH_URL={}/identity/v3", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Seeded data (ids are stable across restarts)
//!
//! * Domain `default` (`Default`), and Magnum's trustee domain `magnum` (id = first 32 hex of
//!   `sha256("domain:magnum")`), empty until users are created in it. Projects `admin`, `demo`, `alt_demo`, `service`, each with
//!   id = first 32 hex digits of `sha256("project:" + name)` ([`project_id`]).
//! * Users (password `secret`, id = `sha256("user:" + name)`[..32], [`user_id`]): `admin`
//!   (admin, member, reader on `admin`), `demo` (member, reader on `demo`), `alt_demo` (member
//!   on `alt_demo`), `reader` (reader on `demo`), `magnum` (admin on `service`).
//! * With [`SimConfig::bench_projects`] N > 0, also projects `bench-00000` .. `bench-{N-1}`
//!   (ids as above), with `admin` holding admin, member and reader on each.
//! * Roles `admin`, `member`, `reader` (admin implies member implies reader, expanded in
//!   trust-scoped tokens as Keystone does). Region `RegionOne`.
//! * Users created with `POST /v3/users` (admin only) live in either domain, hold no role
//!   assignments, and get roles only through trusts; deleting one deletes its trusts and tokens.
//!   Seeded users cannot be deleted (403). `deploy/cloud-sim/KEYSTONE_DIFFERENCES.md` lists
//!   what differs from real Keystone.
//! * Images `fedora-coreos-40` (os_distro fedora-coreos), `fedora-atomic-29`, `coreos-stable`,
//!   `ubuntu-mesos`, `centos-dcos`, `fedora-ironic`, `cirros-no-distro` (no os_distro).
//! * Flavors `m1.tiny` (id 1, disk 1), `m1.small` (2, disk 20), `m1.medium` (3, disk 40),
//!   `m1.large` (4), `baremetal` (5), `m1.nodisk` (6, disk 0). Keypair `default`.
//! * Networks `public` (router:external, subnet `public-subnet` 172.24.4.0/24 or
//!   [`SimConfig::floating_ip_range`]: floating IPs come from it) and `private` (subnet
//!   `private-subnet` 10.0.0.0/24).
//!
//! ## External Keystone
//!
//! With [`SimConfig::keystone`] the services (Heat, Nova, Neutron, Glance) accept the tokens
//! of that Keystone instead of this one's, validated there as keystonemiddleware does (cached
//! [`ExternalKeystone::cache_ttl`]; 401 for an unknown token, 503 when Keystone cannot be
//! asked).
//!
//! ## Admin API (`/sim`)
//!
//! | call | effect |
//! |---|---|
//! | `GET /sim/health` | `{"status":"ok","base_url":...,"time_scale":...}` |
//! | `GET /sim/heat/stacks[?show_nested=true]` | every stack ever created, deleted ones too: `{"stacks":[{id,name,project_id,status,status_reason,action,parent,deleted,creation_time,updated_time,deletion_time,creates_by_name}],"creates_by_name":{name: n}}` where `creates_by_name` counts accepted `POST /stacks` (201) per stack name |
//! | `POST /sim/heat/latency` `{"resource_type":"OS::Nova::Server","action":"CREATE","seconds":5.0}` | base latency (before `time_scale`) of a resource type; `action` omitted or `"*"` = every action |
//! | `GET /sim/heat/latency` | the overrides |
//! | `POST /sim/heat/faults` | install a fault (201 `{"fault":{id,...}}`), see below |
//! | `GET /sim/heat/faults` / `DELETE /sim/heat/faults` | list / clear all faults |
//! | `POST /sim/heat/engine` `{"legacy_locking":true}` | legacy-engine locking: update of an `*_IN_PROGRESS` stack → 409 `ActionInProgress`, PATCH of a non-COMPLETE stack → 400 (default false = convergence: 202 and a new traversal) |
//! | `POST /sim/keystone/token_ttl` `{"seconds":N}` | lifetime of tokens issued from now on (default 3600) |
//! | `GET /sim/requests` | requests received per `METHOD service /path/template?query&keys` (ids and names as `{}`, query values dropped; `/sim/k8s/...` counted, the rest of `/sim` not): `{"requests":{"GET heat-api /v1/{}/stacks?global_tenant&id": n, ...}}` |
//! | `GET /sim/keystone/ledger` | created users and trusts, with counters: `{"users":[{id,name,domain_id}],"trusts":[{id,trustor_user_id,trustee_user_id,project_id}],"users_created":{name: n},"trusts_created":{trustee_user_id: n},"password_sets":{user_id: n}}` (`users` lists created users only; counters count accepted calls and survive deletes) |
//! | `POST /sim/reset` | forget all stacks, tokens, created users and trusts, ledger counters, request counts, faults, latency overrides, per-project Nova quotas; TTL back to default |
//! | `GET /sim/k8s/{stack_id}/healthz`, `/sim/k8s/{stack_id}/api/v1/nodes` | simulated Kubernetes API of a cluster's stack (health polling) |
//! | `POST /sim/k8s/{stack_id}` `{"healthz":..,"not_ready":[..],"reachable":false}` | override those answers |
//!
//! Faults (`count` = number of matching calls/actions affected, default 1, 0 = until cleared;
//! `method` omitted or `*` = any; `path_glob` is matched against the request path, `*` spans `/`):
//!
//! * `{"kind":"api_error","method":"POST","path_glob":"*/stacks","status":503,"count":2}`: the
//!   next matching calls answer `status` in the service's own error envelope, without side effect.
//! * `{"kind":"response_delay","method":"POST","path_glob":"*/stacks","seconds":5,"count":1}`:
//!   the request runs at once (side effect done), its response is held for `seconds`.
//! * `{"kind":"lost_response","method":"POST","path_glob":"*/stacks","count":1}`: the request
//!   runs (side effect done), then a 500 is answered instead of its response.
//! * `{"kind":"resource_fail","resource_type":"OS::Nova::Server","action":"CREATE","message":"...","error_type":"ResourceInError","count":1}`:
//!   the next matching resource action fails; the stack reason reads
//!   `Resource CREATE failed: ResourceInError: resources.<path>: <message>`.
//!
//! ## Nova quotas
//!
//! Every project has Nova's `instances` and `cores` quotas ([`NovaQuotas`], default 1000 and
//! 4000, -1 = unlimited; [`serve_with`] sets other defaults). `GET`/`PUT`/`DELETE
//! /compute/v2.1/os-quota-sets/{project_id}` (`{"quota_set":{"instances":N,"cores":N}}`,
//! writes admin-only; a limit below what is in use needs `"force":true`), `.../detail`
//! (`in_use`) and `.../defaults` work as in Nova. Before a stack create or update expands
//! anything, the `OS::Nova::Server` resources its definition needs (a `ResourceGroup`'s count
//! times its member's servers, so any count costs the same) are checked against what the
//! project has left (cores from the seeded flavors, else 1 per server); when they do not fit
//! the stack fails at once as real Heat does when Nova refuses the first server over quota:
//! `Resource CREATE failed: Forbidden: resources.kube_minions.resources[1000].resources.kube-minion:
//! Quota exceeded for instances: Requested 1, but already used 1000 of 1000 instances (HTTP 403)
//! (Request-ID: req-...)`. A stack with an action running is charged its whole definition;
//! otherwise the servers that exist in it (so a failed action's never-created servers are
//! not charged, and a deleted stack frees everything).
//!
//! ## Time
//!
//! `time_scale` multiplies every simulated latency (defaults: `OS::Nova::Server` create 2 s,
//! delete 1 s, other actions 0.5 s; `OS::Neutron::*` 0.2 s; `OS::Heat::*` 0.05 s; others 0.05 s;
//! `OS::Heat::TestResource` honours `wait_secs`/`action_wait_secs`) **and** stack timeouts
//! (`timeout_mins`, default 60), so the simulated cloud runs uniformly faster.

mod admin;
mod error;
mod faults;
mod heat;
mod k8s;
mod keystone;
mod lookups;
mod persist;
mod quota;
mod requests;
mod util;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use error::SimError;
pub use keystone::remote::{ExternalKeystone, DEFAULT_TOKEN_CACHE_TTL};
pub use lookups::DEFAULT_FLOATING_IP_RANGE;
pub use quota::{NovaQuotas, DEFAULT_QUOTA_CORES, DEFAULT_QUOTA_INSTANCES};

use crate::util::lock;

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Listen address, e.g. `127.0.0.1:5000` (port 0 = ephemeral).
    pub listen: SocketAddr,
    /// Catalog endpoint of service type `container-infra`, e.g. `http://127.0.0.1:9511/v1`.
    pub container_infra_url: Option<String>,
    /// Multiplies all simulated latencies and stack timeouts (1.0 = real-ish).
    pub time_scale: f64,
    /// Persist Heat stacks, Keystone tokens and created users and trusts here (JSON) and reload
    /// them at start.
    pub state_file: Option<PathBuf>,
    /// An external Heat to list in the catalog as `orchestration` instead of cloud-sim's own
    /// (`%(tenant_id)s` / `$(project_id)s` are substituted): the conductor then drives that Heat
    /// while cloud-sim still serves Keystone and the look-ups.
    pub heat_url: Option<String>,
    /// Heat's `max_stacks_per_tenant`: live top-level stacks a project may have.
    pub max_stacks_per_tenant: usize,
    /// The base URL the catalog advertises (e.g. `http://cloud-sim:5000` on a Compose network,
    /// where the listen address says nothing about how others reach it); `None`: from the
    /// listen address.
    pub public_url: Option<String>,
    /// Heat, Nova, Neutron and Glance accept the tokens of this Keystone (validated there, as
    /// keystonemiddleware does) instead of those of cloud-sim's own, which then serves only
    /// callers that ask it directly. Project ids are that Keystone's.
    pub keystone: Option<ExternalKeystone>,
    /// The `public` network's subnet, where floating IPs come from (IPv4, /8 to /28); `None`:
    /// [`DEFAULT_FLOATING_IP_RANGE`].
    pub floating_ip_range: Option<String>,
    /// Also seed projects `bench-00000` .. `bench-{N-1}` in the default domain, on each of which
    /// the user `admin` holds `admin`, `member` and `reader` (the scale benchmark spreads
    /// clusters over thousands of projects). 0: the devstack directory only. The directory is
    /// process-wide: every simulator of one process must ask for the same number.
    pub bench_projects: usize,
}

/// Default of [`SimConfig::max_stacks_per_tenant`] (Heat's own default is 100; ours leaves
/// room for the tests' projects).
pub const DEFAULT_MAX_STACKS_PER_TENANT: usize = 512;

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000),
            container_infra_url: None,
            time_scale: 1.0,
            state_file: None,
            heat_url: None,
            max_stacks_per_tenant: DEFAULT_MAX_STACKS_PER_TENANT,
            public_url: None,
            keystone: None,
            floating_ip_range: None,
            bench_projects: 0,
        }
    }
}

/// A running simulator. Dropping it stops the server (as [`SimHandle::shutdown`] does, without
/// waiting for in-flight requests).
pub struct SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    sim: Arc<Sim>,
    shutdown_tx: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stop accepting requests, let in-flight ones finish (up to 5 s), stop the engine and
    /// write the state file one last time.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
        self.stop_background();
        let sim = self.sim.clone();
        if sim.state_file.is_some() {
            let _ = tokio::task::spawn_blocking(move || persist::save(&sim)).await;
        }
    }

    fn stop_background(&mut self) {
        if let Some(w) = self.writer.take() {
            w.abort();
        }
        let tasks: Vec<_> = lock(&self.sim.runtime).tasks.drain().collect();
        for (_, (_, h)) in tasks {
            h.abort();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        let had_writer = self.writer.is_some();
        self.stop_background();
        if had_writer {
            if let Err(e) = persist::save(&self.sim) {
                tracing::warn!(error = %e, "saving state at drop failed");
            }
        }
    }
}

/// Shared state of one simulator instance.
pub(crate) struct Sim {
    pub(crate) base_url: String,
    pub(crate) container_infra_url: Option<String>,
    pub(crate) heat_url: Option<String>,
    pub(crate) max_stacks_per_tenant: usize,
    pub(crate) time_scale: f64,
    pub(crate) keystone: Mutex<keystone::tokens::TokenStore>,
    /// How the services check tokens (this Keystone's, or an external one's).
    pub(crate) token_check: keystone::TokenCheck,
    /// The seeded Neutron networks (the same `Arc` as in the Heat state).
    pub(crate) networks: Arc<lookups::SeedNetworks>,
    pub(crate) heat: Mutex<heat::HeatState>,
    pub(crate) runtime: Mutex<heat::Runtime>,
    pub(crate) faults: Mutex<faults::FaultSet>,
    pub(crate) k8s: Mutex<k8s::K8sState>,
    pub(crate) requests: Mutex<requests::Requests>,
    pub(crate) state_file: Option<PathBuf>,
    pub(crate) persist_notify: Notify,
    /// Quota limits of projects without their own.
    pub(crate) nova_defaults: NovaQuotas,
}

impl Sim {
    /// Keystone's public URL (for `WWW-Authenticate`).
    pub(crate) fn identity_uri(&self) -> String {
        format!("{}/identity", self.base_url)
    }

    /// Note that persisted state changed.
    pub(crate) fn changed(&self) {
        if self.state_file.is_some() {
            self.persist_notify.notify_one();
        }
    }
}

/// Project id of a seeded (or any) project name: `sha256("project:" + name)`, first 32 hex.
pub fn project_id(name: &str) -> String {
    keystone::project_id(name)
}

/// User id of a seeded user name: `sha256("user:" + name)`, first 32 hex.
pub fn user_id(name: &str) -> String {
    keystone::user_id(name)
}

/// Start the simulator with the default Nova quotas. Returns once the listener is bound.
pub async fn serve(cfg: SimConfig) -> Result<SimHandle, SimError> {
    serve_with(cfg, NovaQuotas::default()).await
}

/// [`serve`] with other default Nova quotas. (Not a [`SimConfig`] field: embedders build
/// that struct literally.)
pub async fn serve_with(cfg: SimConfig, quotas: NovaQuotas) -> Result<SimHandle, SimError> {
    // First: everything below (state load included) reads the directory.
    keystone::init_directory(cfg.bench_projects).map_err(SimError::Config)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| SimError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let host = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let base_url = match &cfg.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("http://{}", SocketAddr::new(host, local.port())),
    };
    let time_scale = if cfg.time_scale.is_finite() && cfg.time_scale >= 0.0 {
        cfg.time_scale
    } else {
        1.0
    };

    let floating = cfg
        .floating_ip_range
        .as_deref()
        .unwrap_or(DEFAULT_FLOATING_IP_RANGE);
    let networks = Arc::new(lookups::SeedNetworks::new(
        &util::floating_range(floating).map_err(SimError::Config)?,
    ));
    let token_check = match cfg.keystone.clone() {
        Some(k) => {
            keystone::TokenCheck::Remote(Box::new(keystone::remote::RemoteKeystone::new(k)?))
        }
        None => keystone::TokenCheck::Local,
    };
    let mut tokens = keystone::tokens::TokenStore::default();
    let mut heat_state = heat::HeatState::default();
    if let Some(path) = &cfg.state_file {
        if let Some((t, h, i)) = persist::load(path)? {
            tracing::info!(path = %path.display(), stacks = h.stacks.len(), users = i.users.len(), trusts = i.trusts.len(), "state loaded");
            tokens.tokens = t;
            tokens.ident = i;
            heat_state = h;
        }
    }
    heat_state.reindex();
    heat_state.networks = networks.clone();
    let sim = Arc::new(Sim {
        base_url: base_url.clone(),
        container_infra_url: cfg.container_infra_url.clone(),
        heat_url: cfg.heat_url.clone(),
        max_stacks_per_tenant: cfg.max_stacks_per_tenant,
        time_scale,
        keystone: Mutex::new(tokens),
        token_check,
        networks,
        heat: Mutex::new(heat_state),
        runtime: Mutex::new(heat::Runtime::default()),
        faults: Mutex::new(faults::FaultSet::default()),
        k8s: Mutex::new(k8s::K8sState::default()),
        requests: Mutex::new(requests::Requests::default()),
        state_file: cfg.state_file.clone(),
        persist_notify: Notify::new(),
        nova_defaults: quotas,
    });
    let writer = cfg
        .state_file
        .as_ref()
        .map(|_| persist::spawn_writer(sim.clone()));
    heat::engine::resume_all(&sim);

    let app = router(sim.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "cloud-sim server failed");
        }
    });
    let external_keystone = cfg.keystone.as_ref().map(|k| k.url.as_str());
    tracing::info!(%base_url, time_scale, ?quotas, floating, ?external_keystone, "cloud-sim listening");
    Ok(SimHandle {
        base_url,
        sim,
        shutdown_tx: Some(tx),
        server: Some(server),
        writer,
    })
}

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .merge(keystone::routes())
        .merge(heat::api::routes())
        .merge(lookups::routes())
        .merge(admin::routes())
        .merge(k8s::routes())
        .merge(requests::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            sim.clone(),
            faults::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            sim.clone(),
            requests::middleware,
        ))
        .layer(middleware::from_fn(request_context))
        .with_state(sim)
}

async fn not_found(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    req: Request,
) -> Response {
    SimError::for_path(
        req.uri().path(),
        StatusCode::NOT_FOUND,
        "The resource could not be found.",
        &sim.identity_uri(),
    )
    .into_response()
}

/// A tracing span and an `X-Openstack-Request-Id` for every request.
async fn request_context(req: Request, next: Next) -> Response {
    let rid = format!("req-{}", uuid::Uuid::new_v4());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %rid,
    );
    async move {
        let mut resp = next.run(req).await;
        tracing::debug!(status = resp.status().as_u16(), "response");
        if let Ok(v) = HeaderValue::from_str(&rid) {
            resp.headers_mut().insert("x-openstack-request-id", v);
        }
        resp
    }
    .instrument(span)
    .await
}
