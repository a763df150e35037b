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
    /// Change the conductor membership.
    #[command(subcommand)]
    Conductor(ConductorCommand),
    /// Binary and cluster versions of a rolling upgrade.
    #[command(subcommand)]
    Version(VersionCommand),
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
    #[arg(long, default_value = "127.0.0.1:9511")]
    pub listen: SocketAddr,
    /// Base URL for links (default: from the request's Host header).
    #[arg(long)]
    pub public_url: Option<String>,
    /// A conductor's service address (host:port); repeat for each.
    #[arg(long = "conductor", required = true)]
    pub conductors: Vec<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Args, Debug)]
pub struct ConductorArgs {
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
    /// Heat status poll interval.
    #[arg(long, default_value_t = 2000)]
    pub poll_interval_ms: u64,
    /// Status sync of clusters with no operation (reference §7.5); 0 disables it.
    #[arg(long, default_value_t = 10_000)]
    pub sync_interval_ms: u64,
    /// A cluster Heat leaves `*_IN_PROGRESS` this long (no operation) is failed by the conductor.
    #[arg(long, default_value_t = 3600)]
    pub stalled_after_secs: u64,
    /// Health polling of clusters (reference §7.4); 0 disables it.
    #[arg(long, default_value_t = 60_000)]
    pub health_interval_ms: u64,
    /// Where clusters' Kubernetes APIs are reached instead of their `api_address`, with
    /// `{stack_id}` / `{cluster_uuid}` substituted, e.g. cloud-sim's `http://H:P/sim/k8s/{stack_id}`.
    #[arg(long)]
    pub cluster_api_url: Option<String>,
    /// File with the 256-bit key (64 hex digits) that seals cluster private keys at rest; every
    /// conductor of a deployment needs the same one.
    #[arg(long, env = "MAGNUM_CERT_KEY_FILE")]
    pub cert_key_file: Option<PathBuf>,
    /// Where CADF notifications go: `log`, `file:PATH` (JSON lines) or an http(s) webhook URL.
    #[arg(long, env = "MAGNUM_NOTIFICATION_SINK", default_value = "log")]
    pub notification_sink: String,
    /// Keystone domain of cluster trustees (Magnum's `[trust] trustee_domain_name`): each
    /// cluster gets a trustee user there and a trust from its creator, and credential rotation
    /// works. Without it clusters get neither.
    #[arg(long, env = "MAGNUM_TRUSTEE_DOMAIN")]
    pub trustee_domain: Option<String>,
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
