//! Status sync (reference §7.5) for clusters with NO active operation, run only by the shard
//! leader: the reconciler follows a cluster's stack while an operation runs; afterwards this
//! loop notices a stack that changed under the finished cluster (an update or delete done in Heat
//! directly) or vanished (Heat 404), and enforces a conductor-side timeout where Heat's does not
//! fire, so that no cluster stays `*_IN_PROGRESS` for ever.
//!
//! Mapping (what [`decide`] returns):
//! - stack gone (404, or `DELETE_COMPLETE` while the cluster is not being deleted): the cluster
//!   becomes `<ACTION>_FAILED` (`CREATE_*` → `CREATE_FAILED`, `DELETE_*` → `DELETE_FAILED`,
//!   anything else → `UPDATE_FAILED`;
//!   Magnum's `CREATE_IN_PROGRESS`→`CREATE_FAILED`, `UPDATE_IN_PROGRESS`→`UPDATE_FAILED`, and the
//!   same for a finished cluster, which upstream never looks at) with reason
//!   "Stack with id X not found in Heat."; the user can then delete it (the delete finds no stack
//!   and drops the rows at once);
//! - stack `DELETE_IN_PROGRESS` (deleted in Heat directly): no change until it is gone;
//! - stack status changed since this leader last saw it and differs from the cluster's: the
//!   cluster takes the stack's status verbatim (outputs re-read for
//!   `CREATE_COMPLETE`, `CREATE_FAILED`, `UPDATE_COMPLETE`), with Heat's reason on failures;
//! - same `*_IN_PROGRESS` for longer than `stalled_after` since the cluster last changed:
//!   `<ACTION>_FAILED` "... timed out in the conductor ...".
//!
//! "Changed since last seen" keeps the conductor's own verdicts: a create failed by the
//! conductor's deadline, or an update Heat refused (400), leaves the stack in another state on
//! purpose, and copying that back would undo them. The first look after gaining leadership only
//! records the stack's status (a change made during the failover is not copied).
use crate::cloud::{Cloud, StackHandle, StackState};
use crate::logic::ShardLogic;
use crate::reconciler::ReconcilerConfig;
use magnum_proto::*;
use magnum_raft::Group;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

/// What the sync writes for one cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: ClusterStatus,
    pub reason: Option<String>,
    /// Re-read the stack with outputs before writing.
    pub with_outputs: bool,
}

fn failed_of(current: ClusterStatus) -> ClusterStatus {
    if current.as_str().starts_with("CREATE_") {
        ClusterStatus::CREATE_FAILED
    } else if current.as_str().starts_with("DELETE_") {
        ClusterStatus::DELETE_FAILED
    } else {
        ClusterStatus::UPDATE_FAILED
    }
}

/// The §7.5 mapping for a cluster with no operation. `stack` is `None` when Heat answered 404;
/// `stalled` says the cluster has not changed for `stalled_after`.
pub fn decide(
    cluster: &Cluster,
    stack_id: &str,
    stack: Option<&StackState>,
    last_seen: Option<&str>,
    stalled: bool,
) -> Option<Decision> {
    let gone = match stack {
        None => true,
        Some(s) => s.status == "DELETE_COMPLETE",
    };
    if gone {
        let reason = format!("Stack with id {stack_id} not found in Heat.");
        let status = failed_of(cluster.status);
        if cluster.status == status && cluster.status_reason.as_deref() == Some(reason.as_str()) {
            return None;
        }
        return Some(Decision {
            status,
            reason: Some(reason),
            with_outputs: false,
        });
    }
    let s = stack?;
    let Some(heat) = ClusterStatus::parse(&s.status) else {
        debug!(status = %s.status, "stack status without a cluster equivalent");
        return None;
    };
    // Deleted in Heat directly: no cluster delete runs, so the cluster is not shown deleting
    // (nothing would ever finish that); it fails once the stack is gone (above).
    if heat == ClusterStatus::DELETE_IN_PROGRESS {
        return None;
    }
    if heat != cluster.status && last_seen.is_some_and(|l| l != s.status) {
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

/// A stand-in operation for the `Cloud` calls (they read the driver and output options from the
/// operation's template snapshot).
fn probe_op(view: &ClusterView, template: ClusterTemplate, stack_name: String) -> Operation {
    let now = Timestamp::now();
    Operation {
        id: OpId(uuid::Uuid::nil()),
        cluster: view.cluster.uuid,
        kind: OpKind::Update,
        step: Step::WaitUpdate {
            stack_id: view.cluster.stack_id.clone().unwrap_or_default(),
        },
        started_at: now,
        deadline: now,
        template,
        stack_name,
        retries: 0,
        last_error: None,
        rollback: false,
        restore_node_count: None,
        nodes_to_remove: Vec::new(),
        nodegroup: None,
        upgrade: None,
        trustor: None,
    }
}

/// Clusters this loop looks at: a stack and no operation.
fn candidates(group: &Group<ShardLogic>) -> Vec<(ClusterView, Option<ClusterTemplate>)> {
    group.read_local(|l| {
        let st = &l.state;
        st.clusters
            .keys()
            .filter(|id| st.operation(**id).is_none())
            .filter_map(|id| st.view(*id))
            .filter(|v| v.cluster.stack_id.is_some())
            .map(|v| {
                let t = st.templates.get(&v.cluster.cluster_template_id).cloned();
                (v, t)
            })
            .collect()
    })
}

/// Runs until `cancel` fires (leadership lost).
pub async fn run(
    group: Group<ShardLogic>,
    cloud: Arc<dyn Cloud>,
    epoch: u64,
    cfg: ReconcilerConfig,
    cancel: CancellationToken,
) {
    if cfg.sync.is_zero() {
        return;
    }
    // Last stack status seen per cluster (in memory: rebuilt by each new leader).
    let mut seen: HashMap<ClusterId, String> = HashMap::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(cfg.sync) => {}
        }
        let list = candidates(&group);
        seen.retain(|id, _| list.iter().any(|(v, _)| v.cluster.uuid == *id));
        for (view, template) in list {
            if cancel.is_cancelled() {
                return;
            }
            let id = view.cluster.uuid;
            let span = info_span!("sync", cluster = %id, epoch);
            let last = seen.get(&id).cloned();
            match sync_one(&group, cloud.as_ref(), epoch, &cfg, view, template, last)
                .instrument(span)
                .await
            {
                Ok(Some(status)) => {
                    seen.insert(id, status);
                }
                Ok(None) => {
                    seen.remove(&id);
                }
                Err(e) if e == "stale" => return,
                Err(e) => warn!(error = %e, "status sync failed, next round retries"),
            }
        }
    }
}

async fn sync_one(
    group: &Group<ShardLogic>,
    cloud: &dyn Cloud,
    epoch: u64,
    cfg: &ReconcilerConfig,
    view: ClusterView,
    template: Option<ClusterTemplate>,
    last_seen: Option<String>,
) -> Result<Option<String>, String> {
    let Some(stack_id) = view.cluster.stack_id.clone() else {
        return Ok(None);
    };
    let project = view.cluster.project_id.clone();
    let handle = StackHandle {
        name: cloud.stack_name(&view),
        id: stack_id.clone(),
    };
    let has_template = template.is_some();
    let op = probe_op(&view, template.unwrap_or_default(), handle.name.clone());
    let state = cloud
        .get_stack(&project, &handle, &op, &view, false)
        .await
        .map_err(|e| e.to_string())?;
    let since = view.cluster.updated_at.unwrap_or(view.cluster.created_at);
    let stalled_us = i64::try_from(cfg.stalled_after.as_micros()).unwrap_or(i64::MAX);
    let stalled = Timestamp::now().0.saturating_sub(since.0) > stalled_us;
    let observed = state.as_ref().map(|s| s.status.clone());
    let Some(d) = decide(
        &view.cluster,
        &stack_id,
        state.as_ref(),
        last_seen.as_deref(),
        stalled,
    ) else {
        return Ok(observed);
    };
    // Outputs need the driver, i.e. the template (it may live in another shard).
    let outputs = if d.with_outputs && has_template {
        cloud
            .get_stack(&project, &handle, &op, &view, true)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|s| s.outputs)
    } else {
        None
    };
    info!(from = %view.cluster.status.as_str(), to = %d.status.as_str(), reason = ?d.reason, "status sync");
    let cmd = ShardCommand::SyncStatus {
        epoch,
        cluster: view.cluster.uuid,
        status: d.status,
        reason: d.reason,
        outputs,
        at: Timestamp::now(),
    };
    propose(group, cmd).await.map(|()| observed)
}

/// Proposes an observation; `Err("stale")` when this node no longer owns the shard.
pub(crate) async fn propose(
    group: &Group<ShardLogic>,
    command: ShardCommand,
) -> Result<(), String> {
    let req = ShardRequest {
        request_id: None,
        command,
    };
    let payload = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
    let bytes = group.write(payload).await.map_err(|e| match e {
        magnum_raft::WriteError::NotLeader { .. } => "stale".to_string(),
        e => e.to_string(),
    })?;
    match serde_json::from_slice::<ShardResponse>(&bytes) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(CommandError::StaleEpoch { .. })) => Err("stale".into()),
        // An operation started meanwhile, or the cluster is gone: it is no longer ours to sync.
        Ok(Err(CommandError::StaleOperation | CommandError::NotFound(_))) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("undecodable response: {e}")),
    }
}

/// Sleep helper shared with `health.rs`.
pub(crate) async fn pause(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_proto::fixtures;

    fn state(status: &str, reason: Option<&str>) -> StackState {
        StackState {
            status: status.into(),
            reason: reason.map(str::to_string),
            outputs: None,
        }
    }

    fn cluster(status: ClusterStatus) -> Cluster {
        let t = fixtures::template(&ProjectId::from("p"));
        let (mut c, _, _) = fixtures::cluster_rows(&t, "c", 1, 1);
        c.status = status;
        c
    }

    #[test]
    fn vanished_stack_fails_the_cluster_once() {
        let c = cluster(ClusterStatus::CREATE_COMPLETE);
        let d = decide(&c, "s1", None, None, false).unwrap();
        assert_eq!(d.status, ClusterStatus::CREATE_FAILED);
        assert_eq!(
            d.reason.as_deref(),
            Some("Stack with id s1 not found in Heat.")
        );
        let mut c2 = c.clone();
        c2.status = d.status;
        c2.status_reason = d.reason;
        assert_eq!(decide(&c2, "s1", None, None, false), None, "written once");
        let c = cluster(ClusterStatus::UPDATE_IN_PROGRESS);
        let d = decide(&c, "s1", Some(&state("DELETE_COMPLETE", None)), None, false).unwrap();
        assert_eq!(d.status, ClusterStatus::UPDATE_FAILED);
        let c = cluster(ClusterStatus::UPDATE_COMPLETE);
        assert_eq!(
            decide(
                &c,
                "s1",
                Some(&state("DELETE_IN_PROGRESS", None)),
                Some("UPDATE_COMPLETE"),
                false
            ),
            None
        );
    }

    #[test]
    fn changed_stack_is_copied() {
        let c = cluster(ClusterStatus::CREATE_COMPLETE);
        let failed = state("UPDATE_FAILED", Some("boom"));
        assert_eq!(
            decide(&c, "s", Some(&failed), None, false),
            None,
            "first look only records"
        );
        assert_eq!(
            decide(&c, "s", Some(&failed), Some("UPDATE_FAILED"), false),
            None,
            "unchanged stack: the cluster's own verdict stays"
        );
        let d = decide(&c, "s", Some(&failed), Some("CREATE_COMPLETE"), false).unwrap();
        assert_eq!(d.status, ClusterStatus::UPDATE_FAILED);
        assert_eq!(d.reason.as_deref(), Some("boom"));
        assert!(!d.with_outputs);
        let c = cluster(ClusterStatus::UPDATE_IN_PROGRESS);
        let d = decide(
            &c,
            "s",
            Some(&state("UPDATE_COMPLETE", Some("ok"))),
            Some("UPDATE_IN_PROGRESS"),
            false,
        )
        .unwrap();
        assert_eq!(d.status, ClusterStatus::UPDATE_COMPLETE);
        assert_eq!(d.reason, None);
        assert!(d.with_outputs);
        let c = cluster(ClusterStatus::CREATE_COMPLETE);
        assert_eq!(
            decide(
                &c,
                "s",
                Some(&state("CREATE_COMPLETE", None)),
                Some("X"),
                true
            ),
            None
        );
    }

    #[test]
    fn stalled_in_progress_times_out() {
        let c = cluster(ClusterStatus::UPDATE_IN_PROGRESS);
        let s = state("UPDATE_IN_PROGRESS", None);
        let last = Some("UPDATE_IN_PROGRESS");
        assert_eq!(decide(&c, "s", Some(&s), last, false), None);
        let d = decide(&c, "s", Some(&s), last, true).unwrap();
        assert_eq!(d.status, ClusterStatus::UPDATE_FAILED);
        assert!(d.reason.unwrap().contains("timed out"));
    }
}
