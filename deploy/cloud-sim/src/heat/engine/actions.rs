//! Stack-level actions on a root stack: create/update (under the stack timeout, rolling back
//! on failure unless disabled), rollback and delete.

use std::time::Duration;

use uuid::Uuid;

use super::converge::converge;
use super::delete::{delete_resources, delete_stack, resource_names};
use super::failure::{EResult, EngineError};
use super::quota;
use super::{completed, set_stack_status, Op, Run};
use crate::heat::{Action, HeatState, Status};

pub(super) async fn top_level(run: Run, op: Op) -> EResult<()> {
    match op {
        Op::Create => run_action(run, Action::Create).await,
        Op::Update => run_action(run, Action::Update).await,
        Op::Delete => delete_top(run).await,
        Op::Rollback { create } => rollback(run, create).await,
    }
}

async fn run_action(run: Run, action: Action) -> EResult<()> {
    let root = run.root;
    let (timeout_mins, disable_rollback) = run.read(|st| {
        st.stacks
            .get(&root)
            .map(|s| (s.timeout_mins, s.disable_rollback))
            .unwrap_or((None, true))
    })?;
    // Nova's quota is checked before anything expands: a group of 10^7 servers fails here.
    let defaults = run.sim.nova_defaults;
    let admitted = run.write(|st| quota::admit(st, root, action, &defaults))?;
    let scale = run.sim.time_scale;
    let result = match admitted {
        Err(f) => Err(EngineError::Failed(f)),
        Ok(()) if scale > 0.0 => {
            let fut = converge(run.clone(), root, action);
            let secs = timeout_mins.unwrap_or(60) as f64 * 60.0 * scale;
            match tokio::time::timeout(Duration::from_secs_f64(secs), fut).await {
                Ok(r) => r,
                Err(_) => Err(EngineError::TimedOut),
            }
        }
        Ok(()) => converge(run.clone(), root, action).await,
    };
    match result {
        Ok(()) => {
            run.write(|st| set_stack_status(st, root, action, Status::Complete, &completed(action)))
        }
        Err(EngineError::Cancelled) => Err(EngineError::Cancelled),
        Err(EngineError::Failed(f)) => {
            tracing::info!(reason = %f.stack_reason(), "stack action failed");
            run.write(|st| set_stack_status(st, root, action, Status::Failed, &f.stack_reason()))?;
            if !disable_rollback {
                return rollback(run, action == Action::Create).await;
            }
            Ok(())
        }
        Err(EngineError::TimedOut) => {
            // The dropped future may have left writes half-done: fence it out first.
            let run = run.bump()?;
            let reason = if action == Action::Create {
                "Create timed out"
            } else {
                "Timed out"
            };
            tracing::info!(reason, "stack action timed out");
            run.write(|st| {
                abort_in_progress(st, root);
                set_stack_status(st, root, action, Status::Failed, reason);
            })?;
            if !disable_rollback {
                return rollback(run, action == Action::Create).await;
            }
            Ok(())
        }
    }
}

/// Mark everything still in progress under `root` as failed (after a timeout).
fn abort_in_progress(st: &mut HeatState, root: Uuid) {
    for s in st.stacks.values_mut().filter(|s| s.root == root) {
        let mut events = Vec::new();
        for r in s
            .resources
            .values_mut()
            .filter(|r| r.status == Status::InProgress)
        {
            r.status = Status::Failed;
            r.reason = format!("{} aborted", r.action.as_str());
            events.push((
                r.name.clone(),
                r.rtype.clone(),
                r.physical_id.clone(),
                r.action,
                r.reason.clone(),
            ));
        }
        for (n, t, p, a, reason) in events {
            s.add_event(&n, &t, &p, a, Status::Failed, &reason);
        }
        if s.id != root && s.in_progress() {
            let a = s.action;
            s.set_status(a, Status::Failed, "Timed out");
        }
    }
}

pub(super) async fn rollback(run: Run, create: bool) -> EResult<()> {
    let root = run.root;
    run.write(|st| {
        if let Some(s) = st.stacks.get_mut(&root) {
            s.set_status(
                Action::Rollback,
                Status::InProgress,
                "Stack ROLLBACK started",
            );
            s.rollback_create = create;
            if !create {
                if let Some(prev) = s.prev_def.take() {
                    s.def = prev;
                }
            }
        }
        if create {
            quota::release(st, root);
        } else {
            quota::claim(st, root);
        }
    })?;
    let result = if create {
        let names = run.read(|st| resource_names(st, root))?;
        delete_resources(run.clone(), root, names).await
    } else {
        converge(run.clone(), root, Action::Rollback).await
    };
    match result {
        Ok(()) => run.write(|st| {
            set_stack_status(
                st,
                root,
                Action::Rollback,
                Status::Complete,
                &completed(Action::Rollback),
            )
        }),
        Err(EngineError::Failed(f)) => run.write(|st| {
            set_stack_status(
                st,
                root,
                Action::Rollback,
                Status::Failed,
                &f.stack_reason(),
            )
        }),
        Err(e) => Err(e),
    }
}

async fn delete_top(run: Run) -> EResult<()> {
    // A resource that failed to delete leaves the stack DELETE_FAILED (`delete_stack` records
    // it): the action itself still ended.
    run.write(|st| quota::release(st, run.root))?;
    let _outcome = delete_stack(&run, run.root, true).await?;
    Ok(())
}
