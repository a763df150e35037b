//! Command-line surface of the `magnum` binary.
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "magnum",
    version,
    about = "Magnum-compatible container infrastructure service with a Raft-replicated conductor"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up; boxing the conductor's many flags would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Magnum v1 REST API node (stateless).
    Api(ApiArgs),
    /// One conductor node (Raft replicas of the meta group and the data shards, reconcilers).
    Conductor(ConductorArgs),
    /// Local stand-in for Keystone, Heat, Glance, Nova and Neutron.
    CloudSim(CloudSimArgs),
    /// Everything on localhost in one process: cloud-sim + 3 conductors + 1 API node.
    Dev(DevArgs),
    /// Operator commands against a running deployment.
    #[command(subcommand)]
    Manage(ManageCommand),
}

#[derive(Subcommand, Debug)]
pub enum ManageCommand {
    /// Nodes, shards, replicas, leaders, terms, and each replica's commit and apply lag.
    Status {
        #[command(flatten)]
        target: Conductors,
        #[arg(long)]
        json: bool,
    },
    /// Compare every group's replicas by a digest of their state at the same applied index;
    /// exits non-zero naming group and replicas when one differs or fewer than two agree.
    Verify {
        #[command(flatten)]
        target: Conductors,
        #[arg(long)]
        json: bool,
    },
    /// Back up every group into a new directory: each from its leader at one applied index,
    /// then a manifest with checksums. Clients keep working meanwhile.
    Backup {
        /// A new or empty directory.
        out: PathBuf,
        #[command(flatten)]
        target: Conductors,
    },
    /// Write one initial conductor's data dir from a backup; run it for each initial conductor
    /// with the same --peer list, then start them (no --bootstrap needed). The whole backup is
    /// checked before anything is written.
    Restore {
        /// The directory `backup` wrote.
        backup: PathBuf,
        /// Only check the backup; write nothing.
        #[arg(long)]
        check: bool,
        /// The conductor's --data-dir (must not hold a deployment's data yet).
        #[arg(long, required_unless_present = "check")]
        data_dir: Option<PathBuf>,
        #[arg(long, required_unless_present = "check")]
        node_id: Option<u64>,
        /// `ID=RAFT_ADDR@SERVICE_ADDR` of every initial conductor of the new deployment, as
        /// they will be started; repeat.
        #[arg(long = "peer", required_unless_present = "check")]
        peers: Vec<String>,
        /// Replicas per shard in the new deployment (default: the backed-up deployment's).
        #[arg(long)]
        replicas: Option<u32>,
    },
    /// Change the conductor membership.
    #[command(subcommand)]
    Conductor(ConductorCommand),
    /// Binary and cluster versions of a rolling upgrade.
    #[command(subcommand)]
    Version(VersionCommand),
    /// The internal plane's CA and node certificates (mutual TLS between conductors, API
    /// nodes and operators; see SECURITY.md).
    #[command(subcommand)]
    Certs(CertsCommand),
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Create the deployment CA (ca.crt, ca.key) in a new directory; keep ca.key offline.
    Init {
        #[arg(long)]
        ca_dir: PathBuf,
    },
    /// Issue a node's certificate: writes ca.crt (the trust bundle), node.crt and node.key
    /// (0600) to --out, the directory the node is given as --tls-dir.
    Issue {
        #[arg(long)]
        ca_dir: PathBuf,
        /// conductor, api or operator.
        #[arg(long)]
        role: magnum_net::Role,
        /// The conductor's node id; any name for an API node or an operator.
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
        /// Hostnames or IPs added as SANs, for tools that check them (curl, openssl); magnum
        /// itself checks the identity, not the address. Repeat for each.
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = magnum_net::certs::NODE_DAYS)]
        days: i64,
    },
    /// Reissue the certificate in a node's directory (same identity, new key, current CA and
    /// bundle); the running node picks it up within 5 s, or at once on SIGHUP.
    Rotate {
        #[arg(long)]
        ca_dir: PathBuf,
        #[arg(long)]
        node_dir: PathBuf,
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = magnum_net::certs::NODE_DAYS)]
        days: i64,
    },
    /// Replace the CA. The bundle keeps the previous CA. Then `trust` every node, let them
    /// reload (5 s, or SIGHUP), then `rotate` every node.
    RotateCa {
        #[arg(long)]
        ca_dir: PathBuf,
    },
    /// Copy the CA dir's trust bundle into a node's directory (the node reloads it).
    Trust {
        #[arg(long)]
        ca_dir: PathBuf,
        #[arg(long)]
        node_dir: PathBuf,
    },
    /// The identity and expiry of the certificate in a node's directory.
    Show {
        #[arg(long)]
        node_dir: PathBuf,
    },
    /// A whole single-site PKI in one directory, each piece made once and kept: the CA (`ca/`),
    /// one certificate per conductor (`conductor-<id>/`), one for the API nodes (`api/`) and
    /// one for the operator (`operator/`), and with --sealing-key the conductors' sealing key.
    /// What `magnum dev` and the Compose deployment start from; the CA key sits beside the
    /// certificates, so for production issue them with `init` and `issue` instead.
    Local {
        #[arg(long)]
        dir: PathBuf,
        /// Conductor node ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        conductors: Vec<u64>,
        /// Also create this sealing key file (256 bits, 0600) if it does not exist.
        #[arg(long)]
        sealing_key: Option<PathBuf>,
    },
}

/// This process's certificate for the internal plane.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Directory with this node's certificate: ca.crt, node.crt, node.key (`magnum manage
    /// certs issue`). Reloaded when the files change and on SIGHUP.
    #[arg(long, env = "MAGNUM_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// `strict`: mutual TLS only (the default with --tls-dir). `permissive`: also accepts plain
    /// HTTP and falls back to it for peers not yet switched (turning TLS on in a running
    /// deployment). `plain`: no TLS; anyone who reaches the internal ports drives the
    /// conductors.
    #[arg(long, env = "MAGNUM_INTERNAL_TLS")]
    pub internal_tls: Option<magnum_net::Mode>,
}

#[derive(Subcommand, Debug)]
pub enum VersionCommand {
    /// Every conductor's crate and feature version, the active cluster version, and whether
    /// finalize is possible now (if not, which nodes lag).
    Show {
        #[command(flatten)]
        target: Conductors,
        #[arg(long)]
        json: bool,
    },
    /// Commit the highest cluster version every registered conductor supports (after the last
    /// node runs the new binary); refuses, naming the laggards, while one reports an older one.
    Finalize {
        #[command(flatten)]
        target: Conductors,
    },
}

/// Conductor service addresses to talk to (any one that answers will do).
#[derive(Args, Debug, Clone)]
pub struct Conductors {
    /// host:port, comma-separated.
    #[arg(
        long,
        env = "MAGNUM_CONDUCTORS",
        value_delimiter = ',',
        required = true
    )]
    pub conductors: Vec<String>,
    /// An operator certificate (`--role operator`).
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Subcommand, Debug)]
pub enum ConductorCommand {
    /// Add a conductor (started with `magnum conductor` without `--bootstrap`); returns once
    /// replicas are spread over it.
    Add {
        id: u64,
        /// host:port of its Raft listener.
        #[arg(long)]
        raft: String,
        /// host:port of its service listener.
        #[arg(long)]
        service: String,
        #[command(flatten)]
        target: Conductors,
        #[command(flatten)]
        wait: Wait,
    },
    /// Move every replica off a conductor and forget it; returns once it hosts nothing.
    Remove {
        id: u64,
        #[command(flatten)]
        target: Conductors,
        #[command(flatten)]
        wait: Wait,
    },
    /// Move every leadership off a conductor; returns once it leads nothing.
    Drain {
        id: u64,
        #[command(flatten)]
        target: Conductors,
        #[command(flatten)]
        wait: Wait,
    },
    /// Let a drained conductor lead again.
    Undrain {
        id: u64,
        #[command(flatten)]
        target: Conductors,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Args, Debug, Clone, Copy)]
pub struct Wait {
    /// Give up waiting after this many seconds (the change itself goes on).
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Return as soon as the change is recorded.
    #[arg(long)]
    pub no_wait: bool,
}

/// Service credentials for Keystone.
#[derive(Args, Debug, Clone)]
pub struct AuthArgs {
    /// Keystone v3 URL, e.g. http://127.0.0.1:5000/identity/v3
    #[arg(long, env = "MAGNUM_AUTH_URL")]
    pub auth_url: String,
    #[arg(long, env = "MAGNUM_SERVICE_USER", default_value = "magnum")]
    pub service_user: String,
    #[arg(long, env = "MAGNUM_SERVICE_PASSWORD")]
    pub service_password: String,
    #[arg(long, env = "MAGNUM_SERVICE_PROJECT", default_value = "service")]
    pub service_project: String,
    #[arg(long, env = "MAGNUM_SERVICE_DOMAIN", default_value = "Default")]
    pub service_domain: String,
    #[arg(long, env = "MAGNUM_REGION")]
    pub region: Option<String>,
}

#[derive(Args, Debug)]
pub struct ApiArgs {
    /// magnum.conf to read first (repeatable; a later file wins, and the command line wins
    /// over the files). Every key: deploy/magnum.conf.example.
    #[arg(long = "config-file", value_name = "FILE")]
    pub config_files: Vec<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:9511")]
    pub listen: SocketAddr,
    /// Base URL for links (default: from the request's Host header).
    #[arg(long)]
    pub public_url: Option<String>,
    /// A conductor's service address (host:port); repeat for each.
    #[arg(long = "conductor", required = true)]
    pub conductors: Vec<String>,
    /// Requests served at once; more are answered 503 with Retry-After (and Magnum's error
    /// envelope) at once instead of queueing.
    #[arg(long, default_value_t = magnum_api::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Open client connections; a new one beyond is closed at once. Above max-in-flight, so
    /// that a burst is answered 503 rather than refused at connect.
    #[arg(long, default_value_t = magnum_api::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most cluster templates one project may own; a create beyond is refused 403 (once the
    /// cluster version is 2: conductors of older releases do not check it).
    #[arg(long, default_value_t = magnum_api::config::DEFAULT_MAX_TEMPLATES_PER_PROJECT)]
    pub max_templates_per_project: u32,
    /// The most items one page of a listing holds, whatever `limit` asks (upstream's
    /// `[api] max_limit`).
    #[arg(long, default_value_t = magnum_api::config::DEFAULT_MAX_LIMIT,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_limit: u64,
    /// Minutes a cluster create may take when the request names no `create_timeout`
    /// (upstream's `[cluster_heat] create_timeout`).
    #[arg(long, default_value_t = magnum_api::config::DEFAULT_CREATE_TIMEOUT_MINUTES,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub default_create_timeout: i64,
    /// An API node certificate (`--role api`).
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub token_cache: TokenCacheArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// How long the API trusts Keystone's answers about user tokens.
#[derive(Args, Debug, Clone)]
pub struct TokenCacheArgs {
    /// Seconds a validated token is trusted without asking Keystone again (keystonemiddleware's
    /// `token_cache_time`, 300 there). Trade-off: a revoked token, or one of a disabled user,
    /// keeps working until its entry expires; longer saves Keystone calls, 0 asks every time.
    #[arg(long, default_value_t = magnum_api::config::DEFAULT_TOKEN_CACHE_TTL.as_secs())]
    pub token_cache_ttl_secs: u64,
    /// Seconds a token Keystone answered 404 for is refused (401) without asking again, so a
    /// burst of one bad token costs one call; 0 disables. Keystone errors (5xx, timeouts) are
    /// never cached.
    #[arg(long, default_value_t = magnum_api::config::DEFAULT_INVALID_TOKEN_CACHE_TTL.as_secs())]
    pub invalid_token_cache_ttl_secs: u64,
}

impl Default for TokenCacheArgs {
    fn default() -> Self {
        Self {
            token_cache_ttl_secs: magnum_api::config::DEFAULT_TOKEN_CACHE_TTL.as_secs(),
            invalid_token_cache_ttl_secs: magnum_api::config::DEFAULT_INVALID_TOKEN_CACHE_TTL
                .as_secs(),
        }
    }
}

impl TokenCacheArgs {
    pub fn ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.token_cache_ttl_secs)
    }

    pub fn invalid_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.invalid_token_cache_ttl_secs)
    }
}

#[derive(Args, Debug)]
pub struct ConductorArgs {
    /// magnum.conf to read first (repeatable; a later file wins, and the command line wins
    /// over the files). Every key: deploy/magnum.conf.example.
    #[arg(long = "config-file", value_name = "FILE")]
    pub config_files: Vec<PathBuf>,
    #[arg(long)]
    pub node_id: u64,
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub raft_listen: SocketAddr,
    #[arg(long)]
    pub service_listen: SocketAddr,
    /// `ID=RAFT_ADDR@SERVICE_ADDR` of this node and of the deployment's first conductors (the
    /// voters a bootstrap starts with, and where a joining node sends its heartbeats); repeat.
    #[arg(long = "peer", required = true)]
    pub peers: Vec<String>,
    /// Data shards of a fresh deployment (fixed at bootstrap).
    #[arg(long, default_value_t = 16)]
    pub shards: u32,
    /// Replicas per data shard of a fresh deployment (fixed at bootstrap).
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// Initialize the Raft groups: only on a fresh deployment's first start.
    #[arg(long)]
    pub bootstrap: bool,
    /// `--bootstrap` when the data dir holds no Raft state yet: one command line for a bootstrap
    /// node's first start and every restart (Compose, Kubernetes). A node whose disk was lost
    /// must be removed and added again instead (`magnum manage conductor remove/add`).
    #[arg(long, conflicts_with = "bootstrap")]
    pub bootstrap_if_new: bool,
    /// Heat status poll interval.
    #[arg(long, default_value_t = 2000)]
    pub poll_interval_ms: u64,
    /// Status sync of clusters with no operation (reference §7.5); 0 disables it.
    #[arg(long, default_value_t = 10_000)]
    pub sync_interval_ms: u64,
    /// How often status sync looks at a finished cluster's stack that nothing moved lately
    /// (its rows unchanged this long); 0: every sync round.
    #[arg(long, default_value_t = 900)]
    pub idle_sync_interval_secs: u64,
    /// A cluster Heat leaves `*_IN_PROGRESS` this long (no operation) is failed by the conductor.
    #[arg(long, default_value_t = 3600)]
    pub stalled_after_secs: u64,
    /// Health polling of clusters (reference §7.4); 0 disables it.
    #[arg(long, default_value_t = 60_000)]
    pub health_interval_ms: u64,
    /// The orphan-stack reaper's first look under a deleted cluster's stack names, this long
    /// after the delete (then at doubling ages); 0 disables the reaper.
    #[arg(long, default_value_t = 60)]
    pub orphan_stack_grace_secs: u64,
    /// How long a deleted cluster's stack names are watched for orphan stacks.
    #[arg(long, default_value_t = 86_400)]
    pub orphan_stack_retention_secs: u64,
    /// Where clusters' Kubernetes APIs are reached instead of their `api_address`, with
    /// `{stack_id}` / `{cluster_uuid}` substituted, e.g. cloud-sim's `http://H:P/sim/k8s/{stack_id}`.
    #[arg(long)]
    pub cluster_api_url: Option<String>,
    /// File with the 256-bit key (64 hex digits) that seals cluster private keys at rest; every
    /// conductor of a deployment needs the same one.
    #[arg(long, env = "MAGNUM_CERT_KEY_FILE")]
    pub cert_key_file: Option<PathBuf>,
    /// A sealing key being rotated out (repeatable): it opens what it sealed but never seals,
    /// and the shard leaders re-seal under `--cert-key-file` what only it opens (SECURITY.md,
    /// "Rotating the sealing key").
    #[arg(long = "previous-cert-key-file")]
    pub previous_cert_key_files: Vec<PathBuf>,
    /// Where CADF notifications go: `log`, `file:PATH` (JSON lines) or an http(s) webhook URL.
    #[arg(long, env = "MAGNUM_NOTIFICATION_SINK", default_value = "log")]
    pub notification_sink: String,
    /// Keystone domain of cluster trustees (Magnum's `[trust] trustee_domain_name`): each
    /// cluster gets a trustee user there and a trust from its creator, and credential rotation
    /// works. Without it clusters get neither.
    #[arg(long, env = "MAGNUM_TRUSTEE_DOMAIN")]
    pub trustee_domain: Option<String>,
    /// Requests the service listener serves at once; more are answered 503 + Retry-After.
    #[arg(long, default_value_t = magnum_conductor::node::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// INSECURE, benchmarks only (the scale bench's `--reuse-cert-keys`): cluster certificate
    /// keys are taken in turn from this file of PKCS#8 RSA-2048 PEMs instead of generated, so
    /// clusters share CA keys. Hidden, and not a magnum.conf key: no deployment should set it.
    #[arg(long, value_name = "FILE", hide = true)]
    pub insecure_bench_key_pool: Option<PathBuf>,
    /// A conductor certificate (`--role conductor --name <node id>`).
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub raft: RaftArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Raft timing. A follower starts an election after a random timeout in [min, max] without a
/// heartbeat; a heartbeat RPC must complete (including the follower's fsync) within 3/4 of the
/// heartbeat interval. Unset values take `magnum_raft::RaftConfig::default()`.
#[derive(Args, Debug, Clone)]
pub struct RaftArgs {
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    #[arg(long)]
    pub election_min_ms: Option<u64>,
    #[arg(long)]
    pub election_max_ms: Option<u64>,
    /// Build a snapshot of a group every this many applied entries (default 5000).
    #[arg(long)]
    pub snapshot_logs: Option<u64>,
    /// Append every vote change to DATA_DIR/raft/vote-audit.log, fsynced before the vote is
    /// stored (crash tests check it: no node votes twice in a term).
    #[arg(long)]
    pub vote_audit: bool,
    /// Worker threads of the Raft runtime, which runs nothing but consensus (default 2).
    #[arg(long)]
    pub raft_threads: Option<usize>,
    /// Leave elections to openraft's random timeout after a silent leader's lease, instead of
    /// the survivors asking for a pre-vote in turn as soon as it is over (for comparison).
    #[arg(long)]
    pub no_prompt_elections: bool,
    /// Keep idle groups heartbeating instead of letting them go quiet (for comparison).
    #[arg(long)]
    pub no_quiesce: bool,
    /// Send each Raft RPC on its own request instead of batching every group's per peer (for
    /// comparison).
    #[arg(long)]
    pub no_raft_batch: bool,
    /// Send each batch of Raft RPCs as its own request instead of as a frame of one long-lived
    /// stream per peer (for comparison).
    #[arg(long)]
    pub no_raft_stream: bool,
    /// Storage engine of a new data dir: `wal` (memory plus a write-ahead log with group
    /// commit) or `sled`. A data dir that holds Raft data keeps the engine it was written with.
    #[arg(long, default_value = "wal")]
    pub raft_engine: magnum_raft::Engine,
}

impl RaftArgs {
    pub fn config(&self) -> magnum_raft::RaftConfig {
        let d = magnum_raft::RaftConfig::default();
        magnum_raft::RaftConfig {
            heartbeat_ms: self.heartbeat_ms.unwrap_or(d.heartbeat_ms),
            election_min_ms: self.election_min_ms.unwrap_or(d.election_min_ms),
            election_max_ms: self.election_max_ms.unwrap_or(d.election_max_ms),
            snapshot_logs_since_last: self.snapshot_logs.unwrap_or(d.snapshot_logs_since_last),
            vote_audit: self.vote_audit,
            tls: d.tls,
            threads: self.raft_threads.unwrap_or(d.threads),
            prompt_elections: !self.no_prompt_elections,
            quiesce: !self.no_quiesce,
            exit_on_storage_failure: d.exit_on_storage_failure,
            batch: !self.no_raft_batch,
            stream: !self.no_raft_stream,
            engine: self.raft_engine,
        }
    }
}

#[derive(Args, Debug)]
pub struct CloudSimArgs {
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// Catalog entry of type container-infra (our API), e.g. http://127.0.0.1:9511/v1
    #[arg(long)]
    pub container_infra_url: Option<String>,
    /// Multiplies every simulated resource latency.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Persist simulated state here so cloud-sim can restart.
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Put this Heat (e.g. a real one, `http://127.0.0.1:18004/v1/admin`) in the catalog as the
    /// orchestration endpoint instead of cloud-sim's own; `%(tenant_id)s` is substituted.
    #[arg(long)]
    pub heat_url: Option<String>,
    /// Heat's `max_stacks_per_tenant`: live top-level stacks one project may have.
    #[arg(long, default_value_t = magnum_cloud_sim::DEFAULT_MAX_STACKS_PER_TENANT)]
    pub max_stacks_per_tenant: usize,
    /// Base URL the catalog advertises, e.g. http://cloud-sim:5000 on a Compose network
    /// (default: from --listen).
    #[arg(long)]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub quotas: NovaQuotaArgs,
    #[command(flatten)]
    pub keystone: SimKeystoneArgs,
    /// The `public` network's subnet, where floating IPs come from (IPv4, /8 to /28), e.g.
    /// 127.24.4.0/24 for addresses on this machine.
    #[arg(long, default_value = magnum_cloud_sim::DEFAULT_FLOATING_IP_RANGE)]
    pub floating_ip_range: String,
    /// Also seed projects bench-00000 .. bench-{N-1} in Keystone, the admin user holding
    /// admin, member and reader on each (for the scale benchmark; 0 = none).
    #[arg(long, default_value_t = 0)]
    pub bench_projects: usize,
}

/// An external Keystone whose tokens cloud-sim's Heat, Nova, Neutron and Glance accept.
#[derive(Args, Debug, Clone)]
pub struct SimKeystoneArgs {
    /// Validate the services' tokens with this Keystone v3 (e.g. http://127.0.0.1:15000/v3),
    /// as keystonemiddleware does, instead of with cloud-sim's own Keystone.
    #[arg(long)]
    pub keystone_url: Option<String>,
    /// cloud-sim's user there (admin or service role on --keystone-project).
    #[arg(long, default_value = "cloud-sim")]
    pub keystone_user: String,
    #[arg(long, env = "MAGNUM_SIM_KEYSTONE_PASSWORD", default_value = "")]
    pub keystone_password: String,
    #[arg(long, default_value = "service")]
    pub keystone_project: String,
    /// Domain (name) of that user and project.
    #[arg(long, default_value = "Default")]
    pub keystone_domain: String,
    /// How long a validation is reused (seconds; never past the token's expiry).
    #[arg(long, default_value_t = magnum_cloud_sim::DEFAULT_TOKEN_CACHE_TTL.as_secs())]
    pub keystone_cache_secs: u64,
}

impl Default for SimKeystoneArgs {
    fn default() -> Self {
        Self {
            keystone_url: None,
            keystone_user: "cloud-sim".into(),
            keystone_password: String::new(),
            keystone_project: "service".into(),
            keystone_domain: "Default".into(),
            keystone_cache_secs: magnum_cloud_sim::DEFAULT_TOKEN_CACHE_TTL.as_secs(),
        }
    }
}

impl SimKeystoneArgs {
    pub fn external(&self) -> Option<magnum_cloud_sim::ExternalKeystone> {
        let url = self.keystone_url.clone()?;
        Some(magnum_cloud_sim::ExternalKeystone {
            url,
            user: self.keystone_user.clone(),
            password: self.keystone_password.clone(),
            project: self.keystone_project.clone(),
            domain: self.keystone_domain.clone(),
            cache_ttl: std::time::Duration::from_secs(self.keystone_cache_secs),
        })
    }
}

/// The Nova quotas cloud-sim gives every project. A stack needing more servers than its
/// project has left fails as Heat does when Nova refuses one; an admin changes one project's
/// with `PUT /compute/v2.1/os-quota-sets/{project_id}`.
#[derive(Args, Debug, Clone)]
pub struct NovaQuotaArgs {
    /// Nova `instances` quota of every project (-1: unlimited). A stack needing more servers
    /// than its project has left fails as Heat does when Nova refuses one; an admin sets one
    /// project's with `PUT /compute/v2.1/os-quota-sets/{project_id}`.
    #[arg(long, default_value_t = magnum_cloud_sim::DEFAULT_QUOTA_INSTANCES,
        allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
    pub quota_instances: i64,
    /// Nova `cores` (vCPUs) quota of every project (-1: unlimited).
    #[arg(long, default_value_t = magnum_cloud_sim::DEFAULT_QUOTA_CORES,
        allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
    pub quota_cores: i64,
}

impl Default for NovaQuotaArgs {
    fn default() -> Self {
        Self {
            quota_instances: magnum_cloud_sim::DEFAULT_QUOTA_INSTANCES,
            quota_cores: magnum_cloud_sim::DEFAULT_QUOTA_CORES,
        }
    }
}

impl NovaQuotaArgs {
    pub fn quotas(&self) -> magnum_cloud_sim::NovaQuotas {
        magnum_cloud_sim::NovaQuotas {
            instances: self.quota_instances,
            cores: self.quota_cores,
        }
    }
}

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Where the conductors keep their data (reused across runs).
    #[arg(long, default_value = ".magnum-dev")]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 9511)]
    pub api_port: u16,
    #[arg(long, default_value_t = 5000)]
    pub cloud_sim_port: u16,
    /// First of the ports used by conductors (raft: BASE+1.., service: BASE+11..).
    #[arg(long, default_value_t = 7100)]
    pub conductor_port_base: u16,
    #[arg(long, default_value_t = 16)]
    pub shards: u32,
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
}
