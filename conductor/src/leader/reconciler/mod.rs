//! Drives every active operation of a shard this node leads, one step at a time. Each external
//! side effect is bracketed by commits (intent → act → record), and every command carries the
//! ownership epoch, so a deposed leader's late report is rejected by `apply()`.
use crate::cloud::failpoints::{self, When};
use crate::cloud::{
    cluster_status, heat_status, Cloud, CloudError, Look, ScaleSpec, StackHandle, StackUpdate,
    Target, UpgradeSpec,
};
use crate::leader::LeaderConfig;
use crate::pki::{certs, cpu};
use crate::propose::{ProposeError, ShardLeader};
use crate::shard::logic::ShardLogic;
use crate::shard::persist::stored_certs;
use magnum_proto::*;
use magnum_raft::Group;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

mod nodegroups;
mod trusts;

/// Why a worker stopped driving its operation.
#[derive(Debug)]
enum Stop {
    /// Ownership moved or the operation ended; nothing to report.
    Done,
    Lost(String),
}

struct Ctx {
    /// Reads; writes go through `leader`.
    group: Group<ShardLogic>,
    leader: ShardLeader,
    cloud: Arc<dyn Cloud>,
    epoch: u64,
    cfg: LeaderConfig,
    cancel: CancellationToken,
}

/// Runs until `cancel` fires (leadership lost) or the node stops.
pub async fn run(
    leader: ShardLeader,
    cloud: Arc<dyn Cloud>,
    epoch: u64,
    cfg: LeaderConfig,
    cancel: CancellationToken,
) {
    let ctx = Arc::new(Ctx {
        group: leader.group().clone(),
        leader,
        cloud,
        epoch,
        cfg,
        cancel,
    });
    let mut workers: HashMap<ClusterId, JoinHandle<()>> = HashMap::new();
    let mut outbox: Option<JoinHandle<()>> = None;
    info!(group = ctx.group.id(), epoch, "reconciler started");
    loop {
        if outbox.as_ref().is_none_or(|h| h.is_finished())
            && ctx.group.read_local(|l| l.state.outbox().next().is_some())
        {
            outbox = Some(tokio::spawn(deliver_outbox(ctx.clone())));
        }
        workers.retain(|_, h| !h.is_finished());
        // Only the operations without a worker, and only their ids: with a thousand queued
        // operations a full clone (template snapshots included) every scan is real work.
        let idle: Vec<(ClusterId, OpId, OpKind)> = ctx.group.read_local(|l| {
            l.state
                .operations()
                .filter(|o| !workers.contains_key(&o.cluster))
                .map(|o| (o.cluster, o.id, o.kind))
                .collect()
        });
        for (cluster, op_id, kind) in idle {
            // One worker per cluster at a time. A superseded operation's worker (e.g. a create
            // when the delete arrives) is never aborted mid-call: a stack POST it already sent
            // could then land after the delete looked for the stack and leave an orphan. It
            // notices the new operation at its next step and exits; only then does the next start.
            let ctx2 = ctx.clone();
            let span = info_span!("op", %cluster, op = %op_id, ?kind, epoch);
            let handle = tokio::spawn(
                async move {
                    match drive(&ctx2, cluster, op_id).await {
                        Stop::Done => debug!("worker done"),
                        Stop::Lost(why) => info!(why, "worker stopped"),
                    }
                }
                .instrument(span),
            );
            workers.insert(cluster, handle);
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = tokio::time::sleep(ctx.cfg.scan) => {}
        }
    }
    for (_, h) in workers {
        h.abort();
    }
    if let Some(h) = outbox {
        h.abort();
    }
    info!(group = ctx.group.id(), epoch, "reconciler stopped");
}

async fn drive(ctx: &Ctx, cluster: ClusterId, op_id: OpId) -> Stop {
    let mut backoff = Duration::from_millis(200);
    loop {
        if ctx.cancel.is_cancelled() {
            return Stop::Done;
        }
        let snapshot = ctx.group.read_local(|l| {
            let op = l
                .state
                .operation(cluster)
                .filter(|o| o.id == op_id)
                .cloned();
            (op, l.state.view(cluster), l.state.epoch())
        });
        let (Some(op), Some(mut view), epoch) = snapshot else {
            return Stop::Done;
        };
        view.trustee = match trusts::opened_trustee(ctx, cluster) {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "trustee password does not open");
                sleep(ctx, ctx.cfg.max_backoff).await;
                continue;
            }
        };
        if epoch != ctx.epoch {
            return Stop::Lost(format!("epoch moved to {epoch}"));
        }
        let res = if Timestamp::now() > op.deadline {
            let what = op.kind.verb();
            advance(
                ctx,
                &op,
                OpEvent::Failed {
                    reason: format!("Cluster {what} timed out (conductor deadline)."),
                },
            )
            .await
        } else {
            step(ctx, &op, &view).await
        };
        match res {
            Ok(Progress::Moved) => backoff = Duration::from_millis(200),
            Ok(Progress::Wait) => sleep(ctx, ctx.cfg.poll).await,
            Err(StepError::Stop(s)) => return s,
            Err(StepError::Retry(e)) => {
                warn!(error = %e, "step failed, will retry");
                // Recording the error is best effort: it is for display and backoff only.
                let _ = advance(ctx, &op, OpEvent::TransientError { error: e }).await;
                sleep(ctx, backoff).await;
                backoff = (backoff * 2).min(ctx.cfg.max_backoff);
            }
        }
    }
}

async fn sleep(ctx: &Ctx, d: Duration) {
    tokio::select! {
        _ = ctx.cancel.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

enum Progress {
    /// A commit moved the operation; look again at once.
    Moved,
    /// Waiting on Heat; poll later.
    Wait,
}

enum StepError {
    Stop(Stop),
    Retry(String),
}

impl From<CloudError> for StepError {
    fn from(e: CloudError) -> Self {
        StepError::Retry(e.to_string())
    }
}

async fn step(ctx: &Ctx, op: &Operation, view: &ClusterView) -> Result<Progress, StepError> {
    let project = &view.cluster.project_id;
    // `drive` opened the view's trustee.
    let target = Target::new(&op.template, view, view.trustee.as_ref()).serving(op);
    match &op.step {
        Step::GenerateCerts => {
            let name = ca_name(view);
            let key = ctx.cfg.cert_key.clone();
            let certs = cpu::run(move || certs::generate(&name, &key))
                .await
                .map_err(|e| StepError::Retry(e.to_string()))?
                .map_err(|e| StepError::Retry(e.to_string()))?;
            advance(ctx, op, OpEvent::CertsGenerated { certs }).await
        }
        Step::CreateTrustee => trusts::create(ctx, op, view).await,
        Step::DeleteTrustee => {
            remember_stacks(ctx, view).await?;
            trusts::delete(ctx, op, view).await
        }
        Step::RotateTrusteePassword => trusts::rotate(ctx, op, view).await,
        Step::RotateCerts => {
            let name = ca_name(view);
            let key = ctx.cfg.cert_key.clone();
            let certs = cpu::run(move || certs::generate_rotation(&name, &key))
                .await
                .map_err(|e| StepError::Retry(e.to_string()))?
                .map_err(|e| StepError::Retry(e.to_string()))?;
            advance(ctx, op, OpEvent::CertsRotated { certs }).await
        }
        Step::CreateStack { .. } => {
            advance(ctx, op, OpEvent::StackCreateIntent).await?;
            confirm_leadership(ctx).await?;
            let handle = match ctx.cloud.create_stack(&target).await {
                Ok(h) => h,
                // The name is deterministic: a live stack with it is ours from an earlier attempt.
                Err(CloudError::Conflict(_)) => {
                    let name = ctx.cloud.stack_name(view);
                    match ctx.cloud.find_stack(project, &name).await? {
                        Some(h) => {
                            info!(stack = %h.id, "adopted existing stack");
                            h
                        }
                        None => {
                            return Err(StepError::Retry(format!(
                                "stack {name} conflicted but is gone"
                            )))
                        }
                    }
                }
                Err(CloudError::Permanent(reason)) => {
                    return advance(ctx, op, OpEvent::Failed { reason }).await
                }
                Err(e) => return Err(e.into()),
            };
            advance(
                ctx,
                op,
                OpEvent::StackCreated {
                    stack_id: handle.id,
                },
            )
            .await
        }
        Step::WaitCreate { stack_id } => {
            let handle = StackHandle {
                name: ctx.cloud.stack_name(view),
                id: stack_id.clone(),
            };
            if still_moving(ctx, project, &handle).await {
                return Ok(Progress::Wait);
            }
            match ctx.cloud.get_stack(&target, &handle, true).await? {
                None => {
                    let reason = format!("Stack with id {stack_id} not found in Heat.");
                    let event = OpEvent::CreateFinished {
                        status: ClusterStatus::CREATE_FAILED,
                        reason: Some(reason),
                        outputs: StackOutputs::default(),
                    };
                    advance(ctx, op, event).await
                }
                Some(s) if s.status.is_in_progress() => Ok(Progress::Wait),
                Some(s) => {
                    let status = cluster_status(s.status).unwrap_or(ClusterStatus::CREATE_FAILED);
                    let reason = if status.is_failed() { s.reason } else { None };
                    let outputs = s.outputs.unwrap_or_default();
                    advance(
                        ctx,
                        op,
                        OpEvent::CreateFinished {
                            status,
                            reason,
                            outputs,
                        },
                    )
                    .await
                }
            }
        }
        Step::UpdateStack { .. } => {
            let Some(handle) = update_target(ctx, op, view) else {
                let reason = "The nodegroup has no stack to update.".to_string();
                return advance(ctx, op, OpEvent::Failed { reason }).await;
            };
            let stack_id = handle.id.clone();
            advance(ctx, op, OpEvent::StackUpdateIntent).await?;
            let params = stack_parameters(ctx, op, view)?;
            confirm_leadership(ctx).await?;
            let sent = match params {
                Some(p) => {
                    ctx.cloud
                        .patch_parameters(&target, &handle, p, op.rollback)
                        .await
                }
                None => {
                    let update = stack_update(op, view);
                    ctx.cloud.update_stack(&target, &handle, &update).await
                }
            };
            match sent {
                Ok(()) => {}
                Err(CloudError::Permanent(reason)) => {
                    return advance(ctx, op, OpEvent::Failed { reason }).await
                }
                // 409: an action still runs on the stack (e.g. this update, sent before a
                // failover); retry until Heat takes it.
                Err(e) => return Err(e.into()),
            }
            advance(ctx, op, OpEvent::StackUpdateRequested { stack_id }).await
        }
        Step::WaitUpdate { stack_id } => {
            let handle = StackHandle {
                name: update_target(ctx, op, view)
                    .map_or_else(|| ctx.cloud.stack_name(view), |h| h.name),
                id: stack_id.clone(),
            };
            if still_moving(ctx, project, &handle).await {
                return Ok(Progress::Wait);
            }
            let state = ctx.cloud.get_stack(&target, &handle, true).await?;
            let (status, reason, outputs) = match state {
                None => (
                    ClusterStatus::UPDATE_FAILED,
                    Some(format!("Stack with id {stack_id} not found in Heat.")),
                    StackOutputs::default(),
                ),
                Some(s) if s.status.is_in_progress() => return Ok(Progress::Wait),
                Some(s) => {
                    let status = cluster_status(s.status).unwrap_or(ClusterStatus::UPDATE_FAILED);
                    let reason = if status.is_failed() { s.reason } else { None };
                    (status, reason, s.outputs.unwrap_or_default())
                }
            };
            let event = OpEvent::UpdateFinished {
                status,
                reason,
                outputs,
            };
            advance(ctx, op, event).await
        }
        Step::DeleteStack { .. } => {
            if let Some(p) = nodegroups::delete_extra_nodegroups(ctx, op, &target).await? {
                return Ok(p);
            }
            advance(ctx, op, OpEvent::StackDeleteIntent).await?;
            // The create may have been in flight when the delete arrived: look up by name too.
            let found = match &view.cluster.stack_id {
                Some(id) => ctx.cloud.find_stack(project, id).await?,
                None => None,
            };
            let found = match found {
                Some(h) => Some(h),
                None => {
                    ctx.cloud
                        .find_stack(project, &ctx.cloud.stack_name(view))
                        .await?
                }
            };
            let Some(handle) = found else {
                return advance(ctx, op, OpEvent::DeleteFinished).await;
            };
            confirm_leadership(ctx).await?;
            ctx.cloud.delete_stack(project, &handle).await?;
            advance(
                ctx,
                op,
                OpEvent::StackDeleteRequested {
                    stack_id: handle.id,
                },
            )
            .await
        }
        Step::WaitDelete { stack_id } => {
            let handle = StackHandle {
                name: ctx.cloud.stack_name(view),
                id: stack_id.clone(),
            };
            if still_moving(ctx, project, &handle).await {
                return Ok(Progress::Wait);
            }
            match ctx.cloud.get_stack(&target, &handle, false).await? {
                None => advance(ctx, op, OpEvent::DeleteFinished).await,
                Some(s) if s.status == heat_status::DELETE_COMPLETE => {
                    advance(ctx, op, OpEvent::DeleteFinished).await
                }
                Some(s) if s.status == heat_status::DELETE_FAILED => {
                    let reason = s.reason.unwrap_or_else(|| "Stack delete failed.".into());
                    advance(ctx, op, OpEvent::Failed { reason }).await
                }
                Some(s) if s.status == heat_status::DELETE_IN_PROGRESS => Ok(Progress::Wait),
                // Heat took the delete and is cancelling the running action first (the legacy
                // engine lets the running resource finish): re-sending would restart that.
                Some(s) if s.status.is_in_progress() => Ok(Progress::Wait),
                // The delete did not take (the stack ended another action): ask again.
                Some(_) => {
                    confirm_leadership(ctx).await?;
                    ctx.cloud.delete_stack(project, &handle).await?;
                    Ok(Progress::Wait)
                }
            }
        }
        Step::CreateNodeGroupStack { .. } => nodegroups::create_stack(ctx, op, &target).await,
        Step::WaitNodeGroupCreate { stack_id } => {
            nodegroups::wait_create(ctx, op, &target, stack_id).await
        }
        Step::DeleteNodeGroupStack { .. } => nodegroups::delete_stack(ctx, op, &target).await,
        Step::WaitNodeGroupDelete { .. } => nodegroups::wait_delete(ctx, op, &target).await,
    }
}

/// The stack an update or upgrade PATCHes: the operation's non-default nodegroup's own stack,
/// else the cluster stack (default nodegroups).
fn update_target(ctx: &Ctx, op: &Operation, view: &ClusterView) -> Option<StackHandle> {
    let own = view
        .nodegroups
        .iter()
        .find(|n| Some(n.uuid) == op.nodegroup && !n.is_default);
    match own {
        Some(ng) => Some(StackHandle {
            name: ctx.cloud.nodegroup_stack_name(view, ng),
            id: ng.stack_id.clone()?,
        }),
        None => Some(StackHandle {
            name: ctx.cloud.stack_name(view),
            id: view.cluster.stack_id.clone()?,
        }),
    }
}

/// What an update or upgrade PATCHes: an upgrade the new version, an update or resize the
/// operation's nodegroup's current count.
fn stack_update(op: &Operation, view: &ClusterView) -> StackUpdate {
    if let (Some(up), OpKind::Upgrade) = (&op.upgrade, op.kind) {
        return StackUpdate::Upgrade(UpgradeSpec {
            kube_tag: up.kube_tag.clone(),
            max_batch_size: up.max_batch_size,
        });
    }
    // The operation's nodegroup, or the default worker (operations from before `nodegroup`
    // existed).
    let ng = view
        .nodegroups
        .iter()
        .find(|n| Some(n.uuid) == op.nodegroup)
        .or_else(|| {
            view.nodegroups
                .iter()
                .find(|n| n.is_default && !n.is_master())
        });
    StackUpdate::Scale(ScaleSpec {
        node_count: ng.map_or(0, |n| n.node_count),
        nodes_to_remove: op.nodes_to_remove.clone(),
        rollback: op.rollback,
    })
}

/// Delivers the outbox in order, then commits which notifications went out. A failover between
/// the two delivers them again, with the same ids.
async fn deliver_outbox(ctx: Arc<Ctx>) {
    let batch: Vec<Notification> = ctx
        .group
        .read_local(|l| l.state.outbox().take(100).cloned().collect());
    let mut ids = Vec::new();
    for n in &batch {
        match ctx.cfg.notifier.deliver(n).await {
            Ok(()) => ids.push(n.id.clone()),
            Err(e) => {
                warn!(id = %n.id, error = %e, "notification not delivered, will retry");
                sleep(&ctx, ctx.cfg.max_backoff.min(Duration::from_secs(1))).await;
                break;
            }
        }
    }
    if ids.is_empty() {
        return;
    }
    let cmd = ShardCommand::NotificationsDelivered {
        epoch: ctx.epoch,
        ids,
    };
    if let Err(e) = ctx.leader.propose(cmd).await {
        debug!(error = %e, "delivered notifications not recorded; they will be sent again");
    }
}

/// The parameters an update operation other than a resize sends: a CA rotation hands the stack
/// the new service-account key pair (opened from its seal only for this call).
fn stack_parameters(
    ctx: &Ctx,
    op: &Operation,
    view: &ClusterView,
) -> Result<Option<BTreeMap<String, serde_json::Value>>, StepError> {
    if op.kind == OpKind::RotateCredential {
        return trusts::stack_parameters(view).map(Some);
    }
    if op.kind != OpKind::RotateCa {
        return Ok(None);
    }
    let certs = stored_certs(&ctx.group.stored(), view.cluster.uuid).map_err(StepError::Retry)?;
    let (Some(public), Some(sealed)) = certs
        .map(|c| (c.service_account_key, c.service_account_private_key))
        .unwrap_or_default()
    else {
        return Err(StepError::Retry("rotated certificates missing".into()));
    };
    let private = ctx
        .cfg
        .cert_key
        .open(&sealed)
        .map_err(|e| StepError::Retry(e.to_string()))?;
    Ok(Some(BTreeMap::from([
        ("kube_service_account_key".to_string(), public.into()),
        (
            "kube_service_account_private_key".to_string(),
            private.into(),
        ),
    ])))
}

/// CA subject: the cluster name, or its uuid when it has none (reference §9).
pub(crate) fn ca_name(view: &ClusterView) -> String {
    if view.cluster.name.is_empty() {
        view.cluster.uuid.to_string()
    } else {
        view.cluster.name.clone()
    }
}

/// Read-index check right before an external mutation: still the leader, still our epoch.
/// A listing shared with the other pollers (`cloud/feed.rs`) shows the stack still moving: no
/// GET of its own (with outputs, the costly read for Heat) until it settles.
async fn still_moving(ctx: &Ctx, project: &ProjectId, stack: &StackHandle) -> bool {
    matches!(ctx.cloud.look_stack(project, stack).await, Look::Listed(g) if g.status.is_in_progress())
}

async fn confirm_leadership(ctx: &Ctx) -> Result<(), StepError> {
    match ctx.group.read(|l| l.state.epoch()).await {
        Ok(e) if e == ctx.epoch => Ok(()),
        Ok(e) => Err(StepError::Stop(Stop::Lost(format!("epoch moved to {e}")))),
        Err(e) => Err(StepError::Stop(Stop::Lost(format!(
            "leadership not confirmed: {e}"
        )))),
    }
}

/// The delete's stacks are gone: their names go on the reaper's watch (`leader/reap.rs`) before
/// the row does.
async fn remember_stacks(ctx: &Ctx, view: &ClusterView) -> Result<(), StepError> {
    let t = crate::leader::reap::tombstone(ctx.cloud.as_ref(), view, Timestamp::now());
    remember(ctx, t).await
}

/// Commits `tombstone` unless it is there already (a repeat after a failover), once the
/// cluster version has its kind.
async fn remember(ctx: &Ctx, tombstone: Tombstone) -> Result<(), StepError> {
    let key = tombstone.key();
    if ctx
        .group
        .read_local(|l| l.state.rows().tombstones().contains_key(&key))
    {
        return Ok(());
    }
    let cmd = ShardCommand::RememberDeletedStacks {
        epoch: ctx.epoch,
        tombstone,
    };
    if ctx.leader.active().get() < version::min_version(version::Kind::Shard(&cmd)) {
        return Ok(());
    }
    match ctx.leader.propose(cmd).await {
        Ok(_) => Ok(()),
        Err(ProposeError::Rejected(CommandError::StaleEpoch { current })) => Err(StepError::Stop(
            Stop::Lost(format!("stale epoch, current {current}")),
        )),
        Err(e) => Err(StepError::Retry(e.to_string())),
    }
}

async fn advance(ctx: &Ctx, op: &Operation, event: OpEvent) -> Result<Progress, StepError> {
    // Delete operations carry no stack name: derive it (before a DeleteFinished drops the row).
    let stack = match failpoints::enabled() && op.stack_name.is_empty() {
        true => ctx
            .group
            .read_local(|l| l.state.view(op.cluster))
            .map(|v| ctx.cloud.stack_name(&v))
            .unwrap_or_default(),
        false => op.stack_name.clone(),
    };
    failpoints::on_event(op, &event, When::Before, &stack);
    let committed = propose(ctx, op, &event).await;
    if committed.is_ok() {
        failpoints::on_event(op, &event, When::After, &stack);
    }
    committed
}

async fn propose(ctx: &Ctx, op: &Operation, event: &OpEvent) -> Result<Progress, StepError> {
    let cmd = ShardCommand::Advance {
        epoch: ctx.epoch,
        cluster: op.cluster,
        op: op.id,
        event: event.clone(),
        at: Timestamp::now(),
    };
    match ctx.leader.propose(cmd).await {
        Ok(_) => Ok(Progress::Moved),
        Err(ProposeError::Rejected(CommandError::StaleEpoch { current })) => Err(StepError::Stop(
            Stop::Lost(format!("stale epoch, current {current}")),
        )),
        Err(ProposeError::Rejected(CommandError::StaleOperation)) => {
            Err(StepError::Stop(Stop::Done))
        }
        Err(ProposeError::NotLeader { .. }) => {
            Err(StepError::Stop(Stop::Lost("not leader".into())))
        }
        // Outcome unknown (or refused): re-reading the state next round tells what happened.
        Err(e) => Err(StepError::Retry(e.to_string())),
    }
}
