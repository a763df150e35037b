//! Shard ownership: while this node leads a shard it commits a new ownership epoch and runs the
//! shard's reconciler under it, stopping it as soon as leadership is lost.
use crate::cloud::Cloud;
use crate::leader::reconciler;
use crate::leader::LeaderConfig;
use crate::propose::{ActiveVersion, ProposeError, ShardLeader};
use crate::shard::logic::ShardLogic;
use magnum_proto::{CommandError, CommandOk, NodeId, ShardCommand};
use magnum_raft::{Group, WriteError};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Watches one shard's Raft status; while this node leads it, commits a new ownership epoch and
/// runs the reconciler under it; stops the reconciler as soon as leadership is lost.
pub(crate) async fn ownership_loop(
    group: Group<ShardLogic>,
    node: u64,
    cloud: Arc<dyn Cloud>,
    rcfg: LeaderConfig,
    active: ActiveVersion,
    cancel: CancellationToken,
) {
    let leader = ShardLeader::new(group.clone(), active);
    // The role, not the status: the status changes on every write to the shard.
    let mut rx = group.watch_role();
    let mut session: Option<(u64, CancellationToken, JoinHandle<()>)> = None;
    loop {
        let st = rx.borrow_and_update().clone();
        let keep = matches!(&session, Some((term, _, h)) if st.is_leader && *term == st.term && !h.is_finished());
        if !keep {
            if let Some((_, c, h)) = session.take() {
                c.cancel();
                h.abort();
            }
            if st.is_leader {
                let c = cancel.child_token();
                let h = tokio::spawn(lead(
                    leader.clone(),
                    node,
                    cloud.clone(),
                    rcfg.clone(),
                    c.clone(),
                ));
                session = Some((st.term, c, h));
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = rx.changed() => if r.is_err() { break },
            // A finished session (e.g. epoch lost to a newer owner) is re-evaluated periodically.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    if let Some((_, c, h)) = session {
        c.cancel();
        let _ = h.await;
    }
}

async fn lead(
    leader: ShardLeader,
    node: u64,
    cloud: Arc<dyn Cloud>,
    rcfg: LeaderConfig,
    cancel: CancellationToken,
) {
    let group = leader.group();
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let current = match group.read(|l| l.state.epoch()).await {
            Ok(e) => e,
            Err(WriteError::NotLeader { .. }) => return,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let take = ShardCommand::TakeOwnership {
            node: NodeId(node),
            epoch: current + 1,
        };
        match leader.propose(take).await {
            Ok(CommandOk::Owned { epoch }) => {
                info!(group = group.id(), epoch, "took ownership");
                // Operations, status sync, health polling, the version repairs, re-sealing and the
                // orphan-stack reaper: all only on the shard leader.
                tokio::join!(
                    reconciler::run(
                        leader.clone(),
                        cloud.clone(),
                        epoch,
                        rcfg.clone(),
                        cancel.clone(),
                    ),
                    crate::leader::sync::run(
                        leader.clone(),
                        cloud.clone(),
                        epoch,
                        rcfg.clone(),
                        cancel.clone(),
                    ),
                    crate::leader::sync::health::run(
                        leader.clone(),
                        epoch,
                        rcfg.clone(),
                        cancel.clone()
                    ),
                    crate::leader::migrate::run(
                        leader.clone(),
                        cloud.clone(),
                        epoch,
                        cancel.clone()
                    ),
                    crate::leader::reseal::run(
                        leader.clone(),
                        rcfg.cert_key.clone(),
                        rcfg.reseal.clone(),
                        epoch,
                        cancel.clone()
                    ),
                    crate::leader::reap::run(
                        leader.clone(),
                        cloud.clone(),
                        epoch,
                        rcfg.clone(),
                        cancel.clone()
                    ),
                );
                return;
            }
            Err(ProposeError::Rejected(CommandError::StaleEpoch { .. })) => continue,
            Err(ProposeError::NotLeader { .. }) => return,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
