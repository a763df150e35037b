//! A cluster's status from its nodegroups' (reference §7.5), as a pure function so that the
//! state machine and its tests agree on one rule.
use magnum_proto::{ClusterStatus, NodeGroup};

/// The cluster status and reason its nodegroups imply; `previous` is the cluster's status before.
///
/// The default master's status is the base. When it is settled and other nodegroups exist,
/// the action is DELETE if the master is deleting, else UPDATE, and the first state any
/// nodegroup is in, by priority IN_PROGRESS > FAILED > COMPLETE, completes it. A failed
/// result names the failed nodegroups. CREATE_COMPLETE only stays after a create.
pub fn aggregate(ngs: &[NodeGroup], previous: ClusterStatus) -> (ClusterStatus, Option<String>) {
    let master = ngs
        .iter()
        .find(|n| n.is_default && n.is_master())
        .and_then(|n| n.status);
    let Some(master) = master else {
        return (previous, None);
    };
    let mut status = master;
    let mut reason = None;
    if ngs.iter().any(|n| !n.is_default) {
        let action = if master.as_str().starts_with("DELETE") {
            "DELETE"
        } else {
            "UPDATE"
        };
        let statuses: Vec<ClusterStatus> = ngs.iter().filter_map(|n| n.status).collect();
        for state in ["_IN_PROGRESS", "_FAILED", "_COMPLETE"] {
            if !statuses.iter().any(|s| s.as_str().ends_with(state)) {
                continue;
            }
            if let Some(s) = ClusterStatus::parse(&format!("{action}{state}")) {
                status = s;
            }
            if state == "_FAILED" {
                let failed: Vec<String> = ngs
                    .iter()
                    .filter(|n| n.status.is_some_and(|s| s.as_str().ends_with("_FAILED")))
                    .map(|n| format!("{} failed", n.name))
                    .collect();
                reason = Some(failed.join(", "));
            }
            break;
        }
    }
    if status == ClusterStatus::CREATE_COMPLETE
        && !matches!(
            previous,
            ClusterStatus::CREATE_IN_PROGRESS | ClusterStatus::CREATE_COMPLETE
        )
    {
        status = ClusterStatus::UPDATE_COMPLETE;
    }
    (status, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_proto::{fixtures, ProjectId};
    use ClusterStatus::*;

    fn ngs(master: ClusterStatus, extra: &[(&str, ClusterStatus)]) -> Vec<NodeGroup> {
        let t = fixtures::template(&ProjectId::from("p"));
        let (_, mut ngs, _) = fixtures::cluster_rows(&t, "c", 1, 1);
        for n in ngs.iter_mut() {
            n.status = Some(master);
        }
        for (name, st) in extra {
            let mut n = ngs[1].clone();
            n.is_default = false;
            n.name = name.to_string();
            n.status = Some(*st);
            ngs.push(n);
        }
        ngs
    }

    #[test]
    fn default_only_follows_the_master() {
        assert_eq!(
            aggregate(&ngs(CREATE_COMPLETE, &[]), CREATE_IN_PROGRESS),
            (CREATE_COMPLETE, None)
        );
        assert_eq!(
            aggregate(&ngs(CREATE_FAILED, &[]), CREATE_IN_PROGRESS),
            (CREATE_FAILED, None)
        );
        // After a nodegroup came and went the cluster was updated, not created.
        assert_eq!(
            aggregate(&ngs(CREATE_COMPLETE, &[]), UPDATE_IN_PROGRESS),
            (UPDATE_COMPLETE, None)
        );
    }

    #[test]
    fn priority_in_progress_failed_complete() {
        let a = ngs(
            CREATE_COMPLETE,
            &[("ng1", CREATE_IN_PROGRESS), ("ng2", CREATE_FAILED)],
        );
        assert_eq!(
            aggregate(&a, UPDATE_IN_PROGRESS),
            (UPDATE_IN_PROGRESS, None)
        );
        let b = ngs(
            CREATE_COMPLETE,
            &[
                ("ng1", CREATE_FAILED),
                ("ng2", UPDATE_FAILED),
                ("ng3", CREATE_COMPLETE),
            ],
        );
        assert_eq!(
            aggregate(&b, UPDATE_IN_PROGRESS),
            (UPDATE_FAILED, Some("ng1 failed, ng2 failed".into()))
        );
        let c = ngs(CREATE_COMPLETE, &[("ng1", CREATE_COMPLETE)]);
        assert_eq!(aggregate(&c, UPDATE_IN_PROGRESS), (UPDATE_COMPLETE, None));
        // Even right after the create, a second nodegroup makes it an update.
        assert_eq!(aggregate(&c, CREATE_COMPLETE), (UPDATE_COMPLETE, None));
    }

    #[test]
    fn a_deleting_master_makes_it_a_delete() {
        let a = ngs(DELETE_IN_PROGRESS, &[("ng1", DELETE_IN_PROGRESS)]);
        assert_eq!(
            aggregate(&a, DELETE_IN_PROGRESS),
            (DELETE_IN_PROGRESS, None)
        );
        let b = ngs(DELETE_FAILED, &[("ng1", DELETE_FAILED)]);
        assert_eq!(
            aggregate(&b, DELETE_IN_PROGRESS),
            (
                DELETE_FAILED,
                Some("default-master failed, default-worker failed, ng1 failed".into())
            )
        );
    }
}
