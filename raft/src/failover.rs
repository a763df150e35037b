//! Prompt elections: a follower whose leader went silent campaigns as soon as the leader's
//! lease has run out, in an order fixed per group.
//!
//! openraft lets a follower campaign once the silent leader's lease (`election_max`) has run
//! out *and* its own random election timeout has fired on top of it: 750–900 ms after the last
//! contact with the defaults, and another round when the two survivors split the vote. The
//! lease is what keeps lease reads safe and cannot be shortened; the random timeout on top only
//! spreads the survivors' campaigns apart. Here the survivors take turns instead: the voters
//! other than the silent leader, ranked by a rotation of the group id (so new leaders spread
//! over the nodes), ask one `stagger` apart, rank 0 just after the lease is over.
//!
//! They ask for a *pre-vote* (`Trigger::elect(true)`): no term moves unless a quorum would
//! grant the vote, and a voter that heard the leader within its lease refuses. So a leader that
//! is alive and reaches a quorum loses nothing, however wrong this node's view is; openraft's
//! own timer stays as the backstop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::quiesce::Quiet;
use crate::registry::Registry;
use crate::types::{GroupId, NodeId};

/// What one replica knows of its leader's pulse, shared by the RPC server, the group handle
/// and the node's failover and quiescence loops.
#[derive(Default)]
pub(crate) struct Pulse {
    pub(crate) contact: Contact,
    pub(crate) quiet: Quiet,
    /// Set on a draining node (`Group::set_elect(false)`): it must not campaign at all.
    pub(crate) no_elect: AtomicBool,
    /// The term in which this replica, as leader, asked for a leadership transfer (0: none).
    /// openraft's leader stops heartbeating once it asked; until the target takes over, or
    /// the followers time out and elect, the group must not go quiet (`quiesce.rs`).
    pub(crate) transfer_term: AtomicU64,
}

/// The leader this replica last accepted an AppendEntries (or heartbeat) from, and when.
/// Recorded after openraft handled it, so it is never earlier than the lease openraft keeps.
#[derive(Default)]
pub(crate) struct Contact(Mutex<Option<(NodeId, Instant)>>);

impl Contact {
    pub(crate) fn touch(&self, leader: NodeId) {
        self.set(leader, Instant::now());
    }

    /// `leader` was last heard of at `at` (a quiet group's leader: its last ping).
    pub(crate) fn set(&self, leader: NodeId, at: Instant) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((leader, at));
    }

    pub(crate) fn last(&self) -> Option<(NodeId, Instant)> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// The leader lease (openraft: `election_max`): no voter grants before it is over.
    pub(crate) lease: Duration,
    /// Between the campaigns of two ranks: one pre-vote and vote round plus the new leader's
    /// first heartbeat, so rank 1 sees rank 0 won before its own turn.
    pub(crate) stagger: Duration,
    /// Past the lease before rank 0 asks: the other voters took the same heartbeat a moment
    /// later, and one whose lease still runs refuses the pre-vote.
    pub(crate) margin: Duration,
    /// How often silent groups are looked for.
    pub(crate) tick: Duration,
}

impl Timing {
    pub(crate) fn from_heartbeat(heartbeat_ms: u64, lease_ms: u64) -> Self {
        Self {
            lease: Duration::from_millis(lease_ms),
            stagger: Duration::from_millis(heartbeat_ms.max(1)),
            margin: Duration::from_millis(heartbeat_ms / 4),
            tick: Duration::from_millis((heartbeat_ms / 10).max(1)),
        }
    }
}

/// This node's turn among the voters other than `leader` and how many they are, or `None` if
/// it is not one of them.
fn rank(
    gid: GroupId,
    me: NodeId,
    leader: NodeId,
    voters: impl Iterator<Item = NodeId>,
) -> Option<(u32, u32)> {
    let mut survivors: Vec<NodeId> = voters.filter(|v| *v != leader).collect();
    survivors.sort_unstable();
    let n = survivors.len() as u64;
    let pos = survivors.iter().position(|v| *v == me)? as u64;
    Some((((pos + n - gid % n) % n) as u32, n as u32))
}

/// What one silent group calls for at `now`.
fn due(
    t: &Timing,
    rank: u32,
    survivors: u32,
    silent: Duration,
    last_ask: Option<Duration>,
) -> bool {
    if silent < t.lease + t.margin + t.stagger * rank {
        return false;
    }
    // After its turn, a node asks again once every survivor had a turn (the first ask may
    // meet a voter whose lease lasts a moment longer, or lose to a longer log).
    last_ask.is_none_or(|since| since >= t.stagger * survivors.max(1))
}

/// Runs until `cancel`: every `tick`, asks for a pre-vote in each follower group whose leader
/// has been silent past its lease and this node's turn.
pub(crate) async fn run(
    me: NodeId,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    t: Timing,
    cancel: CancellationToken,
) {
    let mut asked: HashMap<GroupId, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(t.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        for (gid, group) in registry.open_groups() {
            let pulse = group.pulse();
            // Quiet under a live leader: nothing to detect (`quiesce.rs` orphans the group
            // when the leader stops pinging). Draining: no campaign at all.
            if pulse.quiet.is_quiet() || pulse.no_elect.load(Ordering::Relaxed) {
                continue;
            }
            let Some((leader, at)) = pulse.contact.last() else {
                continue;
            };
            let silent = now.saturating_duration_since(at);
            if silent < t.lease || leader == me {
                asked.remove(&gid);
                continue;
            }
            let m = group.raft_metrics();
            if m.state != ServerState::Follower {
                continue;
            }
            let voters = m.membership_config.membership().voter_ids();
            let Some((rank, survivors)) = rank(gid, me, leader, voters) else {
                continue;
            };
            let last_ask = asked.get(&gid).map(|a| now.saturating_duration_since(*a));
            if !due(&t, rank, survivors, silent, last_ask) {
                continue;
            }
            asked.insert(gid, now);
            metrics.prompt_election(gid);
            tracing::info!(
                gid,
                leader,
                rank,
                silent_ms = silent.as_millis() as u64,
                "leader silent past its lease: asking for a pre-vote"
            );
            tokio::spawn(group.campaign());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survivors_take_turns_rotated_by_group() {
        let voters = || [1, 2, 3].into_iter();
        // Leader 1 silent: survivors 2 and 3 rank 0 and 1, swapped from one group to the next.
        assert_eq!(rank(0, 2, 1, voters()), Some((0, 2)));
        assert_eq!(rank(0, 3, 1, voters()), Some((1, 2)));
        assert_eq!(rank(1, 2, 1, voters()), Some((1, 2)));
        assert_eq!(rank(1, 3, 1, voters()), Some((0, 2)));
        // Every survivor has a distinct turn in every group.
        for gid in 0..8 {
            let mut ranks: Vec<_> = [2, 3]
                .map(|me| rank(gid, me, 1, voters()).unwrap().0)
                .into();
            ranks.sort();
            assert_eq!(ranks, vec![0, 1]);
        }
        // A non-voter has no turn.
        assert_eq!(rank(0, 4, 1, voters()), None);
    }

    #[test]
    fn a_turn_comes_after_the_lease_and_repeats_once_every_survivor_had_one() {
        let t = Timing::from_heartbeat(100, 450);
        let ms = Duration::from_millis;
        assert!(!due(&t, 0, 2, ms(449), None), "inside the lease");
        assert!(!due(&t, 0, 2, ms(470), None), "inside the margin");
        assert!(due(&t, 0, 2, ms(475), None));
        assert!(!due(&t, 1, 2, ms(550), None), "rank 1 waits one stagger");
        assert!(due(&t, 1, 2, ms(575), None));
        assert!(!due(&t, 0, 2, ms(600), Some(ms(150))), "asked recently");
        assert!(due(&t, 0, 2, ms(675), Some(ms(200))));
    }
}
