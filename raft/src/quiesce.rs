//! Quiescence: a group with nothing to replicate stops ticking on every replica, and one ping
//! per peer pair per heartbeat interval carries what its heartbeats did.
//!
//! Every group's leader heartbeats each follower every `heartbeat_ms`; with 256 shards on three
//! conductors that is over 5,000 RPCs a second with nothing to say, and as many timer wakeups.
//! Here:
//! - **Leader.** A group it leads goes quiet once it had no new entry for `QUIET_AFTER`, every
//!   voter holds every entry, and every other voter answers pings. It is first *announced* in
//!   the pings to its voters; once each of them answered that it stopped its own ticker for it,
//!   the leader stops its ticker too (no heartbeats, no timers). A proposal wakes it
//!   (`Group::write` calls [`Quiet::wake`] first), and so does any new entry seen here.
//! - **Follower.** Stops its ticker (so it cannot time out and campaign) when its leader's ping
//!   lists the group at the term it follows. Starts it again on an append that carries entries
//!   (the woken leader's, or a new leader's first). Empty appends (a quiet leader's read-index
//!   rounds) do not wake it: the leader would not heartbeat after them. Nor does it rest on once
//!   its leader's ping stops listing the group (the leader woke it, or restarted and leads it no
//!   more: leadership does not survive a restart). When no ping came from
//!   the leader for a lease, the group is *orphaned*: `failover.rs` sees the leader silent past
//!   its lease and campaigns in turn at once, so a dead leader of a quiet group is replaced as
//!   fast as one of a busy group; one lease later the ticker starts too, as the backstop.
//! - A leader stays quiet only while every voter's latest answer says it stopped its ticker: a
//!   restarted follower (awake, knowing no leader) makes the leader heartbeat until it learns it.
//!
//! Only timers stop: Raft's safety does not depend on them. A quiet leader's lease lapses, so a
//! leased read on it costs one quorum round (as a read-index would). The ticker is used, not the
//! election switch, which belongs to draining (`Group::set_elections`).
//!
//! Versions: `POST /raft/v1/ping` came with this module. A peer of an older release answers 404;
//! groups with such a voter never go quiet.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openraft::ServerState;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::codec;
use crate::registry::Registry;
use crate::types::{GroupId, NodeId};

/// How long a group leader waits without a new entry before it asks to go quiet.
pub(crate) const QUIET_AFTER: Duration = Duration::from_secs(2);
/// Route of the node-level ping (not per group).
pub(crate) const PING_PATH: &str = "/raft/v1/ping";
/// A ping body lists at most every group of the sender: a few bytes each.
pub(crate) const MAX_PING_BYTES: usize = 1 << 20;

/// One ping: the sender is alive, and keeps these groups (it leads them at `term`) quiet.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Ping {
    pub(crate) from: NodeId,
    pub(crate) quiet: Vec<(GroupId, u64)>,
}

/// The answer: groups of the ping's list in which the receiver stopped its ticker.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Pong {
    pub(crate) stopped: Vec<GroupId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Awake,
    /// Leader: listed in pings, waiting for every voter to stop its ticker.
    Announced {
        term: u64,
    },
    /// Leader: ticker stopped.
    Leading {
        term: u64,
    },
    /// Follower: ticker stopped because `leader`'s ping listed the group at `term`.
    Following {
        leader: NodeId,
        term: u64,
    },
    /// Follower: the quiet group's leader stopped pinging at `since`; ticker still stopped
    /// while `failover.rs` campaigns in turn.
    Orphaned {
        since: Instant,
    },
}

/// One replica's quiescence state (shared by the RPC server, the group handle and the loop).
pub(crate) struct Quiet(Mutex<State>);

impl Default for Quiet {
    fn default() -> Self {
        Self(Mutex::new(State::Awake))
    }
}

impl Quiet {
    fn get(&self) -> State {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, s: State) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = s;
    }

    /// Back to awake; true if the ticker has to start again.
    pub(crate) fn wake(&self) -> bool {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let was = *s;
        *s = State::Awake;
        matches!(
            was,
            State::Leading { .. } | State::Following { .. } | State::Orphaned { .. }
        )
    }

    /// Quiet under a live leader (or leading quietly): `failover.rs` leaves such a group alone.
    pub(crate) fn is_quiet(&self) -> bool {
        matches!(self.get(), State::Leading { .. } | State::Following { .. })
    }

    /// Follower of a quiet group whose leader pinged within `lease`: votes of other candidates
    /// wait, as openraft's lease would make them wait in a group that heartbeats. The leader
    /// itself asking means it leads no more (it restarted).
    pub(crate) fn leader_alive(&self, peers: &Peers, lease: Duration, candidate: NodeId) -> bool {
        match self.get() {
            State::Following { leader, .. } if leader != candidate => {
                peers.heard(leader).is_some_and(|t| t.elapsed() <= lease)
            }
            _ => false,
        }
    }
}

/// What this node knows of its peers' pings.
#[derive(Default)]
pub(crate) struct Peers(Mutex<HashMap<NodeId, PeerState>>);

#[derive(Default)]
struct PeerState {
    /// Last ping received from the peer.
    heard: Option<Instant>,
    /// Last successful answer to our ping, with the groups it stopped.
    answered: Option<Instant>,
    stopped: BTreeSet<GroupId>,
}

impl Peers {
    fn with<R>(&self, peer: NodeId, f: impl FnOnce(&mut PeerState) -> R) -> R {
        let mut peers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(peers.entry(peer).or_default())
    }

    pub(crate) fn heard(&self, peer: NodeId) -> Option<Instant> {
        self.with(peer, |p| p.heard)
    }

    /// The peer answered a ping within `d`, and its latest answer stopped its ticker for `gid`.
    fn stopped_within(&self, peer: NodeId, gid: GroupId, d: Duration) -> bool {
        self.with(peer, |p| {
            p.answered.is_some_and(|t| t.elapsed() <= d) && p.stopped.contains(&gid)
        })
    }

    fn answers_within(&self, peer: NodeId, d: Duration) -> bool {
        self.with(peer, |p| p.answered.is_some_and(|t| t.elapsed() <= d))
    }
}

/// Serves one ping (the follower's side).
pub(crate) fn on_ping(registry: &Registry, ping: &Ping) -> Pong {
    registry
        .peers
        .with(ping.from, |p| p.heard = Some(Instant::now()));
    let listed: BTreeMap<GroupId, u64> = ping.quiet.iter().copied().collect();
    let mut stopped = Vec::new();
    for (gid, group) in registry.open_groups() {
        let quiet = &group.pulse().quiet;
        let Some(&term) = listed.get(&gid) else {
            // The leader this replica rests under no longer lists the group: it woke it, or it
            // restarted and leads it no more. A restarted leader pings as soon as it is up, so
            // waiting for its pings to stop would wait forever while it cannot win a vote
            // from followers that still count it alive (`leader_alive`).
            if matches!(quiet.get(), State::Following { leader, .. } if leader == ping.from)
                && quiet.wake()
            {
                group.set_ticking(true);
            }
            continue;
        };
        // Already quiet under this leader and term: only a wake changes that.
        if quiet.get()
            == (State::Following {
                leader: ping.from,
                term,
            })
        {
            stopped.push(gid);
            continue;
        }
        let m = group.raft_metrics();
        let follows = m.state == ServerState::Follower
            && m.current_leader == Some(ping.from)
            && m.current_term == term;
        if follows {
            quiet.set(State::Following {
                leader: ping.from,
                term,
            });
            group.set_ticking(false);
            stopped.push(gid);
        }
    }
    Pong { stopped }
}

/// Runs until `cancel`: every `interval`, decides which groups this node leads can go quiet or
/// must wake, wakes followed groups whose leader stopped pinging, and pings every peer.
pub(crate) async fn run(
    me: NodeId,
    registry: Arc<Registry>,
    http: magnum_net::InternalClient,
    interval: Duration,
    lease: Duration,
    cancel: CancellationToken,
) {
    let mut last_entry: HashMap<GroupId, (Option<u64>, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut announce: BTreeMap<NodeId, Vec<(GroupId, u64)>> = BTreeMap::new();
        let mut peers: BTreeMap<NodeId, String> = BTreeMap::new();
        for (gid, group) in registry.open_groups() {
            let m = group.raft_metrics();
            let membership = m.membership_config.membership();
            for (id, addr) in membership.nodes() {
                if *id != me {
                    peers.insert(*id, addr.raft.clone());
                }
            }
            let now = Instant::now();
            let entry = last_entry.entry(gid).or_insert((m.last_log_index, now));
            if entry.0 != m.last_log_index {
                *entry = (m.last_log_index, now);
            }
            let idle = now.saturating_duration_since(entry.1);
            let quiet = &group.pulse().quiet;
            if m.state != ServerState::Leader {
                match quiet.get() {
                    State::Following { leader, .. } => {
                        let heard = registry.peers.heard(leader);
                        if heard.is_none_or(|t| now.saturating_duration_since(t) > lease) {
                            tracing::info!(gid, leader, "quiet group's leader stopped pinging");
                            // Its last ping is its last sign of life: the survivors' turns
                            // count from there, one stagger apart.
                            if let Some(t) = heard {
                                group.pulse().contact.set(leader, t);
                            }
                            quiet.set(State::Orphaned { since: now });
                        }
                    }
                    State::Orphaned { since } if now.saturating_duration_since(since) < lease => {}
                    State::Announced { .. } | State::Leading { .. } | State::Orphaned { .. }
                        if quiet.wake() =>
                    {
                        group.set_ticking(true);
                    }
                    _ => {}
                }
                continue;
            }
            let term = m.current_term;
            let others: Vec<NodeId> = membership.voter_ids().filter(|v| *v != me).collect();
            let replicated = m.replication.as_ref().is_some_and(|r| {
                others.iter().all(|v| {
                    r.get(v).and_then(|l| l.as_ref().map(|l| l.index())) == m.last_log_index
                })
            });
            let reachable = others
                .iter()
                .all(|v| registry.peers.answers_within(*v, lease));
            let transferring = group.pulse().transfer_term.load(Ordering::Relaxed) == term;
            let can_rest = idle >= QUIET_AFTER
                && replicated
                && reachable
                && !transferring
                && !others.is_empty();
            let all_stopped = || {
                others
                    .iter()
                    .all(|v| registry.peers.stopped_within(*v, gid, lease))
            };
            match quiet.get() {
                State::Awake if can_rest => quiet.set(State::Announced { term }),
                State::Announced { term: t } if can_rest && t == term => {
                    if all_stopped() {
                        quiet.set(State::Leading { term });
                        group.set_ticking(false);
                        tracing::debug!(gid, term, "group quiet");
                    }
                }
                State::Leading { term: t } if can_rest && t == term && all_stopped() => {}
                // A new entry, a new term, a follower that woke or stopped answering; or this
                // replica was elected while its ticker was stopped as a follower.
                State::Awake => {}
                _ => {
                    if quiet.wake() {
                        group.set_ticking(true);
                    }
                }
            }
            if let State::Announced { term } | State::Leading { term } = quiet.get() {
                for v in &others {
                    announce.entry(*v).or_default().push((gid, term));
                }
            }
        }
        for (peer, addr) in peers {
            let ping = Ping {
                from: me,
                quiet: announce.remove(&peer).unwrap_or_default(),
            };
            let (http, registry) = (http.clone(), registry.clone());
            tokio::spawn(async move {
                let answer = send(&http, &addr, &ping, interval * 2).await;
                if let Some(pong) = answer {
                    registry.peers.with(peer, |p| {
                        p.answered = Some(Instant::now());
                        p.stopped = pong.stopped.into_iter().collect();
                    });
                }
            });
        }
    }
}

async fn send(
    http: &magnum_net::InternalClient,
    addr: &str,
    ping: &Ping,
    timeout: Duration,
) -> Option<Pong> {
    let body = codec::encode(ping).ok()?;
    let resp = http
        .send(addr, PING_PATH, |h, url| {
            h.post(url)
                .timeout(timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body.clone())
        })
        .await
        .ok()?;
    if !resp.status().is_success() {
        // 404: a release before pings; its groups stay awake.
        return None;
    }
    codec::decode(&resp.bytes().await.ok()?).ok()
}
