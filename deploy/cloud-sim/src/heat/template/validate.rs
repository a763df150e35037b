//! Synchronous validation of a stack definition: what Heat checks before it accepts a create
//! or update.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::params::{invalid_param, param_schemas, python_str, resolve_params};
use super::references::{bad_reference, find_cycle};
use super::types::{depends_on, nested_template, resolve_type, TypeImpl};
use crate::error::SimError;
use crate::heat::intrinsics::{self, Refs};
use crate::heat::{Definition, Env};

/// `heat_template_version` values Heat accepts for HOT.
pub(crate) const VERSIONS: &[&str] = &[
    "2013-05-23",
    "2014-10-16",
    "2015-04-30",
    "2015-10-15",
    "2016-04-08",
    "2016-10-14",
    "2017-02-24",
    "2017-09-01",
    "2018-03-02",
    "2018-08-31",
    "2021-04-16",
    "newton",
    "ocata",
    "pike",
    "queens",
    "rocky",
    "wallaby",
];

const SECTIONS: &[&str] = &[
    "heat_template_version",
    "description",
    "parameter_groups",
    "parameters",
    "resources",
    "outputs",
    "conditions",
];

const RESOURCE_KEYS: &[&str] = &[
    "type",
    "properties",
    "metadata",
    "depends_on",
    "deletion_policy",
    "update_policy",
    "condition",
    "external_id",
    "description",
];

const PSEUDO_PARAMS: &[&str] = &["OS::stack_id", "OS::stack_name", "OS::project_id"];

fn bad(msg: impl Into<String>) -> SimError {
    SimError::heat_bad(msg)
}

/// A `get_resource`/`get_attr`/`depends_on` naming no resource of the template.
fn invalid_reference(target: &str, place: &str) -> SimError {
    SimError::heat(
        400,
        "InvalidTemplateReference",
        format!("The specified reference \"{target}\" (in {place}) is incorrect."),
    )
}

/// Synchronous validation of a stack definition (what Heat checks before answering a create
/// or update): template structure, references, dependency cycles, parameters, nested
/// templates. `check_unknown` rejects user parameters the template does not declare.
pub(crate) fn validate(def: &Definition, check_unknown: bool) -> Result<(), SimError> {
    let mut seen = BTreeSet::new();
    validate_template(&def.template, &def.files, &def.env, 0, &mut seen)?;
    let schemas = param_schemas(&def.template)?;
    if check_unknown {
        if let Some(unknown) = def
            .env
            .parameters
            .keys()
            .find(|k| !schemas.contains_key(*k))
        {
            return Err(SimError::heat(
                400,
                "UnknownUserParameter",
                format!("The Parameter ({unknown}) was not defined in template."),
            ));
        }
    }
    resolve_params(&def.template, &def.env, false)?;
    Ok(())
}

fn validate_template(
    tmpl: &Value,
    files: &BTreeMap<String, String>,
    env: &Env,
    depth: usize,
    seen: &mut BTreeSet<String>,
) -> Result<(), SimError> {
    if depth > 5 {
        return Err(bad("Recursion depth exceeds 5."));
    }
    let t = tmpl
        .as_object()
        .ok_or_else(|| bad("The template is not a JSON object or YAML mapping."))?;
    match t.get("heat_template_version") {
        None => {
            return Err(SimError::heat(
                400,
                "InvalidTemplateVersion",
                "The template version is invalid: Template format version not found.",
            ))
        }
        Some(v) => {
            let v = python_str(v);
            if !VERSIONS.contains(&v.as_str()) {
                return Err(SimError::heat(
                    400,
                    "InvalidTemplateVersion",
                    format!(
                        "The template version is invalid: \"heat_template_version: {v}\". \"heat_template_version\" should be one of: {}",
                        VERSIONS.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(k) = t.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
        return Err(bad(format!("The template section is invalid: {k}")));
    }
    let schemas = param_schemas(tmpl)?;
    for (name, s) in &schemas {
        if let Some(d) = &s.default {
            s.typed(d).map_err(|e| invalid_param(name, e))?;
        }
    }
    let conditions: BTreeSet<String> = match t.get("conditions") {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(Value::Object(c)) => c.keys().cloned().collect(),
        Some(_) => return Err(bad("The conditions section must be a mapping.")),
    };
    let resources = match t.get("resources") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(r)) => r.clone(),
        Some(_) => return Err(bad("The resources section must be a mapping.")),
    };
    let known_param = |p: &str| schemas.contains_key(p) || PSEUDO_PARAMS.contains(&p);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, rdef) in &resources {
        let r = rdef
            .as_object()
            .ok_or_else(|| bad("Each resource must contain a type key."))?;
        if let Some(k) = r.keys().find(|k| !RESOURCE_KEYS.contains(&k.as_str())) {
            return Err(bad(format!(
                "\"{k}\" is not a valid keyword inside a resource definition"
            )));
        }
        let rtype = r
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("Each resource must contain a type key."))?;
        if let Some(Value::String(c)) = r.get("condition") {
            if !conditions.contains(c) {
                return Err(bad(format!(
                    "Invalid condition \"{c}\" (in resources.{name})"
                )));
            }
        }
        let mut deps: BTreeSet<String> = BTreeSet::new();
        for d in depends_on(rdef) {
            if !resources.contains_key(&d) {
                return Err(invalid_reference(&d, name));
            }
            deps.insert(d);
        }
        let mut refs = Refs::default();
        if let Some(p) = r.get("properties") {
            intrinsics::refs(p, &mut refs);
            if let Some((target, path)) = bad_reference(
                p,
                &|t| resources.contains_key(t),
                format!("{name}.Properties"),
                0,
            ) {
                return Err(invalid_reference(&target, &path));
            }
        }
        deps.extend(refs.resources.iter().cloned());
        // Heat does not validate the properties of OS::Heat::None.
        let unchecked = rtype == "OS::Heat::None";
        if let Some(p) = refs.params.iter().find(|p| !unchecked && !known_param(p)) {
            return Err(bad(format!(
                "Property error: resources.{name}.properties: The Parameter ({p}) was not defined in template."
            )));
        }
        deps.remove(name);
        graph.insert(name.clone(), deps);

        // Real Heat reports an unknown type or template file without the resource path.
        let resolve = |ty: &str| resolve_type(ty, env, files).map_err(bad);
        let props = r.get("properties").cloned().unwrap_or(Value::Null);
        match resolve(rtype)? {
            TypeImpl::Template(key) => {
                validate_nested(
                    &key,
                    &props,
                    files,
                    env,
                    depth,
                    seen,
                    &format!("resources.{name}"),
                )?;
            }
            TypeImpl::Group => {
                let rd = props.get("resource_def").ok_or_else(|| {
                    bad(format!(
                        "Property error: resources.{name}.properties: Property resource_def not assigned"
                    ))
                })?;
                if let Some(n) = props.get("count").and_then(Value::as_i64) {
                    if n < 0 {
                        return Err(bad(format!(
                            "Property error: resources.{name}.properties.count: {n} is out of range (min: 0, max: None)"
                        )));
                    }
                }
                let Some(mtype) = rd.get("type").and_then(Value::as_str) else {
                    return Err(bad(format!(
                        "Property error: resources.{name}.properties.resource_def: Property type not assigned"
                    )));
                };
                if let TypeImpl::Template(key) = resolve(mtype)? {
                    let mprops = rd.get("properties").cloned().unwrap_or(Value::Null);
                    validate_nested(
                        &key,
                        &mprops,
                        files,
                        env,
                        depth,
                        seen,
                        &format!("resources.{name}.resource_def"),
                    )?;
                }
            }
            TypeImpl::Builtin(t) => check_heat_properties(name, &t, &props)?,
        }
    }
    match t.get("outputs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(outputs)) => {
            for (key, o) in outputs {
                let o = o
                    .as_object()
                    .ok_or_else(|| bad("Each output must contain a value key."))?;
                let mut refs = Refs::default();
                if let Some(v) = o.get("value") {
                    intrinsics::refs(v, &mut refs);
                }
                if let Some(target) = refs.resources.iter().find(|t| !resources.contains_key(*t)) {
                    return Err(invalid_reference(target, &format!("outputs.{key}")));
                }
                if let Some(p) = refs.params.iter().find(|p| !known_param(p)) {
                    return Err(bad(format!(
                        "Output '{key}': The Parameter ({p}) was not defined in template."
                    )));
                }
            }
        }
        Some(_) => return Err(bad("The outputs section must be a mapping.")),
    }
    if let Some(cycle) = find_cycle(&graph) {
        return Err(bad(format!("Circular Dependency Found: {cycle}")));
    }
    Ok(())
}

/// Validate the nested template `files[key]` (once per key) and the properties given to it
/// (`props`: its parameters) at `path`.
fn validate_nested(
    key: &str,
    props: &Value,
    files: &BTreeMap<String, String>,
    env: &Env,
    depth: usize,
    seen: &mut BTreeSet<String>,
    path: &str,
) -> Result<(), SimError> {
    let nested = nested_template(files, key).map_err(|m| bad(format!("{path}: {m}")))?;
    if seen.insert(key.to_string()) {
        validate_template(&nested, files, env, depth + 1, seen).map_err(|e| match e {
            SimError::Heat {
                status,
                kind,
                message,
            } => SimError::Heat {
                status,
                kind,
                message: format!("{path}: {message}"),
            },
            other => other,
        })?;
    }
    let schemas = param_schemas(&nested)?;
    if let Some(p) = props.as_object() {
        if let Some(unknown) = p.keys().find(|k| !schemas.contains_key(*k)) {
            return Err(bad(format!(
                "Property error: {path}.properties: Unknown Property {unknown}"
            )));
        }
    }
    for (name, s) in &schemas {
        let given = props.get(name).is_some();
        if !given && s.default.is_none() && !env.parameter_defaults.contains_key(name) {
            return Err(bad(format!(
                "Property error: {path}.properties: Property {name} not assigned"
            )));
        }
    }
    Ok(())
}

/// Property names of the `OS::Heat::*` types the engine simulates, as Heat 27 declares them.
fn heat_properties(rtype: &str) -> Option<&'static [&'static str]> {
    Some(match rtype {
        "OS::Heat::RandomString" => &[
            "length",
            "sequence",
            "character_classes",
            "character_sequences",
            "salt",
        ],
        "OS::Heat::TestResource" => &[
            "value",
            "update_replace",
            "update_replace_value",
            "fail",
            "client_name",
            "entity_name",
            "wait_secs",
            "action_wait_secs",
            "attr_wait_secs",
            "check_wait_secs",
            "constraint_prop_secs",
        ],
        "OS::Heat::Value" => &["value", "type"],
        _ => return None,
    })
}

/// Unknown properties of a simulated `OS::Heat::*` resource are the 400 real Heat gives.
fn check_heat_properties(name: &str, rtype: &str, props: &Value) -> Result<(), SimError> {
    let (Some(known), Some(given)) = (heat_properties(rtype), props.as_object()) else {
        return Ok(());
    };
    match given.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(bad(format!(
            "Property error: : resources.{name}.properties: : Unknown Property {k}"
        ))),
        None => Ok(()),
    }
}
