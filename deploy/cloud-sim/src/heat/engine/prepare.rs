//! Recording that one resource's create/update starts: its nested stack record (created or
//! moved to its new definition), the resource record and its `IN_PROGRESS` event.

use std::collections::BTreeSet;

use serde_json::Value;
use uuid::Uuid;

use super::decide::{decide, kind_of};
use super::failure::Failure;
use super::{stack_of, stack_of_mut};
use crate::heat::{Action, Definition, HeatState, ResKind, Resource, Stack, Status};
use crate::util::{short_id, Ts};

/// A leaf resource action to simulate.
pub(super) struct LeafJob {
    pub impl_type: String,
    pub op: Action,
    pub props: Value,
    pub fingerprint: String,
}

/// The nested stack of a template resource or group to converge.
pub(super) struct NestedJob {
    pub op: Action,
    pub nested_id: Uuid,
    pub nested_action: Action,
    pub group: bool,
    pub fingerprint: String,
}

/// What to do with one resource.
pub(super) enum Prep {
    /// Up to date.
    Skip,
    /// Its implementation changed: delete it, then prepare again.
    Replace,
    Leaf(LeafJob),
    Nested(NestedJob),
}

pub(super) fn prepare(
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
    let nested = match d.nested_def {
        Some(def) => Some(nested_stack(st, stack_id, name, def, now, action)?),
        None => None,
    };

    let stack = stack_of_mut(st, stack_id, action)?;
    let res = stack
        .resources
        .entry(name.to_string())
        .or_insert_with(|| Resource::initial(name, &d.rtype, d.imp.name(), kind, now));
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
        Some((nested_id, nested_action)) => Prep::Nested(NestedJob {
            op: d.op,
            nested_id,
            nested_action,
            group: kind == ResKind::Group,
            fingerprint: d.fingerprint,
        }),
        None => Prep::Leaf(LeafJob {
            impl_type: d.imp.name().to_string(),
            op: d.op,
            props: d.props,
            fingerprint: d.fingerprint,
        }),
    })
}

/// Put the nested stack of resource `name` of `stack_id` in progress towards `def`: its live
/// one (create again if it never completed, else update) or a new one. Returns its id and
/// action.
fn nested_stack(
    st: &mut HeatState,
    stack_id: Uuid,
    name: &str,
    def: Definition,
    now: Ts,
    action: Action,
) -> Result<(Uuid, Action), Failure> {
    let parent = stack_of(st, stack_id, action)?;
    let (parent_name, project, owner, root) = (
        parent.name.clone(),
        parent.project_id.clone(),
        parent.owner.clone(),
        parent.root,
    );
    let existing_nested = parent
        .resources
        .get(name)
        .and_then(|r| r.nested)
        .filter(|id| st.stacks.get(id).is_some_and(|s| !s.is_deleted()));
    if let Some(ns) = existing_nested.and_then(|id| st.stacks.get_mut(&id)) {
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
        return Ok((ns.id, naction));
    }
    let id = Uuid::new_v4();
    let mut ns = Stack {
        parent: Some(stack_id),
        parent_resource: Some(name.to_string()),
        root,
        ..Stack::new(
            id,
            format!("{parent_name}-{name}-{}", short_id()),
            project,
            owner,
            def,
            now,
        )
    };
    ns.set_status(Action::Create, Status::InProgress, "Stack CREATE started");
    st.insert_stack(ns);
    Ok((id, Action::Create))
}
