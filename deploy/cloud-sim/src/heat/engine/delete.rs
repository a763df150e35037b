//! Removal of resources: dependents first, independent ones in parallel; a template
//! resource or group deletes its nested stack recursively.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::failure::{EResult, EngineError, Failure};
use super::leaf::{fail_resource, simulate};
use super::tasks::Tasks;
use super::{completed, set_stack_status, BoxFut, Run};
use crate::heat::{Action, HeatState, ResKind, Status};
use crate::util::Ts;

pub(super) fn resource_names(st: &HeatState, id: Uuid) -> Vec<String> {
    st.stacks
        .get(&id)
        .map(|s| s.resources.keys().cloned().collect())
        .unwrap_or_default()
}

/// Delete every resource of stack `id` and record the outcome in its status:
/// `DELETE_COMPLETE` (with, if `purge_nested`, the records of its nested stacks dropped), or
/// `DELETE_FAILED` and `Ok(Err(failure))`.
pub(super) async fn delete_stack(
    run: &Run,
    id: Uuid,
    purge_nested: bool,
) -> EResult<Result<(), Failure>> {
    let names = run.read(|st| resource_names(st, id))?;
    match delete_resources(run.clone(), id, names).await {
        Ok(()) => {
            run.write(|st| {
                if purge_nested {
                    // Like Heat's purge of a deleted stack's nested stacks: only the root stays.
                    st.purge_nested(id);
                }
                if let Some(s) = st.stacks.get_mut(&id) {
                    s.resources.clear();
                    s.deleted = Some(Ts::now());
                    s.set_status(Action::Delete, Status::Complete, &completed(Action::Delete));
                }
            })?;
            Ok(Ok(()))
        }
        Err(EngineError::Failed(f)) => {
            run.write(|st| {
                set_stack_status(st, id, Action::Delete, Status::Failed, &f.stack_reason())
            })?;
            Ok(Err(f))
        }
        Err(e) => Err(e),
    }
}

/// Delete `names` of `stack_id`, dependents first, independent ones in parallel.
pub(super) fn delete_resources(
    run: Run,
    stack_id: Uuid,
    names: Vec<String>,
) -> BoxFut<EResult<()>> {
    Box::pin(async move {
        let deps: BTreeMap<String, Vec<String>> = run.read(|st| {
            let stack = st.stacks.get(&stack_id);
            names
                .iter()
                .map(|n| {
                    let d = stack
                        .and_then(|s| s.resources.get(n))
                        .map(|r| r.deps.clone())
                        .unwrap_or_default();
                    (n.clone(), d)
                })
                .collect()
        })?;
        let mut pending: BTreeSet<String> = names.into_iter().collect();
        let mut running: BTreeSet<String> = BTreeSet::new();
        let mut tasks = Tasks::new(Action::Delete);
        loop {
            if tasks.healthy() {
                let blocked = |n: &String| {
                    pending
                        .iter()
                        .chain(running.iter())
                        .any(|m| m != n && deps.get(m).is_some_and(|d| d.contains(n)))
                };
                let mut ready: Vec<String> =
                    pending.iter().filter(|n| !blocked(n)).cloned().collect();
                if ready.is_empty() && running.is_empty() {
                    // A dependency cycle among leftovers: delete them anyway.
                    ready = pending.iter().cloned().collect();
                }
                for n in ready {
                    pending.remove(&n);
                    running.insert(n.clone());
                    let work = delete_one(run.clone(), stack_id, n.clone());
                    tasks.spawn(n, work);
                }
            }
            let Some(finished) = tasks.next().await else {
                break;
            };
            if let Some(n) = finished {
                running.remove(&n);
            }
        }
        tasks.finish()
    })
}

/// Delete one resource (a nested stack recursively).
pub(super) fn delete_one(run: Run, stack_id: Uuid, name: String) -> BoxFut<EResult<()>> {
    Box::pin(async move {
        let info = run.write(|st| {
            let stack = st.stacks.get_mut(&stack_id)?;
            let res = stack.resources.get_mut(&name)?;
            res.action = Action::Delete;
            res.status = Status::InProgress;
            res.reason = "state changed".into();
            let out = (
                res.kind,
                res.impl_type.clone(),
                res.rtype.clone(),
                res.nested,
                res.props.clone(),
                res.physical_id.clone(),
            );
            let (t, p) = (res.rtype.clone(), res.physical_id.clone());
            stack.add_event(
                &name,
                &t,
                &p,
                Action::Delete,
                Status::InProgress,
                "state changed",
            );
            Some(out)
        })?;
        let Some((kind, impl_type, rtype, nested, props, pid)) = info else {
            return Ok(());
        };
        let result: Result<(), Failure> = match (kind, nested) {
            (ResKind::Template | ResKind::Group, Some(nid)) => {
                let live = run.write(|st| match st.stacks.get_mut(&nid) {
                    Some(ns) if !ns.is_deleted() => {
                        ns.set_status(Action::Delete, Status::InProgress, "Stack DELETE started");
                        true
                    }
                    _ => false,
                })?;
                if live {
                    delete_stack(&run, nid, false)
                        .await?
                        .map_err(|f| f.nested_in(&name, kind == ResKind::Group))
                } else {
                    Ok(())
                }
            }
            _ if !pid.is_empty() => {
                match simulate(&run.sim, &impl_type, Action::Delete, &props).await {
                    Some((err_type, message)) => Err(Failure::of_resource(
                        Action::Delete,
                        &name,
                        err_type,
                        message,
                    )),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        };
        match result {
            Ok(()) => run.write(|st| {
                if let Some(stack) = st.stacks.get_mut(&stack_id) {
                    stack.add_event(
                        &name,
                        &rtype,
                        &pid,
                        Action::Delete,
                        Status::Complete,
                        "state changed",
                    );
                    stack.resources.remove(&name);
                }
            }),
            Err(f) => {
                run.write(|st| fail_resource(st, stack_id, &name, Action::Delete, &f))?;
                Err(EngineError::Failed(f))
            }
        }
    })
}
