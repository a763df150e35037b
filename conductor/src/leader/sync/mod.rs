//! Status sync (reference §7.5) for clusters with NO active operation, run only by the shard
//! leader: the reconciler follows a cluster's stacks while an operation runs; afterwards this
//! loop notices a stack that changed under the finished cluster (an update or delete done in Heat
//! directly) or vanished (Heat 404), and enforces a conductor-side timeout where Heat's does not
//! fire, so that no cluster stays `*_IN_PROGRESS` for ever.
//!
//! Each round looks at the cluster stack (it carries the default nodegroups) and then at the
//! own stack of every non-default nodegroup; a nodegroup's result is written to its row and the
//! cluster's status re-aggregated from all nodegroups (`aggregate::aggregate`), as upstream's
//! poller does per nodegroup.
//!
//! Mapping (what [`decide`] returns), the same for both kinds of stack; "the row" is the
//! nodegroup, or for the cluster stack the default master (the cluster itself when it has only
//! default nodegroups, whose status it keeps verbatim):
//! - stack gone (404, or `DELETE_COMPLETE` while the row is not being deleted): the row
//!   becomes `<ACTION>_FAILED` (`CREATE_*` → `CREATE_FAILED`, `DELETE_*` → `DELETE_FAILED`,
//!   anything else → `UPDATE_FAILED`;
//!   Magnum's `CREATE_IN_PROGRESS`→`CREATE_FAILED`, `UPDATE_IN_PROGRESS`→`UPDATE_FAILED`, and the
//!   same for a finished row, which upstream never looks at) with reason
//!   "Stack with id X not found in Heat."; the user can then delete it (the delete finds no stack
//!   and drops the rows at once). A nodegroup that was `DELETE_IN_PROGRESS` is gone instead
//!   (upstream's `DELETE_COMPLETE`: the row is destroyed);
//! - stack `DELETE_IN_PROGRESS` (deleted in Heat directly): no change until it is gone;
//! - stack status changed since this leader last saw it and differs from the row's: the row
//!   takes the stack's status verbatim (outputs re-read for
//!   `CREATE_COMPLETE`, `CREATE_FAILED`, `UPDATE_COMPLETE`), with Heat's reason on failures;
//! - a row `*_IN_PROGRESS` whose stack has settled takes the stack's status even at the first
//!   look: with no operation, nothing else would ever settle it (a resize of one nodegroup
//!   supersedes the running update of another, whose row it leaves in progress);
//! - same `*_IN_PROGRESS` for longer than `stalled_after` since the row last changed:
//!   `<ACTION>_FAILED` "... timed out in the conductor ...".
//!
//! A finished stack whose worker count drifted from the rows (a stale PATCH landed) gets the
//! rows' count PATCHed back (`drift.rs`).
//!
//! "Changed since last seen" keeps the conductor's own verdicts: a create failed by the
//! conductor's deadline, or an update Heat refused (400), leaves the stack in another state on
//! purpose, and copying that back would undo them. The first look after gaining leadership only
//! records the stack's status (a change made during the failover is not copied).
pub mod drift;
pub mod health;

use crate::cloud::{
    cluster_status, heat_status, Cloud, HeatStatus, Look, StackHandle, StackState, Target,
};
use crate::leader::{pause, LeaderConfig};
use crate::propose::{ProposeError, ShardLeader};
use crate::shard::logic::ShardLogic;
use magnum_proto::*;
use magnum_raft::Group;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

/// What the sync writes for one row.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: ClusterStatus,
    pub reason: Option<String>,
    /// Re-read the stack with outputs before writing.
    pub with_outputs: bool,
}

/// The status and reason a stack is compared with (the row it is copied into).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Current<'a> {
    pub status: ClusterStatus,
    pub reason: Option<&'a str>,
}

/// One stack the sync follows: the cluster's (`None`) or a nodegroup's.
type StackKey = (ClusterId, Option<NodeGroupId>);

fn failed_of(current: ClusterStatus) -> ClusterStatus {
    if current.as_str().starts_with("CREATE_") {
        ClusterStatus::CREATE_FAILED
    } else if current.as_str().starts_with("DELETE_") {
        ClusterStatus::DELETE_FAILED
    } else {
        ClusterStatus::UPDATE_FAILED
    }
}

fn is_gone(stack: Option<&StackState>) -> bool {
    stack.is_none_or(|s| s.status == heat_status::DELETE_COMPLETE)
}

/// The §7.5 mapping for a row with no operation. `stack` is `None` when Heat answered 404;
/// `stalled` says the row has not changed for `stalled_after`; `changed_unseen`, for a first
/// look (`last_seen` `None`), that the stack's last update started after the row was last
/// written (a change nobody copied: made in Heat while the shard changed leaders).
pub fn decide(
    current: Current<'_>,
    stack_id: &str,
    stack: Option<&StackState>,
    last_seen: Option<HeatStatus>,
    stalled: bool,
    changed_unseen: bool,
) -> Option<Decision> {
    if is_gone(stack) {
        let reason = format!("Stack with id {stack_id} not found in Heat.");
        let status = failed_of(current.status);
        if current.status == status && current.reason == Some(reason.as_str()) {
            return None;
        }
        return Some(Decision {
            status,
            reason: Some(reason),
            with_outputs: false,
        });
    }
    let s = stack?;
    let Some(heat) = cluster_status(s.status) else {
        debug!(status = %s.status, "stack status without a cluster equivalent");
        return None;
    };
    // Deleted in Heat directly: no delete runs, so the row is not shown deleting (nothing
    // would ever finish that); it fails once the stack is gone (above).
    if heat == ClusterStatus::DELETE_IN_PROGRESS {
        return None;
    }
    // A row in progress with no operation has nobody driving it (e.g. the nodegroup whose
    // update a resize of another nodegroup superseded): a settled stack settles it, first look
    // or not.
    let orphaned = current.status.is_in_progress() && !heat.is_in_progress();
    // A first look copies only a settled change made after the row: one still moving may be
    // what a conductor's verdict (a deadline) left behind on purpose.
    let changed = match last_seen {
        Some(l) => l != s.status,
        None => changed_unseen && !heat.is_in_progress(),
    };
    if heat != current.status && (orphaned || changed) {
        let reason = if heat.is_failed() {
            s.reason.clone()
        } else {
            None
        };
        let with_outputs = matches!(
            heat,
            ClusterStatus::CREATE_COMPLETE
                | ClusterStatus::CREATE_FAILED
                | ClusterStatus::UPDATE_COMPLETE
        );
        return Some(Decision {
            status: heat,
            reason,
            with_outputs,
        });
    }
    if heat.is_in_progress() && stalled {
        let action = heat.as_str().trim_end_matches("_IN_PROGRESS");
        return Some(Decision {
            status: failed_of(heat),
            reason: Some(format!(
                "Stack {action} timed out in the conductor: Heat did not finish it in time."
            )),
            with_outputs: false,
        });
    }
    None
}

/// [`decide`] for a non-default nodegroup's own stack: one that vanished while the nodegroup
/// was being deleted finishes that delete (`DELETE_COMPLETE`: the row goes), as upstream.
pub fn decide_nodegroup(
    current: Current<'_>,
    stack_id: &str,
    stack: Option<&StackState>,
    last_seen: Option<HeatStatus>,
    stalled: bool,
    changed_unseen: bool,
) -> Option<Decision> {
    if is_gone(stack) && current.status == ClusterStatus::DELETE_IN_PROGRESS {
        return Some(Decision {
            status: ClusterStatus::DELETE_COMPLETE,
            reason: None,
            with_outputs: false,
        });
    }
    decide(current, stack_id, stack, last_seen, stalled, changed_unseen)
}

/// What the cluster stack is compared with: with non-default nodegroups the cluster's status is
/// their aggregate, so a default nodegroup's row (the cluster stack's status goes to both): the
/// one left in progress if any (its update superseded by a resize of another nodegroup, it has
/// nobody else to settle it), else the default master's.
pub fn cluster_current(view: &ClusterView) -> Current<'_> {
    let defaults = || view.nodegroups.iter().filter(|n| n.is_default);
    let row = defaults()
        .find(|n| n.status.is_some_and(|s| s.is_in_progress()))
        .or_else(|| defaults().find(|n| n.is_master()))
        .filter(|_| view.nodegroups.iter().any(|n| !n.is_default));
    match row {
        Some(NodeGroup {
            status: Some(status),
            status_reason,
            ..
        }) => Current {
            status: *status,
            reason: status_reason.as_deref(),
        },
        _ => Current {
            status: view.cluster.status,
            reason: view.cluster.status_reason.as_deref(),
        },
    }
}

/// Clusters this loop looks at: a stack and no operation.
fn candidates(group: &Group<ShardLogic>) -> Vec<(ClusterView, Option<ClusterTemplate>)> {
    group.read_local(|l| {
        let st = &l.state;
        st.clusters()
            .keys()
            .filter(|id| st.operation(**id).is_none())
            .filter_map(|id| st.view(*id))
            .filter(|v| v.cluster.stack_id.is_some())
            .map(|v| {
                let t = st.templates().get(&v.cluster.cluster_template_id).cloned();
                (v, t)
            })
            .collect()
    })
}

/// The non-default nodegroups with a stack of their own (and a status to compare it with).
fn own_stacks(view: &ClusterView) -> impl Iterator<Item = &NodeGroup> {
    view.nodegroups
        .iter()
        .filter(|n| !n.is_default && n.stack_id.is_some() && n.status.is_some())
}

/// What this leader last saw of one stack (in memory: rebuilt by each new leader).
struct Seen {
    /// `None`: gone from Heat.
    status: Option<HeatStatus>,
    updated: Option<String>,
    /// When an idle stack is looked at next.
    next: Instant,
}

/// How much Heat's clock and ours may disagree when a stack's update time is compared with a
/// row's (NTP keeps them far closer; a wrong call costs one GET or one copy, never a loss).
const CLOCK_SKEW_US: i64 = 60_000_000;

/// Whether `updated` (Heat's `updated_time`, when the stack's last update started) is after the
/// row was last written at `since`, less the skew. A stack never updated was not;
/// `None`: Heat's time could not be read.
fn updated_after(updated: Option<&str>, since: Timestamp) -> Option<bool> {
    use ::time::format_description::well_known::Rfc3339;
    use ::time::{OffsetDateTime, PrimitiveDateTime};
    let Some(u) = updated else {
        return Some(false);
    };
    // Heat writes `2016-04-19T08:22:01Z`; some versions drop the zone (UTC all the same).
    let at = OffsetDateTime::parse(u, &Rfc3339)
        .or_else(|_| {
            let naive = ::time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
            );
            PrimitiveDateTime::parse(u, &naive).map(PrimitiveDateTime::assume_utc)
        })
        .ok()?;
    let us = i64::try_from(at.unix_timestamp_nanos() / 1000).ok()?;
    Some(us > since.0.saturating_sub(CLOCK_SKEW_US))
}

/// Whether a stack is looked at this round. Moving stacks, rows in progress, rows written
/// within `idle` (a stale write from a paused leader may still land) and first looks are
/// looked at every round; the others once per `idle` (zero: every round).
fn due(
    st: &StackToSync<'_>,
    seen: Option<&Seen>,
    now: Instant,
    wall: Timestamp,
    idle: Duration,
) -> bool {
    let Some(seen) = seen else {
        return true;
    };
    let idle_us = i64::try_from(idle.as_micros()).unwrap_or(i64::MAX);
    idle.is_zero()
        || st.current.status.is_in_progress()
        || seen.status.is_some_and(|s| s.is_in_progress())
        || wall.0.saturating_sub(st.since.0) < idle_us
        || now >= seen.next
}

/// A fixed fraction in [0, 1) per stack: spreads the idle looks a new leader schedules after
/// its first round over the whole period instead of repeating that round's burst.
fn phase(stack_id: &str) -> f64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    stack_id.hash(&mut h);
    (h.finish() % 10_000) as f64 / 10_000.0
}

/// Runs until `cancel` fires (leadership lost).
pub async fn run(
    leader: ShardLeader,
    cloud: Arc<dyn Cloud>,
    epoch: u64,
    cfg: LeaderConfig,
    cancel: CancellationToken,
) {
    if cfg.sync.is_zero() {
        return;
    }
    let mut seen: HashMap<StackKey, Seen> = HashMap::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(cfg.sync) => {}
        }
        let list = candidates(leader.group());
        // One pass over the list, not one per remembered stack (thousands of each per shard).
        let live: std::collections::HashSet<StackKey> = list
            .iter()
            .flat_map(|(v, _)| {
                let id = v.cluster.uuid;
                std::iter::once((id, None)).chain(own_stacks(v).map(move |n| (id, Some(n.uuid))))
            })
            .collect();
        seen.retain(|key, _| live.contains(key));
        let syncs: Vec<Sync<'_>> = list
            .iter()
            .map(|(view, template)| Sync {
                leader: &leader,
                cloud: cloud.as_ref(),
                epoch,
                cfg: &cfg,
                target: match template {
                    Some(t) => Target::new(t, view, None),
                    None => Target::status_only(view),
                },
                has_template: template.is_some(),
            })
            .collect();
        let (now, wall) = (Instant::now(), Timestamp::now());
        let due: Vec<(&Sync<'_>, StackToSync<'_>)> = syncs
            .iter()
            .flat_map(|s| s.stacks().into_iter().map(move |st| (s, st)))
            .filter(|(s, st)| {
                let key = (s.target.view.cluster.uuid, st.ng);
                due(st, seen.get(&key), now, wall, cfg.idle_sync)
            })
            .collect();
        // All at once, so that the feed lists them together.
        let looks = futures::future::join_all(
            due.iter()
                .map(|(s, st)| cloud.look_stack(&s.target.view.cluster.project_id, &st.handle)),
        )
        .await;
        for ((sync, st), look) in due.into_iter().zip(looks) {
            if cancel.is_cancelled() {
                return;
            }
            let key = (sync.target.view.cluster.uuid, st.ng);
            let span = info_span!("sync", cluster = %key.0, epoch);
            let last = seen.get(&key);
            let first = last.is_none();
            match sync.one(&st, last, look).instrument(span).await {
                Ok(observed) => {
                    let wait = match first {
                        true => cfg.idle_sync.mul_f64(phase(&st.handle.id)),
                        false => cfg.idle_sync,
                    };
                    let (status, updated) =
                        observed.map_or((None, None), |s| (Some(s.status), s.updated));
                    seen.insert(
                        key,
                        Seen {
                            status,
                            updated,
                            next: now + wait,
                        },
                    );
                }
                Err(e) if e == "stale" => return,
                Err(e) => warn!(error = %e, "status sync failed, next round retries"),
            }
        }
    }
}

/// One stack a round may look at.
struct StackToSync<'a> {
    /// `None`: the cluster stack.
    ng: Option<NodeGroupId>,
    handle: StackHandle,
    /// The row it is compared with.
    current: Current<'a>,
    /// When that row last changed.
    since: Timestamp,
}

/// One cluster's round.
struct Sync<'a> {
    leader: &'a ShardLeader,
    cloud: &'a dyn Cloud,
    epoch: u64,
    cfg: &'a LeaderConfig,
    /// Built without the trustee: status reads render no stack.
    target: Target<'a>,
    /// Outputs need the driver, i.e. the template (it may live in another shard).
    has_template: bool,
}

impl<'a> Sync<'a> {
    /// The cluster stack, then each non-default nodegroup's own.
    fn stacks(&self) -> Vec<StackToSync<'a>> {
        let view: &'a ClusterView = self.target.view;
        let c = &view.cluster;
        let mut out = Vec::new();
        if let Some(id) = &c.stack_id {
            out.push(StackToSync {
                ng: None,
                handle: StackHandle {
                    name: self.cloud.stack_name(view),
                    id: id.clone(),
                },
                current: cluster_current(view),
                since: c.updated_at.unwrap_or(c.created_at),
            });
        }
        for n in own_stacks(view) {
            let (Some(id), Some(status)) = (&n.stack_id, n.status) else {
                continue;
            };
            out.push(StackToSync {
                ng: Some(n.uuid),
                handle: StackHandle {
                    name: self.cloud.nodegroup_stack_name(view, n),
                    id: id.clone(),
                },
                current: Current {
                    status,
                    reason: n.status_reason.as_deref(),
                },
                since: n.updated_at.unwrap_or(n.created_at),
            });
        }
        out
    }

    /// Syncs one stack from what `look` found (a GET when the listing did not show it); the
    /// stack as observed, `None` when Heat no longer has it. Each write works from the view
    /// read at the round's start: a nodegroup write proposed after the cluster stack's
    /// re-aggregates in `apply()` from the rows it then has.
    async fn one(
        &self,
        st: &StackToSync<'_>,
        seen: Option<&Seen>,
        look: Look,
    ) -> Result<Option<StackState>, String> {
        let view = self.target.view;
        let (handle, current) = (&st.handle, st.current);
        let (mut state, listed) = match look {
            Look::Listed(g) => (Some(g.state()), true),
            Look::NotListed | Look::Unbatched => (self.get(handle, false).await?, false),
        };
        let stalled_us = i64::try_from(self.cfg.stalled_after.as_micros()).unwrap_or(i64::MAX);
        let stalled = Timestamp::now().0.saturating_sub(st.since.0) > stalled_us;
        let after_row = state
            .as_ref()
            .and_then(|s| updated_after(s.updated.as_deref(), st.since));
        let changed_unseen = seen.is_none() && after_row == Some(true);
        let last = seen.and_then(|s| s.status);
        let stack = state.as_ref();
        let decided = match st.ng {
            None => decide(current, &handle.id, stack, last, stalled, changed_unseen),
            Some(_) => decide_nodegroup(current, &handle.id, stack, last, stalled, changed_unseen),
        };
        let Some(d) = decided else {
            if let Some(s) = &state {
                // Drift comes from a stale PATCH: a listed stack is read with its parameters
                // when one may have landed since the last look (its update time or status
                // moved; Heat's time has whole seconds, so two PATCHes can share one), and after
                // every look while an update is recent (the stale one may come from a leader
                // paused through it).
                let moved = match seen {
                    Some(seen) => {
                        seen.updated != s.updated
                            || seen.status != Some(s.status)
                            || self.updated_lately(st)
                    }
                    None => after_row != Some(false),
                };
                if listed && moved {
                    state = self.get(handle, false).await?;
                }
                if !listed || moved {
                    if let Some(s) = &state {
                        self.repair_drift(st.ng, handle, current.status, s).await?;
                    }
                }
            }
            return Ok(state);
        };
        let outputs = if d.with_outputs && self.has_template {
            self.get(handle, true).await?.and_then(|s| s.outputs)
        } else {
            None
        };
        info!(nodegroup = ?st.ng, from = %current.status.as_str(), to = %d.status.as_str(), reason = ?d.reason, "status sync");
        let (cluster, epoch, at) = (view.cluster.uuid, self.epoch, Timestamp::now());
        let cmd = match st.ng {
            None => ShardCommand::SyncStatus {
                epoch,
                cluster,
                status: d.status,
                reason: d.reason,
                outputs,
                at,
            },
            Some(nodegroup) => ShardCommand::SyncNodeGroupStatus {
                epoch,
                cluster,
                nodegroup,
                status: d.status,
                reason: d.reason,
                node_addresses: outputs.map(|o| o.node_addresses),
                at,
            },
        };
        propose(self.leader, cmd).await.map(|()| state)
    }

    /// The row is an update's result and was written within the idle period.
    fn updated_lately(&self, st: &StackToSync<'_>) -> bool {
        let idle_us = i64::try_from(self.cfg.idle_sync.as_micros()).unwrap_or(i64::MAX);
        st.current.status.as_str().starts_with("UPDATE_")
            && Timestamp::now().0.saturating_sub(st.since.0) < idle_us
    }

    async fn get(
        &self,
        handle: &StackHandle,
        with_outputs: bool,
    ) -> Result<Option<StackState>, String> {
        self.cloud
            .get_stack(&self.target, handle, with_outputs)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Proposes an observation; `Err("stale")` when this node no longer owns the shard.
pub(crate) async fn propose(leader: &ShardLeader, command: ShardCommand) -> Result<(), String> {
    match leader.propose(command).await {
        Ok(_) => Ok(()),
        Err(ProposeError::NotLeader { .. })
        | Err(ProposeError::Rejected(CommandError::StaleEpoch { .. })) => Err("stale".into()),
        // An operation started meanwhile, or the cluster (nodegroup) is gone: not ours to sync.
        Err(ProposeError::Rejected(CommandError::StaleOperation | CommandError::NotFound(_))) => {
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
