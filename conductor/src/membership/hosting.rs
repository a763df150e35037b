//! The data-shard replicas this node hosts, kept in line with the meta group's placement: a
//! replica is opened (empty, to be filled by its leader as a learner) as soon as the placement
//! names this node, and closed and deleted once a placement without this node is committed
//! (which happens only after the group's own membership dropped it).
use crate::cloud::Cloud;
use crate::leader::ownership::ownership_loop;
use crate::leader::LeaderConfig;
use crate::membership::meta::MetaState;
use crate::shard::logic::ShardLogic;
use magnum_proto::{NodeEntry, NodeId, NodeState, ShardId};
use magnum_raft::{Group, NodeAddr, RaftNode, StateMachineLogic};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

struct Hosted {
    group: Group<ShardLogic>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct Hosting {
    pub node_id: u64,
    node: Arc<RaftNode>,
    pub meta: Group<MetaState>,
    cloud: Arc<dyn Cloud>,
    rcfg: LeaderConfig,
    cancel: CancellationToken,
    shards: RwLock<BTreeMap<u32, Hosted>>,
    /// One sync at a time (open/close await).
    sync_lock: Mutex<()>,
    /// Set by [`Self::hand_off`]: this node is stopping and must not win any election.
    stopping: AtomicBool,
}

/// What this node should host according to its (possibly lagging) copy of the meta state.
struct Wanted {
    shards: u32,
    host: BTreeSet<u32>,
    /// Shards whose committed placement excludes this node.
    drop: BTreeSet<u32>,
    elect: bool,
}

impl Hosting {
    pub fn new(
        node: Arc<RaftNode>,
        meta: Group<MetaState>,
        cloud: Arc<dyn Cloud>,
        rcfg: LeaderConfig,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            node_id: node.node_id(),
            node,
            meta,
            cloud,
            rcfg,
            cancel,
            shards: RwLock::new(BTreeMap::new()),
            sync_lock: Mutex::new(()),
            stopping: AtomicBool::new(false),
        })
    }

    pub fn shard(&self, s: u32) -> Option<Group<ShardLogic>> {
        self.read().get(&s).map(|h| h.group.clone())
    }

    pub fn shards(&self) -> Vec<Group<ShardLogic>> {
        self.read().values().map(|h| h.group.clone()).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u32, Hosted>> {
        self.shards.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u32, Hosted>> {
        self.shards.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A replica of `shard` (not necessarily the leader) other than this node, for "not here"
    /// redirects.
    pub fn replica_elsewhere(&self, shard: u32) -> Option<(u64, NodeAddr)> {
        let gid = u64::from(shard) + 1;
        self.meta.read_local(|m| {
            let set = m.placement.get(&gid)?;
            set.iter()
                .filter(|n| n.0 != self.node_id)
                .find_map(|n| m.nodes.get(n))
                .map(|n| (n.id.0, addr_of(n)))
        })
    }

    /// Opens `shard` if needed and starts its ownership loop.
    pub async fn open(&self, shard: u32, shards: u32) -> Option<Group<ShardLogic>> {
        if let Some(g) = self.shard(shard) {
            return Some(g);
        }
        let logic = ShardLogic::new(ShardId(shard), shards);
        let group = match self.node.open_group(u64::from(shard) + 1, logic).await {
            Ok(g) => g,
            Err(e) => {
                warn!(shard, error = %e, "cannot open shard replica");
                return None;
            }
        };
        let stop = self.cancel.child_token();
        let task = tokio::spawn(ownership_loop(
            group.clone(),
            self.node_id,
            self.cloud.clone(),
            self.rcfg.clone(),
            self.meta.read_local(|m| m.active_version()),
            stop.clone(),
        ));
        info!(shard, "hosting shard replica");
        self.write().insert(
            shard,
            Hosted {
                group: group.clone(),
                stop,
                task,
            },
        );
        Some(group)
    }

    async fn close(&self, shard: u32) {
        let Some(h) = self.write().remove(&shard) else {
            return;
        };
        h.stop.cancel();
        let _ = h.task.await;
        info!(shard, "placement moved this replica away; deleting it");
        if let Err(e) = self.node.destroy_group(h.group).await {
            warn!(shard, error = %e, "deleting a replica failed");
        }
    }

    fn wanted(&self) -> Option<Wanted> {
        let me = NodeId(self.node_id);
        let in_meta = self.meta.status().members.contains_key(&self.node_id);
        self.meta.read_local(|m| {
            let shards = m.bootstrap.as_ref()?.shards;
            let mut w = Wanted {
                shards,
                host: BTreeSet::new(),
                drop: BTreeSet::new(),
                elect: true,
            };
            if m.nodes.is_empty() {
                // A deployment from before placement: every meta member hosts every shard
                // until the controller adopts that layout.
                if in_meta {
                    w.host = (0..shards).collect();
                }
                return Some(w);
            }
            for s in 0..shards {
                match m.placement.get(&(u64::from(s) + 1)) {
                    Some(set) if set.contains(&me) => {
                        w.host.insert(s);
                    }
                    Some(_) => {
                        w.drop.insert(s);
                    }
                    None => {}
                }
            }
            w.elect = m
                .nodes
                .get(&me)
                .is_none_or(|n| n.state == NodeState::Active);
            Some(w)
        })
    }

    /// Brings the hosted replicas in line with the meta state this node has applied.
    pub async fn sync(&self) {
        let _one = self.sync_lock.lock().await;
        let Some(w) = self.wanted() else { return };
        for s in &w.host {
            self.open(*s, w.shards).await;
        }
        let hosted: Vec<u32> = self.read().keys().copied().collect();
        for s in hosted {
            if w.drop.contains(&s) {
                self.close(s).await;
            }
        }
        let stopping = self.stopping.load(Ordering::Acquire);
        // Meta elects whatever the drain: a drain keeps shard leaderships away, and lifting one
        // takes a meta leader. Every node of a full stop may have drained (each saw the others
        // still active); with meta unelectable too, none could ever lift its drain.
        self.meta.set_elect(!stopping);
        let elect = w.elect && !stopping;
        for g in self.shards() {
            g.set_elect(elect);
        }
    }

    /// A graceful stop's first step (SIGTERM): hands every leadership this node holds to
    /// another voter (a transfer, tens of milliseconds, instead of the election its silence
    /// would cost: lease plus timeout) and keeps it from winning any back. Returns when it
    /// leads nothing, or at `deadline` with the groups it still leads.
    pub async fn hand_off(&self, deadline: Duration) -> Vec<u64> {
        self.stopping.store(true, Ordering::Release);
        let shards = self.shards();
        self.meta.set_elect(false);
        for g in &shards {
            g.set_elect(false);
        }
        // Only to nodes that may lead: not one draining (or stopping, which drains first) or
        // leaving. With none left (the last node of a full stop) there is no one to hand to.
        let active: BTreeSet<u64> = self.meta.read_local(|m| {
            m.nodes
                .values()
                .filter(|n| n.state == NodeState::Active && n.id.0 != self.node_id)
                .map(|n| n.id.0)
                .collect()
        });
        let start = Instant::now();
        let mut asked: BTreeMap<u64, usize> = BTreeMap::new();
        loop {
            // The other voters in turn, a new one every 500 ms: one that is down never
            // campaigns, and the next may. openraft's transfer makes the target campaign at
            // once, with the leader's blessing (no lease to wait out).
            let turn = (start.elapsed().as_millis() / 500) as usize;
            let mut leading = Vec::new();
            if self
                .hand_off_one(&self.meta, &active, turn, &mut asked)
                .await
            {
                leading.push(self.meta.id());
            }
            for g in &shards {
                if self.hand_off_one(g, &active, turn, &mut asked).await {
                    leading.push(g.id());
                }
            }
            if leading.is_empty() || start.elapsed() >= deadline {
                return leading;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One round of [`Self::hand_off`] for `g`: whether this node still leads it, after asking
    /// this turn's voter (once per turn) to take over.
    async fn hand_off_one<L: StateMachineLogic>(
        &self,
        g: &Group<L>,
        active: &BTreeSet<u64>,
        turn: usize,
        asked: &mut BTreeMap<u64, usize>,
    ) -> bool {
        let st = g.status();
        let others: Vec<u64> = st
            .voters
            .iter()
            .copied()
            .filter(|v| active.contains(v))
            .collect();
        // No active voter to hand off to: nothing to wait for.
        if !st.is_leader || others.is_empty() {
            return false;
        }
        if asked.insert(g.id(), turn) != Some(turn) {
            let to = others[turn % others.len()];
            if let Err(e) = g.transfer_leader(to).await {
                warn!(group = g.id(), error = %e, "leadership hand-off failed");
            }
        }
        true
    }

    /// Stops every ownership loop (shutdown).
    pub async fn stop_all(&self) {
        let all: Vec<Hosted> = std::mem::take(&mut *self.write()).into_values().collect();
        for h in all {
            h.stop.cancel();
            let _ = h.task.await;
        }
    }
}

pub fn addr_of(n: &NodeEntry) -> NodeAddr {
    NodeAddr {
        raft: n.raft.clone(),
        service: n.service.clone(),
    }
}
