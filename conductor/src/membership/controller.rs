//! The placement controller, run by the meta group's leader: keeps the meta group's membership,
//! every data group's replica set and the spread of leaders in line with the conductor
//! membership. One change per step, each idempotent, so a controller that dies mid-way is
//! simply continued by the next meta leader:
//!
//! replica move of group g from A to B: placement := A ∪ B (new nodes open an empty replica) →
//! g's leader adds B \ A as learners, waits for them to catch up, makes B the voters →
//! placement := B (nodes of A \ B delete their replica).
use crate::membership::hosting::addr_of;
use crate::membership::meta::{MetaCommand, MetaState};
use crate::membership::placement::{self, Placement};
use crate::membership::propose::MetaLeader;
use crate::propose::ProposeError;
use magnum_proto::wire::{self, MemberAddr, SetMembers, Topology};
use magnum_proto::{ConductorClient, NodeEntry, NodeId, NodeState};
use magnum_raft::Group;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Pause between steps.
const STEP: Duration = Duration::from_millis(300);
/// How long a placement step may keep failing before it is logged as a warning (and then at
/// most this often).
const STUCK_WARN: Duration = Duration::from_secs(30);
/// A group whose leadership was just handed over is left alone this long (the election).
const TRANSFER_COOLDOWN: Duration = Duration::from_secs(3);

pub struct Controller {
    meta: Group<MetaState>,
    leader: MetaLeader,
    client: ConductorClient,
    http: magnum_net::InternalClient,
    transferred: BTreeMap<u64, Instant>,
}

/// What a step did; `Idle` means everything is where it should be.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Idle,
    Changed(String),
}

type StepResult = Result<Step, String>;

impl Controller {
    pub fn new(meta: Group<MetaState>, client: ConductorClient) -> Result<Self, String> {
        let http = client.http().clone();
        Ok(Self {
            leader: MetaLeader::new(meta.clone()),
            meta,
            client,
            http,
            transferred: BTreeMap::new(),
        })
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        // A step that keeps failing is worth an operator's eye (a membership change that never
        // lands); one that fails now and then is not.
        let mut failing_since: Option<Instant> = None;
        let mut warned = Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(STEP) => {}
            }
            if !self.meta.status().is_leader {
                continue;
            }
            match self.step().await {
                Ok(Step::Idle) => failing_since = None,
                Ok(Step::Changed(what)) => {
                    failing_since = None;
                    info!(%what, "placement step");
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= STUCK_WARN && warned.elapsed() >= STUCK_WARN {
                        warned = Instant::now();
                        warn!(error = %e, failing_for_s = since.elapsed().as_secs(), "placement step keeps failing; retrying");
                    } else {
                        debug!(error = %e, "placement step failed; retrying");
                    }
                }
            }
        }
    }

    async fn step(&mut self) -> StepResult {
        let (boot, nodes, current) = self
            .meta
            .read(|m| (m.bootstrap.clone(), m.nodes.clone(), m.placement.clone()))
            .await
            .map_err(|e| e.to_string())?;
        if boot.is_none() {
            return Ok(Step::Idle);
        }
        if nodes.is_empty() {
            return self.adopt().await;
        }
        if let s @ Step::Changed(_) = self.meta_membership(&nodes, &current).await? {
            return Ok(s);
        }
        let (groups, replicas) = self
            .meta
            .read_local(|m| (m.data_groups(), m.replicas() as usize));
        let want = placement::desired(&nodes, &current, &groups, replicas);
        for g in &groups {
            let cur = current.get(g).cloned().unwrap_or_default();
            let target = want.get(g).cloned().unwrap_or_default();
            if cur != target {
                return self.move_replicas(*g, cur, target, &nodes).await;
            }
        }
        self.balance_leaders(&nodes).await
    }

    /// A deployment bootstrapped before placement: every meta member hosts every shard.
    async fn adopt(&self) -> StepResult {
        let st = self.meta.status();
        let nodes: Vec<NodeEntry> = st
            .members
            .iter()
            .map(|(id, a)| NodeEntry {
                id: NodeId(*id),
                raft: a.raft.clone(),
                service: a.service.clone(),
                state: NodeState::Active,
            })
            .collect();
        let all: BTreeSet<NodeId> = st.voters.iter().map(|v| NodeId(*v)).collect();
        let placement: Placement = self
            .meta
            .read_local(|m| m.data_groups())
            .into_iter()
            .map(|g| (g, all.clone()))
            .collect();
        self.propose(MetaCommand::InitPlacement { nodes, placement })
            .await?;
        Ok(Step::Changed("adopted the existing layout".into()))
    }

    /// Every conductor is a member of the meta group: 3 or 5 voters, the rest learners.
    async fn meta_membership(
        &self,
        nodes: &BTreeMap<NodeId, NodeEntry>,
        current: &Placement,
    ) -> StepResult {
        let st = self.meta.status();
        for n in nodes.values() {
            if n.state != NodeState::Leaving && !st.members.contains_key(&n.id.0) {
                self.meta
                    .add_learner(n.id.0, addr_of(n), false)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(Step::Changed(format!("meta learner {}", n.id.0)));
            }
        }
        let voters: BTreeSet<NodeId> = st.voters.iter().map(|v| NodeId(*v)).collect();
        let want = placement::meta_voters(nodes, &voters);
        if want != voters && !want.is_empty() {
            for v in want.difference(&voters) {
                // Promote only a learner that caught up, or the group could stall.
                if let Some(n) = nodes.get(v) {
                    self.meta
                        .add_learner(v.0, addr_of(n), true)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            let ids = want.iter().map(|n| n.0).collect();
            self.meta
                .change_membership(ids, true)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(Step::Changed(format!("meta voters {want:?}")));
        }
        // A leaving node that hosts nothing and votes nowhere: drop it from meta, forget it.
        for n in nodes.values() {
            let hosts = current.values().any(|s| s.contains(&n.id));
            if n.state != NodeState::Leaving || hosts || voters.contains(&n.id) {
                continue;
            }
            if st.members.contains_key(&n.id.0) {
                self.meta
                    .remove_nodes(BTreeSet::from([n.id.0]))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            self.propose(MetaCommand::ForgetNode { id: n.id }).await?;
            return Ok(Step::Changed(format!("forgot conductor {}", n.id.0)));
        }
        Ok(Step::Idle)
    }

    async fn move_replicas(
        &self,
        group: u64,
        cur: BTreeSet<NodeId>,
        target: BTreeSet<NodeId>,
        nodes: &BTreeMap<NodeId, NodeEntry>,
    ) -> StepResult {
        let union: BTreeSet<NodeId> = cur.union(&target).copied().collect();
        if union != cur {
            self.propose(MetaCommand::SetPlacement {
                group,
                expected: cur,
                replicas: union.clone(),
            })
            .await?;
            return Ok(Step::Changed(format!("group {group}: open {union:?}")));
        }
        let voters = target
            .iter()
            .filter_map(|n| nodes.get(n))
            .map(|n| {
                (
                    n.id,
                    MemberAddr {
                        raft: n.raft.clone(),
                        service: n.service.clone(),
                    },
                )
            })
            .collect();
        self.client
            .set_members(
                group,
                &SetMembers {
                    voters,
                    learners: BTreeMap::new(),
                },
            )
            .await
            .map_err(|e| format!("group {group}: {e}"))?;
        self.propose(MetaCommand::SetPlacement {
            group,
            expected: cur,
            replicas: target.clone(),
        })
        .await?;
        Ok(Step::Changed(format!("group {group}: voters {target:?}")))
    }

    /// Hands one leadership from a draining or overloaded node to an active one.
    async fn balance_leaders(&mut self, nodes: &BTreeMap<NodeId, NodeEntry>) -> StepResult {
        let views = self.topologies(nodes).await;
        let mut leaders: BTreeMap<u64, (u64, NodeId)> = BTreeMap::new();
        let mut voters: BTreeMap<u64, BTreeSet<NodeId>> = BTreeMap::new();
        for t in &views {
            for g in &t.groups {
                let Some(l) = g.leader else { continue };
                if leaders.get(&g.group).is_none_or(|(term, _)| *term < g.term) {
                    leaders.insert(g.group, (g.term, l));
                    voters.insert(g.group, g.voters.iter().copied().collect());
                }
            }
        }
        let now = Instant::now();
        self.transferred
            .retain(|_, at| now.duration_since(*at) < TRANSFER_COOLDOWN);
        let leaders: BTreeMap<u64, NodeId> = leaders
            .into_iter()
            .filter(|(g, _)| !self.transferred.contains_key(g))
            .map(|(g, (_, l))| (g, l))
            .collect();
        // Only nodes that answered just now take leadership: a transfer to a dead node (one
        // killed a moment ago, before its heartbeat lapsed) left the group without a leader
        // until an election, after the election that had just replaced it.
        let answered: BTreeSet<NodeId> = views.iter().map(|t| t.node).collect();
        let reachable: BTreeMap<NodeId, NodeEntry> = nodes
            .iter()
            .filter(|(id, _)| answered.contains(id))
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        let Some(t) = placement::next_transfer(&reachable, &leaders, &voters) else {
            return Ok(Step::Idle);
        };
        if t.group == wire::META_GROUP {
            self.meta
                .transfer_leader(t.to.0)
                .await
                .map_err(|e| e.to_string())?;
        } else {
            self.client
                .transfer_leader(t.group, t.to)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.transferred.insert(t.group, now);
        Ok(Step::Changed(format!(
            "group {}: leadership to {}",
            t.group, t.to.0
        )))
    }

    async fn topologies(&self, nodes: &BTreeMap<NodeId, NodeEntry>) -> Vec<Topology> {
        let futs = nodes.values().map(|n| {
            let http = self.http.clone();
            async move {
                let get = |h: &reqwest::Client, url| h.get(url).timeout(Duration::from_millis(800));
                match http.send(&n.service, wire::TOPOLOGY_PATH, get).await {
                    Ok(r) => r.json::<Topology>().await.ok(),
                    Err(_) => None,
                }
            }
        });
        futures::future::join_all(futs)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn propose(&self, cmd: MetaCommand) -> Result<(), String> {
        match self.leader.propose(cmd).await {
            Ok(_) => Ok(()),
            Err(ProposeError::Rejected(e)) => {
                let m = e.to_string();
                warn!(%m, "meta refused a placement step");
                Err(m)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}
