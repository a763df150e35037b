//! Heat v1 REST surface under `/heat-api/v1/{tenant}` (`heat/api/openstack/v1/*`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::engine::{self, Op};
use super::template::{self, merge_env, param_schemas, parse_env, parse_template, PType};
use super::{next_seq, status_str, views, Action, Definition, Env, HeatState, Stack, Status};
use crate::error::{json_response, SimError};
use crate::keystone::{require_token, AuthContext};
use crate::util::{lock, parse_query, query_all, query_flag, query_get, Ts};
use crate::Sim;

/// Heat's `max_stacks_per_tenant`.
const MAX_STACKS_PER_TENANT: usize = 512;
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
    json_response(
        StatusCode::MULTIPLE_CHOICES,
        &json!({"versions": [{"id": "v1.0", "status": "CURRENT",
            "links": [{"rel": "self", "href": format!("{}/heat-api/v1/", sim.base_url)}]}]}),
    )
}

async fn dispatch_root(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Response {
    match authorize(&sim, &headers, &tenant) {
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
    let auth = match authorize(&sim, &headers, &tenant) {
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
fn authorize(sim: &Sim, headers: &HeaderMap, tenant: &str) -> Result<AuthContext, SimError> {
    let auth = require_token(sim, headers)?;
    if auth.project_id.as_deref() != Some(tenant) && !auth.is_admin() {
        return Err(SimError::heat(
            403,
            "Forbidden",
            "You are not authorized to complete this action.",
        ));
    }
    Ok(auth)
}

struct Req<'a> {
    sim: &'a Arc<Sim>,
    tenant: &'a str,
    auth: AuthContext,
    query: Vec<(String, String)>,
    raw_query: Option<&'a str>,
    body: &'a Bytes,
}

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

fn bad_request(message: impl Into<String>) -> SimError {
    SimError::heat(400, "HTTPBadRequest", message)
}

fn not_supported(feature: &str) -> SimError {
    SimError::heat(400, "NotSupported", format!("{feature} is not supported."))
}

fn method_not_allowed() -> SimError {
    SimError::heat(
        405,
        "HTTPMethodNotAllowed",
        "The method specified is not allowed for this resource.",
    )
}

fn route(req: &Req<'_>, method: &Method, segs: &[&str]) -> Result<Response, SimError> {
    let m = method.clone();
    match segs {
        ["stacks"] if m == Method::GET => list(req, false),
        ["stacks"] if m == Method::POST => create(req),
        ["stacks"] => Err(method_not_allowed()),
        ["stacks", "detail"] if m == Method::GET => list(req, true),
        ["validate"] if m == Method::POST => validate(req),
        ["build_info"] if m == Method::GET => Ok(json_response(
            StatusCode::OK,
            &json!({"api": {"revision": "cloud-sim"}, "engine": {"revision": "cloud-sim"}}),
        )),
        ["template_versions"] if m == Method::GET => Ok(template_versions()),
        ["resource_types"] if m == Method::GET => Ok(resource_types()),
        ["stacks", name] => match m {
            Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
                lookup(req, name, None)
            }
            _ => Err(method_not_allowed()),
        },
        ["stacks", name, sub] if LOOKUP_SUBS.contains(sub) => lookup(req, name, Some(sub)),
        ["stacks", name, id] => match m {
            Method::GET => show(req, name, id),
            Method::PATCH => update(req, name, id, true),
            Method::PUT => update(req, name, id, false),
            Method::DELETE => delete(req, name, id),
            _ => Err(method_not_allowed()),
        },
        ["stacks", name, id, rest @ ..] => {
            if m != Method::GET && !(m == Method::POST && rest == ["actions"]) {
                return Err(method_not_allowed());
            }
            match rest {
                ["resources"] => resources(req, name, id),
                ["resources", r] => resource_show(req, name, id, r),
                ["resources", r, "metadata"] => with_stack(req, name, id, |_, s| {
                    if s.resources.contains_key(*r) {
                        Ok(json_response(StatusCode::OK, &json!({"metadata": {}})))
                    } else {
                        Err(resource_not_found(r, s))
                    }
                }),
                ["resources", r, "events"] => events(req, name, id, Some(r)),
                ["resources", r, "events", eid] => event_show(req, name, id, r, eid),
                ["events"] => events(req, name, id, None),
                ["outputs"] => outputs(req, name, id),
                ["outputs", key] => output_show(req, name, id, key),
                ["template"] => with_stack(req, name, id, |_, s| {
                    Ok(json_response(StatusCode::OK, &s.def.template))
                }),
                ["environment"] => with_stack(req, name, id, |_, s| {
                    Ok(json_response(StatusCode::OK, &env_json(&s.def.env)))
                }),
                ["files"] => with_stack(req, name, id, |_, s| {
                    Ok(json_response(StatusCode::OK, &json!(s.def.files)))
                }),
                ["actions"] => actions(req, name, id),
                _ => Err(not_found("The resource could not be found.")),
            }
        }
        _ => Err(not_found("The resource could not be found.")),
    }
}

fn env_json(env: &Env) -> Value {
    json!({
        "parameters": env.parameters,
        "parameter_defaults": env.parameter_defaults,
        "resource_registry": {"resources": {}},
        "event_sinks": [],
        "encrypted_param_names": [],
    }
    )
    .as_object()
    .map(|o| {
        let mut o = o.clone();
        if let Some(Value::Object(rr)) = o.get_mut("resource_registry") {
            for (k, v) in &env.resource_registry {
                rr.insert(k.clone(), Value::String(v.clone()));
            }
        }
        Value::Object(o)
    })
    .unwrap_or(Value::Null)
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

fn resource_not_found(r: &str, s: &Stack) -> SimError {
    SimError::heat(
        404,
        "ResourceNotFound",
        format!("The Resource ({r}) could not be found in Stack {}.", s.name),
    )
}

// ------------------------------------------------------------------ lookup

fn lookup(req: &Req<'_>, name_or_id: &str, sub: Option<&str>) -> Result<Response, SimError> {
    let (name, id) = {
        let st = lock(&req.sim.heat);
        let s = st
            .identify(req.tenant, name_or_id)
            .ok_or_else(|| stack_not_found(name_or_id))?;
        (s.name.clone(), s.id)
    };
    let mut location = format!(
        "{}/heat-api/v1/{}/stacks/{name}/{id}",
        req.sim.base_url, req.tenant
    );
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
    let mut resp = json_response(StatusCode::FOUND, &body);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

// ------------------------------------------------------------------ list

fn matches_status(s: &Stack, v: &str) -> bool {
    if let Some(st) = Status::parse(v) {
        return s.status == st;
    }
    if let Some(a) = Action::parse(v) {
        return s.action == a;
    }
    status_str(s.action, s.status).eq_ignore_ascii_case(v)
}

fn list(req: &Req<'_>, detail: bool) -> Result<Response, SimError> {
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
    let limit = match query_get(q, "limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| bad_request("Only integer is acceptable by 'limit'."))?,
        ),
        None => None,
    };
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
    let mut items: Vec<&Stack> = st
        .stacks
        .values()
        .filter(|s| global || s.project_id == req.tenant)
        .filter(|s| show_deleted || !s.is_deleted())
        .filter(|s| show_nested || s.parent.is_none())
        .filter(|s| names.is_empty() || names.contains(&s.name.as_str()))
        .filter(|s| ids.is_empty() || ids.iter().any(|i| *i == s.id.to_string()))
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

// ------------------------------------------------------------------ create / update

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, SimError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(bad_request("The request body must be a JSON object.")),
        Err(e) => Err(bad_request(format!(
            "The request body could not be parsed: {e}"
        ))),
    }
}

/// What a create/update request asks for (`InstantiationData`).
struct Inst {
    template: Option<Value>,
    files: Option<BTreeMap<String, String>>,
    env: Option<Env>,
    env_files: Option<Vec<String>>,
    params: Map<String, Value>,
    clear: Vec<String>,
    timeout_mins: Option<Option<u64>>,
    disable_rollback: Option<bool>,
    tags: Option<Option<Vec<String>>>,
    existing: bool,
}

fn as_bool(v: &Value, what: &str) -> Result<bool, SimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
            _ => Err(bad_request(format!(
                "Unrecognized value \"{s}\" for \"{what}\", acceptable values are: true, false"
            ))),
        },
        other => Err(bad_request(format!(
            "Unrecognized value \"{other}\" for \"{what}\", acceptable values are: true, false"
        ))),
    }
}

fn parse_inst(b: &Map<String, Value>) -> Result<Inst, SimError> {
    let template = match b.get("template") {
        None | Some(Value::Null) => {
            if b.get("template_url").is_some_and(|u| !u.is_null()) {
                return Err(bad_request(
                    "Could not retrieve template: template_url is not supported by cloud-sim; send the template inline",
                ));
            }
            None
        }
        Some(t) => Some(parse_template(t)?),
    };
    let files = match b.get("files") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(
            o.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect(),
        ),
        Some(_) => return Err(bad_request("The \"files\" parameter must be a mapping.")),
    };
    let env_files = match b.get("environment_files") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad_request("environment_files must be a list of strings"))?,
        ),
        Some(_) => return Err(bad_request("environment_files must be a list of strings")),
    };
    let env = match b.get("environment") {
        None | Some(Value::Null) => None,
        Some(e) => Some(parse_env(e)?),
    };
    let params = match b.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            return Err(bad_request(
                "The \"parameters\" parameter must be a mapping.",
            ))
        }
    };
    let clear = match b.get("clear_parameters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
        Some(_) => return Err(bad_request("clear_parameters must be a list")),
    };
    let timeout_mins = match b.get("timeout_mins") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(0) => Some(None),
                Some(n) if n > 0 => Some(Some(n as u64)),
                _ => return Err(bad_request(format!("Invalid timeout value {v}"))),
            }
        }
    };
    let disable_rollback = match b.get("disable_rollback") {
        None | Some(Value::Null) => None,
        Some(v) => Some(as_bool(v, "disable_rollback")?),
    };
    let tags = match b.get("tags") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Array(a)) => Some(Some(
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect(),
        )),
        Some(Value::String(s)) if s.is_empty() => Some(None),
        Some(Value::String(s)) => Some(Some(s.split(',').map(|x| x.trim().to_string()).collect())),
        Some(_) => {
            return Err(bad_request(
                "tags must be a list or a comma-separated string",
            ))
        }
    };
    let existing = match b.get("existing") {
        None | Some(Value::Null) => false,
        Some(v) => as_bool(v, "existing")?,
    };
    Ok(Inst {
        template,
        files,
        env,
        env_files,
        params,
        clear,
        timeout_mins,
        disable_rollback,
        tags,
        existing,
    })
}

/// The environment a request describes: its `environment_files` (merged in order) or else its
/// inline `environment`.
fn request_env(inst: &Inst, files: &BTreeMap<String, String>) -> Result<Option<Env>, SimError> {
    if let Some(keys) = &inst.env_files {
        let mut env = Env::default();
        for k in keys {
            let text = files.get(k).ok_or_else(|| {
                bad_request(format!(
                    "Could not fetch environment file {k}: not in files"
                ))
            })?;
            merge_env(&mut env, parse_env(&Value::String(text.clone()))?);
        }
        return Ok(Some(env));
    }
    Ok(inst.env.clone())
}

fn valid_stack_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && n.len() <= 255
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn create(req: &Req<'_>) -> Result<Response, SimError> {
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
    let template = inst
        .template
        .clone()
        .ok_or_else(|| bad_request("No template specified"))?;
    let files = inst.files.clone().unwrap_or_default();
    let mut env = request_env(&inst, &files)?.unwrap_or_default();
    env.parameters.extend(inst.params.clone());
    let def = Definition {
        template,
        files,
        env,
    };
    // Heat checks the name before validating the template.
    if lock(&req.sim.heat)
        .live_by_name(req.tenant, &name)
        .is_some()
    {
        return Err(SimError::heat(
            409,
            "StackExists",
            format!("The Stack ({name}) already exists."),
        ));
    }
    template::validate(&def, true)?;

    let now = Ts::now();
    let id = Uuid::new_v4();
    {
        let mut st = lock(&req.sim.heat);
        if st.live_by_name(req.tenant, &name).is_some() {
            return Err(SimError::heat(
                409,
                "StackExists",
                format!("The Stack ({name}) already exists."),
            ));
        }
        let live = st
            .stacks
            .values()
            .filter(|s| s.project_id == req.tenant && s.parent.is_none() && !s.is_deleted())
            .count();
        if live >= MAX_STACKS_PER_TENANT {
            return Err(SimError::heat(
                400,
                "RequestLimitExceeded",
                format!("You have reached the maximum stacks per tenant, {MAX_STACKS_PER_TENANT}. Please delete some stacks."),
            ));
        }
        let mut stack = Stack {
            id,
            name: name.clone(),
            project_id: req.tenant.to_string(),
            owner: req.auth.user_name.clone(),
            parent: None,
            parent_resource: None,
            root: id,
            seq: next_seq(),
            def,
            prev_def: None,
            action: Action::Init,
            status: Status::Complete,
            reason: String::new(),
            created: now,
            updated: None,
            deleted: None,
            timeout_mins: inst.timeout_mins.flatten(),
            disable_rollback: inst.disable_rollback.unwrap_or(true),
            tags: inst.tags.clone().flatten(),
            resources: BTreeMap::new(),
            events: Vec::new(),
            pools: BTreeMap::new(),
            traversal: 1,
            rollback_create: false,
        };
        stack.set_status(Action::Create, Status::InProgress, "Stack CREATE started");
        st.stacks.insert(id, stack);
        *st.creates_by_name.entry(name.clone()).or_insert(0) += 1;
    }
    req.sim.changed();
    tracing::info!(stack = %id, %name, project = req.tenant, "stack create accepted");
    engine::start(req.sim, id, Op::Create);

    let location = format!(
        "{}/heat-api/v1/{}/stacks/{name}/{id}",
        req.sim.base_url, req.tenant
    );
    let mut resp = json_response(
        StatusCode::CREATED,
        &json!({"stack": {"id": id, "links": [{"href": location, "rel": "self"}]}}),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

fn update(req: &Req<'_>, name: &str, id: &str, patch: bool) -> Result<Response, SimError> {
    let b = parse_body(req.body)?;
    let inst = parse_inst(&b)?;
    let existing = patch || inst.existing;
    let legacy = lock(&req.sim.runtime).legacy_locking;
    let stack_id = {
        let mut st = lock(&req.sim.heat);
        let cur = st
            .canonical(req.tenant, name, id)
            .ok_or_else(|| stack_not_found(name))?;
        if cur.is_deleted() {
            return Err(stack_not_found(name));
        }
        if cur.parent.is_some() {
            return Err(not_supported("Updating a nested stack directly"));
        }
        if cur.action == Action::Delete {
            return Err(SimError::heat(
                400,
                "NotSupported",
                "Updating a stack when it is deleting is not supported.",
            ));
        }
        if cur.action == Action::Suspend {
            return Err(SimError::heat(
                400,
                "NotSupported",
                "Updating a stack when it is suspended is not supported.",
            ));
        }
        if legacy && cur.in_progress() {
            return Err(SimError::heat(
                409,
                "ActionInProgress",
                format!(
                    "Stack {} already has an action ({}) in progress.",
                    cur.name,
                    cur.action.as_str()
                ),
            ));
        }
        if legacy && existing && cur.status != Status::Complete {
            return Err(not_supported("PATCH update to non-COMPLETE stack"));
        }

        let template = match (&inst.template, existing) {
            (Some(t), _) => t.clone(),
            (None, true) => cur.def.template.clone(),
            (None, false) => return Err(bad_request("No template specified")),
        };
        let files = match (&inst.files, existing) {
            (Some(f), true) => {
                let mut merged = cur.def.files.clone();
                merged.extend(f.clone());
                merged
            }
            (Some(f), false) => f.clone(),
            (None, true) => cur.def.files.clone(),
            (None, false) => BTreeMap::new(),
        };
        let req_env = request_env(&inst, &files)?;
        let env = if existing {
            let mut env = cur.def.env.clone();
            if let Some(e) = req_env {
                merge_env(&mut env, e);
            }
            env.parameters.extend(inst.params.clone());
            for c in &inst.clear {
                env.parameters.remove(c);
            }
            let schemas = param_schemas(&template)?;
            env.parameters.retain(|k, _| schemas.contains_key(k));
            env
        } else {
            let mut env = req_env.unwrap_or_default();
            env.parameters.extend(inst.params.clone());
            env
        };
        let def = Definition {
            template,
            files,
            env,
        };
        template::validate(&def, !existing)?;

        let stack_id = cur.id;
        let s = st
            .stacks
            .get_mut(&stack_id)
            .ok_or_else(|| stack_not_found(name))?;
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
        stack_id
    };
    req.sim.changed();
    tracing::info!(stack = %stack_id, patch, "stack update accepted");
    engine::start(req.sim, stack_id, Op::Update);
    Ok(StatusCode::ACCEPTED.into_response())
}

fn delete(req: &Req<'_>, name: &str, id: &str) -> Result<Response, SimError> {
    let stack_id = {
        let mut st = lock(&req.sim.heat);
        let cur = st
            .canonical(req.tenant, name, id)
            .ok_or_else(|| stack_not_found(name))?;
        if cur.is_deleted() {
            return Err(stack_not_found(name));
        }
        if cur.parent.is_some() {
            return Err(not_supported("Deleting a nested stack directly"));
        }
        if cur.action == Action::Delete && cur.in_progress() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let stack_id = cur.id;
        let s = st
            .stacks
            .get_mut(&stack_id)
            .ok_or_else(|| stack_not_found(name))?;
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
        stack_id
    };
    req.sim.changed();
    tracing::info!(stack = %stack_id, "stack delete accepted");
    engine::start(req.sim, stack_id, Op::Delete);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn actions(req: &Req<'_>, name: &str, id: &str) -> Result<Response, SimError> {
    let b = parse_body(req.body)?;
    if b.len() != 1 {
        return Err(bad_request("Multiple actions specified"));
    }
    let action = b.keys().next().cloned().unwrap_or_default();
    let mut start = None;
    {
        let mut st = lock(&req.sim.heat);
        let cur = st
            .canonical(req.tenant, name, id)
            .ok_or_else(|| stack_not_found(name))?;
        let stack_id = cur.id;
        let (cur_action, in_progress, has_prev) =
            (cur.action, cur.in_progress(), cur.prev_def.is_some());
        let s = st
            .stacks
            .get_mut(&stack_id)
            .ok_or_else(|| stack_not_found(name))?;
        match action.as_str() {
            "suspend" | "resume" | "check" => {
                if in_progress {
                    return Err(SimError::heat(
                        409,
                        "ActionInProgress",
                        format!(
                            "Stack {} already has an action ({}) in progress.",
                            s.name,
                            cur_action.as_str()
                        ),
                    ));
                }
                if s.is_deleted() {
                    return Err(stack_not_found(name));
                }
                let a = match action.as_str() {
                    "suspend" => Action::Suspend,
                    "resume" => Action::Resume,
                    _ => Action::Check,
                };
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

// ------------------------------------------------------------------ reads

fn show(req: &Req<'_>, name: &str, id: &str) -> Result<Response, SimError> {
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

const RESOURCE_FILTERS: &[&str] = &[
    "type",
    "status",
    "name",
    "action",
    "id",
    "physical_resource_id",
];

fn collect_resources(
    req: &Req<'_>,
    st: &HeatState,
    s: &Stack,
    depth: usize,
    detail: bool,
    parent_resource: Option<&str>,
    out: &mut Vec<Value>,
) {
    let q = &req.query;
    let filt = |key: &str, val: &str| {
        let vals = query_all(q, key);
        vals.is_empty() || vals.iter().any(|v| v.eq_ignore_ascii_case(val))
    };
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
                collect_resources(req, st, n, depth - 1, detail, Some(&r.name), out);
            }
        }
    }
}

fn resources(req: &Req<'_>, name: &str, id: &str) -> Result<Response, SimError> {
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
        collect_resources(req, st, s, depth, detail, None, &mut out);
        Ok(json_response(StatusCode::OK, &json!({"resources": out})))
    })
}

fn resource_show(req: &Req<'_>, name: &str, id: &str, r: &str) -> Result<Response, SimError> {
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

fn collect_events<'a>(
    st: &'a HeatState,
    s: &'a Stack,
    depth: usize,
    out: &mut Vec<(&'a Stack, &'a super::Event)>,
) {
    out.extend(s.events.iter().map(|e| (s, e)));
    if depth > 0 {
        for r in s.resources.values() {
            if let Some(n) = r.nested.and_then(|id| st.stacks.get(&id)) {
                collect_events(st, n, depth - 1, out);
            }
        }
    }
}

fn events(
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
    let limit = match query_get(q, "limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| bad_request("Only integer is acceptable by 'limit'."))?,
        ),
        None => None,
    };
    let sort_dir = query_get(q, "sort_dir")
        .unwrap_or("desc")
        .to_ascii_lowercase();
    with_stack(req, name, id, |st, s| {
        let mut list = Vec::new();
        collect_events(st, s, depth, &mut list);
        let f = |key: &str, val: &str| {
            let vals = query_all(q, key);
            vals.is_empty() || vals.iter().any(|v| v.eq_ignore_ascii_case(val))
        };
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

fn event_show(
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

fn outputs(req: &Req<'_>, name: &str, id: &str) -> Result<Response, SimError> {
    with_stack(req, name, id, |st, s| {
        let ctx = super::context::StackCtx::new(st, s);
        let list: Vec<Value> = ctx
            .output_keys()
            .into_iter()
            .map(|(k, d)| json!({"output_key": k, "description": d}))
            .collect();
        Ok(json_response(StatusCode::OK, &json!({"outputs": list})))
    })
}

fn output_show(req: &Req<'_>, name: &str, id: &str, key: &str) -> Result<Response, SimError> {
    with_stack(req, name, id, |st, s| {
        let ctx = super::context::StackCtx::new(st, s);
        let (k, d) = ctx
            .output_keys()
            .into_iter()
            .find(|(k, _)| k == key)
            .ok_or_else(|| not_found(format!("Specified output key {key} not found.")))?;
        let v = ctx.output(&k).unwrap_or(Value::Null);
        Ok(json_response(
            StatusCode::OK,
            &json!({"output": {"output_key": k, "output_value": v, "description": d}}),
        ))
    })
}

fn validate(req: &Req<'_>) -> Result<Response, SimError> {
    let b = parse_body(req.body)?;
    let inst = parse_inst(&b)?;
    let template = inst
        .template
        .clone()
        .ok_or_else(|| bad_request("No template specified"))?;
    let files = inst.files.clone().unwrap_or_default();
    let mut env = request_env(&inst, &files)?.unwrap_or_default();
    env.parameters.extend(inst.params.clone());
    let def = Definition {
        template,
        files,
        env,
    };
    // Heat's validate does not require parameter values; check structure and given values.
    let mut check = def.clone();
    let schemas = param_schemas(&def.template)?;
    for (n, s) in &schemas {
        if !check.env.parameters.contains_key(n) && s.default.is_none() {
            let placeholder = match s.ptype {
                PType::Number => json!(0),
                PType::Boolean => json!(false),
                PType::Json => json!({}),
                _ => json!(""),
            };
            check
                .env
                .parameter_defaults
                .entry(n.clone())
                .or_insert(placeholder);
        }
    }
    template::validate(&check, true)?;
    let mut params = Map::new();
    for (n, s) in &schemas {
        let mut p = json!({
            "Type": s.ptype.cfn_name(),
            "Description": s.description,
            "Label": s.label.clone().unwrap_or_else(|| n.clone()),
            "NoEcho": if s.hidden { "true" } else { "false" },
        });
        if let (Some(d), Some(o)) = (&s.default, p.as_object_mut()) {
            o.insert("Default".into(), d.clone());
        }
        if let (Some(v), Some(o)) = (def.env.parameters.get(n), p.as_object_mut()) {
            o.insert("Value".into(), v.clone());
        }
        params.insert(n.clone(), p);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "Description": def.template.get("description").and_then(Value::as_str).unwrap_or("No description"),
            "Parameters": params,
            "ParameterGroups": def.template.get("parameter_groups").cloned().unwrap_or_else(|| json!([])),
            "Environment": env_json(&def.env),
        }),
    ))
}

fn template_versions() -> Response {
    let versions: Vec<Value> = template::VERSIONS
        .iter()
        .filter(|v| v.starts_with('2'))
        .map(|v| json!({"version": format!("heat_template_version.{v}"), "type": "hot", "aliases": []}))
        .collect();
    json_response(StatusCode::OK, &json!({"template_versions": versions}))
}

fn resource_types() -> Response {
    let types = [
        "OS::Heat::None",
        "OS::Heat::RandomString",
        "OS::Heat::ResourceGroup",
        "OS::Heat::TestResource",
        "OS::Heat::Value",
        "OS::Heat::SoftwareConfig",
        "OS::Heat::SoftwareDeployment",
        "OS::Nova::Server",
        "OS::Nova::ServerGroup",
        "OS::Neutron::Net",
        "OS::Neutron::Subnet",
        "OS::Neutron::Router",
        "OS::Neutron::RouterInterface",
        "OS::Neutron::SecurityGroup",
        "OS::Neutron::SecurityGroupRule",
        "OS::Neutron::Port",
        "OS::Neutron::FloatingIP",
        "OS::Neutron::FloatingIPAssociation",
        "OS::Octavia::LoadBalancer",
    ];
    json_response(StatusCode::OK, &json!({"resource_types": types}))
}
