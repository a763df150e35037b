//! `GET /stacks/{name}/{id}[/resources/{r}]/events[/{event_id}]`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{limit_param, not_found, query_matches, with_stack, Req};
use crate::error::{json_response, SimError};
use crate::heat::{status_str, views, Event, HeatState, Stack};
use crate::util::query_get;

/// Events of `s` and (down to `depth` levels) of its nested stacks, with their stack.
fn collect<'a>(
    st: &'a HeatState,
    s: &'a Stack,
    depth: usize,
    out: &mut Vec<(&'a Stack, &'a Event)>,
) {
    out.extend(s.events.iter().map(|e| (s, e)));
    if depth > 0 {
        for r in s.resources.values() {
            if let Some(n) = r.nested.and_then(|id| st.stacks.get(&id)) {
                collect(st, n, depth - 1, out);
            }
        }
    }
}

pub(super) fn list(
    req: &Req<'_>,
    name: &str,
    id: &str,
    resource: Option<&str>,
) -> Result<Response, SimError> {
    let q = &req.query;
    let depth = query_get(q, "nested_depth")
        .and_then(|d| d.parse::<usize>().ok())
        .unwrap_or(0)
        .min(5);
    let limit = limit_param(q)?;
    let sort_dir = query_get(q, "sort_dir")
        .unwrap_or("desc")
        .to_ascii_lowercase();
    with_stack(req, name, id, |st, s| {
        let mut list = Vec::new();
        collect(st, s, depth, &mut list);
        let f = |key: &str, val: &str| query_matches(q, key, val);
        list.retain(|(_, e)| {
            resource.is_none_or(|r| e.resource_name == r)
                && f("resource_name", &e.resource_name)
                && f("resource_type", &e.resource_type)
                && f("resource_action", e.action.as_str())
                && (f("resource_status", e.status.as_str())
                    || f("resource_status", &status_str(e.action, e.status)))
        });
        if let (Some(r), true) = (resource, list.is_empty()) {
            return Err(not_found(format!("No events found for resource {r}")));
        }
        list.sort_by_key(|(_, e)| e.seq);
        if sort_dir != "asc" {
            list.reverse();
        }
        if let Some(marker) = query_get(q, "marker") {
            if let Some(pos) = list.iter().position(|(_, e)| e.id.to_string() == marker) {
                list.drain(..=pos);
            }
        }
        if let Some(l) = limit {
            list.truncate(l);
        }
        let events: Vec<Value> = list
            .iter()
            .map(|(stk, e)| views::event_json(req.sim, stk, e, false))
            .collect();
        Ok(json_response(StatusCode::OK, &json!({"events": events})))
    })
}

pub(super) fn show(
    req: &Req<'_>,
    name: &str,
    id: &str,
    r: &str,
    eid: &str,
) -> Result<Response, SimError> {
    with_stack(req, name, id, |_, s| {
        let e = s
            .events
            .iter()
            .find(|e| e.id.to_string() == eid && e.resource_name == r)
            .ok_or_else(|| not_found(format!("No event {eid} found")))?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"event": views::event_json(req.sim, s, e, true)}),
        ))
    })
}
