//! `POST /validate` and the informational endpoints (`build_info`, `template_versions`,
//! `resource_types`).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::body::{parse_body, parse_inst};
use super::Req;
use crate::error::{json_response, SimError};
use crate::heat::template::{self, param_schemas, PType};
use crate::heat::views;

pub(super) fn validate(req: &Req<'_>) -> Result<Response, SimError> {
    let b = parse_body(req.body)?;
    let inst = parse_inst(&b)?;
    let def = inst.definition(None)?;
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
            "Environment": views::environment(&def.env),
        }),
    ))
}

pub(super) fn build_info() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"api": {"revision": "cloud-sim"}, "engine": {"revision": "cloud-sim"}}),
    )
}

pub(super) fn template_versions() -> Response {
    let versions: Vec<Value> = template::VERSIONS
        .iter()
        .filter(|v| v.starts_with('2'))
        .map(|v| json!({"version": format!("heat_template_version.{v}"), "type": "hot", "aliases": []}))
        .collect();
    json_response(StatusCode::OK, &json!({"template_versions": versions}))
}

pub(super) fn resource_types() -> Response {
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
