//! One conductor process: opens the Raft groups (meta + every data shard) on one sled `Db`,
//! serves Raft RPC and the service API on their own listeners, bootstraps a fresh deployment,
//! and runs a reconciler for every shard it leads once its ownership epoch is committed.
use crate::cloud::Cloud;
use crate::heartbeat;
use crate::logic::ShardLogic;
use crate::meta::{Bootstrap, MetaCommand, MetaState};
use crate::reconciler::{self, ReconcilerConfig};
use crate::service::{self, ServiceState};
use magnum_proto::{
    shard, CommandError, CommandOk, NodeId, ShardCommand, ShardId, ShardRequest, ShardResponse,
};
use magnum_raft::{Group, NodeAddr, RaftConfig, RaftNode, WriteError};
use std::collections::BTreeMap;
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
    /// Initialize the groups (only on a fresh deployment's first start).
    pub bootstrap: bool,
    pub raft: RaftConfig,
    pub reconciler: ReconcilerConfig,
    pub cloud: Arc<dyn Cloud>,
    /// How often this node reports itself to the conductor registry (first beat at start).
    pub heartbeat_interval: Duration,
}

/// Default of [`ConductorConfig::heartbeat_interval`].
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

pub struct Conductor {
    pub node: Arc<RaftNode>,
    pub meta: Group<MetaState>,
    pub shards: Vec<Group<ShardLogic>>,
    pub raft_addr: SocketAddr,
    pub service_addr: SocketAddr,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Conductor {
    pub async fn start(cfg: ConductorConfig) -> Result<Self, ConductorError> {
        let node = RaftNode::open(cfg.node_id, &cfg.data_dir.join("raft"), cfg.raft.clone())?;
        let meta = node.open_group(0, MetaState::default()).await?;
        let shards_n = match meta.read_local(|m| m.bootstrap.clone()) {
            Some(b) => {
                if b.shards != cfg.shards {
                    warn!(
                        persisted = b.shards,
                        configured = cfg.shards,
                        "shard count is fixed at bootstrap; using the persisted one"
                    );
                }
                b.shards
            }
            None => cfg.shards,
        };
        if shards_n == 0 {
            return Err(ConductorError::Config(
                "shard count must be at least 1".into(),
            ));
        }
        let mut shards = Vec::with_capacity(shards_n as usize);
        for s in 0..shards_n {
            let logic = ShardLogic::new(ShardId(s), shards_n);
            shards.push(node.open_group(u64::from(s) + 1, logic).await?);
        }

        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        let raft_listener = bind(cfg.raft_listen).await?;
        let raft_addr = raft_listener
            .local_addr()
            .map_err(|e| ConductorError::Listen(cfg.raft_listen, e))?;
        tasks.push(serve(raft_listener, node.router(), cancel.clone()));
        let svc_state = Arc::new(ServiceState {
            node: NodeId(cfg.node_id),
            meta: meta.clone(),
            shards: shards.clone(),
        });
        let svc_listener = bind(cfg.service_listen).await?;
        let service_addr = svc_listener
            .local_addr()
            .map_err(|e| ConductorError::Listen(cfg.service_listen, e))?;
        let svc_router = service::router(svc_state).merge(crate::metrics::router(node.clone()));
        tasks.push(serve(svc_listener, svc_router, cancel.clone()));

        if cfg.bootstrap {
            tasks.push(tokio::spawn(bootstrap(
                cfg.clone(),
                meta.clone(),
                shards.clone(),
                shards_n,
            )));
        }
        let host = cfg
            .peers
            .get(&cfg.node_id)
            .map(|a| a.service.clone())
            .unwrap_or_else(|| service_addr.to_string());
        let seeds = cfg.peers.values().map(|a| a.service.clone()).collect();
        tasks.push(tokio::spawn(heartbeat::run(
            cfg.node_id,
            host,
            seeds,
            cfg.heartbeat_interval,
            cancel.clone(),
        )));
        for g in &shards {
            let fut = ownership_loop(
                g.clone(),
                cfg.node_id,
                cfg.cloud.clone(),
                cfg.reconciler.clone(),
                cancel.clone(),
            );
            tasks.push(tokio::spawn(fut));
        }
        info!(node = cfg.node_id, %raft_addr, %service_addr, shards = shards_n, "conductor started");
        Ok(Self {
            node,
            meta,
            shards,
            raft_addr,
            service_addr,
            cancel,
            tasks,
        })
    }

    pub async fn shutdown(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        self.node.shutdown().await;
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ConductorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ConductorError::Listen(addr, e))
}

fn serve(listener: TcpListener, router: axum::Router, cancel: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let res = axum::serve(listener, router)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = res {
            warn!(error = %e, "listener stopped");
        }
    })
}

/// Each node initializes the groups whose index maps to its rank, so leaders start spread out;
/// after a grace period it initializes whatever is still uninitialized (a peer may be down).
async fn bootstrap(
    cfg: ConductorConfig,
    meta: Group<MetaState>,
    shards: Vec<Group<ShardLogic>>,
    shards_n: u32,
) {
    let ids: Vec<u64> = cfg.peers.keys().copied().collect();
    let rank = ids.iter().position(|i| *i == cfg.node_id).unwrap_or(0);
    let n = ids.len().max(1);
    let mine = |g: u64| g as usize % n == rank;
    if mine(0) {
        log_init(meta.initialize(cfg.peers.clone()).await, 0);
    }
    for g in &shards {
        if mine(g.id()) {
            log_init(g.initialize(cfg.peers.clone()).await, g.id());
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    if meta.status().leader.is_none() {
        log_init(meta.initialize(cfg.peers.clone()).await, 0);
    }
    for g in &shards {
        if g.status().leader.is_none() {
            log_init(g.initialize(cfg.peers.clone()).await, g.id());
        }
    }
    // Record the bootstrap parameters once the meta group has a leader (any node may write them;
    // the command is idempotent).
    let cmd = MetaCommand::Bootstrap(Bootstrap {
        shards: shards_n,
        hash: shard::HASH_NAME.to_string(),
    });
    let Ok(payload) = serde_json::to_vec(&cmd) else {
        return;
    };
    for _ in 0..100 {
        match meta.write(payload.clone()).await {
            Ok(_) => return,
            Err(WriteError::NotLeader { leader: Some(_) }) => return, // the leader's node does it
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

fn log_init(r: Result<(), magnum_raft::RaftError>, gid: u64) {
    if let Err(e) = r {
        warn!(group = gid, error = %e, "initialize failed");
    }
}

/// Watches one shard's Raft status; while this node leads it, commits a new ownership epoch and
/// runs the reconciler under it; stops the reconciler as soon as leadership is lost.
async fn ownership_loop(
    group: Group<ShardLogic>,
    node: u64,
    cloud: Arc<dyn Cloud>,
    rcfg: ReconcilerConfig,
    cancel: CancellationToken,
) {
    let mut rx = group.watch();
    let mut session: Option<(u64, CancellationToken, JoinHandle<()>)> = None;
    loop {
        let st = rx.borrow_and_update().clone();
        let keep = matches!(&session, Some((term, _, h)) if st.is_leader && *term == st.term && !h.is_finished());
        if !keep {
            if let Some((_, c, h)) = session.take() {
                c.cancel();
                h.abort();
            }
            if st.is_leader {
                let c = cancel.child_token();
                let h = tokio::spawn(lead(
                    group.clone(),
                    node,
                    cloud.clone(),
                    rcfg.clone(),
                    c.clone(),
                ));
                session = Some((st.term, c, h));
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = rx.changed() => if r.is_err() { break },
            // A finished session (e.g. epoch lost to a newer owner) is re-evaluated periodically.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    if let Some((_, c, h)) = session {
        c.cancel();
        let _ = h.await;
    }
}

async fn lead(
    group: Group<ShardLogic>,
    node: u64,
    cloud: Arc<dyn Cloud>,
    rcfg: ReconcilerConfig,
    cancel: CancellationToken,
) {
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let current = match group.read(|l| l.state.epoch).await {
            Ok(e) => e,
            Err(WriteError::NotLeader { .. }) => return,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let req = ShardRequest {
            request_id: None,
            command: ShardCommand::TakeOwnership {
                node: NodeId(node),
                epoch: current + 1,
            },
        };
        let Ok(payload) = serde_json::to_vec(&req) else {
            return;
        };
        match group
            .write(payload)
            .await
            .map(|b| serde_json::from_slice::<ShardResponse>(&b))
        {
            Ok(Ok(Ok(CommandOk::Owned { epoch }))) => {
                info!(group = group.id(), epoch, "took ownership");
                reconciler::run(
                    group.clone(),
                    cloud.clone(),
                    epoch,
                    rcfg.clone(),
                    cancel.clone(),
                )
                .await;
                return;
            }
            Ok(Ok(Err(CommandError::StaleEpoch { .. }))) => continue,
            Err(WriteError::NotLeader { .. }) => return,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Used by tests that talk to groups directly.
pub fn decode_response(bytes: &[u8]) -> ShardResponse {
    serde_json::from_slice(bytes).unwrap_or_else(|e| Err(CommandError::Internal(e.to_string())))
}
