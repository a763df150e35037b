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

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use super::context::StackCtx;
use super::intrinsics::{self, Ctx, Refs};
use super::template::{self, resolve_params, TypeImpl};
use super::{
    group, next_seq, resources, Action, Definition, Env, HeatState, ResKind, Resource, Stack,
    Status,
};
use crate::error::SimError;
use crate::util::{lock, short_id, Ts};
use crate::Sim;

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A resource failure, with Heat's path (`resources.a.resources[0].resources.b`).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub action: Action,
    pub err_type: String,
    pub path: String,
    pub message: String,
}

impl Failure {
    /// `ErrType: path: message` (a resource's status reason).
    pub(crate) fn text(&self) -> String {
        if self.path.is_empty() {
            format!("{}: {}", self.err_type, self.message)
        } else {
            format!("{}: {}: {}", self.err_type, self.path, self.message)
        }
    }

    /// `Resource CREATE failed: ErrType: path: message` (a stack's status reason).
    pub(crate) fn stack_reason(&self) -> String {
        format!("Resource {} failed: {}", self.action.as_str(), self.text())
    }

    /// The same failure seen from the parent stack of the resource `res` owning the nested
    /// stack it happened in.
    fn nested_in(mut self, res: &str, group: bool) -> Failure {
        let inner = self
            .path
            .strip_prefix("resources.")
            .unwrap_or(&self.path)
            .to_string();
        self.path = if inner.is_empty() {
            format!("resources.{res}")
        } else if group {
            match inner.split_once('.') {
                Some((member, rest)) => format!("resources.{res}.resources[{member}].{rest}"),
                None => format!("resources.{res}.resources[{inner}]"),
            }
        } else {
            format!("resources.{res}.resources.{inner}")
        };
        self
    }

    fn internal(action: Action, message: impl Into<String>) -> Failure {
        Failure {
            action,
            err_type: "ResourceFailure".into(),
            path: String::new(),
            message: message.into(),
        }
    }
}

/// Why an engine step stopped.
#[derive(Debug)]
pub(crate) enum EngineError {
    Failed(Failure),
    /// Superseded by a newer action on the root stack.
    Cancelled,
    TimedOut,
}

type EResult<T> = Result<T, EngineError>;

fn merge(prev: Option<EngineError>, e: EngineError) -> EngineError {
    match (prev, e) {
        (_, EngineError::Cancelled) | (Some(EngineError::Cancelled), _) => EngineError::Cancelled,
        (Some(p), _) => p,
        (None, e) => e,
    }
}

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
            match top_level(run, op).await {
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

fn completed(action: Action) -> String {
    format!("Stack {} completed successfully", action.as_str())
}

fn set_stack_status(st: &mut HeatState, id: Uuid, action: Action, status: Status, reason: &str) {
    if let Some(s) = st.stacks.get_mut(&id) {
        s.set_status(action, status, reason);
    }
}

async fn top_level(run: Run, op: Op) -> EResult<()> {
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
    let scale = run.sim.time_scale;
    let fut = converge(run.clone(), root, action);
    let result = if scale > 0.0 {
        let secs = timeout_mins.unwrap_or(60) as f64 * 60.0 * scale;
        match tokio::time::timeout(Duration::from_secs_f64(secs), fut).await {
            Ok(r) => r,
            Err(_) => Err(EngineError::TimedOut),
        }
    } else {
        fut.await
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

async fn rollback(run: Run, create: bool) -> EResult<()> {
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

fn resource_names(st: &HeatState, id: Uuid) -> Vec<String> {
    st.stacks
        .get(&id)
        .map(|s| s.resources.keys().cloned().collect())
        .unwrap_or_default()
}

async fn delete_top(run: Run) -> EResult<()> {
    let root = run.root;
    let names = run.read(|st| resource_names(st, root))?;
    match delete_resources(run.clone(), root, names).await {
        Ok(()) => run.write(|st| {
            // Like Heat's purge of a deleted stack's nested stacks: only the root stays.
            st.stacks.retain(|id, s| s.root != root || *id == root);
            if let Some(s) = st.stacks.get_mut(&root) {
                s.resources.clear();
                s.deleted = Some(Ts::now());
                s.set_status(Action::Delete, Status::Complete, &completed(Action::Delete));
            }
        }),
        Err(EngineError::Failed(f)) => run.write(|st| {
            set_stack_status(st, root, Action::Delete, Status::Failed, &f.stack_reason())
        }),
        Err(e) => Err(e),
    }
}

/// Simulated latency of one resource action, in (scaled) seconds.
fn latency(sim: &Sim, impl_type: &str, action: Action, props: &Value) -> f64 {
    let configured = {
        let rt = lock(&sim.runtime);
        rt.latencies
            .get(&(impl_type.to_string(), action.as_str().to_string()))
            .or_else(|| rt.latencies.get(&(impl_type.to_string(), "*".to_string())))
            .copied()
    };
    let base = configured.unwrap_or_else(|| {
        if impl_type == "OS::Heat::TestResource" {
            resources::test_resource_wait(props, action)
                .unwrap_or_else(|| resources::default_latency(impl_type, action))
        } else {
            resources::default_latency(impl_type, action)
        }
    });
    (base * sim.time_scale).max(0.0)
}

async fn sleep_secs(secs: f64) {
    if secs > 0.0 && secs.is_finite() {
        tokio::time::sleep(Duration::from_secs_f64(secs.min(1.0e7))).await;
    }
}

struct Plan {
    desired: BTreeMap<String, BTreeSet<String>>,
    remove: Vec<String>,
}

fn validation_failure(action: Action, e: SimError) -> Failure {
    match e {
        SimError::Heat { kind, message, .. } => Failure {
            action,
            err_type: kind,
            path: String::new(),
            message,
        },
        other => Failure::internal(action, other.to_string()),
    }
}

fn plan(st: &HeatState, stack_id: Uuid, action: Action) -> Result<Plan, Failure> {
    let stack = st
        .stacks
        .get(&stack_id)
        .ok_or_else(|| Failure::internal(action, "stack vanished"))?;
    let params = resolve_params(&stack.def.template, &stack.def.env, false)
        .map_err(|e| validation_failure(action, e))?;
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
fn converge(run: Run, stack_id: Uuid, action: Action) -> BoxFut<EResult<()>> {
    Box::pin(async move {
        let plan = run
            .read(|st| plan(st, stack_id, action))?
            .map_err(EngineError::Failed)?;
        let mut pending = plan.desired;
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut set: JoinSet<(String, EResult<()>)> = JoinSet::new();
        let mut failure: Option<EngineError> = None;
        loop {
            if failure.is_none() {
                let ready: Vec<String> = pending
                    .iter()
                    .filter(|(_, deps)| deps.iter().all(|d| done.contains(d)))
                    .map(|(n, _)| n.clone())
                    .collect();
                for n in ready {
                    if let Some(deps) = pending.remove(&n) {
                        let r = run.clone();
                        set.spawn(
                            async move {
                                let res = apply(r, stack_id, n.clone(), deps, action).await;
                                (n, res)
                            }
                            .in_current_span(),
                        );
                    }
                }
            }
            match set.join_next().await {
                None => break,
                Some(Ok((n, Ok(())))) => {
                    done.insert(n);
                }
                Some(Ok((_, Err(e)))) => failure = Some(merge(failure.take(), e)),
                Some(Err(e)) => {
                    failure = Some(merge(
                        failure.take(),
                        EngineError::Failed(Failure::internal(
                            action,
                            format!("engine task failed: {e}"),
                        )),
                    ))
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
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

/// What to do with one resource.
enum Prep {
    Skip,
    Replace,
    Leaf {
        impl_type: String,
        op: Action,
        props: Value,
        fingerprint: String,
    },
    Nested {
        op: Action,
        nested_id: Uuid,
        nested_action: Action,
        group: bool,
        fingerprint: String,
    },
}

/// The decision taken while only reading state.
struct Decision {
    rtype: String,
    imp: TypeImpl,
    props: Value,
    fingerprint: String,
    op: Action,
    nested_def: Option<Definition>,
    skiplist: Vec<String>,
}

fn decide(
    st: &HeatState,
    stack_id: Uuid,
    name: &str,
    action: Action,
) -> Result<Option<Decision>, Failure> {
    let fail = |m: String| Failure {
        action: Action::Create,
        err_type: "StackValidationFailed".into(),
        path: format!("resources.{name}"),
        message: m,
    };
    let stack = st
        .stacks
        .get(&stack_id)
        .ok_or_else(|| Failure::internal(action, "stack vanished"))?;
    let rdef = stack
        .def
        .template
        .get("resources")
        .and_then(|r| r.get(name))
        .ok_or_else(|| fail("resource definition vanished".into()))?;
    let rtype = rdef
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("OS::Heat::None")
        .to_string();
    let ctx = StackCtx::new(st, stack);
    let props = rdef
        .get("properties")
        .map(|p| intrinsics::eval(p, &ctx))
        .unwrap_or_else(|| Value::Object(Map::new()));
    let files = &stack.def.files;
    let imp = template::resolve_type(&rtype, &stack.def.env, files).map_err(fail)?;
    let existing = stack.resources.get(name);

    let mut nested_def = None;
    let mut skiplist = Vec::new();
    let fingerprint = match &imp {
        TypeImpl::Builtin(_) => props.to_string(),
        TypeImpl::Template(key) => {
            let t = template::nested_template(files, key).map_err(fail)?;
            let mut env = Env {
                parameters: props.as_object().cloned().unwrap_or_default(),
                parameter_defaults: stack.def.env.parameter_defaults.clone(),
                resource_registry: stack.def.env.resource_registry.clone(),
            };
            env.parameters.retain(|_, v| !v.is_null());
            nested_def = Some(Definition {
                template: t,
                files: files.clone(),
                env,
            });
            format!(
                "{props}|{}",
                files.get(key).map(String::as_str).unwrap_or("")
            )
        }
        TypeImpl::Group => {
            let spec = group::parse(&props).map_err(fail)?;
            let (old_skip, members) =
                match existing.and_then(|r| ctx.nested(r.nested).map(|n| (r, n))) {
                    Some((r, n)) => {
                        let names = group::members(&n);
                        let members: Vec<(String, String)> = names
                            .into_iter()
                            .filter(|m| n.stack.resources.contains_key(m))
                            .map(|m| {
                                let rf = match n.resource_ref(&m) {
                                    Value::String(s) => s,
                                    other => other.to_string(),
                                };
                                (m, rf)
                            })
                            .collect();
                        (r.skiplist.clone(), members)
                    }
                    None => (Vec::new(), Vec::new()),
                };
            skiplist = group::new_skiplist(&old_skip, &spec, &members);
            let names = group::member_names(spec.count, &skiplist);
            let member_type = spec
                .resource_def
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("");
            let member_file = match template::resolve_type(member_type, &stack.def.env, files) {
                Ok(TypeImpl::Template(k)) => files.get(&k).cloned().unwrap_or_default(),
                _ => String::new(),
            };
            nested_def = Some(Definition {
                template: group::template(&names, &spec),
                files: files.clone(),
                env: Env {
                    parameters: Map::new(),
                    parameter_defaults: stack.def.env.parameter_defaults.clone(),
                    resource_registry: stack.def.env.resource_registry.clone(),
                },
            });
            format!("{props}|{skiplist:?}|{member_file}")
        }
    };
    let kind = kind_of(&imp);
    let op = match existing {
        None => Action::Create,
        Some(r) if r.kind != kind || r.impl_type != imp.name() => {
            return Ok(None);
        }
        Some(r)
            if r.status == Status::Complete
                && !matches!(r.action, Action::Init | Action::Delete)
                && r.fingerprint == fingerprint =>
        {
            return Ok(Some(Decision {
                rtype,
                imp,
                props,
                fingerprint,
                op: Action::Init, // marker: skip
                nested_def: None,
                skiplist,
            }));
        }
        Some(r)
            if matches!(r.action, Action::Init | Action::Delete)
                || (r.action == Action::Create && r.status != Status::Complete) =>
        {
            Action::Create
        }
        Some(_) => Action::Update,
    };
    Ok(Some(Decision {
        rtype,
        imp,
        props,
        fingerprint,
        op,
        nested_def,
        skiplist,
    }))
}

fn kind_of(imp: &TypeImpl) -> ResKind {
    match imp {
        TypeImpl::Builtin(_) => ResKind::Leaf,
        TypeImpl::Template(_) => ResKind::Template,
        TypeImpl::Group => ResKind::Group,
    }
}

fn prepare(
    st: &mut HeatState,
    stack_id: Uuid,
    name: &str,
    deps: &BTreeSet<String>,
    action: Action,
) -> Result<Prep, Failure> {
    let Some(d) = decide(st, stack_id, name, action)? else {
        return Ok(Prep::Replace);
    };
    if d.op == Action::Init {
        return Ok(Prep::Skip);
    }
    let now = Ts::now();
    let kind = kind_of(&d.imp);
    let (parent_name, project, owner, root) = match st.stacks.get(&stack_id) {
        Some(s) => (
            s.name.clone(),
            s.project_id.clone(),
            s.owner.clone(),
            s.root,
        ),
        None => return Err(Failure::internal(action, "stack vanished")),
    };

    // Nested stack record (template resources and groups).
    let mut nested = None;
    if let Some(def) = d.nested_def {
        let existing_nested = st
            .stacks
            .get(&stack_id)
            .and_then(|s| s.resources.get(name))
            .and_then(|r| r.nested)
            .filter(|id| st.stacks.get(id).is_some_and(|s| !s.is_deleted()));
        let (nid, naction) = match existing_nested.and_then(|id| st.stacks.get_mut(&id)) {
            Some(ns) => {
                let naction = if ns.action == Action::Init
                    || (ns.action == Action::Create && ns.status != Status::Complete)
                {
                    Action::Create
                } else {
                    Action::Update
                };
                ns.prev_def = Some(std::mem::replace(&mut ns.def, def));
                if naction == Action::Update {
                    ns.updated = Some(now);
                }
                ns.set_status(
                    naction,
                    Status::InProgress,
                    &format!("Stack {} started", naction.as_str()),
                );
                (ns.id, naction)
            }
            None => {
                let id = Uuid::new_v4();
                let mut ns = Stack {
                    id,
                    name: format!("{parent_name}-{name}-{}", short_id()),
                    project_id: project,
                    owner,
                    parent: Some(stack_id),
                    parent_resource: Some(name.to_string()),
                    root,
                    seq: next_seq(),
                    def,
                    prev_def: None,
                    action: Action::Init,
                    status: Status::Complete,
                    reason: String::new(),
                    created: now,
                    updated: None,
                    deleted: None,
                    timeout_mins: None,
                    disable_rollback: true,
                    tags: None,
                    resources: BTreeMap::new(),
                    events: Vec::new(),
                    pools: BTreeMap::new(),
                    traversal: 0,
                    rollback_create: false,
                };
                ns.set_status(Action::Create, Status::InProgress, "Stack CREATE started");
                st.stacks.insert(id, ns);
                (id, Action::Create)
            }
        };
        nested = Some((nid, naction));
    }

    let stack = st
        .stacks
        .get_mut(&stack_id)
        .ok_or_else(|| Failure::internal(action, "stack vanished"))?;
    let res = stack
        .resources
        .entry(name.to_string())
        .or_insert_with(|| Resource {
            name: name.to_string(),
            rtype: d.rtype.clone(),
            impl_type: d.imp.name().to_string(),
            kind,
            action: Action::Init,
            status: Status::Complete,
            reason: String::new(),
            physical_id: String::new(),
            created: now,
            updated: None,
            props: Value::Null,
            fingerprint: String::new(),
            attrs: Map::new(),
            nested: None,
            deps: Vec::new(),
            skiplist: Vec::new(),
        });
    res.rtype = d.rtype.clone();
    res.impl_type = d.imp.name().to_string();
    res.kind = kind;
    res.action = d.op;
    res.status = Status::InProgress;
    res.reason = "state changed".into();
    res.props = d.props.clone();
    res.deps = deps.iter().cloned().collect();
    if d.op == Action::Update {
        res.updated = Some(now);
    }
    if kind == ResKind::Group {
        res.skiplist = d.skiplist;
    }
    if let Some((nid, _)) = nested {
        res.nested = Some(nid);
        res.physical_id = nid.to_string();
    }
    let pid = res.physical_id.clone();
    stack.add_event(
        name,
        &d.rtype,
        &pid,
        d.op,
        Status::InProgress,
        "state changed",
    );
    Ok(match nested {
        Some((nested_id, nested_action)) => Prep::Nested {
            op: d.op,
            nested_id,
            nested_action,
            group: kind == ResKind::Group,
            fingerprint: d.fingerprint,
        },
        None => Prep::Leaf {
            impl_type: d.imp.name().to_string(),
            op: d.op,
            props: d.props,
            fingerprint: d.fingerprint,
        },
    })
}

fn finish_resource(
    st: &mut HeatState,
    stack_id: Uuid,
    name: &str,
    op: Action,
    fingerprint: &str,
    built: Option<resources::Built>,
) {
    let Some(stack) = st.stacks.get_mut(&stack_id) else {
        return;
    };
    let Some(res) = stack.resources.get_mut(name) else {
        return;
    };
    res.status = Status::Complete;
    res.reason = "state changed".into();
    res.fingerprint = fingerprint.to_string();
    if let Some(b) = built {
        res.physical_id = b.physical_id;
        res.attrs = b.attrs;
    }
    let (t, p) = (res.rtype.clone(), res.physical_id.clone());
    stack.add_event(name, &t, &p, op, Status::Complete, "state changed");
}

fn fail_resource(st: &mut HeatState, stack_id: Uuid, name: &str, op: Action, f: &Failure) {
    let Some(stack) = st.stacks.get_mut(&stack_id) else {
        return;
    };
    let Some(res) = stack.resources.get_mut(name) else {
        return;
    };
    res.action = op;
    res.status = Status::Failed;
    res.reason = f.text();
    let (t, p, r) = (
        res.rtype.clone(),
        res.physical_id.clone(),
        res.reason.clone(),
    );
    stack.add_event(name, &t, &p, op, Status::Failed, &r);
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
                Prep::Leaf {
                    impl_type,
                    op,
                    props,
                    fingerprint,
                } => return run_leaf(run, stack_id, name, impl_type, op, props, fingerprint).await,
                Prep::Nested {
                    op,
                    nested_id,
                    nested_action,
                    group,
                    fingerprint,
                } => {
                    return run_nested(
                        run,
                        stack_id,
                        name,
                        op,
                        nested_id,
                        nested_action,
                        group,
                        fingerprint,
                    )
                    .await
                }
            }
        }
    })
}

async fn run_leaf(
    run: Run,
    stack_id: Uuid,
    name: String,
    impl_type: String,
    op: Action,
    props: Value,
    fingerprint: String,
) -> EResult<()> {
    let wait = latency(&run.sim, &impl_type, op, &props);
    let fault = lock(&run.sim.faults).take_resource(&impl_type, op);
    sleep_secs(wait).await;
    let failure = fault.or_else(|| resources::intrinsic_failure(&impl_type, &name, &props, op));
    if let Some((err_type, message)) = failure {
        let f = Failure {
            action: op,
            err_type,
            path: format!("resources.{name}"),
            message,
        };
        run.write(|st| fail_resource(st, stack_id, &name, op, &f))?;
        return Err(EngineError::Failed(f));
    }
    run.write(|st| {
        let prev = st
            .stacks
            .get(&stack_id)
            .and_then(|s| s.resources.get(&name))
            .filter(|r| !r.physical_id.is_empty())
            .cloned();
        let built = resources::build(st, stack_id, &name, &impl_type, &props, prev.as_ref());
        finish_resource(st, stack_id, &name, op, &fingerprint, Some(built));
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_nested(
    run: Run,
    stack_id: Uuid,
    name: String,
    op: Action,
    nested_id: Uuid,
    nested_action: Action,
    group: bool,
    fingerprint: String,
) -> EResult<()> {
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

/// Delete `names` of `stack_id`, dependents first, independent ones in parallel.
fn delete_resources(run: Run, stack_id: Uuid, names: Vec<String>) -> BoxFut<EResult<()>> {
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
        let mut set: JoinSet<(String, EResult<()>)> = JoinSet::new();
        let mut failure: Option<EngineError> = None;
        loop {
            if failure.is_none() {
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
                    let r = run.clone();
                    set.spawn(
                        async move {
                            let res = delete_one(r, stack_id, n.clone()).await;
                            (n, res)
                        }
                        .in_current_span(),
                    );
                }
            }
            match set.join_next().await {
                None => break,
                Some(Ok((n, r))) => {
                    running.remove(&n);
                    if let Err(e) = r {
                        failure = Some(merge(failure.take(), e));
                    }
                }
                Some(Err(e)) => {
                    failure = Some(merge(
                        failure.take(),
                        EngineError::Failed(Failure::internal(
                            Action::Delete,
                            format!("engine task failed: {e}"),
                        )),
                    ))
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}

/// Delete one resource (a nested stack recursively).
fn delete_one(run: Run, stack_id: Uuid, name: String) -> BoxFut<EResult<()>> {
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
                    let names = run.read(|st| resource_names(st, nid))?;
                    match delete_resources(run.clone(), nid, names).await {
                        Ok(()) => {
                            run.write(|st| {
                                if let Some(ns) = st.stacks.get_mut(&nid) {
                                    ns.resources.clear();
                                    ns.deleted = Some(Ts::now());
                                    ns.set_status(
                                        Action::Delete,
                                        Status::Complete,
                                        &completed(Action::Delete),
                                    );
                                }
                            })?;
                            Ok(())
                        }
                        Err(EngineError::Failed(f)) => {
                            run.write(|st| {
                                set_stack_status(
                                    st,
                                    nid,
                                    Action::Delete,
                                    Status::Failed,
                                    &f.stack_reason(),
                                )
                            })?;
                            Err(f.nested_in(&name, kind == ResKind::Group))
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    Ok(())
                }
            }
            _ if !pid.is_empty() => {
                let wait = latency(&run.sim, &impl_type, Action::Delete, &props);
                let fault = lock(&run.sim.faults).take_resource(&impl_type, Action::Delete);
                sleep_secs(wait).await;
                match fault {
                    Some((err_type, message)) => Err(Failure {
                        action: Action::Delete,
                        err_type,
                        path: format!("resources.{name}"),
                        message,
                    }),
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
