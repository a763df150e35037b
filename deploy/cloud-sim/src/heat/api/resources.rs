//! `GET /stacks/{name}/{id}/resources[/{r}[/metadata]]`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{bad_request, query_matches, resource_not_found, with_stack, Req};
use crate::error::{json_response, SimError};
use crate::heat::{status_str, views, HeatState, Stack};
use crate::util::{query_all, query_flag, query_get};

const RESOURCE_FILTERS: &[&str] = &[
    "type",
    "status",
    "name",
    "action",
    "id",
    "physical_resource_id",
];

/// Resources of `s` matching the query filters, then (down to `depth` levels) those of its
/// nested stacks, each nested one tagged with its `parent_resource`.
fn collect(
    req: &Req<'_>,
    st: &HeatState,
    s: &Stack,
    depth: usize,
    detail: bool,
    parent_resource: Option<&str>,
    out: &mut Vec<Value>,
) {
    let filt = |key: &str, val: &str| query_matches(&req.query, key, val);
    let mut list: Vec<_> = s.resources.values().collect();
    list.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    for r in list {
        let ok = filt("type", &r.rtype)
            && (filt("status", r.status.as_str())
                || filt("status", &status_str(r.action, r.status)))
            && filt("name", &r.name)
            && filt("action", r.action.as_str())
            && filt("physical_resource_id", &r.physical_id);
        if ok {
            out.push(views::resource_json(
                req.sim,
                st,
                s,
                r,
                detail,
                parent_resource,
            ));
        }
        if depth > 0 {
            if let Some(n) = r.nested.and_then(|id| st.stacks.get(&id)) {
                collect(req, st, n, depth - 1, detail, Some(&r.name), out);
            }
        }
    }
}

pub(super) fn list(req: &Req<'_>, name: &str, id: &str) -> Result<Response, SimError> {
    if let Some((k, _)) = req.query.iter().find(|(k, _)| {
        !RESOURCE_FILTERS.contains(&k.as_str()) && k != "nested_depth" && k != "with_detail"
    }) {
        return Err(bad_request(format!("Invalid filter parameters ['{k}']")));
    }
    let depth = match query_get(&req.query, "nested_depth") {
        Some(d) => d
            .parse::<usize>()
            .map_err(|_| bad_request("Only integer is acceptable by 'nested_depth'."))?
            .min(5),
        None => 0,
    };
    let detail = query_flag(&req.query, "with_detail").unwrap_or(false);
    with_stack(req, name, id, |st, s| {
        let mut out = Vec::new();
        collect(req, st, s, depth, detail, None, &mut out);
        Ok(json_response(StatusCode::OK, &json!({"resources": out})))
    })
}

pub(super) fn show(req: &Req<'_>, name: &str, id: &str, r: &str) -> Result<Response, SimError> {
    with_stack(req, name, id, |st, s| {
        let res = s.resources.get(r).ok_or_else(|| resource_not_found(r, s))?;
        let mut v = views::resource_json(req.sim, st, s, res, true, None);
        let wanted = query_all(&req.query, "with_attr");
        if !wanted.is_empty() {
            if let Some(Value::Object(attrs)) = v.get_mut("attributes") {
                for w in wanted {
                    attrs.entry(w.to_string()).or_insert(Value::Null);
                }
            }
        }
        Ok(json_response(StatusCode::OK, &json!({"resource": v})))
    })
}

/// Simulated resources carry no metadata.
pub(super) fn metadata(req: &Req<'_>, name: &str, id: &str, r: &str) -> Result<Response, SimError> {
    with_stack(req, name, id, |_, s| {
        if s.resources.contains_key(r) {
            Ok(json_response(StatusCode::OK, &json!({"metadata": {}})))
        } else {
            Err(resource_not_found(r, s))
        }
    })
}
