//! The simulated Heat engine.
//!
//! Every action on a root stack runs as one tokio task. A stack's resources form a DAG
//! (`depends_on`, `get_resource`, `get_attr`); ready resources run in parallel in a `JoinSet`,
//! dependents wait; removals run in reverse order. Nested stacks (template resources and
//! `ResourceGroup`s) are converged recursively inside their parent resource's future, so
//! aborting the root task (or dropping it on timeout) stops the whole tree.
//!
//! Fencing: every state write checks that the root stack's `traversal` is still the one the
//! task started with. A new action (update, delete, cancel, timeout) bumps it, so a stale task
//! can never overwrite newer state, even if it is mid-flight when it is aborted.
//!
//! * `failure`: why a step stopped, with Heat's resource paths.
//! * `actions`: stack-level actions (create/update with timeout, rollback, delete).
//! * `converge`: the resource DAG of one stack, creating/updating each resource.
//! * `decide` / `prepare`: what to do with one resource, and recording that it started.
//! * `leaf`: simulated physical resources (latency, injected faults).
//! * `delete`: removal of resources and nested stacks.
//! * `quota`: Nova's quota, checked and claimed before a create/update expands anything.
//! * `tasks`: the set of resource tasks running in parallel.

mod actions;
mod converge;
mod decide;
mod delete;
mod failure;
mod leaf;
mod prepare;
mod quota;
mod tasks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tracing::Instrument;
use uuid::Uuid;

use self::failure::{EResult, EngineError, Failure};
use super::{Action, HeatState, Stack, Status};
use crate::util::lock;
use crate::Sim;

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An action to run on a root stack.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Create,
    Update,
    Delete,
    /// Roll back a failed create (delete everything) or update (back to `prev_def`).
    Rollback {
        create: bool,
    },
}

/// A running action: the root it belongs to and the traversal it may write for.
#[derive(Clone)]
struct Run {
    sim: Arc<Sim>,
    root: Uuid,
    trav: u64,
}

impl Run {
    fn read<R>(&self, f: impl FnOnce(&HeatState) -> R) -> EResult<R> {
        let st = lock(&self.sim.heat);
        if st.stacks.get(&self.root).map(|s| s.traversal) != Some(self.trav) {
            return Err(EngineError::Cancelled);
        }
        Ok(f(&st))
    }

    fn write<R>(&self, f: impl FnOnce(&mut HeatState) -> R) -> EResult<R> {
        let r = {
            let mut st = lock(&self.sim.heat);
            if st.stacks.get(&self.root).map(|s| s.traversal) != Some(self.trav) {
                return Err(EngineError::Cancelled);
            }
            f(&mut st)
        };
        self.sim.changed();
        Ok(r)
    }

    /// Take over from the current traversal (fencing out its remaining writers).
    fn bump(&self) -> EResult<Run> {
        let trav = self.write(|st| {
            st.stacks
                .get_mut(&self.root)
                .map(|s| {
                    s.traversal += 1;
                    s.traversal
                })
                .unwrap_or(0)
        })?;
        Ok(Run {
            trav,
            ..self.clone()
        })
    }
}

/// Start `op` on root stack `stack_id` (whose status the caller already set), replacing any
/// running task of that stack.
pub(crate) fn start(sim: &Arc<Sim>, stack_id: Uuid, op: Op) {
    let Some(trav) = lock(&sim.heat).stacks.get(&stack_id).map(|s| s.traversal) else {
        return;
    };
    let run = Run {
        sim: sim.clone(),
        root: stack_id,
        trav,
    };
    let mut rt = lock(&sim.runtime);
    if let Some((_, h)) = rt.tasks.remove(&stack_id) {
        h.abort();
    }
    rt.task_gen += 1;
    let gen = rt.task_gen;
    let span = tracing::info_span!("stack_action", stack = %stack_id, op = ?op);
    let sim2 = sim.clone();
    let handle = tokio::spawn(
        async move {
            match actions::top_level(run, op).await {
                Ok(()) => tracing::info!("stack action finished"),
                Err(EngineError::Cancelled) => tracing::info!("stack action superseded"),
                Err(e) => tracing::warn!(error = ?e, "stack action ended with an error"),
            }
            let mut rt = lock(&sim2.runtime);
            if rt.tasks.get(&stack_id).is_some_and(|(g, _)| *g == gen) {
                rt.tasks.remove(&stack_id);
            }
        }
        .instrument(span),
    );
    rt.tasks.insert(stack_id, (gen, handle.abort_handle()));
}

/// Stop the running task of a root stack (if any).
pub(crate) fn stop(sim: &Sim, stack_id: Uuid) {
    if let Some((_, h)) = lock(&sim.runtime).tasks.remove(&stack_id) {
        h.abort();
    }
}

/// Restart the actions of root stacks left `*_IN_PROGRESS` (after loading a state file).
pub(crate) fn resume_all(sim: &Arc<Sim>) {
    let todo: Vec<(Uuid, Op)> = lock(&sim.heat)
        .stacks
        .values()
        .filter(|s| s.parent.is_none() && s.in_progress())
        .filter_map(|s| {
            let op = match s.action {
                Action::Create => Op::Create,
                Action::Update => Op::Update,
                Action::Delete => Op::Delete,
                Action::Rollback => Op::Rollback {
                    create: s.rollback_create,
                },
                _ => return None,
            };
            Some((s.id, op))
        })
        .collect();
    for (id, op) in todo {
        tracing::info!(stack = %id, ?op, "resuming stack action");
        start(sim, id, op);
    }
}

/// The status reason of a stack action that succeeded.
fn completed(action: Action) -> String {
    format!("Stack {} completed successfully", action.as_str())
}

fn set_stack_status(st: &mut HeatState, id: Uuid, action: Action, status: Status, reason: &str) {
    if let Some(s) = st.stacks.get_mut(&id) {
        s.set_status(action, status, reason);
    }
}

/// The stack a step works on. It can only be missing if the state was reset under a running
/// task.
fn stack_of(st: &HeatState, id: Uuid, action: Action) -> Result<&Stack, Failure> {
    st.stacks.get(&id).ok_or_else(|| Failure::vanished(action))
}

/// [`stack_of`], for changing the stack.
fn stack_of_mut(st: &mut HeatState, id: Uuid, action: Action) -> Result<&mut Stack, Failure> {
    st.stacks
        .get_mut(&id)
        .ok_or_else(|| Failure::vanished(action))
}
