//! The k8s_fedora_coreos_v1 templates against the HOT checker in [`crate::hot_check`], and the
//! parameters the driver sends against the templates' declarations.

use std::collections::BTreeMap;

use super::params::{Kind, DERIVED_LABEL_PARAMS, LABEL_PARAMS};
use super::*;
use crate::hot_check::{check_value, parse, Checker, Template};

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
