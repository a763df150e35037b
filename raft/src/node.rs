//! One `RaftNode` per process: the storage engine (sled), the HTTP client pool and the open
//! groups.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::RaftConfig;
use crate::error::RaftError;
use crate::failover;
use crate::group::{Group, Slot, Timing};
use crate::logic::StateMachineLogic;
use crate::metrics::Metrics;
use crate::network::batch::Batchers;
use crate::network::client::{http_client, NetworkFactory};
use crate::network::server::{self, RaftEndpoint};
use crate::network::snapshot::Receiver;
use crate::quiesce;
use crate::registry::Registry;
use crate::runtime::RaftRuntime;
use crate::storage::log::LogStore;
use crate::storage::sm::SmStore;
use crate::storage::Store;
use crate::types::{GroupId, NodeId};
use crate::vote_audit::VoteAudit;

/// How long `open_group` waits for openraft to report the recovered state.
const STARTUP_WAIT: Duration = Duration::from_secs(10);
/// How long `shutdown` waits for openraft's tasks to release the database.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The engine's database and the snapshot files, inside a node's data dir.
pub(crate) const SNAP_DIR: &str = "snapshots";

/// This process's Raft node: hosts replicas of any number of groups.
pub struct RaftNode {
    id: NodeId,
    cfg: RaftConfig,
    store: Arc<Store>,
    http: magnum_net::InternalClient,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    audit: Option<Arc<VoteAudit>>,
    closed: AtomicBool,
    /// Where openraft's tasks and the Raft listener run (see `runtime.rs`).
    rt: RaftRuntime,
    /// Stops the node's background tasks (prompt elections, quiescence).
    cancel: CancellationToken,
    /// Per-peer batchers of every group's RPCs (`network/batch.rs`), if batching is on.
    batchers: Option<Arc<Batchers>>,
}

/// A flush of the Raft store slower than this is a stalled disk (`exit_on_storage_failure`):
/// far above any healthy fsync, and far below what a stuck node would cost its groups.
const MAX_SYNC_DURATION: Duration = Duration::from_secs(20);

impl RaftNode {
    /// Opens the node's database under `data_dir` (created if missing). The directory is bound
    /// to `node_id` on first use; opening it with another id fails.
    pub fn open(node_id: NodeId, data_dir: &Path, cfg: RaftConfig) -> Result<Arc<Self>, RaftError> {
        cfg.validate()?;
        std::fs::create_dir_all(data_dir)?;
        let engine = crate::storage::open_engine(data_dir, cfg.engine)?;
        if cfg.exit_on_storage_failure {
            engine.exit_on_stall(MAX_SYNC_DURATION)?;
        }
        let store = Store::open(engine, node_id, data_dir.join(SNAP_DIR))?;
        let audit = match cfg.vote_audit {
            true => Some(Arc::new(VoteAudit::open(data_dir)?)),
            false => None,
        };
        let http =
            http_client(&cfg.tls).map_err(|e| RaftError::Config(format!("http client: {e}")))?;
        let rt = RaftRuntime::new(node_id, cfg.threads)?;
        let registry = Arc::new(Registry::default());
        let metrics = Arc::new(Metrics::new()?);
        let cancel = CancellationToken::new();
        if cfg.prompt_elections {
            let timing = failover::Timing::from_heartbeat(cfg.heartbeat_ms, cfg.election_max_ms);
            rt.spawn(failover::run(
                node_id,
                registry.clone(),
                metrics.clone(),
                timing,
                cancel.clone(),
            ));
        }
        if cfg.quiesce {
            rt.spawn(quiesce::run(
                node_id,
                registry.clone(),
                http.clone(),
                Duration::from_millis(cfg.heartbeat_ms),
                Duration::from_millis(cfg.election_max_ms),
                cancel.clone(),
            ));
        }
        let batchers = cfg
            .batch
            .then(|| Batchers::new(http.clone(), metrics.clone(), cfg.stream));
        Ok(Arc::new(Self {
            batchers,
            id: node_id,
            cfg,
            store,
            http,
            registry,
            metrics,
            audit,
            closed: AtomicBool::new(false),
            rt,
            cancel,
        }))
    }

    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The on-disk format version of this node's data dir.
    pub fn data_version(&self) -> Result<u8, RaftError> {
        crate::storage::upgrade::current(&self.store)
    }

    /// Raises the data dir's format version to `to` (see `storage/upgrade.rs`: builds that do
    /// not know `to` then refuse to open it); true when it changed. Never lowers it.
    pub async fn raise_data_version(&self, to: u8) -> Result<bool, RaftError> {
        crate::storage::upgrade::raise(&self.store, to).await
    }

    /// Opens this node's replica of `gid`: loads the persisted state into `logic` (via
    /// `StateMachineLogic::load`) and starts openraft. Call `Group::initialize` to form a new
    /// group; an existing one resumes from disk.
    pub async fn open_group<L: StateMachineLogic>(
        self: &Arc<Self>,
        gid: GroupId,
        logic: L,
    ) -> Result<Group<L>, RaftError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(RaftError::ShutDown);
        }
        if !self.registry.reserve(gid) {
            return Err(RaftError::GroupAlreadyOpen(gid));
        }
        let group = match self.start_group(gid, logic).await {
            Ok(g) => g,
            Err(e) => {
                self.registry.unreserve(gid);
                return Err(e);
            }
        };
        if self.closed.load(Ordering::SeqCst) {
            // Lost a race with shutdown(), which did not see this group.
            group.shutdown().await;
            return Err(RaftError::ShutDown);
        }
        Ok(group)
    }

    async fn start_group<L: StateMachineLogic>(
        &self,
        gid: GroupId,
        logic: L,
    ) -> Result<Group<L>, RaftError> {
        let config = self.cfg.to_openraft(gid)?;
        let trees = self.store.group_trees(gid)?;
        let metrics = self.metrics.group(gid);
        let sm = SmStore::open(self.store.clone(), gid, &trees, logic, metrics.clone()).await?;
        let handles = sm.handles();
        let applied = sm.last_applied_index();
        let log = LogStore::new(
            self.store.clone(),
            gid,
            &trees,
            metrics.clone(),
            self.audit.clone(),
        );
        log.audit_boot().await?;
        let network = NetworkFactory {
            http: self.http.clone(),
            self_id: self.id,
            gid,
            metrics: self.metrics.clone(),
            group_metrics: metrics.clone(),
            batchers: self.batchers.clone(),
        };
        // openraft parents its RaftCore span on the current one: tag all of it with node + gid.
        let span = tracing::info_span!("raft_group", node = self.id, gid);
        let raft = self
            .rt
            .run(openraft::Raft::new(self.id, config, network, log, sm).instrument(span))
            .await?
            .map_err(|e| RaftError::Fatal(e.to_string()))?;
        if applied.is_some() {
            // Metrics start empty and RaftCore fills them in asynchronously; wait so that
            // `Group::status()` reflects the recovered state from the start.
            let ready = raft
                .wait(Some(STARTUP_WAIT))
                .metrics(
                    |m| m.last_applied.map(|l| l.index()) >= applied,
                    "recovered state",
                )
                .await;
            if let Err(e) = ready {
                let _ = raft.shutdown().await;
                return Err(RaftError::Fatal(format!("group {gid} did not start: {e}")));
            }
        }
        let pulse = Arc::new(failover::Pulse::default());
        let instance = self.registry.publish(
            gid,
            Arc::new(RaftEndpoint {
                raft: raft.clone(),
                snapshots: Arc::new(Receiver::new(trees.snap_dir.clone())),
                pulse: pulse.clone(),
                peers: self.registry.peers.clone(),
                lease: Duration::from_millis(self.cfg.election_max_ms),
            }),
        );
        tracing::info!(node = self.id, gid, ?applied, "group opened");
        let timing = Timing {
            lease: Duration::from_millis(self.cfg.election_max_ms),
            retry: Duration::from_millis((self.cfg.heartbeat_ms / 2).max(1)),
            exit_on_storage_failure: self.cfg.exit_on_storage_failure,
        };
        Ok(Group::new(
            self.rt.handle(),
            gid,
            timing,
            raft,
            handles,
            Slot {
                registry: self.registry.clone(),
                instance,
                pulse,
            },
            metrics,
        ))
    }

    /// Stops this node's replica of a group it no longer belongs to and deletes its data, so a
    /// later re-add starts from an empty log.
    #[tracing::instrument(level = "info", skip_all, fields(node = self.id, gid = group.id()))]
    pub async fn destroy_group<L: StateMachineLogic>(
        &self,
        group: Group<L>,
    ) -> Result<(), RaftError> {
        let gid = group.id();
        group.shutdown().await;
        drop(group);
        self.store.drop_group(gid).await
    }

    /// Prometheus text (content type [`crate::METRICS_CONTENT_TYPE`]) of every open group of
    /// this node: Raft state gauges, storage latencies, snapshot and RPC error counters.
    pub fn metrics_text(&self) -> Result<String, RaftError> {
        let groups: Vec<_> = self
            .registry
            .open_groups()
            .into_iter()
            .map(|(gid, h)| (gid, h.raft_metrics()))
            .collect();
        self.metrics.render(&groups)
    }

    /// Serves the Raft RPC routes (`POST /raft/v1/{gid}/...`) of all groups of this node on
    /// `listener` (the address given as `NodeAddr::raft`), with the node's TLS, until `cancel`.
    /// Its own listener, served on the Raft runtime: Raft traffic never queues behind client
    /// requests or application tasks.
    pub fn serve(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<magnum_net::Listener, RaftError> {
        Ok(self.rt.serve(listener, |listener| {
            magnum_net::serve(
                listener,
                server::router(self.registry.clone()),
                axum::Router::new(),
                self.cfg.tls.clone(),
                magnum_net::Limits::default(),
                cancel,
            )
        })?)
    }

    /// Stops all groups, flushes the database, and waits (bounded) until openraft's tasks have
    /// released it, so the data dir can be reopened once this node is dropped.
    #[tracing::instrument(level = "info", skip_all, fields(node = self.id))]
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.cancel.cancel();
        let groups = self.registry.drain();
        futures::future::join_all(groups.iter().map(|g| g.shutdown())).await;
        drop(groups);
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
        let deadline = Instant::now() + RELEASE_WAIT;
        while Arc::strong_count(&self.store) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if Arc::strong_count(&self.store) > 1 {
            tracing::warn!("storage still referenced after shutdown");
        }
    }
}
