//! One conductor process: opens the meta group and the data-shard replicas the placement gives
//! it on one sled `Db`, serves Raft RPC and the service API on their own listeners, bootstraps a
//! fresh deployment, follows placement changes, runs the placement controller while it leads the
//! meta group, and a reconciler for every shard it leads once its ownership epoch is committed.
use crate::cloud::Cloud;
use crate::leader::LeaderConfig;
use crate::membership::api_nodes::ApiNodes;
use crate::membership::controller::Controller;
use crate::membership::heartbeat;
use crate::membership::hosting::Hosting;
use crate::membership::meta::{Bootstrap, MetaCommand, MetaState};
use crate::membership::placement;
use crate::membership::propose::MetaLeader;
use crate::membership::stopping;
use crate::propose::ProposeError;
use crate::service::{self, ServiceState};
use magnum_proto::version::{BASE_VERSION, FEATURE_VERSION};
use magnum_proto::{
    shard, CommandError, ConductorClient, NodeEntry, NodeId, NodeState, ShardResponse,
};
use magnum_raft::{Group, NodeAddr, RaftConfig, RaftNode};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum ConductorError {
    #[error("raft: {0}")]
    Raft(#[from] magnum_raft::RaftError),
    #[error("listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("data dir {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    /// A backup that cannot be taken or restored, and why.
    #[error("{0}")]
    Backup(String),
}

#[derive(Clone)]
pub struct ConductorConfig {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub raft_listen: SocketAddr,
    pub service_listen: SocketAddr,
    /// Every voter of a fresh deployment, this node included.
    pub peers: BTreeMap<u64, NodeAddr>,
    /// Data shard count for a fresh deployment; an existing one keeps what it was bootstrapped with.
    pub shards: u32,
    /// Replicas per data shard for a fresh deployment (fixed at bootstrap).
    pub replicas: u32,
    /// Initialize the groups (only on a fresh deployment's first start).
    pub bootstrap: bool,
    pub raft: RaftConfig,
    pub reconciler: LeaderConfig,
    pub cloud: Arc<dyn Cloud>,
    /// How often this node reports itself to the conductor registry (first beat at start).
    pub heartbeat_interval: Duration,
    /// Requests the service listener serves at once; more are answered 503 + Retry-After.
    /// Raft is on its own listener and never waits behind these.
    pub max_in_flight: usize,
}

/// Default of [`ConductorConfig::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Default of [`ConductorConfig::heartbeat_interval`].
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

pub struct Conductor {
    pub node: Arc<RaftNode>,
    pub meta: Group<MetaState>,
    hosting: Arc<Hosting>,
    pub raft_addr: SocketAddr,
    pub service_addr: SocketAddr,
    /// Reaches the meta leader wherever it is (the controller's client).
    client: ConductorClient,
    data_dir: std::path::PathBuf,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Conductor {
    pub async fn start(cfg: ConductorConfig) -> Result<Self, ConductorError> {
        owner_only_dir(&cfg.data_dir)?;
        let node = RaftNode::open(cfg.node_id, &cfg.data_dir.join("raft"), cfg.raft.clone())?;
        let meta = node.open_group(0, MetaState::default()).await?;
        if let Some(b) = meta.read_local(|m| m.bootstrap.clone()) {
            if b.shards != cfg.shards {
                warn!(
                    persisted = b.shards,
                    configured = cfg.shards,
                    "shard count is fixed at bootstrap; using the persisted one"
                );
            }
        }
        if cfg.shards == 0 || cfg.replicas == 0 {
            return Err(ConductorError::Config(
                "shard and replica counts must be at least 1".into(),
            ));
        }
        let cancel = CancellationToken::new();
        let hosting = Hosting::new(
            node.clone(),
            meta.clone(),
            crate::cloud::failpoints::wrap(cfg.cloud.clone()),
            cfg.reconciler.clone(),
            cancel.clone(),
        );
        let mut tasks = Vec::new();
        if cfg.bootstrap {
            let (nodes, placement) = initial_layout(&cfg.peers, cfg.shards, cfg.replicas);
            let mut mine = Vec::new();
            for (gid, set) in &placement {
                if set.contains(&NodeId(cfg.node_id)) {
                    let s = u32::try_from(gid - 1).unwrap_or_default();
                    if let Some(g) = hosting.open(s, cfg.shards).await {
                        mine.push((g, set.clone()));
                    }
                }
            }
            tasks.push(tokio::spawn(bootstrap(
                cfg.clone(),
                meta.clone(),
                mine,
                nodes,
                placement,
            )));
        } else {
            hosting.sync().await;
        }

        let raft_listener = bind(cfg.raft_listen).await?;
        let raft_addr = raft_listener
            .local_addr()
            .map_err(|e| ConductorError::Listen(cfg.raft_listen, e))?;
        tasks.push(node.serve(raft_listener, cancel.clone())?.task);
        let tls = cfg.raft.tls.clone();
        tls.spawn_reloader(cancel.clone());
        let api_nodes = ApiNodes::default();
        let svc_state = Arc::new(ServiceState {
            node: NodeId(cfg.node_id),
            api_nodes: api_nodes.clone(),
            hosting: hosting.clone(),
            cert_key: cfg.reconciler.cert_key.clone(),
            cloud: cfg.cloud.clone(),
            data_dir: cfg.data_dir.clone(),
        });
        // Exports an earlier run left when it stopped mid-stream.
        let _ = std::fs::remove_dir_all(cfg.data_dir.join(service::EXPORT_DIR));
        let svc_listener = bind(cfg.service_listen).await?;
        let service_addr = svc_listener
            .local_addr()
            .map_err(|e| ConductorError::Listen(cfg.service_listen, e))?;
        let in_flight = magnum_net::shed::InFlight::new(
            cfg.max_in_flight,
            "conductor_service",
            magnum_net::shed::overloaded,
        );
        let svc_router = service::router(svc_state).layer(axum::middleware::from_fn_with_state(
            in_flight,
            magnum_net::shed::layer,
        ));
        tasks.push(
            magnum_net::serve(
                svc_listener,
                svc_router,
                crate::metrics::router(node.clone(), &cfg.reconciler)
                    .merge(service::health::router(hosting.clone())),
                tls.clone(),
                magnum_net::Limits::default(),
                cancel.clone(),
            )
            .task,
        );

        let host = cfg
            .peers
            .get(&cfg.node_id)
            .map(|a| a.service.clone())
            .unwrap_or_else(|| service_addr.to_string());
        let seeds: Vec<String> = cfg.peers.values().map(|a| a.service.clone()).collect();
        tasks.push(tokio::spawn(heartbeat::run(
            cfg.node_id,
            host,
            seeds.clone(),
            cfg.heartbeat_interval,
            api_nodes,
            tls.clone(),
            cancel.clone(),
        )));
        tasks.push(tokio::spawn(follow_placement(
            hosting.clone(),
            cancel.clone(),
        )));
        tasks.push(tokio::spawn(mark_data_finalized(
            node.clone(),
            meta.clone(),
            cancel.clone(),
        )));
        let client = ConductorClient::new(seeds, CONTROLLER_CALL_DEADLINE, &tls)
            .map_err(|e| ConductorError::Config(e.to_string()))?;
        tasks.push(tokio::spawn(stopping::undrain(
            client.clone(),
            cfg.node_id,
            cfg.data_dir.clone(),
            cancel.clone(),
        )));
        let controller =
            Controller::new(meta.clone(), client.clone()).map_err(ConductorError::Config)?;
        tasks.push(tokio::spawn(controller.run(cancel.clone())));
        info!(node = cfg.node_id, %raft_addr, %service_addr, "conductor started");
        Ok(Self {
            node,
            meta,
            hosting,
            raft_addr,
            service_addr,
            client,
            data_dir: cfg.data_dir.clone(),
            cancel,
            tasks,
        })
    }

    /// This node's replica of a data shard, if the placement gives it one.
    pub fn shard(&self, shard: u32) -> Option<Group<crate::shard::logic::ShardLogic>> {
        self.hosting.shard(shard)
    }

    /// A graceful stop (SIGTERM): drains the node in the meta group so the placement controller
    /// gives it no leadership back (lifted when it starts again), hands every leadership to
    /// another voter (bounded by `HAND_OFF`), so a rolling restart costs each shard a transfer
    /// instead of an election, then stops. Returns the groups it still led when it stopped.
    pub async fn stop_gracefully(self) -> Vec<u64> {
        let id = self.node.node_id();
        stopping::drain(&self.meta, &self.client, id, &self.data_dir).await;
        let kept = self.hosting.hand_off(HAND_OFF).await;
        if kept.is_empty() {
            info!("handed off every leadership");
        } else {
            warn!(groups = ?kept, "still leading after the hand-off deadline; stopping anyway");
        }
        self.shutdown().await;
        kept
    }

    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.hosting.stop_all().await;
        // Together: a task stuck on a dead peer's timeout delays the others by nothing.
        let tasks = self
            .tasks
            .into_iter()
            .map(|t| tokio::time::timeout(Duration::from_secs(2), t));
        futures::future::join_all(tasks).await;
        self.node.shutdown().await;
    }
}

/// The data dir holds every project's rows and sealed keys: owner only (0700), also when an
/// earlier release created it readable by others.
fn owner_only_dir(dir: &std::path::Path) -> Result<(), ConductorError> {
    let e = |err| ConductorError::DataDir(dir.to_path_buf(), err);
    std::fs::create_dir_all(dir).map_err(e)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(e)?;
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ConductorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ConductorError::Listen(addr, e))
}

/// How long a graceful stop waits for its leaderships to move; a group that does not move by
/// then (no other voter answers) elects a leader the usual way.
const HAND_OFF: Duration = Duration::from_secs(5);

/// How long one call of the placement controller may take (a learner catching up included).
const CONTROLLER_CALL_DEADLINE: Duration = Duration::from_secs(30);

/// The conductors and replica placement a fresh deployment starts with: the `--peer` list, and
/// `replicas` of them per shard, spread evenly.
pub(crate) fn initial_layout(
    peers: &BTreeMap<u64, NodeAddr>,
    shards: u32,
    replicas: u32,
) -> (Vec<NodeEntry>, placement::Placement) {
    let nodes: BTreeMap<NodeId, NodeEntry> = peers
        .iter()
        .map(|(id, a)| {
            (
                NodeId(*id),
                NodeEntry {
                    id: NodeId(*id),
                    raft: a.raft.clone(),
                    service: a.service.clone(),
                    state: NodeState::Active,
                },
            )
        })
        .collect();
    let groups: Vec<u64> = (1..=u64::from(shards)).collect();
    let placement = placement::desired(
        &nodes,
        &placement::Placement::new(),
        &groups,
        replicas as usize,
    );
    (nodes.into_values().collect(), placement)
}

/// Each node initializes the groups whose index maps to its rank, so leaders start spread out;
/// after a grace period it initializes whatever is still uninitialized (a peer may be down).
async fn bootstrap(
    cfg: ConductorConfig,
    meta: Group<MetaState>,
    mine: Vec<(Group<crate::shard::logic::ShardLogic>, BTreeSet<NodeId>)>,
    nodes: Vec<NodeEntry>,
    placement: placement::Placement,
) {
    let ids: Vec<u64> = cfg.peers.keys().copied().collect();
    let rank = ids.iter().position(|i| *i == cfg.node_id).unwrap_or(0);
    let n = ids.len().max(1);
    let first = |g: u64| g as usize % n == rank;
    let members = |set: &BTreeSet<NodeId>| -> BTreeMap<u64, NodeAddr> {
        set.iter()
            .filter_map(|id| cfg.peers.get(&id.0).map(|a| (id.0, a.clone())))
            .collect()
    };
    if first(0) {
        log_init(meta.initialize(cfg.peers.clone()).await, 0);
    }
    for (g, set) in &mine {
        if first(g.id()) {
            log_init(g.initialize(members(set)).await, g.id());
        }
    }
    // Record the bootstrap parameters and the first layout as soon as the meta group has a
    // leader (any node may write them; both commands are idempotent), while uninitialized
    // groups get a grace period for their designated node before this one forms them.
    let fallback = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if meta.status().leader.is_none() {
            log_init(meta.initialize(cfg.peers.clone()).await, 0);
        }
        for (g, set) in &mine {
            if g.status().leader.is_none() {
                log_init(g.initialize(members(set)).await, g.id());
            }
        }
    };
    let record = async {
        let cmds = [
            MetaCommand::Bootstrap(Bootstrap {
                shards: cfg.shards,
                hash: shard::HASH_NAME.to_string(),
                replicas: cfg.replicas,
                cluster_version: Some(FEATURE_VERSION),
            }),
            MetaCommand::InitPlacement { nodes, placement },
        ];
        let leader = MetaLeader::new(meta.clone());
        for cmd in cmds {
            for _ in 0..200 {
                match leader.propose(cmd.clone()).await {
                    // Any answer will do (as before, only a write error is retried).
                    Ok(_) | Err(ProposeError::Rejected(_) | ProposeError::Codec(_)) => break,
                    // The leader's node writes them.
                    Err(ProposeError::NotLeader { hint: Some(_) }) => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    };
    tokio::join!(fallback, record);
}

/// Re-syncs the hosted replicas whenever the meta group applies something, and every second.
async fn follow_placement(hosting: Arc<Hosting>, cancel: CancellationToken) {
    let mut rx = hosting.meta.watch();
    loop {
        hosting.sync().await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Data version of a data dir whose logs may hold entries of a cluster version above 1.
const DATA_VERSION_FINALIZED: u8 = 3;

/// Once the cluster version passes 1 the logs may hold entries a release before cluster
/// versions cannot apply: raising the data dir to version 3 makes such a release refuse to
/// start on it ("on-disk data version 3 is newer than this build supports") instead of
/// diverging. Until then the data dir stays readable by it (rollback before finalize).
async fn mark_data_finalized(
    node: Arc<RaftNode>,
    meta: Group<MetaState>,
    cancel: CancellationToken,
) {
    let mut rx = meta.watch();
    loop {
        if meta.read_local(|m| m.cluster_version()) > BASE_VERSION {
            match node.raise_data_version(DATA_VERSION_FINALIZED).await {
                Ok(changed) => {
                    if changed {
                        info!(
                            data_version = DATA_VERSION_FINALIZED,
                            "cluster version finalized: releases before it can no longer open this data dir"
                        );
                    }
                    return;
                }
                Err(e) => warn!(error = %e, "cannot raise the data version; retrying"),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn log_init(r: Result<(), magnum_raft::RaftError>, gid: u64) {
    if let Err(e) = r {
        warn!(group = gid, error = %e, "initialize failed");
    }
}

/// Used by tests that talk to groups directly.
pub fn decode_response(bytes: &[u8]) -> ShardResponse {
    serde_json::from_slice(bytes).unwrap_or_else(|e| Err(CommandError::Internal(e.to_string())))
}
