//! Heat v1 REST surface under `/heat-api/v1/{tenant}` (`heat/api/openstack/v1/*`).
//!
//! This file routes a request and holds what every handler shares (the request, errors,
//! query helpers). The handlers live in:
//!
//! * `lookup_redirect`: `/stacks/{name_or_id}[/sub]`, a 302 to the canonical URL.
//! * `list`: stack index and show.
//! * `body`: create/update request bodies (`InstantiationData`).
//! * `stacks`: create, update, delete; `actions`: suspend, resume, check, cancel.
//! * `resources`, `events`, `outputs`: reads below a stack.
//! * `validate`: template validation and the informational endpoints.

mod actions;
mod body;
mod events;
mod list;
mod lookup_redirect;
mod outputs;
mod resources;
mod stacks;
mod validate;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::json;

use super::{views, Action, HeatState, Stack};
use crate::error::{json_response, single_version, SimError};
use crate::keystone::{authenticate, AuthContext};
use crate::util::{lock, parse_query, query_all, query_get};
use crate::Sim;

/// Sub-paths that `/stacks/{name}/{sub}` redirects for.
const LOOKUP_SUBS: &[&str] = &[
    "resources",
    "events",
    "template",
    "environment",
    "files",
    "actions",
];

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/heat-api", get(versions))
        .route("/heat-api/", get(versions))
        .route("/heat-api/v1/{tenant}", any(dispatch_root))
        .route("/heat-api/v1/{tenant}/", any(dispatch_root))
        .route("/heat-api/v1/{tenant}/{*rest}", any(dispatch))
}

async fn versions(State(sim): State<Arc<Sim>>) -> Response {
    single_version(
        StatusCode::MULTIPLE_CHOICES,
        "v1.0",
        format!("{}/heat-api/v1/", sim.base_url),
    )
}

async fn dispatch_root(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Response {
    match authorize(&sim, &headers, &tenant).await {
        Err(e) => e.into_response(),
        Ok(_) => not_found("The resource could not be found.").into_response(),
    }
}

async fn dispatch(
    State(sim): State<Arc<Sim>>,
    method: Method,
    Path((tenant, rest)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = match authorize(&sim, &headers, &tenant).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let req = Req {
        sim: &sim,
        tenant: &tenant,
        auth,
        query: parse_query(raw.as_deref()),
        raw_query: raw.as_deref(),
        body: &body,
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    route(&req, &method, &segs).unwrap_or_else(IntoResponse::into_response)
}

/// keystonemiddleware (401) and Heat's tenant check (403).
async fn authorize(sim: &Sim, headers: &HeaderMap, tenant: &str) -> Result<AuthContext, SimError> {
    let auth = authenticate(sim, headers).await?;
    if auth.project_id.as_deref() != Some(tenant) && !auth.is_admin() {
        return Err(SimError::heat(
            403,
            "Forbidden",
            "You are not authorized to complete this action.",
        ));
    }
    Ok(auth)
}

/// One authorized request below `/heat-api/v1/{tenant}`.
struct Req<'a> {
    sim: &'a Arc<Sim>,
    tenant: &'a str,
    auth: AuthContext,
    query: Vec<(String, String)>,
    raw_query: Option<&'a str>,
    body: &'a Bytes,
}

fn route(req: &Req<'_>, method: &Method, segs: &[&str]) -> Result<Response, SimError> {
    let m = method.clone();
    match segs {
        ["stacks"] if m == Method::GET => list::list(req, false),
        ["stacks"] if m == Method::POST => stacks::create(req),
        ["stacks"] => Err(method_not_allowed()),
        ["stacks", "detail"] if m == Method::GET => list::list(req, true),
        ["validate"] if m == Method::POST => validate::validate(req),
        ["build_info"] if m == Method::GET => Ok(validate::build_info()),
        ["template_versions"] if m == Method::GET => Ok(validate::template_versions()),
        ["resource_types"] if m == Method::GET => Ok(validate::resource_types()),
        ["stacks", name] => match m {
            Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
                lookup_redirect::lookup(req, name, None)
            }
            _ => Err(method_not_allowed()),
        },
        ["stacks", name, sub] if LOOKUP_SUBS.contains(sub) => {
            lookup_redirect::lookup(req, name, Some(sub))
        }
        ["stacks", name, id] => match m {
            Method::GET => list::show(req, name, id),
            Method::PATCH => stacks::update(req, name, id, true),
            Method::PUT => stacks::update(req, name, id, false),
            Method::DELETE => stacks::delete(req, name, id),
            _ => Err(method_not_allowed()),
        },
        ["stacks", name, id, rest @ ..] => {
            if m != Method::GET && !(m == Method::POST && rest == ["actions"]) {
                return Err(method_not_allowed());
            }
            match rest {
                ["resources"] => resources::list(req, name, id),
                ["resources", r] => resources::show(req, name, id, r),
                ["resources", r, "metadata"] => resources::metadata(req, name, id, r),
                ["resources", r, "events"] => events::list(req, name, id, Some(r)),
                ["resources", r, "events", eid] => events::show(req, name, id, r, eid),
                ["events"] => events::list(req, name, id, None),
                ["outputs"] => outputs::list(req, name, id),
                ["outputs", key] => outputs::show(req, name, id, key),
                ["template"] => with_stack(req, name, id, |_, s| {
                    Ok(json_response(StatusCode::OK, &s.def.template))
                }),
                ["environment"] => with_stack(req, name, id, |_, s| {
                    Ok(json_response(
                        StatusCode::OK,
                        &views::environment(&s.def.env),
                    ))
                }),
                ["files"] => with_stack(req, name, id, |_, s| {
                    Ok(json_response(StatusCode::OK, &json!(s.def.files)))
                }),
                ["actions"] => actions::actions(req, name, id),
                _ => Err(not_found("The resource could not be found.")),
            }
        }
        _ => Err(not_found("The resource could not be found.")),
    }
}

/// Run `f` on the stack addressed canonically as `{name}/{id}`.
fn with_stack<R>(
    req: &Req<'_>,
    name: &str,
    id: &str,
    f: impl FnOnce(&HeatState, &Stack) -> Result<R, SimError>,
) -> Result<R, SimError> {
    let st = lock(&req.sim.heat);
    let s = st
        .canonical(req.tenant, name, id)
        .ok_or_else(|| stack_not_found(name))?;
    f(&st, s)
}

/// Add a `Location` header (the canonical URL of a stack).
fn with_location(mut resp: Response, location: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Heat's list filters: `val` matches when the query has no `key`, or one equal to it
/// (case-insensitively).
fn query_matches(q: &[(String, String)], key: &str, val: &str) -> bool {
    let vals = query_all(q, key);
    vals.is_empty() || vals.iter().any(|v| v.eq_ignore_ascii_case(val))
}

/// The `limit` query parameter (paging of stacks and events).
fn limit_param(q: &[(String, String)]) -> Result<Option<usize>, SimError> {
    query_get(q, "limit")
        .map(|l| {
            l.parse::<usize>()
                .map_err(|_| bad_request("Only integer is acceptable by 'limit'."))
        })
        .transpose()
}

// ------------------------------------------------------------------ errors

fn not_found(message: impl Into<String>) -> SimError {
    SimError::heat(404, "NotFound", message)
}

fn stack_not_found(name: &str) -> SimError {
    SimError::heat(
        404,
        "EntityNotFound",
        format!("The Stack ({name}) could not be found."),
    )
}

fn resource_not_found(r: &str, s: &Stack) -> SimError {
    SimError::heat(
        404,
        "ResourceNotFound",
        format!("The Resource ({r}) could not be found in Stack {}.", s.name),
    )
}

fn bad_request(message: impl Into<String>) -> SimError {
    SimError::heat(400, "HTTPBadRequest", message)
}

fn not_supported(feature: &str) -> SimError {
    SimError::heat(400, "NotSupported", format!("{feature} is not supported."))
}

fn action_in_progress(stack: &str, action: Action) -> SimError {
    SimError::heat(
        409,
        "ActionInProgress",
        format!(
            "Stack {stack} already has an action ({}) in progress.",
            action.as_str()
        ),
    )
}

fn method_not_allowed() -> SimError {
    SimError::heat(
        405,
        "HTTPMethodNotAllowed",
        "The method specified is not allowed for this resource.",
    )
}
