//! The orphan-stack reaper (design §5: reconcilers are level-triggered). A leader frozen between
//! its leadership check and its Heat create can wake after a new leader has deleted the cluster
//! and create the stack again; nothing would ever own that stack. So the delete's last step
//! leaves a [`Tombstone`] with the names of the stacks it removed, and the shard leader looks
//! those names up in the cluster's project: first `grace` after the delete, then at doubling
//! ages (2×, 4×, … the age at the last look) until `retention`. A live stack under such a name
//! is an orphan: it is deleted and counted (`magnum_orphan_stacks_reaped_total`). After
//! `retention`, once a look finds every name free, the tombstone is dropped.
//!
//! Only the names a tombstone lists, in its project, are ever touched: the names are derived
//! from the cluster's uuid (`magnum_drivers::stack_name`), so a user's own stack or another
//! deployment's never matches. A wake-up later than `retention` after the delete is not covered.
use crate::cloud::Cloud;
use crate::leader::LeaderConfig;
use crate::propose::{ProposeError, ShardLeader};
use magnum_proto::version::{min_version, Kind};
use magnum_proto::*;
use magnum_raft::WriteError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Tombstones dropped per proposal.
const FORGET_BATCH: usize = 256;

/// The tombstone of a cluster whose delete is finishing: its stack, then its nodegroups' own.
pub(crate) fn tombstone(cloud: &dyn Cloud, view: &ClusterView, at: Timestamp) -> Tombstone {
    let mut stacks = vec![cloud.stack_name(view)];
    stacks.extend(
        view.nodegroups
            .iter()
            .filter(|n| !n.is_default)
            .map(|n| cloud.nodegroup_stack_name(view, n)),
    );
    Tombstone {
        cluster: view.cluster.uuid,
        nodegroup: None,
        project_id: view.cluster.project_id.clone(),
        stacks,
        deleted_at: at,
    }
}

/// The tombstone of a nodegroup whose stack is gone and whose row is about to go.
pub(crate) fn nodegroup_tombstone(
    cloud: &dyn Cloud,
    view: &ClusterView,
    ng: &NodeGroup,
    at: Timestamp,
) -> Tombstone {
    Tombstone {
        cluster: view.cluster.uuid,
        nodegroup: Some(ng.uuid),
        project_id: view.cluster.project_id.clone(),
        stacks: vec![cloud.nodegroup_stack_name(view, ng)],
        deleted_at: at,
    }
}

/// The stack-hygiene counters and gauge (the reaper's, and drift repair's in `sync/drift.rs`),
/// per shard group, for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct ReapStats(Arc<Mutex<BTreeMap<u64, Counts>>>);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Deleted clusters watched; `None` once this node no longer leads the group.
    pub watched: Option<usize>,
    /// Stack-name look-ups sent to Heat (process lifetime).
    pub lookups: u64,
    /// Orphan stacks deleted (process lifetime).
    pub reaped: u64,
    /// Stacks whose worker count was PATCHed back to the rows' (process lifetime).
    pub drift_repairs: u64,
}

impl ReapStats {
    pub(crate) fn update(&self, group: u64, f: impl FnOnce(&mut Counts)) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(group).or_default());
    }

    pub fn get(&self) -> BTreeMap<u64, Counts> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Prometheus text.
    pub fn text(&self) -> String {
        let all = self.get();
        let mut out = String::new();
        if all.is_empty() {
            return out;
        }
        type Counter = (&'static str, &'static str, fn(&Counts) -> u64);
        let counters: [Counter; 3] = [
            (
                "magnum_orphan_stacks_reaped_total",
                "Stacks found alive under a deleted cluster's stack name and deleted by this conductor.",
                |c| c.reaped,
            ),
            (
                "magnum_orphan_stack_lookups_total",
                "Look-ups of deleted clusters' stack names sent to Heat by this conductor.",
                |c| c.lookups,
            ),
            (
                "magnum_stack_drift_repairs_total",
                "Finished stacks whose worker count had drifted from the rows (a stale write landed) and was PATCHed back by this conductor.",
                |c| c.drift_repairs,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (g, c) in &all {
                let _ = writeln!(out, "{name}{{group=\"{g}\"}} {}", value(c));
            }
        }
        let name = "magnum_deleted_clusters_watched";
        let _ = writeln!(
            out,
            "# HELP {name} Deleted clusters whose stack names the reaper watches, per shard this conductor leads.\n# TYPE {name} gauge"
        );
        for (g, c) in &all {
            if let Some(w) = c.watched {
                let _ = writeln!(out, "{name}{{group=\"{g}\"}} {w}");
            }
        }
        out
    }
}

/// Leadership is gone: stop.
struct Stop;

/// Runs while this node leads the shard (`cancel`), once the cluster version has tombstones.
pub async fn run(
    leader: ShardLeader,
    cloud: Arc<dyn Cloud>,
    epoch: u64,
    cfg: LeaderConfig,
    cancel: CancellationToken,
) {
    if cfg.reap_grace.is_zero() {
        return;
    }
    let group = leader.group().id();
    let needs = min_version(Kind::Shard(&ShardCommand::ForgetDeletedStacks {
        epoch,
        clusters: Vec::new(),
        nodegroups: Vec::new(),
    }));
    let tick = (cfg.reap_grace / 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut reaper = Reaper {
        leader: &leader,
        cloud: cloud.as_ref(),
        epoch,
        cfg: &cfg,
        next: HashMap::new(),
        deleted: HashSet::new(),
    };
    loop {
        if leader.active().get() >= needs {
            match reaper.pass().await {
                Ok(watched) => cfg.reap_stats.update(group, |c| c.watched = Some(watched)),
                Err(Stop) => break,
            }
        }
        if !crate::leader::pause(&cancel, tick).await {
            break;
        }
    }
    cfg.reap_stats.update(group, |c| c.watched = None);
}

struct Reaper<'a> {
    leader: &'a ShardLeader,
    cloud: &'a dyn Cloud,
    epoch: u64,
    cfg: &'a LeaderConfig,
    /// When each tombstone is looked at next (this leadership only: a new leader looks at
    /// every tombstone past its grace once, then backs off again).
    next: HashMap<TombstoneKey, Timestamp>,
    /// Stacks this leader already asked Heat to delete (counted once, deleted again if they
    /// are still there at the next look).
    deleted: HashSet<(TombstoneKey, String)>,
}

impl Reaper<'_> {
    /// One look at every tombstone that is due; returns how many are watched.
    async fn pass(&mut self) -> Result<usize, Stop> {
        let tombstones: Vec<Tombstone> = self
            .leader
            .group()
            .read_local(|l| l.state.rows().tombstones().values().cloned().collect());
        let ids: HashSet<TombstoneKey> = tombstones.iter().map(Tombstone::key).collect();
        self.next.retain(|id, _| ids.contains(id));
        self.deleted.retain(|(id, _)| ids.contains(id));
        let now = Timestamp::now();
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let (grace, retention) = (micros(self.cfg.reap_grace), micros(self.cfg.reap_retention));
        let mut expired = Vec::new();
        for t in &tombstones {
            let age = now.0.saturating_sub(t.deleted_at.0);
            let due = self.next.get(&t.key()).is_none_or(|at| *at <= now);
            if age < grace || !due {
                continue;
            }
            let clear = self.look(t).await?;
            if clear && age >= retention {
                expired.push(t.key());
            }
            // Found something: look again soon (it should be gone by then).
            let wait = if clear { age.max(grace) } else { grace };
            self.next
                .insert(t.key(), Timestamp(now.0.saturating_add(wait)));
        }
        for chunk in expired.chunks(FORGET_BATCH) {
            let cmd = ShardCommand::ForgetDeletedStacks {
                epoch: self.epoch,
                clusters: chunk
                    .iter()
                    .filter(|(_, ng)| ng.is_none())
                    .map(|(c, _)| *c)
                    .collect(),
                nodegroups: chunk
                    .iter()
                    .filter_map(|(c, ng)| ng.map(|ng| (*c, ng)))
                    .collect(),
            };
            match self.leader.propose(cmd).await {
                Ok(_) => {}
                Err(ProposeError::NotLeader { .. })
                | Err(ProposeError::Rejected(CommandError::StaleEpoch { .. })) => return Err(Stop),
                Err(e) => warn!(error = %e, "tombstones not dropped; the next pass retries"),
            }
        }
        Ok(tombstones.len() - expired.len())
    }

    /// Looks up each of the tombstone's stack names and deletes a live stack found under one.
    /// True when every name was free.
    async fn look(&mut self, t: &Tombstone) -> Result<bool, Stop> {
        let group = self.leader.group().id();
        let mut clear = true;
        for name in &t.stacks {
            self.cfg.reap_stats.update(group, |c| c.lookups += 1);
            let found = match self.cloud.find_stack(&t.project_id, name).await {
                Ok(found) => found,
                Err(e) => {
                    warn!(stack = %name, error = %e, "orphan-stack look-up failed; retried later");
                    clear = false;
                    continue;
                }
            };
            let Some(stack) = found else { continue };
            clear = false;
            // Only the current owner deletes (a deposed one stops here; a read that failed
            // otherwise leaves the stack to the next look).
            match self.leader.group().read(|l| l.state.epoch()).await {
                Ok(e) if e == self.epoch => {}
                Ok(_) | Err(WriteError::NotLeader { .. }) => return Err(Stop),
                Err(e) => {
                    warn!(stack = %name, error = %e, "leadership not confirmed; retried later");
                    continue;
                }
            }
            match self.cloud.delete_stack(&t.project_id, &stack).await {
                Ok(()) => {
                    if self.deleted.insert((t.key(), name.clone())) {
                        self.cfg.reap_stats.update(group, |c| c.reaped += 1);
                        warn!(
                            group,
                            cluster = %t.cluster,
                            nodegroup = ?t.nodegroup,
                            project = %t.project_id,
                            stack = %name,
                            stack_id = %stack.id,
                            "orphan stack of a deleted cluster or nodegroup found; deleting it"
                        );
                    }
                }
                Err(e) => {
                    warn!(stack = %name, error = %e, "orphan stack not deleted; retried later")
                }
            }
        }
        Ok(clear)
    }
}
