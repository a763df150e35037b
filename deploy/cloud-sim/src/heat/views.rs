//! JSON shapes of Heat's API (`heat/engine/api.py` format_* functions).

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::context::StackCtx;
use super::intrinsics::Ctx;
use super::template::{display_param, param_schemas, resolve_params};
use super::{status_str, Env, Event, HeatState, ResKind, Resource, Stack};
use crate::Sim;

/// `<base>/heat-api/v1/<project>/stacks/<name>/<id>`.
pub(crate) fn stack_url(sim: &Sim, s: &Stack) -> String {
    stack_href(sim, &s.project_id, &s.name, s.id)
}

/// [`stack_url`] from its parts (for a stack not at hand).
pub(crate) fn stack_href(sim: &Sim, project: &str, name: &str, id: Uuid) -> String {
    format!("{}/heat-api/v1/{project}/stacks/{name}/{id}", sim.base_url)
}

fn opt_time(t: Option<crate::util::Ts>) -> Value {
    t.map(|t| Value::String(t.iso())).unwrap_or(Value::Null)
}

fn description(s: &Stack) -> String {
    s.def
        .template
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("No description")
        .to_string()
}

/// An environment as `GET .../environment` (and validate's `Environment`) show it.
pub(crate) fn environment(env: &Env) -> Value {
    let mut registry = Map::new();
    registry.insert("resources".into(), json!({}));
    for (k, v) in &env.resource_registry {
        registry.insert(k.clone(), Value::String(v.clone()));
    }
    json!({
        "parameters": env.parameters,
        "parameter_defaults": env.parameter_defaults,
        "resource_registry": registry,
        "event_sinks": [],
        "encrypted_param_names": [],
    })
}

/// A stack list item.
pub(crate) fn stack_summary(sim: &Sim, s: &Stack, with_project: bool) -> Value {
    let mut v = json!({
        "id": s.id,
        "links": [{"href": stack_url(sim, s), "rel": "self"}],
        "stack_name": s.name,
        "description": "",
        "stack_status": status_str(s.action, s.status),
        "stack_status_reason": s.reason,
        "creation_time": s.created.iso(),
        "updated_time": opt_time(s.updated),
        "deletion_time": opt_time(s.deleted),
        "stack_owner": s.owner,
        "parent": s.parent,
        "stack_user_project_id": s.project_id,
        // The list shows null for a stack without tags, the show `[]` (as real Heat does).
        "tags": s.tags.clone(),
    });
    if let (true, Some(o)) = (with_project, v.as_object_mut()) {
        o.insert("project".into(), Value::String(s.project_id.clone()));
    }
    v
}

/// The stack's parameters as Heat shows them (all strings, pseudo parameters included).
pub(crate) fn parameters(s: &Stack) -> Value {
    let schemas = param_schemas(&s.def.template).unwrap_or_default();
    let typed = resolve_params(&s.def.template, &s.def.env, true).unwrap_or_default();
    let mut out = Map::new();
    for (name, v) in &typed {
        out.insert(
            name.clone(),
            Value::String(display_param(schemas.get(name), v)),
        );
    }
    out.insert("OS::stack_id".into(), Value::String(s.id.to_string()));
    out.insert("OS::stack_name".into(), Value::String(s.name.clone()));
    out.insert("OS::project_id".into(), Value::String(s.project_id.clone()));
    Value::Object(out)
}

/// Outputs with values, evaluated now.
pub(crate) fn outputs(st: &HeatState, s: &Stack) -> Value {
    let ctx = StackCtx::new(st, s);
    Value::Array(
        ctx.output_keys()
            .into_iter()
            .map(|(k, d)| {
                let v = ctx.output(&k).unwrap_or(Value::Null);
                json!({"output_key": k, "output_value": v, "description": d})
            })
            .collect(),
    )
}

/// Full stack show.
pub(crate) fn stack_detail(sim: &Sim, st: &HeatState, s: &Stack, resolve_outputs: bool) -> Value {
    let desc = description(s);
    let mut v = json!({
        "id": s.id,
        "stack_name": s.name,
        "links": [{"href": stack_url(sim, s), "rel": "self"}],
        "description": desc,
        "template_description": desc,
        "stack_status": status_str(s.action, s.status),
        "stack_status_reason": s.reason,
        "creation_time": s.created.iso(),
        "updated_time": opt_time(s.updated),
        "deletion_time": opt_time(s.deleted),
        "parameters": parameters(s),
        "disable_rollback": s.disable_rollback,
        "timeout_mins": s.timeout_mins,
        "stack_owner": s.owner,
        "parent": s.parent,
        "stack_user_project_id": s.project_id,
        "tags": s.tags.clone().unwrap_or_default(),
        "capabilities": [],
        "notification_topics": [],
    });
    if resolve_outputs && !s.is_deleted() {
        if let Some(o) = v.as_object_mut() {
            o.insert("outputs".into(), outputs(st, s));
        }
    }
    v
}

/// Names of resources of `s` that depend on `name`.
fn required_by(s: &Stack, name: &str) -> Vec<String> {
    s.resources
        .values()
        .filter(|r| r.deps.iter().any(|d| d == name))
        .map(|r| r.name.clone())
        .collect()
}

/// Attributes of a resource for `resources/{name}` (show).
fn attributes(st: &HeatState, s: &Stack, r: &Resource) -> Value {
    match r.kind {
        ResKind::Leaf => Value::Object(r.attrs.clone()),
        ResKind::Template | ResKind::Group => {
            let ctx = StackCtx::new(st, s);
            let Some(n) = ctx.nested(r.nested) else {
                return Value::Object(Map::new());
            };
            let mut m = Map::new();
            if r.kind == ResKind::Group {
                for a in ["refs", "refs_map", "removed_rsrc_list"] {
                    m.insert(
                        a.into(),
                        ctx.resource_attr(&r.name, &[Value::String(a.into())]),
                    );
                }
                // `attributes` needs an attribute name argument: null without one.
                m.insert("attributes".into(), Value::Null);
            } else {
                for (k, _) in n.output_keys() {
                    m.insert(k.clone(), n.output(&k).unwrap_or(Value::Null));
                }
            }
            Value::Object(m)
        }
    }
}

/// A resource (list item, or show when `detail`).
pub(crate) fn resource_json(
    sim: &Sim,
    st: &HeatState,
    s: &Stack,
    r: &Resource,
    detail: bool,
    parent_resource: Option<&str>,
) -> Value {
    let surl = stack_url(sim, s);
    let mut links = vec![
        json!({"href": format!("{surl}/resources/{}", r.name), "rel": "self"}),
        json!({"href": surl, "rel": "stack"}),
    ];
    if let Some(n) = r.nested.and_then(|id| st.stacks.get(&id)) {
        links.push(json!({"href": stack_url(sim, n), "rel": "nested"}));
    }
    let mut v = json!({
        "resource_name": r.name,
        "logical_resource_id": r.name,
        "physical_resource_id": r.physical_id,
        "resource_type": r.rtype,
        "resource_status": status_str(r.action, r.status),
        "resource_status_reason": r.reason,
        "creation_time": r.created.iso(),
        "updated_time": opt_time(r.updated).as_str().map(str::to_string).unwrap_or_else(|| r.created.iso()),
        "required_by": required_by(s, &r.name),
        "links": links,
    });
    if let Some(o) = v.as_object_mut() {
        if let Some(p) = parent_resource {
            o.insert("parent_resource".into(), Value::String(p.to_string()));
        }
        if detail {
            o.insert("description".into(), Value::String(String::new()));
            o.insert("attributes".into(), attributes(st, s, r));
        }
    }
    v
}

/// An event (summary, or with `resource_type`/`resource_properties` when `detail`).
pub(crate) fn event_json(sim: &Sim, s: &Stack, e: &Event, detail: bool) -> Value {
    let surl = stack_url(sim, s);
    let rurl = format!("{surl}/resources/{}", e.resource_name);
    let mut v = json!({
        "id": e.id,
        "event_time": e.time.iso(),
        "resource_name": e.resource_name,
        "logical_resource_id": e.resource_name,
        "physical_resource_id": e.physical_id,
        "resource_status": status_str(e.action, e.status),
        "resource_status_reason": e.reason,
        "links": [
            {"href": format!("{rurl}/events/{}", e.id), "rel": "self"},
            {"href": rurl, "rel": "resource"},
            {"href": surl, "rel": "stack"},
        ],
    });
    if let (true, Some(o)) = (detail, v.as_object_mut()) {
        o.insert(
            "resource_type".into(),
            Value::String(e.resource_type.clone()),
        );
        o.insert("resource_properties".into(), json!({}));
    }
    v
}
