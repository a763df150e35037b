//! `GET /stacks[/detail]` (filters, sorting, paging) and `GET /stacks/{name}/{id}`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

use super::{bad_request, limit_param, with_stack, Req};
use crate::error::{json_response, SimError};
use crate::heat::{status_str, views, Action, Stack, Status};
use crate::util::{lock, query_all, query_flag, query_get};

/// A `status` filter value: a status, an action, or both (`CREATE_COMPLETE`).
fn matches_status(s: &Stack, v: &str) -> bool {
    if let Some(st) = Status::parse(v) {
        return s.status == st;
    }
    if let Some(a) = Action::parse(v) {
        return s.action == a;
    }
    status_str(s.action, s.status).eq_ignore_ascii_case(v)
}

pub(super) fn list(req: &Req<'_>, detail: bool) -> Result<Response, SimError> {
    let q = &req.query;
    let admin = req.auth.is_admin();
    let global = query_flag(q, "global_tenant").unwrap_or(false) && admin;
    let show_deleted = query_flag(q, "show_deleted").unwrap_or(false);
    let show_nested = query_flag(q, "show_nested").unwrap_or(false);
    let names = query_all(q, "name");
    let ids = query_all(q, "id");
    let statuses = query_all(q, "status");
    let actions = query_all(q, "action");
    let owners = query_all(q, "owner_id");
    let tenants = query_all(q, "tenant");
    let limit = limit_param(q)?;
    let sort_dir = query_get(q, "sort_dir")
        .unwrap_or("desc")
        .to_ascii_lowercase();
    if sort_dir != "asc" && sort_dir != "desc" {
        return Err(bad_request(
            "Unknown sort direction, must be one of: asc, desc",
        ));
    }
    let sort_key = query_get(q, "sort_keys").unwrap_or("creation_time");
    let st = lock(&req.sim.heat);
    // Asked by id (the conductors' status feed asks for up to 100 at once): those stacks
    // only, instead of formatting every stack's id to compare it with each asked one.
    let by_id: Option<Vec<&Stack>> = (!ids.is_empty()).then(|| {
        let wanted: BTreeSet<Uuid> = ids
            .iter()
            .filter_map(|i| Uuid::parse_str(i).ok().filter(|u| u.to_string() == *i))
            .collect();
        wanted.iter().filter_map(|id| st.stacks.get(id)).collect()
    });
    let candidates: Box<dyn Iterator<Item = &Stack>> = match by_id {
        Some(v) => Box::new(v.into_iter()),
        None => Box::new(st.stacks.values()),
    };
    let mut items: Vec<&Stack> = candidates
        .filter(|s| global || s.project_id == req.tenant)
        .filter(|s| show_deleted || !s.is_deleted())
        .filter(|s| show_nested || s.parent.is_none())
        .filter(|s| names.is_empty() || names.contains(&s.name.as_str()))
        .filter(|s| statuses.is_empty() || statuses.iter().any(|v| matches_status(s, v)))
        .filter(|s| {
            actions.is_empty() || actions.iter().any(|a| Action::parse(a) == Some(s.action))
        })
        .filter(|s| {
            owners.is_empty()
                || s.parent
                    .is_some_and(|p| owners.iter().any(|o| *o == p.to_string()))
        })
        .filter(|s| tenants.is_empty() || tenants.contains(&s.project_id.as_str()))
        .collect();
    match sort_key {
        "stack_name" | "name" => items.sort_by(|a, b| a.name.cmp(&b.name).then(a.seq.cmp(&b.seq))),
        "stack_status" | "status" => items.sort_by(|a, b| {
            status_str(a.action, a.status)
                .cmp(&status_str(b.action, b.status))
                .then(a.seq.cmp(&b.seq))
        }),
        "updated_time" | "updated_at" => items.sort_by(|a, b| {
            a.updated
                .unwrap_or(a.created)
                .cmp(&b.updated.unwrap_or(b.created))
                .then(a.seq.cmp(&b.seq))
        }),
        _ => items.sort_by_key(|s| s.seq),
    }
    if sort_dir == "desc" {
        items.reverse();
    }
    let total = items.len();
    if let Some(marker) = query_get(q, "marker") {
        let pos = items
            .iter()
            .position(|s| s.id.to_string() == marker)
            .ok_or_else(|| bad_request(format!("Invalid marker: {marker}")))?;
        items.drain(..=pos);
    }
    let mut next = None;
    if let Some(l) = limit {
        if items.len() > l {
            items.truncate(l);
        }
        if items.len() == l && l > 0 {
            next = items.last().map(|s| s.id);
        }
    }
    let stacks: Vec<Value> = items
        .iter()
        .map(|s| {
            if detail {
                views::stack_detail(req.sim, &st, s, false)
            } else {
                views::stack_summary(req.sim, s, admin)
            }
        })
        .collect();
    let mut body = json!({"stacks": stacks});
    if let Some(o) = body.as_object_mut() {
        if let (Some(id), Some(l)) = (next, limit) {
            o.insert(
                "links".into(),
                json!([{"rel": "next", "href": format!("{}/heat-api/v1/{}/stacks?limit={l}&marker={id}", req.sim.base_url, req.tenant)}]),
            );
        }
        if query_flag(q, "with_count").unwrap_or(false) {
            o.insert("count".into(), json!(total));
        }
    }
    Ok(json_response(StatusCode::OK, &body))
}

pub(super) fn show(req: &Req<'_>, name: &str, id: &str) -> Result<Response, SimError> {
    let resolve = query_get(&req.query, "resolve_outputs")
        .map(|v| {
            !matches!(
                v.to_ascii_lowercase().as_str(),
                "false" | "0" | "no" | "off" | "f" | "n"
            )
        })
        .unwrap_or(true);
    with_stack(req, name, id, |st, s| {
        Ok(json_response(
            StatusCode::OK,
            &json!({"stack": views::stack_detail(req.sim, st, s, resolve)}),
        ))
    })
}
