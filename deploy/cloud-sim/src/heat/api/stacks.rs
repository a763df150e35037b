//! Stack create (`POST /stacks`), update (`PUT`/`PATCH /stacks/{name}/{id}`) and delete.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use super::body::{parse_body, parse_inst};
use super::{action_in_progress, bad_request, not_supported, stack_not_found, with_location, Req};
use crate::error::{json_response, SimError};
use crate::heat::engine::{self, Op};
use crate::heat::{template, views, Action, HeatState, Stack, Status};
use crate::util::{lock, Ts};

fn valid_stack_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && n.len() <= 255
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn stack_exists(name: &str) -> SimError {
    SimError::heat(
        409,
        "StackExists",
        format!("The Stack ({name}) already exists."),
    )
}

/// The stack `{name}/{id}` that an update or delete (`verb`: "Updating", "Deleting") acts
/// on: not deleted, and not nested (those change only through their parent).
fn live_top_level<'s>(
    st: &'s mut HeatState,
    req: &Req<'_>,
    name: &str,
    id: &str,
    verb: &str,
) -> Result<&'s mut Stack, SimError> {
    let s = st
        .canonical_mut(req.tenant, name, id)
        .filter(|s| !s.is_deleted())
        .ok_or_else(|| stack_not_found(name))?;
    if s.parent.is_some() {
        return Err(not_supported(&format!("{verb} a nested stack directly")));
    }
    Ok(s)
}

pub(super) fn create(req: &Req<'_>) -> Result<Response, SimError> {
    let b = parse_body(req.body)?;
    let name = match b.get("stack_name") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(bad_request("No stack name specified")),
        Some(other) => other.to_string(),
    };
    if !valid_stack_name(&name) {
        return Err(SimError::heat_bad(format!(
            "Invalid stack name {name} must contain only alphanumeric or \"_-.\" characters, must start with alpha and must be 255 characters or less."
        )));
    }
    let inst = parse_inst(&b)?;
    let def = inst.definition(None)?;
    // Heat checks the name before validating the template.
    if lock(&req.sim.heat)
        .live_by_name(req.tenant, &name)
        .is_some()
    {
        return Err(stack_exists(&name));
    }
    template::validate(&def, true)?;

    let now = Ts::now();
    let id = Uuid::new_v4();
    {
        let mut st = lock(&req.sim.heat);
        // Checked again: another create of the same name may have won meanwhile.
        if st.live_by_name(req.tenant, &name).is_some() {
            return Err(stack_exists(&name));
        }
        let live = st
            .of_project(req.tenant)
            .filter(|s| s.parent.is_none() && !s.is_deleted())
            .count();
        let max = req.sim.max_stacks_per_tenant;
        if live >= max {
            return Err(SimError::heat(
                400,
                "RequestLimitExceeded",
                format!("You have reached the maximum stacks per tenant, {max}. Please delete some stacks."),
            ));
        }
        let mut stack = Stack {
            timeout_mins: inst.timeout_mins.flatten(),
            disable_rollback: inst.disable_rollback.unwrap_or(true),
            tags: inst.tags.clone().flatten(),
            traversal: 1,
            ..Stack::new(
                id,
                name.clone(),
                req.tenant.to_string(),
                req.auth.user_name.clone(),
                def,
                now,
            )
        };
        stack.set_status(Action::Create, Status::InProgress, "Stack CREATE started");
        st.insert_stack(stack);
        *st.creates_by_name.entry(name.clone()).or_insert(0) += 1;
    }
    req.sim.changed();
    tracing::info!(stack = %id, %name, project = req.tenant, "stack create accepted");
    engine::start(req.sim, id, Op::Create);

    let location = views::stack_href(req.sim, req.tenant, &name, id);
    let resp = json_response(
        StatusCode::CREATED,
        &json!({"stack": {"id": id, "links": [{"href": location, "rel": "self"}]}}),
    );
    Ok(with_location(resp, &location))
}

pub(super) fn update(
    req: &Req<'_>,
    name: &str,
    id: &str,
    patch: bool,
) -> Result<Response, SimError> {
    let b = parse_body(req.body)?;
    let inst = parse_inst(&b)?;
    let existing = patch || inst.existing;
    let legacy = lock(&req.sim.runtime).legacy_locking;
    let stack_id = {
        let mut st = lock(&req.sim.heat);
        let s = live_top_level(&mut st, req, name, id, "Updating")?;
        if s.action == Action::Delete {
            return Err(SimError::heat(
                400,
                "NotSupported",
                "Updating a stack when it is deleting is not supported.",
            ));
        }
        if s.action == Action::Suspend {
            return Err(SimError::heat(
                400,
                "NotSupported",
                "Updating a stack when it is suspended is not supported.",
            ));
        }
        // Real Heat checks PATCH-of-non-COMPLETE before taking the stack lock.
        if legacy && existing && s.status != Status::Complete {
            return Err(not_supported("PATCH update to non-COMPLETE stack"));
        }
        if legacy && s.in_progress() {
            return Err(action_in_progress(&s.name, s.action));
        }

        let def = inst.definition(existing.then_some(&s.def))?;
        template::validate(&def, !existing)?;

        s.prev_def = Some(std::mem::replace(&mut s.def, def));
        if let Some(t) = inst.timeout_mins {
            s.timeout_mins = t;
        }
        if let Some(d) = inst.disable_rollback {
            s.disable_rollback = d;
        }
        if let Some(t) = inst.tags.clone() {
            s.tags = t;
        }
        s.traversal += 1;
        s.updated = Some(Ts::now());
        s.set_status(Action::Update, Status::InProgress, "Stack UPDATE started");
        s.id
    };
    req.sim.changed();
    tracing::info!(stack = %stack_id, patch, "stack update accepted");
    engine::start(req.sim, stack_id, Op::Update);
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(super) fn delete(req: &Req<'_>, name: &str, id: &str) -> Result<Response, SimError> {
    let stack_id = {
        let mut st = lock(&req.sim.heat);
        let s = live_top_level(&mut st, req, name, id, "Deleting")?;
        if s.action == Action::Delete && s.in_progress() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        if s.in_progress() {
            let a = s.action;
            s.set_status(
                a,
                Status::Failed,
                &format!("Stack {} cancelled", a.as_str()),
            );
        }
        s.traversal += 1;
        s.set_status(Action::Delete, Status::InProgress, "Stack DELETE started");
        s.id
    };
    req.sim.changed();
    tracing::info!(stack = %stack_id, "stack delete accepted");
    engine::start(req.sim, stack_id, Op::Delete);
    Ok(StatusCode::NO_CONTENT.into_response())
}
