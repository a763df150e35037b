//! One Raft group replica: proposals, linearizable reads, status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{
    ClientWriteError, Fatal, ForwardReason, InitializeError, LinearizableReadError,
};
use openraft::{LinearizerOption, RaftMetrics, ReadPolicy, ServerState};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{RaftError, WriteError};
use crate::failover::Pulse;
use crate::logic::{StateMachineLogic, StoredRows};
use crate::metrics::{GroupMetrics, SnapshotCounts};
use crate::registry::Registry;
use crate::storage::sm::{read_lock, SmHandles, SmStore, TreeReader};
use crate::types::{ForwardToLeader, GroupId, NodeAddr, NodeId, ORaftError, Payload, TypeConfig};

pub(crate) type ORaft<L> = openraft::Raft<TypeConfig, SmStore<L>>;

/// How long a linearizable read waits for the local state machine to reach the read index.
const READ_APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A replica's view of its group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub group: GroupId,
    pub node: NodeId,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    pub last_applied: Option<u64>,
    pub last_log: Option<u64>,
    /// Highest log index this replica knows to be committed.
    pub committed: Option<u64>,
    /// Voters and learners of the effective membership.
    pub members: BTreeMap<NodeId, NodeAddr>,
    /// The voters among `members` (the rest are learners).
    pub voters: BTreeSet<NodeId>,
    /// Set once this replica stopped on a fatal error (fail-stop); it applies nothing more
    /// until restarted, and the rest of the group goes on without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<Halt>,
}

/// Why a replica stopped applying its group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    /// The log index whose apply failed, when the state machine failed it.
    pub index: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "at index {i}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// The halt openraft reports (`running_state`), with the index and reason the state machine
/// recorded when it was the cause. A normal shutdown is no halt.
pub(crate) fn halt_of(m: &RaftMetrics<TypeConfig>, record: &OnceLock<Halt>) -> Option<Halt> {
    match &m.running_state {
        Ok(()) | Err(Fatal::Stopped) => None,
        Err(f) => Some(record.get().cloned().unwrap_or_else(|| Halt {
            index: None,
            reason: f.to_string(),
        })),
    }
}

/// Log compaction state of a replica (diagnostics, tests).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStats {
    /// Last log index covered by the latest snapshot.
    pub snapshot: Option<u64>,
    /// Last purged log index (inclusive).
    pub purged: Option<u64>,
}

fn status_of(gid: GroupId, m: &RaftMetrics<TypeConfig>, halt: &OnceLock<Halt>) -> GroupStatus {
    GroupStatus {
        halted: halt_of(m, halt),
        group: gid,
        node: m.id,
        term: m.current_term,
        leader: m.current_leader,
        is_leader: m.state == ServerState::Leader,
        last_applied: m.last_applied.as_ref().map(|l| l.index()),
        last_log: m.last_log_index,
        committed: m.local_committed.as_ref().map(|l| l.index()),
        voters: m.membership_config.membership().voter_ids().collect(),
        members: m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect(),
    }
}

/// Brings `cur` up to `m`; true if anything changed. openraft publishes its metrics on every
/// turn of a group's loop, several per write, most of them changing nothing here: this
/// compares in place and allocates only for a status that changed.
fn refresh(cur: &mut GroupStatus, m: &RaftMetrics<TypeConfig>, halt: &OnceLock<Halt>) -> bool {
    let membership = m.membership_config.membership();
    let same = cur.node == m.id
        && cur.term == m.current_term
        && cur.leader == m.current_leader
        && cur.is_leader == (m.state == ServerState::Leader)
        && cur.last_applied == m.last_applied.as_ref().map(|l| l.index())
        && cur.last_log == m.last_log_index
        && cur.committed == m.local_committed.as_ref().map(|l| l.index())
        && cur.halted == halt_of(m, halt)
        && membership.voter_ids().eq(cur.voters.iter().copied())
        && membership
            .nodes()
            .map(|(id, n)| (*id, n))
            .eq(cur.members.iter().map(|(id, n)| (*id, n)));
    if !same {
        *cur = status_of(cur.group, m, halt);
    }
    !same
}

/// A replica's role in its group: what changes on elections, leader changes and halts, not
/// on every write ([`Group::watch_role`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRole {
    pub term: u64,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    pub halted: Option<Halt>,
}

impl GroupRole {
    fn of(st: &GroupStatus) -> Self {
        Self {
            term: st.term,
            leader: st.leader,
            is_leader: st.is_leader,
            halted: st.halted.clone(),
        }
    }
}

/// Handle of this node's replica of one group. Cheap to clone.
pub struct Group<L: StateMachineLogic> {
    inner: Arc<Inner<L>>,
}

impl<L: StateMachineLogic> Clone for Group<L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// What the group handle needs from the node's `RaftConfig`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// Leader lease (openraft: election_timeout_max).
    pub(crate) lease: Duration,
    pub(crate) retry: Duration,
    pub(crate) exit_on_storage_failure: bool,
}

/// Exit status of a process whose Raft storage failed (sysexits' EX_IOERR).
pub const EXIT_STORAGE_FAILURE: i32 = 74;

/// The first wait of a write that found its leader's lease lapsed (a quiet group waking).
const LEASE_RETRY_FIRST: Duration = Duration::from_millis(1);

/// Ends the process if this replica stopped because its storage failed to write, rather than
/// because the state machine refused an entry (that one records a `Halt` first).
fn exit_if_storage_failed(gid: GroupId, m: &RaftMetrics<TypeConfig>, record: &OnceLock<Halt>) {
    if let Err(f @ Fatal::StorageError(_)) = &m.running_state {
        if record.get().is_none() {
            tracing::error!(
                gid,
                error = %f,
                "Raft storage failed to write (disk full? I/O error?): exiting so that the \
                 supervisor restarts this conductor; the group goes on without it meanwhile"
            );
            std::process::exit(EXIT_STORAGE_FAILURE);
        }
    }
}

struct Inner<L: StateMachineLogic> {
    gid: GroupId,
    timing: Timing,
    raft: ORaft<L>,
    logic: Arc<RwLock<L>>,
    slot: Slot,
    status: watch::Receiver<GroupStatus>,
    role: watch::Receiver<GroupRole>,
    status_task: tokio::task::JoinHandle<()>,
    metrics: GroupMetrics,
    halt: Arc<OnceLock<Halt>>,
    tree: TreeReader,
}

/// Where a replica is published for the RPC server: the registry, its instance there, and the
/// pulse it shares with its endpoint.
pub(crate) struct Slot {
    pub(crate) registry: Arc<Registry>,
    pub(crate) instance: u64,
    pub(crate) pulse: Arc<Pulse>,
}

impl<L: StateMachineLogic> Drop for Inner<L> {
    fn drop(&mut self) {
        self.status_task.abort();
    }
}

impl<L: StateMachineLogic> Group<L> {
    /// `rt` runs the task that follows openraft's metrics: the Raft runtime, where the group's
    /// core publishes them, so that a turn of its loop wakes no thread of another runtime.
    pub(crate) fn new(
        rt: &tokio::runtime::Handle,
        gid: GroupId,
        timing: Timing,
        raft: ORaft<L>,
        sm: SmHandles<L>,
        slot: Slot,
        counters: GroupMetrics,
    ) -> Self {
        let SmHandles { logic, halt, tree } = sm;
        let mut metrics = raft.metrics();
        let initial = status_of(gid, &metrics.borrow_watched(), &halt);
        let record = halt.clone();
        let (tx, rx) = watch::channel(initial.clone());
        let (role_tx, role) = watch::channel(GroupRole::of(&initial));
        // Ends when the raft core stops and drops its metrics sender. openraft's guard is
        // dropped before the status is published (the core takes that lock for writing on
        // every turn): with it held across the publish, a write after failover stalled
        // (`leader_failover_keeps_writing`).
        let status_task = rt.spawn(async move {
            let mut last = initial;
            while metrics.changed().await.is_ok() {
                let changed = {
                    let m = metrics.borrow_watched();
                    if timing.exit_on_storage_failure {
                        exit_if_storage_failed(gid, &m, &record);
                    }
                    refresh(&mut last, &m, &record)
                };
                if changed {
                    tx.send_replace(last.clone());
                    let next = GroupRole::of(&last);
                    role_tx.send_if_modified(|cur| {
                        let changed = *cur != next;
                        if changed {
                            *cur = next;
                        }
                        changed
                    });
                }
            }
        });
        Self {
            inner: Arc::new(Inner {
                gid,
                timing,
                raft,
                logic,
                slot,
                status: rx,
                role,
                status_task,
                metrics: counters,
                halt,
                tree,
            }),
        }
    }

    pub fn id(&self) -> GroupId {
        self.inner.gid
    }

    /// Forms the group with `members` as voters. Ok if the group was already initialized, so
    /// every member may call it with the same membership.
    #[tracing::instrument(level = "info", skip_all, fields(gid = self.inner.gid))]
    pub async fn initialize(&self, members: BTreeMap<NodeId, NodeAddr>) -> Result<(), RaftError> {
        match self.inner.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(ORaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(ORaftError::APIError(e)) => Err(RaftError::Initialize(e.to_string())),
            Err(ORaftError::Fatal(f)) => Err(RaftError::Fatal(f.to_string())),
        }
    }

    /// Proposes `payload`; returns the state machine's response once committed and applied here.
    ///
    /// A leader without a valid lease (just elected, or cut off from its quorum) does not
    /// propose; it retries for up to one lease period, then answers `NotLeader { leader: None }`.
    /// Once proposed, this waits for the commit with no deadline of its own (forever if the
    /// quorum is gone): callers wrap it in a timeout and treat expiry as `Unknown`.
    #[tracing::instrument(level = "debug", skip_all, fields(gid = self.inner.gid, bytes = payload.len()))]
    pub async fn write(&self, payload: Vec<u8>) -> Result<Vec<u8>, WriteError> {
        let payload = Payload(payload);
        let raft = &self.inner.raft;
        self.propose(|| raft.client_write(payload.clone()))
            .await
            .map(|resp| resp.data.0)
    }

    /// Runs `proposal` (a client write or a membership change) on this replica, waking its
    /// group first. openraft refuses every proposal of a leader whose lease lapsed, and a quiet
    /// leader's has: `wake` starts the renewing round at once, which takes a round trip, so
    /// the retry starts at 1 ms and doubles up to `retry` (a fixed `retry` made every first
    /// write to a quiet shard wait 50 ms: 256 shards, 1 client, p50 54 ms). Membership changes
    /// come here too: a conductor added to an idle deployment waited forever on the first
    /// quiet group, whose refusals nothing woke.
    async fn propose<T, F, Fut>(&self, proposal: F) -> Result<T, WriteError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ORaftError<ClientWriteError<TypeConfig>>>>,
    {
        let deadline = Instant::now() + self.inner.timing.lease;
        self.wake().await.map_err(WriteError::Fatal)?;
        let mut step = LEASE_RETRY_FIRST;
        loop {
            match proposal().await {
                Ok(v) => return Ok(v),
                // Not proposed, so retrying cannot duplicate it.
                Err(ORaftError::APIError(ClientWriteError::ForwardToLeader(f)))
                    if f.reason == ForwardReason::LeaseExpired
                        && self.inner.raft.is_leader()
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(step).await;
                    step = (step * 2).min(self.inner.timing.retry);
                }
                Err(e) => return Err(self.write_error(e)),
            }
        }
    }

    /// Linearizable read: this replica confirms it is still leader with a quorum (ReadIndex)
    /// and waits until it applied up to the read index, then runs `f` on the state.
    /// A replica that cannot confirm leadership answers `NotLeader` (with a hint if it knows
    /// the leader).
    /// Used where the answer gates an external effect (fencing), so it never trusts a lease.
    #[tracing::instrument(level = "debug", skip_all, fields(gid = self.inner.gid))]
    pub async fn read<R>(&self, f: impl FnOnce(&L) -> R) -> Result<R, WriteError> {
        self.read_with(ReadPolicy::ReadIndex.into(), f).await
    }

    /// Linearizable read under the leader lease (design: "lease or read-index"): served locally
    /// while a quorum acknowledged this leader within the lease; otherwise it sends heartbeats
    /// and waits up to one lease for a fresh quorum, as a ReadIndex would. For client queries,
    /// where a quorum round per read would dominate the cost.
    #[tracing::instrument(level = "debug", skip_all, fields(gid = self.inner.gid))]
    pub async fn read_leased<R>(&self, f: impl FnOnce(&L) -> R) -> Result<R, WriteError> {
        self.read_with(LinearizerOption::new(None, true), f).await
    }

    async fn read_with<R>(
        &self,
        option: LinearizerOption,
        f: impl FnOnce(&L) -> R,
    ) -> Result<R, WriteError> {
        let raft = &self.inner.raft;
        let linearizer = match raft.get_read_linearizer(option).await {
            Ok(l) => l,
            Err(ORaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                return Err(self.not_leader(f));
            }
            // Could not confirm leadership with a quorum: no linearizable read from here.
            Err(ORaftError::APIError(LinearizableReadError::QuorumNotEnough(e))) => {
                tracing::debug!(error = %e, "read refused");
                return Err(WriteError::NotLeader { leader: None });
            }
            Err(ORaftError::Fatal(f)) => return Err(WriteError::Fatal(f.to_string())),
        };
        match linearizer
            .try_await_ready(raft, Some(READ_APPLY_TIMEOUT))
            .await
        {
            Ok(Ok(_)) => Ok(self.read_local(f)),
            Ok(Err(state)) => Err(WriteError::Unknown(format!(
                "not applied up to read index: {state}"
            ))),
            Err(f) => Err(WriteError::Fatal(f.to_string())),
        }
    }

    /// Reads this replica's state as applied so far, without any leadership check.
    pub fn read_local<R>(&self, f: impl FnOnce(&L) -> R) -> R {
        f(&read_lock(&self.inner.logic))
    }

    /// This replica's persisted app rows, for the rows its logic keeps on disk only.
    pub fn stored(&self) -> impl StoredRows + Send + Sync + 'static {
        self.inner.tree.clone()
    }

    /// Runs `f` over this replica's persisted state machine (the app's pairs, in key order) and
    /// the applied index they reflect, with applies held off so the two agree. For comparing
    /// replicas at the same index (`magnum manage verify`).
    pub async fn scan_applied<R>(
        &self,
        f: impl FnOnce(Option<u64>, &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> R,
    ) -> Result<R, RaftError> {
        Ok(self.inner.tree.scan(f).await?)
    }

    /// Test hook: overwrites an app key on this replica's disk only (a corrupt replica).
    #[cfg(feature = "testing")]
    pub async fn corrupt_for_test(&self, key: &[u8], value: &[u8]) -> Result<(), RaftError> {
        Ok(self.inner.tree.corrupt(key, value).await?)
    }

    pub fn status(&self) -> GroupStatus {
        let m = self.inner.raft.metrics();
        let m = m.borrow_watched();
        status_of(self.inner.gid, &m, &self.inner.halt)
    }

    /// Changes whenever leader, term, applied/last log index or membership change.
    pub fn watch(&self) -> watch::Receiver<GroupStatus> {
        self.inner.status.clone()
    }

    /// Changes only when term, leader, leadership or halt change: for a follower of the role
    /// (a shard's owner), which `watch` would wake on every write.
    pub fn watch_role(&self) -> watch::Receiver<GroupRole> {
        self.inner.role.clone()
    }

    pub fn log_stats(&self) -> LogStats {
        let m = self.inner.raft.metrics();
        let m = m.borrow_watched();
        LogStats {
            snapshot: m.snapshot.as_ref().map(|l| l.index()),
            purged: m.purged.as_ref().map(|l| l.index()),
        }
    }

    /// Snapshots built, installed and sent by this replica since the process started.
    pub fn snapshot_counts(&self) -> SnapshotCounts {
        self.inner.metrics.snapshot_counts()
    }

    /// Builds a snapshot now (ops, benchmarks); returns once requested, see `log_stats`.
    pub async fn trigger_snapshot(&self) -> Result<(), RaftError> {
        self.inner
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|f| RaftError::Fatal(f.to_string()))
    }

    /// Leader only: adds `id` as a learner (replication starts). With `blocking`, waits until
    /// it caught up.
    pub async fn add_learner(
        &self,
        id: NodeId,
        addr: NodeAddr,
        blocking: bool,
    ) -> Result<(), WriteError> {
        let raft = &self.inner.raft;
        self.propose(|| raft.add_learner(id, addr.clone(), blocking))
            .await
            .map(|_| ())
    }

    /// Leader only: makes `voters` the voter set (joint consensus). With `retain`, removed
    /// voters stay as learners.
    pub async fn change_membership(
        &self,
        voters: BTreeSet<NodeId>,
        retain: bool,
    ) -> Result<(), WriteError> {
        let raft = &self.inner.raft;
        self.propose(|| raft.change_membership(voters.clone(), retain))
            .await
            .map(|_| ())
    }

    /// Leader only: removes `ids` (which must not be voters) from the membership, e.g. learners
    /// of a node that leaves the deployment.
    pub async fn remove_nodes(&self, ids: BTreeSet<NodeId>) -> Result<(), WriteError> {
        let raft = &self.inner.raft;
        self.propose(|| {
            raft.change_membership(openraft::ChangeMembers::RemoveNodes(ids.clone()), false)
        })
        .await
        .map(|_| ())
    }

    /// Whether this replica may start an election when it misses the leader's heartbeats.
    /// A draining node turns it off so that it cannot win back the leaderships moved off it.
    pub fn set_elect(&self, enabled: bool) {
        self.inner
            .slot
            .pulse
            .no_elect
            .store(!enabled, Ordering::Relaxed);
        self.inner.raft.runtime_config().elect(enabled);
    }

    /// Whether this replica's group is quiet (`quiesce.rs`): no heartbeats, no timers.
    pub fn is_quiet(&self) -> bool {
        self.inner.slot.pulse.quiet.is_quiet()
    }

    /// Leader only: asks `to` to take over leadership (drain). Returns once requested; watch
    /// the status for the outcome.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), RaftError> {
        // A caller with a stale view (the placement controller right after a failover) may ask
        // the leader to hand over to itself; openraft would stop taking writes and wait for an
        // election that nobody starts until the followers time out.
        if self.status().node == to {
            return Ok(());
        }
        // Quiet followers would never time out should the hand-off fail (openraft's leader
        // stops heartbeating once it asked): wake the group, whose followers wake too.
        self.wake().await.map_err(RaftError::Fatal)?;
        // openraft's target takes over only if it holds this leader's vote, which it does once
        // it took an entry of this term. One that restarted since the election ignores the
        // request, and the group would wait for an election; refuse instead, and the caller
        // asks again once the heartbeats woken above brought the target up to date.
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let holds_term = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&to))
            .and_then(|l| l.as_ref())
            .is_some_and(|l| l.leader_id.term == m.current_term);
        if !holds_term {
            return Err(RaftError::NotReady(format!(
                "node {to} has taken no entry of term {} yet",
                m.current_term
            )));
        }
        self.inner
            .slot
            .pulse
            .transfer_term
            .store(m.current_term, Ordering::Relaxed);
        self.inner
            .raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|f| RaftError::Fatal(f.to_string()))
    }

    /// Brings a quiet group back to ticking; a leader renews its lease at once.
    async fn wake(&self) -> Result<(), String> {
        if self.inner.slot.pulse.quiet.wake() {
            let raft = &self.inner.raft;
            raft.runtime_config().tick(true);
            if raft.is_leader() {
                raft.trigger()
                    .heartbeat()
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Stops this replica. Peers see it as unreachable.
    #[tracing::instrument(level = "info", skip_all, fields(gid = self.inner.gid))]
    pub async fn shutdown(&self) {
        self.inner
            .slot
            .registry
            .remove(self.inner.gid, self.inner.slot.instance);
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft core task ended abnormally");
        }
    }

    fn write_error(&self, e: ORaftError<ClientWriteError<TypeConfig>>) -> WriteError {
        match e {
            ORaftError::APIError(ClientWriteError::ForwardToLeader(f)) => self.not_leader(f),
            ORaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
                WriteError::Unknown(format!("entry discarded on leader change: {f}"))
            }
            ORaftError::APIError(e) => WriteError::Unknown(e.to_string()),
            ORaftError::Fatal(f) => WriteError::Fatal(f.to_string()),
        }
    }

    fn not_leader(&self, f: ForwardToLeader) -> WriteError {
        let leader = match (f.leader_id, f.leader_node) {
            (Some(id), Some(node)) => Some((id, node)),
            // Fill in the address from our membership view when openraft did not.
            (Some(id), None) => self.status().members.get(&id).map(|n| (id, n.clone())),
            _ => None,
        };
        WriteError::NotLeader { leader }
    }
}
