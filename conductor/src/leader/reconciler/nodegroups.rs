//! Steps of nodegroup operations, and the first phase of a cluster delete (the non-default
//! nodegroups' stacks go before the cluster stack, whose network and security group they use).
use super::{advance, confirm_leadership, remember, Ctx, Progress, StepError};
use crate::cloud::{cluster_status, heat_status, CloudError, StackHandle, Target};
use crate::leader::reap;
use magnum_proto::*;
use tracing::info;

/// The operation's nodegroup, if its row still exists.
fn nodegroup_of<'a>(op: &Operation, view: &'a ClusterView) -> Option<&'a NodeGroup> {
    view.nodegroups
        .iter()
        .find(|n| Some(n.uuid) == op.nodegroup)
}

fn failed(reason: String) -> OpEvent {
    OpEvent::Failed { reason }
}

pub(super) async fn create_stack(
    ctx: &Ctx,
    op: &Operation,
    t: &Target<'_>,
) -> Result<Progress, StepError> {
    let view = t.view;
    let Some(ng) = nodegroup_of(op, view) else {
        return advance(ctx, op, failed("The nodegroup no longer exists.".into())).await;
    };
    advance(ctx, op, OpEvent::StackCreateIntent).await?;
    confirm_leadership(ctx).await?;
    let handle = match ctx.cloud.create_nodegroup_stack(t, ng).await {
        Ok(h) => h,
        // The name is deterministic: a live stack with it is ours from an earlier attempt.
        Err(CloudError::Conflict(_)) => {
            let name = ctx.cloud.nodegroup_stack_name(view, ng);
            match ctx
                .cloud
                .find_stack(&view.cluster.project_id, &name)
                .await?
            {
                Some(h) => {
                    info!(stack = %h.id, nodegroup = %ng.name, "adopted existing nodegroup stack");
                    h
                }
                None => {
                    return Err(StepError::Retry(format!(
                        "stack {name} conflicted but is gone"
                    )))
                }
            }
        }
        Err(CloudError::Permanent(reason)) => return advance(ctx, op, failed(reason)).await,
        Err(e) => return Err(e.into()),
    };
    let event = OpEvent::NodeGroupStackCreated {
        stack_id: handle.id,
    };
    advance(ctx, op, event).await
}

pub(super) async fn wait_create(
    ctx: &Ctx,
    op: &Operation,
    t: &Target<'_>,
    stack_id: &str,
) -> Result<Progress, StepError> {
    let view = t.view;
    let Some(ng) = nodegroup_of(op, view) else {
        return advance(ctx, op, failed("The nodegroup no longer exists.".into())).await;
    };
    let handle = StackHandle {
        name: ctx.cloud.nodegroup_stack_name(view, ng),
        id: stack_id.to_string(),
    };
    if super::still_moving(ctx, t.project(), &handle).await {
        return Ok(Progress::Wait);
    }
    let state = ctx.cloud.get_stack(t, &handle, true).await?;
    let event = match state {
        None => OpEvent::NodeGroupCreateFinished {
            status: ClusterStatus::CREATE_FAILED,
            reason: Some(format!("Stack with id {stack_id} not found in Heat.")),
            node_addresses: Vec::new(),
        },
        Some(s) if s.status.is_in_progress() => return Ok(Progress::Wait),
        Some(s) => {
            let status = cluster_status(s.status).unwrap_or(ClusterStatus::CREATE_FAILED);
            OpEvent::NodeGroupCreateFinished {
                status,
                reason: if status.is_failed() { s.reason } else { None },
                node_addresses: s.outputs.map(|o| o.node_addresses).unwrap_or_default(),
            }
        }
    };
    advance(ctx, op, event).await
}

/// What deleting one nodegroup's stack found.
enum Deletion {
    /// No stack (never created, or already gone): the row can go.
    Gone,
    /// Heat is deleting it (stack id).
    Deleting(String),
    /// Heat could not delete it.
    Failed(String),
    /// A delete was sent just now.
    Requested(String),
}

/// Level-triggered: looks the stack up by id, then by its deterministic name (a create may have
/// been in flight), and asks Heat to delete whatever is not already going.
async fn delete_one(ctx: &Ctx, t: &Target<'_>, ng: &NodeGroup) -> Result<Deletion, StepError> {
    let project = t.project();
    let name = ctx.cloud.nodegroup_stack_name(t.view, ng);
    let mut found = match &ng.stack_id {
        Some(id) => ctx.cloud.find_stack(project, id).await?,
        None => None,
    };
    if found.is_none() {
        found = ctx.cloud.find_stack(project, &name).await?;
    }
    let Some(handle) = found else {
        return Ok(Deletion::Gone);
    };
    match ctx.cloud.get_stack(t, &handle, false).await? {
        None => Ok(Deletion::Gone),
        Some(s) if s.status == heat_status::DELETE_COMPLETE => Ok(Deletion::Gone),
        Some(s) if s.status == heat_status::DELETE_IN_PROGRESS => Ok(Deletion::Deleting(handle.id)),
        Some(s) if s.status == heat_status::DELETE_FAILED => Ok(Deletion::Failed(
            s.reason.unwrap_or_else(|| "Stack delete failed.".into()),
        )),
        Some(_) => {
            confirm_leadership(ctx).await?;
            ctx.cloud.delete_stack(project, &handle).await?;
            Ok(Deletion::Requested(handle.id))
        }
    }
}

/// `ng`'s stack is gone: its name goes on the reaper's watch (a deposed leader may still create
/// it), then its row goes.
async fn gone(
    ctx: &Ctx,
    op: &Operation,
    t: &Target<'_>,
    ng: &NodeGroup,
) -> Result<Progress, StepError> {
    let tombstone = reap::nodegroup_tombstone(ctx.cloud.as_ref(), t.view, ng, Timestamp::now());
    remember(ctx, tombstone).await?;
    advance(ctx, op, OpEvent::NodeGroupDeleted { nodegroup: ng.uuid }).await
}

pub(super) async fn delete_stack(
    ctx: &Ctx,
    op: &Operation,
    t: &Target<'_>,
) -> Result<Progress, StepError> {
    let Some(ng) = nodegroup_of(op, t.view) else {
        let Some(nodegroup) = op.nodegroup else {
            return advance(ctx, op, failed("The operation names no nodegroup.".into())).await;
        };
        return advance(ctx, op, OpEvent::NodeGroupDeleted { nodegroup }).await;
    };
    advance(ctx, op, OpEvent::StackDeleteIntent).await?;
    let nodegroup = ng.uuid;
    let event = match delete_one(ctx, t, ng).await? {
        Deletion::Gone => return gone(ctx, op, t, ng).await,
        Deletion::Failed(reason) => failed(reason),
        Deletion::Deleting(stack_id) | Deletion::Requested(stack_id) => {
            OpEvent::NodeGroupStackDeleteRequested {
                nodegroup,
                stack_id,
            }
        }
    };
    advance(ctx, op, event).await
}

pub(super) async fn wait_delete(
    ctx: &Ctx,
    op: &Operation,
    t: &Target<'_>,
) -> Result<Progress, StepError> {
    let Some(ng) = nodegroup_of(op, t.view) else {
        let Some(nodegroup) = op.nodegroup else {
            return advance(ctx, op, failed("The operation names no nodegroup.".into())).await;
        };
        return advance(ctx, op, OpEvent::NodeGroupDeleted { nodegroup }).await;
    };
    match delete_one(ctx, t, ng).await? {
        Deletion::Gone => gone(ctx, op, t, ng).await,
        Deletion::Failed(reason) => advance(ctx, op, failed(reason)).await,
        Deletion::Deleting(_) | Deletion::Requested(_) => Ok(Progress::Wait),
    }
}

/// Cluster delete, first phase: `None` once no non-default nodegroup is left, so the cluster
/// stack can go.
pub(super) async fn delete_extra_nodegroups(
    ctx: &Ctx,
    op: &Operation,
    t: &Target<'_>,
) -> Result<Option<Progress>, StepError> {
    let extras: Vec<&NodeGroup> = t.view.nodegroups.iter().filter(|n| !n.is_default).collect();
    if extras.is_empty() {
        return Ok(None);
    }
    advance(ctx, op, OpEvent::StackDeleteIntent).await?;
    for ng in extras {
        let nodegroup = ng.uuid;
        match delete_one(ctx, t, ng).await? {
            Deletion::Gone => {
                gone(ctx, op, t, ng).await?;
            }
            Deletion::Failed(reason) => {
                let reason = format!("{}: {reason}", ng.name);
                return advance(ctx, op, failed(reason)).await.map(Some);
            }
            Deletion::Deleting(_) => {}
            Deletion::Requested(stack_id) => {
                let event = OpEvent::NodeGroupStackDeleteRequested {
                    nodegroup,
                    stack_id,
                };
                advance(ctx, op, event).await?;
            }
        }
    }
    Ok(Some(Progress::Wait))
}
