//! A small HOT checker (tests only): the templates parse, stay within the HOT subset our Heat simulator supports,
//! and every reference resolves (parameters, conditions, resources, nested templates and their
//! properties/outputs). Also checks that the parameters the driver sends are declared, well-typed and
//! within their constraints.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const PSEUDO_PARAMS: &[&str] = &["OS::stack_id", "OS::stack_name", "OS::project_id"];
const FUNCTIONS: &[&str] = &[
    "get_param",
    "get_resource",
    "get_attr",
    "list_join",
    "str_replace",
    "get_file",
    "if",
    "equals",
    "not",
    "and",
    "or",
];
/// Functions of full HOT (or CFN) the simulator does not implement: must not appear at all.
const UNSUPPORTED_FUNCTIONS: &[&str] = &[
    "yaql",
    "repeat",
    "map_merge",
    "map_replace",
    "list_concat",
    "list_concat_unique",
    "str_split",
    "str_replace_strict",
    "str_replace_vstrict",
    "digest",
    "filter",
    "contains",
    "make_url",
    "get_input",
    "resource_facade",
    "Ref",
    "Fn::GetAtt",
    "Fn::Join",
    "Fn::Select",
];
const RESOURCE_TYPES: &[&str] = &[
    "OS::Heat::ResourceGroup",
    "OS::Heat::RandomString",
    "OS::Heat::None",
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
    "OS::Cinder::Volume",
    "OS::Cinder::VolumeAttachment",
    "OS::Heat::SoftwareConfig",
    "OS::Heat::CloudConfig",
    "OS::Heat::MultipartMime",
];
const PARAM_TYPES: &[&str] = &[
    "string",
    "number",
    "boolean",
    "comma_delimited_list",
    "json",
];

#[derive(Debug)]
pub(crate) struct Param {
    pub(crate) kind: String,
    pub(crate) default: Option<Value>,
    pub(crate) constraints: Vec<Value>,
}

#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) name: String,
    pub(crate) params: BTreeMap<String, Param>,
    pub(crate) conditions: BTreeSet<String>,
    pub(crate) resources: BTreeMap<String, Value>,
    pub(crate) outputs: BTreeMap<String, Value>,
}

pub(crate) fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

pub(crate) fn subset(
    what: &str,
    actual: &BTreeSet<String>,
    allowed: &[&str],
    errors: &mut Vec<String>,
) {
    for k in actual {
        if !allowed.contains(&k.as_str()) {
            errors.push(format!("{what}: key {k:?} is outside the supported subset"));
        }
    }
}

pub(crate) fn parse(name: &str, yaml: &str) -> Template {
    let doc: Value =
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
    let mut errors = Vec::new();
    subset(
        name,
        &keys(&doc),
        &[
            "heat_template_version",
            "description",
            "parameters",
            "conditions",
            "resources",
            "outputs",
        ],
        &mut errors,
    );
    assert_eq!(doc["heat_template_version"], "queens", "{name}");
    let mut params = BTreeMap::new();
    for (pname, p) in doc["parameters"].as_object().cloned().unwrap_or_default() {
        subset(
            &format!("{name} parameter {pname}"),
            &keys(&p),
            &[
                "type",
                "description",
                "default",
                "hidden",
                "constraints",
                "label",
            ],
            &mut errors,
        );
        let kind = p["type"].as_str().unwrap_or_default().to_string();
        if !PARAM_TYPES.contains(&kind.as_str()) {
            errors.push(format!(
                "{name} parameter {pname}: unsupported type {kind:?}"
            ));
        }
        let constraints = p
            .get("constraints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for c in &constraints {
            subset(
                &format!("{name} parameter {pname} constraint"),
                &keys(c),
                &["allowed_values", "range", "length", "description"],
                &mut errors,
            );
        }
        if let Some(default) = p.get("default") {
            if let Err(e) = check_value(&kind, &constraints, default) {
                errors.push(format!("{name} parameter {pname}: default {default}: {e}"));
            }
        }
        params.insert(
            pname,
            Param {
                kind,
                default: p.get("default").cloned(),
                constraints,
            },
        );
    }
    assert!(errors.is_empty(), "{errors:#?}");
    Template {
        name: name.to_string(),
        params,
        conditions: keys(&doc["conditions"]),
        resources: doc["resources"]
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        outputs: doc["outputs"]
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    }
}

/// Checks a parameter value against its declared type and constraints, as Heat would.
pub(crate) fn check_value(kind: &str, constraints: &[Value], v: &Value) -> Result<(), String> {
    let ok = match kind {
        "string" => v.is_string(),
        "number" => v.is_number() || v.as_str().is_some_and(|s| s.parse::<f64>().is_ok()),
        "boolean" => v.is_boolean(),
        "comma_delimited_list" => v.is_array() || v.is_string(),
        "json" => v.is_object() || v.is_array() || v.is_string(),
        _ => false,
    };
    if !ok {
        return Err(format!("not a {kind}"));
    }
    for c in constraints {
        if let Some(allowed) = c.get("allowed_values").and_then(Value::as_array) {
            if !allowed.contains(v) {
                return Err(format!("not in {allowed:?}"));
            }
        }
        if let (Some(range), Some(n)) = (c.get("range"), v.as_f64()) {
            if range
                .get("min")
                .and_then(Value::as_f64)
                .is_some_and(|min| n < min)
                || range
                    .get("max")
                    .and_then(Value::as_f64)
                    .is_some_and(|max| n > max)
            {
                return Err(format!("out of range {range}"));
            }
        }
    }
    Ok(())
}

pub(crate) struct Checker<'a> {
    pub(crate) templates: &'a BTreeMap<String, Template>,
    pub(crate) files: &'a BTreeMap<String, String>,
    pub(crate) errors: Vec<String>,
}

impl Checker<'_> {
    pub(crate) fn check_template(&mut self, t: &Template) {
        for (rname, r) in &t.resources {
            let at = format!("{} resource {rname}", t.name);
            subset(
                &at,
                &keys(r),
                &["type", "properties", "depends_on", "condition"],
                &mut self.errors,
            );
            if let Some(c) = r.get("condition") {
                self.check_condition_ref(t, &at, c);
            }
            for dep in r.get("depends_on").map(as_list).unwrap_or_default() {
                if !dep.as_str().is_some_and(|d| t.resources.contains_key(d)) {
                    self.errors
                        .push(format!("{at}: depends_on unknown resource {dep}"));
                }
            }
            let rtype = r["type"].as_str().unwrap_or_default();
            let props = r.get("properties").cloned().unwrap_or(Value::Null);
            if rtype == "OS::Heat::ResourceGroup" {
                subset(
                    &at,
                    &keys(&props),
                    &["count", "resource_def", "removal_policies", "index_var"],
                    &mut self.errors,
                );
                let def = &props["resource_def"];
                subset(
                    &format!("{at} resource_def"),
                    &keys(def),
                    &["type", "properties"],
                    &mut self.errors,
                );
                let member_type = def["type"].as_str().unwrap_or_default();
                self.check_type(&at, member_type, &def["properties"]);
            } else {
                self.check_type(&at, rtype, &props);
            }
            self.walk(t, &at, r);
        }
        for (oname, o) in &t.outputs {
            let at = format!("{} output {oname}", t.name);
            subset(&at, &keys(o), &["value", "description"], &mut self.errors);
            self.walk(t, &at, o);
        }
    }

    /// A resource type is either supported by the simulator or a nested template in `files` whose
    /// parameters match the given properties.
    fn check_type(&mut self, at: &str, rtype: &str, props: &Value) {
        if RESOURCE_TYPES.contains(&rtype) {
            return;
        }
        if !self.files.contains_key(rtype) {
            self.errors.push(format!(
                "{at}: type {rtype:?} is neither supported nor in files"
            ));
            return;
        }
        let Some(nested) = self.templates.get(rtype) else {
            self.errors
                .push(format!("{at}: nested template {rtype} not parsed"));
            return;
        };
        let given = keys(props);
        for k in &given {
            if !nested.params.contains_key(k) {
                self.errors
                    .push(format!("{at}: property {k} is not a parameter of {rtype}"));
            }
        }
        for (pname, p) in &nested.params {
            if p.default.is_none() && !given.contains(pname) {
                self.errors.push(format!(
                    "{at}: required parameter {pname} of {rtype} not given"
                ));
            }
        }
    }

    fn check_condition_ref(&mut self, t: &Template, at: &str, c: &Value) {
        match c.as_str() {
            Some(name) if t.conditions.contains(name) => {}
            _ => self.errors.push(format!("{at}: unknown condition {c}")),
        }
    }

    fn walk(&mut self, t: &Template, at: &str, v: &Value) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| self.walk(t, at, i)),
            Value::Object(map) => {
                for k in map.keys() {
                    if UNSUPPORTED_FUNCTIONS.contains(&k.as_str()) {
                        self.errors.push(format!("{at}: unsupported function {k}"));
                    }
                }
                if map.len() == 1 {
                    if let Some((f, arg)) = map.iter().next() {
                        if FUNCTIONS.contains(&f.as_str()) {
                            self.check_function(t, at, f, arg);
                        }
                    }
                }
                map.values().for_each(|i| self.walk(t, at, i));
            }
            _ => {}
        }
    }

    fn check_function(&mut self, t: &Template, at: &str, f: &str, arg: &Value) {
        let first = match arg {
            Value::Array(a) => a.first().and_then(Value::as_str),
            other => other.as_str(),
        };
        match f {
            "get_param"
                if !first
                    .is_some_and(|p| t.params.contains_key(p) || PSEUDO_PARAMS.contains(&p)) =>
            {
                self.errors
                    .push(format!("{at}: get_param of undeclared parameter {arg}"));
            }
            "get_resource" if !first.is_some_and(|r| t.resources.contains_key(r)) => {
                self.errors
                    .push(format!("{at}: get_resource of unknown resource {arg}"));
            }
            "get_file" if !first.is_some_and(|f| self.files.contains_key(f)) => {
                self.errors
                    .push(format!("{at}: get_file of a file not sent: {arg}"));
            }
            "get_attr" => self.check_get_attr(t, at, arg),
            "if" => match arg.as_array() {
                Some(a) if a.len() == 3 => self.check_condition_ref(t, at, &a[0]),
                _ => self
                    .errors
                    .push(format!("{at}: if needs [condition, then, else]: {arg}")),
            },
            _ => {}
        }
    }

    /// `[resource, attr...]`; for a ResourceGroup of a nested template, `[group, output]` and
    /// `[group, resource.N, output]` must name an output of the member template.
    fn check_get_attr(&mut self, t: &Template, at: &str, arg: &Value) {
        let Some(items) = arg.as_array() else {
            self.errors
                .push(format!("{at}: get_attr needs a list: {arg}"));
            return;
        };
        let Some(r) = items
            .first()
            .and_then(Value::as_str)
            .and_then(|n| t.resources.get(n))
        else {
            self.errors
                .push(format!("{at}: get_attr of unknown resource {arg}"));
            return;
        };
        if r["type"] != "OS::Heat::ResourceGroup" {
            return;
        }
        let member_type = r["properties"]["resource_def"]["type"]
            .as_str()
            .unwrap_or_default();
        let Some(member) = self.templates.get(member_type) else {
            return;
        };
        let attr = match items.get(1).and_then(Value::as_str) {
            Some(s) if s.starts_with("resource.") => {
                if s["resource.".len()..].parse::<u32>().is_err() {
                    self.errors.push(format!("{at}: bad member reference {s}"));
                }
                items.get(2).and_then(Value::as_str)
            }
            other => other,
        };
        if !attr.is_some_and(|a| member.outputs.contains_key(a)) {
            self.errors.push(format!(
                "{at}: {arg} does not name an output of {member_type}"
            ));
        }
    }
}

pub(crate) fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// Parses a template set and runs the checker over it; returns the parsed templates (keyed by
/// file name, the top-level one under `top_name`) and every error found.
pub(crate) fn check_set(
    top_name: &str,
    top_yaml: &str,
    files: &BTreeMap<String, String>,
) -> (BTreeMap<String, Template>, Vec<String>) {
    let mut templates = BTreeMap::from([(top_name.to_string(), parse(top_name, top_yaml))]);
    for (k, v) in files {
        templates.insert(k.clone(), parse(k, v));
    }
    let mut checker = Checker {
        templates: &templates,
        files,
        errors: Vec::new(),
    };
    for t in templates.values() {
        checker.check_template(t);
    }
    let errors = checker.errors;
    (templates, errors)
}
