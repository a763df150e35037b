//! HOT templates: parsing (YAML or JSON, string or object), parameters (types, defaults,
//! constraints), environments, resource type resolution and synchronous validation.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Number, Value};

use super::intrinsics::{self, Refs};
use super::{Definition, Env};
use crate::error::SimError;

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

/// Convert a YAML value to JSON (non-string keys are stringified, tags dropped).
pub(crate) fn yaml_to_json(y: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                n.as_f64()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_string(),
                    other => serde_yaml::to_string(&other)
                        .map(|s| s.trim().to_string())
                        .unwrap_or_default(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

/// Parse a YAML (or JSON) document.
pub(crate) fn parse_yaml_str(s: &str) -> Result<Value, String> {
    serde_yaml::from_str::<serde_yaml::Value>(s)
        .map(yaml_to_json)
        .map_err(|e| e.to_string())
}

/// A template given as an object or as a YAML/JSON string.
pub(crate) fn parse_template(v: &Value) -> Result<Value, SimError> {
    let invalid = |inner: String| {
        SimError::heat(
            400,
            "HTTPBadRequest",
            format!("Template not in valid format: {inner}"),
        )
    };
    let t = match v {
        Value::String(s) => parse_yaml_str(s).map_err(invalid)?,
        other => other.clone(),
    };
    let Some(obj) = t.as_object() else {
        return Err(invalid(
            "The template is not a JSON object or YAML mapping.".into(),
        ));
    };
    if ![
        "heat_template_version",
        "HeatTemplateFormatVersion",
        "AWSTemplateFormatVersion",
    ]
    .iter()
    .any(|k| obj.contains_key(*k))
    {
        return Err(invalid("Template format version not found.".into()));
    }
    Ok(t)
}

/// Parse an environment (object or YAML string).
pub(crate) fn parse_env(v: &Value) -> Result<Env, SimError> {
    let v = match v {
        Value::String(s) => parse_yaml_str(s)
            .map_err(|e| SimError::heat_bad(format!("Error parsing environment: {e}")))?,
        Value::Null => return Ok(Env::default()),
        other => other.clone(),
    };
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(Env::default()),
        _ => {
            return Err(SimError::heat_bad(
                "The environment is not a valid YAML mapping data type.",
            ))
        }
    };
    let mut env = Env::default();
    for (k, v) in obj {
        match k.as_str() {
            "parameters" => env.parameters = as_map(v, "parameters")?,
            "parameter_defaults" => env.parameter_defaults = as_map(v, "parameter_defaults")?,
            "resource_registry" => {
                for (ty, target) in as_map(v, "resource_registry")? {
                    if let Value::String(t) = target {
                        env.resource_registry.insert(ty, t);
                    }
                }
            }
            "event_sinks" | "encrypted_param_names" | "parameter_merge_strategies" => {}
            other => {
                return Err(SimError::heat_bad(format!(
                    "environment has wrong section \"{other}\""
                )))
            }
        }
    }
    Ok(env)
}

fn as_map(v: Value, what: &str) -> Result<Map<String, Value>, SimError> {
    match v {
        Value::Object(o) => Ok(o),
        Value::Null => Ok(Map::new()),
        _ => Err(SimError::heat_bad(format!(
            "The {what} section must be a mapping."
        ))),
    }
}

/// Merge `over` into `base` (later environments win).
pub(crate) fn merge_env(base: &mut Env, over: Env) {
    base.parameters.extend(over.parameters);
    base.parameter_defaults.extend(over.parameter_defaults);
    base.resource_registry.extend(over.resource_registry);
}

/// A parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PType {
    String,
    Number,
    Boolean,
    List,
    Json,
}

impl PType {
    fn parse(s: &str) -> Option<PType> {
        Some(match s {
            "string" | "String" => PType::String,
            "number" | "Number" => PType::Number,
            "boolean" | "Boolean" => PType::Boolean,
            "comma_delimited_list" | "CommaDelimitedList" => PType::List,
            "json" | "Json" => PType::Json,
            _ => return None,
        })
    }

    pub(crate) fn cfn_name(self) -> &'static str {
        match self {
            PType::String => "String",
            PType::Number => "Number",
            PType::Boolean => "Boolean",
            PType::List => "CommaDelimitedList",
            PType::Json => "Json",
        }
    }
}

/// One parameter's schema.
#[derive(Debug, Clone)]
pub(crate) struct ParamSchema {
    pub ptype: PType,
    pub default: Option<Value>,
    pub hidden: bool,
    pub constraints: Vec<Value>,
    pub description: String,
    pub label: Option<String>,
}

/// The `parameters` section.
pub(crate) fn param_schemas(tmpl: &Value) -> Result<BTreeMap<String, ParamSchema>, SimError> {
    let mut out = BTreeMap::new();
    let Some(params) = tmpl.get("parameters") else {
        return Ok(out);
    };
    let params = match params {
        Value::Null => return Ok(out),
        Value::Object(o) => o,
        _ => {
            return Err(SimError::heat_bad(
                "The parameters section must be a mapping.",
            ))
        }
    };
    for (name, p) in params {
        let p = p.as_object().ok_or_else(|| {
            SimError::heat_bad(format!(
                "Invalid parameter schema for parameter \"{name}\"."
            ))
        })?;
        let ty = p.get("type").and_then(Value::as_str).ok_or_else(|| {
            SimError::heat_bad(format!("Missing parameter type for parameter: {name}"))
        })?;
        let ptype = PType::parse(ty).ok_or_else(|| {
            SimError::heat(400, "InvalidSchemaError", format!("Invalid type ({ty})"))
        })?;
        let hidden = match p.get("hidden") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        out.insert(
            name.clone(),
            ParamSchema {
                ptype,
                default: p.get("default").cloned(),
                hidden,
                constraints: p
                    .get("constraints")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                description: p
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                label: p.get("label").and_then(Value::as_str).map(str::to_string),
            },
        );
    }
    Ok(out)
}

fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "on" | "y" | "yes" | "1" => Some(true),
            "f" | "false" | "off" | "n" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Convert a user or default value to the parameter's type.
pub(crate) fn convert(ptype: PType, v: &Value) -> Result<Value, String> {
    match ptype {
        PType::String => Ok(Value::String(python_str(v))),
        PType::Number => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) => {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Ok(Value::Number(i.into()))
                } else {
                    t.parse::<f64>()
                        .ok()
                        .and_then(Number::from_f64)
                        .map(Value::Number)
                        .ok_or_else(|| format!("could not convert string to float: '{s}'"))
                }
            }
            other => Err(format!("Value '{}' is not a number", python_str(other))),
        },
        PType::Boolean => parse_bool(v).map(Value::Bool).ok_or_else(|| {
            format!(
                "Unrecognized value '{}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'",
                python_str(v)
            )
        }),
        PType::List => match v {
            Value::Array(items) => Ok(Value::Array(
                items.iter().map(|i| Value::String(python_str(i))).collect(),
            )),
            Value::String(s) if s.is_empty() => Ok(Value::Array(Vec::new())),
            Value::String(s) => Ok(Value::Array(
                s.split(',')
                    .map(|x| Value::String(x.trim().to_string()))
                    .collect(),
            )),
            Value::Null => Ok(Value::Array(Vec::new())),
            other => Ok(Value::Array(vec![Value::String(python_str(other))])),
        },
        PType::Json => match v {
            Value::Object(_) | Value::Array(_) => Ok(v.clone()),
            Value::String(s) if s.trim().is_empty() => Ok(Value::Object(Map::new())),
            Value::String(s) => serde_json::from_str(s)
                .map_err(|e| format!("Value must be valid JSON: {e}")),
            Value::Null => Ok(Value::Object(Map::new())),
            other => Err(format!("Value must be valid JSON: {other}")),
        },
    }
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Check `constraints` (allowed_values, range, length, allowed_pattern) against a typed value.
pub(crate) fn check_constraints(schema: &ParamSchema, v: &Value) -> Result<(), String> {
    for c in &schema.constraints {
        let Some(c) = c.as_object() else { continue };
        let desc = c.get("description").and_then(Value::as_str);
        let fail =
            |msg: String| -> Result<(), String> { Err(desc.map(str::to_string).unwrap_or(msg)) };
        if let Some(allowed) = c.get("allowed_values").and_then(Value::as_array) {
            let values: Vec<&Value> = match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let ok = values
                .iter()
                .all(|item| allowed.iter().any(|a| python_str(a) == python_str(item)));
            if !ok {
                let shown = match v {
                    Value::String(s) => format!("\"{s}\""),
                    other => py_json(other),
                };
                return fail(format!(
                    "{shown} is not an allowed value {}",
                    py_json(&Value::Array(allowed.clone()))
                ));
            }
        }
        if let Some(r) = c.get("range").and_then(Value::as_object) {
            let (min, max) = (num(r.get("min")), num(r.get("max")));
            if let Some(x) = num(Some(v)) {
                if min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m) {
                    return fail(format!(
                        "{} is out of range (min: {}, max: {})",
                        py_num(v),
                        bound(r.get("min")),
                        bound(r.get("max"))
                    ));
                }
            }
        }
        if let Some(l) = c.get("length").and_then(Value::as_object) {
            let (min, max) = (num(l.get("min")), num(l.get("max")));
            let len = match v {
                Value::String(s) => Some(s.chars().count()),
                Value::Array(a) => Some(a.len()),
                Value::Object(o) => Some(o.len()),
                _ => None,
            };
            if let Some(len) = len {
                let f = len as f64;
                if min.is_some_and(|m| f < m) || max.is_some_and(|m| f > m) {
                    return fail(format!(
                        "length ({len}) is out of range (min: {}, max: {})",
                        bound(l.get("min")),
                        bound(l.get("max"))
                    ));
                }
            }
        }
        if let Some(p) = c.get("allowed_pattern").and_then(Value::as_str) {
            // Python's re.match + full-length check == an anchored match. Patterns Rust's regex
            // cannot compile are not checked.
            if let (Ok(re), Value::String(s)) = (regex::Regex::new(&format!("^(?:{p})$")), v) {
                if !re.is_match(s) {
                    return fail(format!("\"{s}\" does not match pattern \"{p}\""));
                }
            }
        }
    }
    Ok(())
}

/// Python's `json.dumps` spacing (`["a", "b"]`).
fn py_json(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(py_json).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, x)| format!("{}: {}", Value::String(k.clone()), py_json(x)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn py_num(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn bound(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "None".to_string(),
        Some(x) => py_num(x),
    }
}

/// Resolve typed parameter values (user > parameter_defaults > default). `lenient` skips
/// missing or invalid ones instead of failing (used when evaluating at read time).
pub(crate) fn resolve_params(
    tmpl: &Value,
    env: &Env,
    lenient: bool,
) -> Result<Map<String, Value>, SimError> {
    let schemas = match param_schemas(tmpl) {
        Ok(s) => s,
        Err(e) if !lenient => return Err(e),
        Err(_) => BTreeMap::new(),
    };
    let mut out = Map::new();
    for (name, schema) in &schemas {
        if let (Some(d), false) = (&schema.default, lenient) {
            let typed = convert(schema.ptype, d)
                .map_err(|e| SimError::heat_bad(format!("Parameter '{name}' is invalid: {e}")))?;
            check_constraints(schema, &typed)
                .map_err(|e| SimError::heat_bad(format!("Parameter '{name}' is invalid: {e}")))?;
        }
        let raw = env
            .parameters
            .get(name)
            .or_else(|| env.parameter_defaults.get(name))
            .or(schema.default.as_ref());
        let Some(raw) = raw else {
            if lenient {
                continue;
            }
            return Err(SimError::heat(
                400,
                "UserParameterMissing",
                format!("The Parameter ({name}) was not provided."),
            ));
        };
        let typed = match convert(schema.ptype, raw)
            .and_then(|t| check_constraints(schema, &t).map(|()| t))
        {
            Ok(t) => t,
            Err(_) if lenient => continue,
            Err(e) => {
                return Err(SimError::heat_bad(format!(
                    "Parameter '{name}' is invalid: {e}"
                )))
            }
        };
        out.insert(name.clone(), typed);
    }
    Ok(out)
}

/// How Heat shows a parameter value in `stack show` (always a string).
pub(crate) fn display_param(schema: Option<&ParamSchema>, v: &Value) -> String {
    if schema.is_some_and(|s| s.hidden) {
        return "******".to_string();
    }
    match (schema.map(|s| s.ptype), v) {
        (Some(PType::List), Value::Array(items)) => {
            items.iter().map(python_str).collect::<Vec<_>>().join(",")
        }
        (Some(PType::Json), other) => other.to_string(),
        (_, other) => python_str(other),
    }
}

/// How a resource type is implemented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypeImpl {
    /// A nested stack whose template is `files[key]`.
    Template(String),
    /// `OS::Heat::ResourceGroup`.
    Group,
    /// A simulated resource of this type.
    Builtin(String),
}

impl TypeImpl {
    pub(crate) fn name(&self) -> &str {
        match self {
            TypeImpl::Template(k) => k,
            TypeImpl::Group => "OS::Heat::ResourceGroup",
            TypeImpl::Builtin(t) => t,
        }
    }
}

fn looks_like_template(t: &str) -> bool {
    let l = t.to_ascii_lowercase();
    l.contains("://")
        || l.ends_with(".yaml")
        || l.ends_with(".yml")
        || l.ends_with(".template")
        || l.ends_with(".json")
}

/// Resolve a resource type through the environment registry and the `files` map.
pub(crate) fn resolve_type(
    rtype: &str,
    env: &Env,
    files: &BTreeMap<String, String>,
) -> Result<TypeImpl, String> {
    let mut t = rtype.to_string();
    for _ in 0..8 {
        if files.contains_key(&t) && !env.resource_registry.contains_key(&t) {
            break;
        }
        match env.resource_registry.get(&t) {
            Some(m) if *m != t => t = m.clone(),
            _ => break,
        }
    }
    if files.contains_key(&t) {
        return Ok(TypeImpl::Template(t));
    }
    if t == "OS::Heat::ResourceGroup" {
        return Ok(TypeImpl::Group);
    }
    if looks_like_template(&t) {
        return Err(format!(
            "Could not fetch remote template \"{t}\": Invalid URL scheme"
        ));
    }
    Ok(TypeImpl::Builtin(t))
}

/// Parse the template stored under a `files` key.
pub(crate) fn nested_template(
    files: &BTreeMap<String, String>,
    key: &str,
) -> Result<Value, String> {
    let text = files
        .get(key)
        .ok_or_else(|| format!("Could not fetch remote template \"{key}\""))?;
    let t = parse_yaml_str(text).map_err(|e| format!("Error parsing template {key}: {e}"))?;
    if !t.is_object() {
        return Err(format!("Error parsing template {key}: not a mapping"));
    }
    Ok(t)
}

/// `depends_on` as a list of names.
pub(crate) fn depends_on(rdef: &Value) -> Vec<String> {
    match rdef.get("depends_on") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn bad(msg: impl Into<String>) -> SimError {
    SimError::heat_bad(msg)
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
            convert(s.ptype, d)
                .and_then(|v| check_constraints(s, &v))
                .map_err(|e| bad(format!("Parameter '{name}' is invalid: {e}")))?;
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
                return Err(SimError::heat(
                    400,
                    "InvalidTemplateReference",
                    format!("The specified reference \"{d}\" (in {name}) is incorrect."),
                ));
            }
            deps.insert(d);
        }
        let mut refs = Refs::default();
        if let Some(p) = r.get("properties") {
            intrinsics::refs(p, &mut refs);
        }
        if let Some(p) = r.get("properties") {
            if let Some((target, path)) = bad_reference(
                p,
                &|t| resources.contains_key(t),
                format!("{name}.Properties"),
                0,
            ) {
                return Err(SimError::heat(
                    400,
                    "InvalidTemplateReference",
                    format!("The specified reference \"{target}\" (in {path}) is incorrect."),
                ));
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

        let imp =
            resolve_type(rtype, env, files).map_err(|m| bad(format!("resources.{name}: {m}")))?;
        let props = r.get("properties").cloned().unwrap_or(Value::Null);
        match imp {
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
                if let Some(c) = props.get("count") {
                    if let Some(n) = c.as_i64() {
                        if n < 0 {
                            return Err(bad(format!(
                                "Property error: resources.{name}.properties.count: {n} is out of range (min: 0, max: None)"
                            )));
                        }
                    }
                }
                if let Some(mtype) = rd.get("type").and_then(Value::as_str) {
                    let mimp = resolve_type(mtype, env, files)
                        .map_err(|m| bad(format!("resources.{name}: {m}")))?;
                    if let TypeImpl::Template(key) = mimp {
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
                } else {
                    return Err(bad(format!(
                        "Property error: resources.{name}.properties.resource_def: Property type not assigned"
                    )));
                }
            }
            TypeImpl::Builtin(_) => {}
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
                for target in &refs.resources {
                    if !resources.contains_key(target) {
                        return Err(SimError::heat(
                            400,
                            "InvalidTemplateReference",
                            format!("The specified reference \"{target}\" (in outputs.{key}) is incorrect."),
                        ));
                    }
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

/// The first `get_resource`/`get_attr` naming an unknown resource, with Heat's path to it
/// (`res.Properties.key.sub[0].x`).
fn bad_reference(
    v: &Value,
    known: &dyn Fn(&str) -> bool,
    path: String,
    depth: usize,
) -> Option<(String, String)> {
    if depth > 64 {
        return None;
    }
    if let Some(o) = v.as_object() {
        if o.len() == 1 {
            let target = match (o.get("get_resource"), o.get("get_attr")) {
                (Some(Value::String(t)), _) => Some(t),
                (_, Some(Value::Array(a))) => match a.first() {
                    Some(Value::String(t)) => Some(t),
                    _ => None,
                },
                _ => None,
            };
            if let Some(t) = target.filter(|t| !known(t)) {
                return Some((t.clone(), path));
            }
        }
        for (k, x) in o {
            let p = if intrinsics::is_function(k) {
                path.clone()
            } else {
                format!("{path}.{k}")
            };
            if let Some(found) = bad_reference(x, known, p, depth + 1) {
                return Some(found);
            }
        }
    } else if let Some(a) = v.as_array() {
        for (i, x) in a.iter().enumerate() {
            if let Some(found) = bad_reference(x, known, format!("{path}[{i}]"), depth + 1) {
                return Some(found);
            }
        }
    }
    None
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    // Kahn's algorithm: whatever cannot be ordered is on (or behind) a cycle.
    let mut indeg: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, deps) in graph {
        indeg.insert(
            n.as_str(),
            deps.iter().filter(|d| graph.contains_key(*d)).count(),
        );
    }
    let mut ready: Vec<&str> = indeg
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut done = BTreeSet::new();
    while let Some(n) = ready.pop() {
        done.insert(n);
        for (m, deps) in graph {
            if deps.contains(n) && !done.contains(m.as_str()) {
                if let Some(d) = indeg.get_mut(m.as_str()) {
                    *d = d.saturating_sub(1);
                    if *d == 0 {
                        ready.push(m.as_str());
                    }
                }
            }
        }
    }
    let rest: Vec<&str> = graph
        .keys()
        .map(String::as_str)
        .filter(|n| !done.contains(n))
        .collect();
    if rest.is_empty() {
        None
    } else {
        Some(rest.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_dates_and_keys() {
        let v = parse_yaml_str("heat_template_version: 2018-08-31\n1: x\n").unwrap_or_default();
        assert_eq!(v["heat_template_version"], json!("2018-08-31"));
        assert_eq!(v["1"], json!("x"));
    }

    #[test]
    fn conversions() {
        assert_eq!(convert(PType::Number, &json!("3")), Ok(json!(3)));
        assert_eq!(convert(PType::Boolean, &json!("True")), Ok(json!(true)));
        assert_eq!(convert(PType::List, &json!("a, b")), Ok(json!(["a", "b"])));
        assert_eq!(
            convert(PType::Json, &json!("{\"a\":1}")),
            Ok(json!({"a": 1}))
        );
        assert!(convert(PType::Number, &json!("x")).is_err());
    }

    #[test]
    fn cycles() {
        let mut g = BTreeMap::new();
        g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
        g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
        g.insert("c".to_string(), BTreeSet::new());
        assert_eq!(find_cycle(&g), Some("a, b".to_string()));
    }
}
