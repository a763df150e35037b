//! `POST /stacks/{name}/{id}/actions`: suspend, resume, check, cancel_update and
//! cancel_without_rollback.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::body::parse_body;
use super::{action_in_progress, bad_request, not_supported, stack_not_found, Req};
use crate::error::{json_response, SimError};
use crate::heat::engine::{self, Op};
use crate::heat::{status_str, Action, Status};
use crate::util::lock;

pub(super) fn actions(req: &Req<'_>, name: &str, id: &str) -> Result<Response, SimError> {
    let b = parse_body(req.body)?;
    if b.len() != 1 {
        return Err(bad_request("Multiple actions specified"));
    }
    let action = b.keys().next().cloned().unwrap_or_default();
    let mut start = None;
    {
        let mut st = lock(&req.sim.heat);
        let s = st
            .canonical_mut(req.tenant, name, id)
            .ok_or_else(|| stack_not_found(name))?;
        let stack_id = s.id;
        let (cur_action, in_progress, has_prev) = (s.action, s.in_progress(), s.prev_def.is_some());
        match action.as_str() {
            "suspend" | "resume" | "check" => {
                if in_progress {
                    return Err(action_in_progress(&s.name, cur_action));
                }
                if s.is_deleted() {
                    return Err(stack_not_found(name));
                }
                let a = match action.as_str() {
                    "suspend" => Action::Suspend,
                    "resume" => Action::Resume,
                    _ => Action::Check,
                };
                // Nothing to simulate: these complete at once.
                s.set_status(
                    a,
                    Status::InProgress,
                    &format!("Stack {} started", a.as_str()),
                );
                s.set_status(
                    a,
                    Status::Complete,
                    &format!("Stack {} completed successfully", a.as_str()),
                );
            }
            "cancel_update" => {
                if !(cur_action == Action::Update && in_progress) {
                    return Err(not_supported(&format!(
                        "Cancelling update when stack is {}",
                        status_str(cur_action, s.status)
                    )));
                }
                s.traversal += 1;
                s.set_status(Action::Update, Status::Failed, "Stack UPDATE cancelled");
                if has_prev {
                    start = Some((stack_id, Op::Rollback { create: false }));
                }
            }
            "cancel_without_rollback" => {
                if !(matches!(cur_action, Action::Create | Action::Update) && in_progress) {
                    return Err(not_supported(&format!(
                        "Cancelling without rollback when stack is {}",
                        status_str(cur_action, s.status)
                    )));
                }
                s.traversal += 1;
                s.set_status(
                    cur_action,
                    Status::Failed,
                    &format!("Stack {} cancelled", cur_action.as_str()),
                );
                engine::stop(req.sim, stack_id);
            }
            other => return Err(bad_request(format!("Invalid action {other} specified"))),
        }
    }
    req.sim.changed();
    if let Some((id, op)) = start {
        engine::start(req.sim, id, op);
    }
    Ok(json_response(StatusCode::OK, &Value::Null))
}
