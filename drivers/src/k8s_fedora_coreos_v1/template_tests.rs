//! A small HOT checker: the templates parse, stay within the HOT subset our Heat simulator supports,
//! and every reference resolves (parameters, conditions, resources, nested templates and their
//! properties/outputs). Also checks that the parameters the driver sends are declared, well-typed and
//! within their constraints.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::params::{Kind, DERIVED_LABEL_PARAMS, LABEL_PARAMS};
use super::*;

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
];
const PARAM_TYPES: &[&str] = &[
    "string",
    "number",
    "boolean",
    "comma_delimited_list",
    "json",
];

#[derive(Debug)]
struct Param {
    kind: String,
    default: Option<Value>,
    constraints: Vec<Value>,
}

#[derive(Debug)]
struct Template {
    name: String,
    params: BTreeMap<String, Param>,
    conditions: BTreeSet<String>,
    resources: BTreeMap<String, Value>,
    outputs: BTreeMap<String, Value>,
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn subset(what: &str, actual: &BTreeSet<String>, allowed: &[&str], errors: &mut Vec<String>) {
    for k in actual {
        if !allowed.contains(&k.as_str()) {
            errors.push(format!("{what}: key {k:?} is outside the supported subset"));
        }
    }
}

fn parse(name: &str, yaml: &str) -> Template {
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
fn check_value(kind: &str, constraints: &[Value], v: &Value) -> Result<(), String> {
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

struct Checker<'a> {
    templates: &'a BTreeMap<String, Template>,
    files: &'a BTreeMap<String, String>,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn check_template(&mut self, t: &Template) {
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

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

fn parsed() -> BTreeMap<String, Template> {
    BTreeMap::from([
        (
            "kubecluster.yaml".to_string(),
            parse("kubecluster.yaml", KUBECLUSTER_YAML),
        ),
        (
            KUBEMASTER_FILE.to_string(),
            parse(KUBEMASTER_FILE, KUBEMASTER_YAML),
        ),
        (
            KUBEMINION_FILE.to_string(),
            parse(KUBEMINION_FILE, KUBEMINION_YAML),
        ),
    ])
}

#[test]
fn templates_are_consistent_and_within_the_supported_subset() {
    let templates = parsed();
    let files = template_files();
    let mut checker = Checker {
        templates: &templates,
        files: &files,
        errors: Vec::new(),
    };
    for t in templates.values() {
        checker.check_template(t);
    }
    assert!(checker.errors.is_empty(), "{:#?}", checker.errors);
}

#[test]
fn the_checker_catches_mistakes() {
    let bad = r#"
heat_template_version: queens
parameters:
  a: {type: string}
resources:
  r:
    type: OS::Nova::Server
    condition: nope
    properties:
      name: {get_param: b}
      image: {yaql: {expression: "1"}}
  g:
    type: OS::Heat::ResourceGroup
    properties:
      count: 1
      resource_def:
        type: missing.yaml
outputs:
  o: {value: {get_attr: [nothing, x]}}
"#;
    let templates = BTreeMap::from([("bad.yaml".to_string(), parse("bad.yaml", bad))]);
    let files = BTreeMap::new();
    let mut checker = Checker {
        templates: &templates,
        files: &files,
        errors: Vec::new(),
    };
    checker.check_template(&templates["bad.yaml"]);
    let all = checker.errors.join("\n");
    for needle in [
        "unknown condition",
        "undeclared parameter",
        "unsupported function yaql",
        "neither supported nor in files",
        "unknown resource",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in {all}");
    }
}

#[test]
fn driver_parameters_are_declared_typed_and_complete() {
    let templates = parsed();
    let top = &templates["kubecluster.yaml"];
    let mut specs = vec![tests::spec()];
    let mut other = tests::spec();
    other.tls_disabled = true;
    other.floating_ip_enabled = false;
    other.network_driver = Some("calico".into());
    other.fixed_network = Some("n".into());
    other.fixed_subnet = Some("s".into());
    other.kube_service_account_key = Some("pub".into());
    other.kube_service_account_private_key = Some("priv".into());
    other.openstack_ca = Some("ca".into());
    other.discovery_url = Some("https://discovery.etcd.io/x".into());
    other.http_proxy = Some("http://proxy:3128".into());
    other.https_proxy = Some("http://proxy:3128".into());
    other.insecure_registry = Some("reg:5000".into());
    other.volume_driver = Some("cinder".into());
    other.docker_storage_driver = Some("overlay2".into());
    other.ssh_public_key = Some("ssh-ed25519 AAAA".into());
    for (label, kind) in LABEL_PARAMS {
        let value = match kind {
            Kind::Str => match *label {
                "flannel_backend" => "host-gw",
                "container_runtime" => "containerd",
                _ => "x",
            },
            Kind::Number => "3",
            Kind::Bool => "false",
        };
        other.labels.insert(label.to_string(), value.to_string());
    }
    other
        .labels
        .insert("ingress_controller".into(), "nginx".into());
    other
        .labels
        .insert("service_cluster_ip_range".into(), "10.96.0.0/12".into());
    specs.push(other);

    for spec in specs {
        let req = K8sFedoraCoreosV1.create_stack_request(&spec).unwrap();
        for (name, value) in &req.parameters {
            let Some(p) = top.params.get(name) else {
                panic!("parameter {name} is not declared in kubecluster.yaml")
            };
            if let Err(e) = check_value(&p.kind, &p.constraints, value) {
                panic!("parameter {name} = {value}: {e}");
            }
        }
        for (name, p) in &top.params {
            assert!(
                p.default.is_some() || req.parameters.contains_key(name),
                "required parameter {name} not sent"
            );
        }
    }
    for (label, kind) in LABEL_PARAMS.iter().chain(DERIVED_LABEL_PARAMS) {
        let p = top
            .params
            .get(*label)
            .unwrap_or_else(|| panic!("label parameter {label} not declared"));
        let expected = match kind {
            Kind::Str => "string",
            Kind::Number => "number",
            Kind::Bool => "boolean",
        };
        assert_eq!(p.kind, expected, "type of {label}");
    }
}

#[test]
fn outputs_the_driver_reads_exist() {
    let templates = parsed();
    let top = &templates["kubecluster.yaml"];
    for o in [
        "api_address",
        "kube_masters",
        "kube_masters_private",
        "kube_minions",
        "kube_minions_private",
    ] {
        assert!(top.outputs.contains_key(o), "output {o}");
    }
    for p in [
        "number_of_masters",
        "number_of_minions",
        "kube_version",
        "minions_to_remove",
    ] {
        assert!(top.params.contains_key(p), "parameter {p}");
    }
    for (file, prefix) in [
        (KUBEMASTER_FILE, "kube_master"),
        (KUBEMINION_FILE, "kube_minion"),
    ] {
        let t = &templates[file];
        for o in [
            format!("{prefix}_ip"),
            format!("{prefix}_external_ip"),
            "OS::stack_id".to_string(),
        ] {
            assert!(t.outputs.contains_key(&o), "{file} output {o}");
        }
    }
    let minions = &top.resources["kube_minions"]["properties"];
    assert_eq!(
        minions["removal_policies"],
        serde_json::json!([{"resource_list": {"get_param": "minions_to_remove"}}])
    );
}
