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
    pub token_cache_ttl: Duration,
    /// Timeout of one Keystone/Glance/Nova/Neutron call.
    pub openstack_timeout: Duration,
    pub max_version: ApiVersion,
    pub validation: ValidationSettings,
    /// `service_down_time`: a conductor whose last report is older is shown `down`.
    pub service_down_time: Duration,
}

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
            token_cache_ttl: Duration::from_secs(60),
            openstack_timeout: Duration::from_secs(10),
            max_version: DEFAULT_MAX_VERSION,
            validation: ValidationSettings::default(),
            service_down_time: DEFAULT_SERVICE_DOWN_TIME,
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

/// Knobs of request validation that Magnum reads from its config file.
#[derive(Clone, Debug)]
pub struct ValidationSettings {
    /// `[api] max_limit`.
    pub max_limit: usize,
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
}

impl Default for ValidationSettings {
    fn default() -> Self {
        Self {
            max_limit: 1000,
            coe_rules: coe::default_rules(),
            drivers: coe::default_drivers(),
            default_boot_volume_size: 0,
            deadline_slack: Duration::from_secs(600),
            delete_timeout: Duration::from_secs(70 * 60),
            update_attempts: 3,
            max_node_count: 5000,
            max_master_count: 7,
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
