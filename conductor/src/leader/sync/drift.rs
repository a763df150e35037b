//! Drift repair: a finished cluster's stacks carry the worker counts its rows hold.
//!
//! Nothing fences a Heat PATCH. A leader paused between its leadership check and its PATCH can
//! wake after a newer update was PATCHed and land its stale count; the stack then completes with
//! a count nobody asked for any more. So the sync compares the count parameter the driver scales
//! with what Heat reports, and PATCHes the rows' count back.
//!
//! The rules, each with its reason:
//! - only with no operation, the row `CREATE_COMPLETE`/`UPDATE_COMPLETE` and the stack
//!   `CREATE_COMPLETE`/`UPDATE_COMPLETE`: a failed update legitimately leaves Heat with another
//!   count (the row puts the previous one back), and a stack in progress is still moving;
//! - only parameters Heat reports are compared (a cloud that reports none never drifts);
//! - before the PATCH a leased read confirms this node still leads the shard in the same epoch
//!   and the rows still ask for that count with no operation: a repair can then race only an
//!   update that starts after that read, and such an update ends in a round that compares again,
//!   so a repair is at worst followed by another, never left standing.
use super::Sync;
use crate::cloud::{ScaleSpec, StackAction, StackHandle, StackState, StackUpdate};
use magnum_drivers::openstack::StackState as Phase;
use magnum_proto::{ClusterStatus, ClusterView, NodeGroupId};
use magnum_raft::WriteError;
use serde_json::Value;
use std::collections::BTreeMap;
use tracing::warn;

/// The parameters of `want` that Heat reports with another value (Heat reports every parameter
/// as a string).
pub fn drifted(want: &BTreeMap<String, Value>, have: &BTreeMap<String, String>) -> Vec<String> {
    want.iter()
        .filter_map(|(key, value)| {
            let reported = have.get(key)?;
            let wanted = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (reported.trim() != wanted).then(|| key.clone())
        })
        .collect()
}

/// The count the rows ask of a stack: the nodegroup's own, or the default worker's for the
/// cluster stack.
pub fn wanted_count(view: &ClusterView, ng: Option<NodeGroupId>) -> Option<u32> {
    view.nodegroups
        .iter()
        .find(|n| match ng {
            Some(id) => n.uuid == id,
            None => n.is_default && !n.is_master(),
        })
        .map(|n| n.node_count)
}

fn finished(row: ClusterStatus, stack: &StackState) -> bool {
    matches!(
        row,
        ClusterStatus::CREATE_COMPLETE | ClusterStatus::UPDATE_COMPLETE
    ) && stack.status.state == Phase::Complete
        && matches!(
            stack.status.action,
            StackAction::Create | StackAction::Update
        )
}

impl Sync<'_> {
    /// PATCHes the rows' count back into a finished stack that drifted from it. `Err("stale")`
    /// when this node no longer owns the shard.
    pub(super) async fn repair_drift(
        &self,
        ng: Option<NodeGroupId>,
        handle: &StackHandle,
        row: ClusterStatus,
        stack: &StackState,
    ) -> Result<(), String> {
        let view = self.target.view;
        if !self.has_template || !finished(row, stack) {
            return Ok(());
        }
        let Some(count) = wanted_count(view, ng) else {
            return Ok(());
        };
        let driver = self.target.driver().map_err(|e| e.to_string())?;
        let scale = ScaleSpec {
            node_count: count,
            nodes_to_remove: Vec::new(),
            rollback: false,
        };
        let keys = drifted(&driver.scale_request(&scale).parameters, &stack.parameters);
        if keys.is_empty() {
            return Ok(());
        }
        let id = view.cluster.uuid;
        let now = self
            .leader
            .group()
            .read(move |l| {
                let st = &l.state;
                let idle = st.operation(id).is_none();
                let count = st.view(id).and_then(|v| wanted_count(&v, ng));
                (st.epoch(), idle, count)
            })
            .await;
        match now {
            Ok((epoch, ..)) if epoch != self.epoch => return Err("stale".into()),
            Ok((_, true, Some(c))) if c == count => {}
            // The rows moved since the round read them: the next round compares again.
            Ok(_) => return Ok(()),
            Err(WriteError::NotLeader { .. }) => return Err("stale".into()),
            Err(e) => return Err(format!("leadership not confirmed: {e}")),
        }
        let reported: Vec<String> = keys
            .iter()
            .map(|k| format!("{k}={}", stack.parameters.get(k).map_or("", String::as_str)))
            .collect();
        warn!(nodegroup = ?ng, stack = %handle.name, ?reported, count, "stack drifted from the rows (a stale write landed); PATCHing the rows' count back");
        self.cloud
            .update_stack(&self.target, handle, &StackUpdate::Scale(scale))
            .await
            .map_err(|e| e.to_string())?;
        let group = self.leader.group().id();
        self.cfg.reap_stats.update(group, |c| c.drift_repairs += 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn have(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_reported_parameters_with_other_values_drift() {
        let want = BTreeMap::from([("number_of_minions".to_string(), json!(3))]);
        assert!(drifted(&want, &have(&[("number_of_minions", "3")])).is_empty());
        assert_eq!(
            drifted(&want, &have(&[("number_of_minions", "2")])),
            vec!["number_of_minions".to_string()]
        );
        // A cloud that does not report the parameter never drifts.
        assert!(drifted(&want, &have(&[("other", "2")])).is_empty());
        let named = BTreeMap::from([("flavor".to_string(), json!("m1.small"))]);
        assert!(drifted(&named, &have(&[("flavor", "m1.small")])).is_empty());
    }

    #[test]
    fn only_finished_rows_and_stacks_are_repaired() {
        use magnum_drivers::openstack::status_of;
        let stack = |s: &str| StackState {
            status: status_of(s).unwrap(),
            reason: None,
            outputs: None,
            parameters: BTreeMap::new(),
            updated: None,
        };
        assert!(finished(
            ClusterStatus::UPDATE_COMPLETE,
            &stack("UPDATE_COMPLETE")
        ));
        assert!(finished(
            ClusterStatus::CREATE_COMPLETE,
            &stack("UPDATE_COMPLETE")
        ));
        // A failed update put the previous count back on purpose; Heat keeps what it tried.
        assert!(!finished(
            ClusterStatus::UPDATE_FAILED,
            &stack("UPDATE_COMPLETE")
        ));
        assert!(!finished(
            ClusterStatus::UPDATE_COMPLETE,
            &stack("UPDATE_IN_PROGRESS")
        ));
        assert!(!finished(
            ClusterStatus::UPDATE_COMPLETE,
            &stack("ROLLBACK_COMPLETE")
        ));
    }
}
