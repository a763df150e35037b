//! Converging one stack: plan its resource DAG, create/update ready resources in parallel
//! (nested stacks recursively), then remove resources no longer in its definition.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::delete::{delete_one, delete_resources};
use super::failure::{EResult, EngineError, Failure};
use super::leaf::{fail_resource, finish_resource, run_leaf};
use super::prepare::{prepare, NestedJob, Prep};
use super::tasks::Tasks;
use super::{completed, set_stack_status, stack_of, BoxFut, Run};
use crate::heat::context::StackCtx;
use crate::heat::intrinsics::{self, Refs};
use crate::heat::template::{self, resolve_params};
use crate::heat::{Action, HeatState, Status};

/// What converging a stack does.
struct Plan {
    /// Enabled resources of the definition with their dependencies among them.
    desired: BTreeMap<String, BTreeSet<String>>,
    /// Existing resources the definition no longer has (or whose condition is false).
    remove: Vec<String>,
}

fn plan(st: &HeatState, stack_id: Uuid, action: Action) -> Result<Plan, Failure> {
    let stack = stack_of(st, stack_id, action)?;
    let params = resolve_params(&stack.def.template, &stack.def.env, false)
        .map_err(|e| Failure::validation(action, e))?;
    let ctx = StackCtx::with_params(st, stack, params);
    let empty = Map::new();
    let defs = stack
        .def
        .template
        .get("resources")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let enabled: BTreeSet<&String> = defs
        .iter()
        .filter(|(_, rdef)| {
            rdef.get("condition")
                .is_none_or(|c| intrinsics::eval_condition(c, &ctx, 0))
        })
        .map(|(n, _)| n)
        .collect();
    let mut desired = BTreeMap::new();
    for name in &enabled {
        let rdef = &defs[name.as_str()];
        let mut refs = Refs::default();
        if let Some(p) = rdef.get("properties") {
            intrinsics::refs(p, &mut refs);
        }
        let deps: BTreeSet<String> = template::depends_on(rdef)
            .into_iter()
            .chain(refs.resources)
            .filter(|d| d != *name && enabled.contains(d))
            .collect();
        desired.insert((*name).clone(), deps);
    }
    let remove = stack
        .resources
        .keys()
        .filter(|n| !desired.contains_key(*n))
        .cloned()
        .collect();
    Ok(Plan { desired, remove })
}

/// Bring stack `stack_id`'s resources to its definition.
pub(super) fn converge(run: Run, stack_id: Uuid, action: Action) -> BoxFut<EResult<()>> {
    Box::pin(async move {
        let plan = run
            .read(|st| plan(st, stack_id, action))?
            .map_err(EngineError::Failed)?;
        let mut pending = plan.desired;
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut tasks = Tasks::new(action);
        loop {
            if tasks.healthy() {
                let ready: Vec<String> = pending
                    .iter()
                    .filter(|(_, deps)| deps.iter().all(|d| done.contains(d)))
                    .map(|(n, _)| n.clone())
                    .collect();
                for n in ready {
                    if let Some(deps) = pending.remove(&n) {
                        let work = apply(run.clone(), stack_id, n.clone(), deps, action);
                        tasks.spawn(n, work);
                    }
                }
            }
            let Some(finished) = tasks.next().await else {
                break;
            };
            // A failed resource counts as done too: after a failure nothing new starts.
            if let Some(n) = finished {
                done.insert(n);
            }
        }
        tasks.finish()?;
        if !pending.is_empty() {
            let names: Vec<String> = pending.keys().cloned().collect();
            return Err(EngineError::Failed(Failure::internal(
                action,
                format!("Circular Dependency Found: {}", names.join(", ")),
            )));
        }
        delete_resources(run, stack_id, plan.remove).await
    })
}

/// Create or update one resource of `stack_id`.
fn apply(
    run: Run,
    stack_id: Uuid,
    name: String,
    deps: BTreeSet<String>,
    action: Action,
) -> BoxFut<EResult<()>> {
    Box::pin(async move {
        let mut replaced = false;
        loop {
            let prep = run
                .write(|st| prepare(st, stack_id, &name, &deps, action))?
                .map_err(EngineError::Failed)?;
            match prep {
                Prep::Skip => return Ok(()),
                Prep::Replace if !replaced => {
                    replaced = true;
                    delete_one(run.clone(), stack_id, name.clone()).await?;
                }
                Prep::Replace => {
                    return Err(EngineError::Failed(Failure::internal(
                        action,
                        "replacement failed",
                    )))
                }
                Prep::Leaf(job) => return run_leaf(run, stack_id, name, job).await,
                Prep::Nested(job) => return run_nested(run, stack_id, name, job).await,
            }
        }
    })
}

/// Converge the nested stack of template resource or group `name`, then settle the resource.
async fn run_nested(run: Run, stack_id: Uuid, name: String, job: NestedJob) -> EResult<()> {
    let NestedJob {
        op,
        nested_id,
        nested_action,
        group,
        fingerprint,
    } = job;
    match converge(run.clone(), nested_id, nested_action).await {
        Ok(()) => run.write(|st| {
            set_stack_status(
                st,
                nested_id,
                nested_action,
                Status::Complete,
                &completed(nested_action),
            );
            finish_resource(st, stack_id, &name, op, &fingerprint, None);
        }),
        Err(EngineError::Failed(f)) => {
            let wrapped = f.clone().nested_in(&name, group);
            run.write(|st| {
                set_stack_status(
                    st,
                    nested_id,
                    nested_action,
                    Status::Failed,
                    &f.stack_reason(),
                );
                fail_resource(st, stack_id, &name, op, &wrapped);
            })?;
            Err(EngineError::Failed(wrapped))
        }
        Err(e) => Err(e),
    }
}
