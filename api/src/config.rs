//! Configuration of an API node, and the runtime settings handlers read.
use crate::coe::{self, CoeRules, DriverDef};
use crate::version::{ApiVersion, DEFAULT_MAX_VERSION};
use std::net::SocketAddr;
use std::time::Duration;

/// Everything `serve` needs to run an API node.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Base URL for links and `Location` (e.g. `https://magnum.example.com:9511`); default:
    /// `http://<Host header>`.
    pub public_url: Option<String>,
    /// `host:port` of conductor service listeners (seeds; the rest is learned).
    pub conductors: Vec<String>,
    /// How long a forwarded command or query may keep retrying before answering 503.
    pub forward_deadline: Duration,
    /// Keystone v3 endpoint (also advertised in `WWW-Authenticate`).
    pub auth_url: String,
    pub service_user: String,
    pub service_password: String,
    pub service_project: String,
    pub service_domain: String,
    /// Catalog interface used for Glance/Nova/Neutron look-ups.
    pub endpoint_interface: String,
    pub region: Option<String>,
    /// How long a validated token is trusted without asking Keystone again (keystonemiddleware's
    /// `token_cache_time`). A revoked token keeps working until its entry expires.
    pub token_cache_ttl: Duration,
    /// How long a token Keystone called invalid (404) is refused without asking again; bursts
    /// of one bad token then cost one call. Errors reaching Keystone are never cached.
    pub invalid_token_cache_ttl: Duration,
    /// Timeout of one Keystone/Glance/Nova/Neutron call.
    pub openstack_timeout: Duration,
    pub max_version: ApiVersion,
    pub validation: ValidationSettings,
    /// `service_down_time`: a conductor whose last report is older is shown `down`.
    pub service_down_time: Duration,
    /// Requests served at once; more are answered 503 + `Retry-After` at once (Kubernetes'
    /// `--max-requests-inflight`), before memory, file descriptors or the conductors suffer.
    pub max_in_flight: usize,
    /// Open client connections; a new one beyond is closed at once.
    pub max_connections: usize,
    /// This node's certificate for calls to the conductors.
    pub tls: magnum_net::Tls,
}

/// Default of [`ApiConfig::max_in_flight`]. Measured on 2 cores with 3 conductors
/// (chaos-tests/tests/security.rs, 5,000 concurrent template creates): at 256 the conductors
/// missed heartbeats and terms moved (meta 2 → 8), creates took 6.5 s each and 40/s got
/// through; at 64 and 32 no term moved and ~60/s got through in 13–15 ms of recovery.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default of [`ApiConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Default of [`ApiConfig::token_cache_ttl`] (keystonemiddleware's is 300 s).
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);

/// Default of [`ApiConfig::invalid_token_cache_ttl`].
pub const DEFAULT_INVALID_TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// Default of `service_down_time`: six missed conductor heartbeats.
pub const DEFAULT_SERVICE_DOWN_TIME: Duration = Duration::from_secs(60);

impl ApiConfig {
    /// Defaults for everything but where to listen and which Keystone to trust.
    pub fn new(listen: SocketAddr, auth_url: impl Into<String>) -> Self {
        Self {
            listen,
            public_url: None,
            conductors: Vec::new(),
            forward_deadline: Duration::from_secs(10),
            auth_url: auth_url.into(),
            service_user: "magnum".into(),
            service_password: String::new(),
            service_project: "service".into(),
            service_domain: "Default".into(),
            endpoint_interface: "public".into(),
            region: None,
            token_cache_ttl: DEFAULT_TOKEN_CACHE_TTL,
            invalid_token_cache_ttl: DEFAULT_INVALID_TOKEN_CACHE_TTL,
            openstack_timeout: Duration::from_secs(10),
            max_version: DEFAULT_MAX_VERSION,
            validation: ValidationSettings::default(),
            service_down_time: DEFAULT_SERVICE_DOWN_TIME,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: magnum_net::Tls::plain(),
        }
    }
}

impl Default for ApiConfig {
    /// Magnum's port on all interfaces, Keystone on localhost.
    fn default() -> Self {
        Self::new(
            SocketAddr::from(([0, 0, 0, 0], 9511)),
            "http://127.0.0.1:5000/v3",
        )
    }
}

/// Upstream's `[api] max_limit` default.
pub const DEFAULT_MAX_LIMIT: u64 = 1000;

/// Upstream's `[cluster_heat] create_timeout` default, in minutes.
pub const DEFAULT_CREATE_TIMEOUT_MINUTES: i64 = 60;

/// Far above what a project uses (tens), low enough that one project's labels stay in
/// the tens of MiB.
pub const DEFAULT_MAX_TEMPLATES_PER_PROJECT: u32 = 200;

/// Knobs of request validation that Magnum reads from its config file.
#[derive(Clone, Debug)]
pub struct ValidationSettings {
    /// `[api] max_limit`: the most items one page of a listing holds.
    pub max_limit: usize,
    /// `[cluster_heat] create_timeout`: minutes a cluster create may take when the request
    /// names none.
    pub default_create_timeout: i64,
    /// COE validators (network/volume drivers, server types).
    pub coe_rules: Vec<CoeRules>,
    /// Available cluster drivers.
    pub drivers: Vec<DriverDef>,
    /// `[cinder] default_boot_volume_size`.
    pub default_boot_volume_size: i64,
    /// Added to the create timeout for the conductor-side deadline of a create operation.
    pub deadline_slack: Duration,
    /// Conductor-side deadline of a delete operation.
    pub delete_timeout: Duration,
    /// Attempts of a template PATCH that loses a version race.
    pub update_attempts: u32,
    /// Largest `node_count` of a nodegroup (create, PATCH, resize): a million was accepted
    /// and sent to Heat. Default 5000, Kubernetes' documented largest cluster.
    pub max_node_count: i64,
    /// Largest `master_count` (odd, as upstream requires). Default 7, etcd's largest advised.
    pub max_master_count: i64,
    /// Most cluster templates one project may own (`--max-templates-per-project`): each
    /// carries up to 64 KiB of labels, and upstream bounds neither. Checked by the shard's
    /// apply, so concurrent creates cannot both slip under it.
    pub max_templates_per_project: u32,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        Self {
            max_limit: DEFAULT_MAX_LIMIT as usize,
            default_create_timeout: DEFAULT_CREATE_TIMEOUT_MINUTES,
            coe_rules: coe::default_rules(),
            drivers: coe::default_drivers(),
            default_boot_volume_size: 0,
            deadline_slack: Duration::from_secs(600),
            delete_timeout: Duration::from_secs(70 * 60),
            update_attempts: 3,
            max_node_count: 5000,
            max_master_count: 7,
            max_templates_per_project: DEFAULT_MAX_TEMPLATES_PER_PROJECT,
        }
    }
}

/// What handlers need at run time.
#[derive(Clone, Debug)]
pub struct Settings {
    pub public_url: Option<String>,
    /// Advertised in 401 answers: `Keystone uri="<auth_url>"`.
    pub auth_url: String,
    pub max_version: ApiVersion,
    pub validation: ValidationSettings,
    /// See [`ApiConfig::service_down_time`].
    pub service_down_time: Duration,
}

impl Settings {
    pub fn new(auth_url: impl Into<String>) -> Self {
        Self {
            public_url: None,
            auth_url: auth_url.into(),
            max_version: DEFAULT_MAX_VERSION,
            validation: ValidationSettings::default(),
            service_down_time: DEFAULT_SERVICE_DOWN_TIME,
        }
    }

    pub fn from_config(cfg: &ApiConfig) -> Self {
        Self {
            public_url: cfg
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            auth_url: cfg.auth_url.clone(),
            max_version: cfg.max_version,
            validation: cfg.validation.clone(),
            service_down_time: cfg.service_down_time,
        }
    }

    pub fn www_authenticate(&self) -> String {
        format!("Keystone uri=\"{}\"", self.auth_url)
    }
}
