//! `/stacks/{name_or_id}[/sub]`: Heat's `lookup`, a 302 to the canonical
//! `/stacks/{name}/{id}[/sub]` (query string kept).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{stack_not_found, with_location, Req};
use crate::error::{json_response, SimError};
use crate::heat::views;
use crate::util::lock;

pub(super) fn lookup(
    req: &Req<'_>,
    name_or_id: &str,
    sub: Option<&str>,
) -> Result<Response, SimError> {
    let (name, id) = {
        let st = lock(&req.sim.heat);
        let s = st
            .identify(req.tenant, name_or_id)
            .ok_or_else(|| stack_not_found(name_or_id))?;
        (s.name.clone(), s.id)
    };
    let mut location = views::stack_href(req.sim, req.tenant, &name, id);
    if let Some(sub) = sub {
        location.push('/');
        location.push_str(sub);
    }
    if let Some(q) = req.raw_query.filter(|q| !q.is_empty()) {
        location.push('?');
        location.push_str(q);
    }
    let body = json!({
        "code": "302 Found",
        "message": format!("The resource was found at <a href=\"{location}\">{location}</a>;\nyou should be redirected automatically."),
        "title": "Found",
    });
    Ok(with_location(
        json_response(StatusCode::FOUND, &body),
        &location,
    ))
}
