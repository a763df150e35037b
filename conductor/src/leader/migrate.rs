//! The shard leader's side of the one-time repairs of `shard/migrate.rs`: once the cluster
//! version that brings a repair is active (after `magnum manage version finalize`), propose it,
//! once per shard.
//!
//! Version 2 (`RestoreStackIds`): for every cluster the stack id as this leader knows it (its
//! row, else its running create's step, else Heat's stack of the cluster's deterministic name),
//! so that the replicas that lost it under a release before version 2 get it back.
use crate::cloud::Cloud;
use crate::propose::{ProposeError, ShardLeader};
use crate::shard::migrate::STACK_IDS_RESTORED;
use magnum_proto::version::{min_version, Kind};
use magnum_proto::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

const POLL: Duration = Duration::from_secs(1);

/// Runs until the repair is recorded or leadership is lost (`cancel`).
pub async fn run(
    leader: ShardLeader,
    cloud: Arc<dyn Cloud>,
    epoch: u64,
    cancel: CancellationToken,
) {
    let needs = min_version(Kind::Shard(&ShardCommand::RestoreStackIds {
        epoch,
        stacks: BTreeMap::new(),
    }));
    loop {
        if leader
            .group()
            .read_local(|l| l.state.rows().migrated(STACK_IDS_RESTORED))
        {
            return;
        }
        if leader.active().get() >= needs {
            let stacks = known_stack_ids(&leader, cloud.as_ref()).await;
            let count = stacks.len();
            let cmd = ShardCommand::RestoreStackIds { epoch, stacks };
            match leader.propose(cmd).await {
                Ok(_) => {
                    info!(
                        group = leader.group().id(),
                        clusters = count,
                        "stack ids restored"
                    );
                    return;
                }
                Err(ProposeError::NotLeader { .. })
                | Err(ProposeError::Rejected(CommandError::StaleEpoch { .. })) => return,
                Err(e) => warn!(error = %e, "stack id repair not recorded; retrying"),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Every cluster's stack id as this leader can know it; clusters without a stack yet (or whose
/// stack Heat does not know) are left out.
async fn known_stack_ids(leader: &ShardLeader, cloud: &dyn Cloud) -> BTreeMap<ClusterId, String> {
    let views: Vec<(ClusterView, Option<String>)> = leader.group().read_local(|l| {
        let st = &l.state;
        st.clusters()
            .keys()
            .filter_map(|id| st.view(*id))
            .map(|v| {
                let creating = st.operation(v.cluster.uuid).and_then(|o| match &o.step {
                    Step::WaitCreate { stack_id } => Some(stack_id.clone()),
                    _ => None,
                });
                (v, creating)
            })
            .collect()
    });
    let mut out = BTreeMap::new();
    for (view, creating) in views {
        let known = view.cluster.stack_id.clone().or(creating);
        let id = match known {
            Some(id) => Some(id),
            None => {
                let name = cloud.stack_name(&view);
                match cloud.find_stack(&view.cluster.project_id, &name).await {
                    Ok(found) => found.map(|h| h.id),
                    Err(e) => {
                        warn!(cluster = %view.cluster.uuid, error = %e, "stack lookup failed");
                        None
                    }
                }
            }
        };
        if let Some(id) = id {
            out.insert(view.cluster.uuid, id);
        }
    }
    out
}
