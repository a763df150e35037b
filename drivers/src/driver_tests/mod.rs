//! Every table-driven driver: its templates pass the HOT checker, the parameters it sends are
//! declared, typed and complete, the names its mappings read exist, and the mappings give the
//! right shapes. These tests name the specific drivers, so they live above `heat_driver/`.

pub(crate) mod nodegroups;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::driver::{ClusterSpec, Driver, OutputOptions, ScaleSpec, Trustee};
use crate::heat_driver::params::Kind;
use crate::heat_driver::HeatDriver;
use crate::hot_check::{check_set, check_value, Template};
use crate::openstack::Stack;

/// Each driver with the labels it passes through.
fn drivers() -> Vec<(&'static HeatDriver, &'static [(&'static str, Kind)])> {
    let k8s = crate::k8s_fedora_coreos_v1::params::LABEL_PARAMS;
    vec![
        (&crate::k8s_fedora_atomic_v1::DRIVER, k8s),
        (&crate::k8s_coreos_v1::DRIVER, k8s),
        (&crate::k8s_fedora_ironic_v1::DRIVER, k8s),
        (
            &crate::swarm_fedora_atomic_v1::DRIVER,
            crate::swarm_fedora_atomic_v1::LABEL_PARAMS,
        ),
        (
            &crate::swarm_fedora_atomic_v2::DRIVER,
            crate::swarm_fedora_atomic_v2::LABEL_PARAMS,
        ),
        (
            &crate::mesos_ubuntu_v1::DRIVER,
            crate::mesos_ubuntu_v1::LABEL_PARAMS,
        ),
        (
            &crate::dcos_centos_v1::DRIVER,
            crate::dcos_centos_v1::LABEL_PARAMS,
        ),
    ]
}

fn spec(d: &HeatDriver) -> ClusterSpec {
    let key = d.provides[0];
    ClusterSpec {
        cluster_uuid: Uuid::parse_str("5d12f6fd-a196-4bf0-ae4c-1f639a523a52").unwrap(),
        name: "prod".into(),
        project_id: "p1".into(),
        username: Some("alice".into()),
        coe: key.coe.into(),
        server_type: key.server_type.into(),
        cluster_distro: key.os_distro.into(),
        image_id: "img-1".into(),
        flavor_id: Some("m1.medium".into()),
        master_flavor_id: Some("m1.large".into()),
        keypair: Some("kp".into()),
        external_network_id: Some("ext-net-id".into()),
        dns_nameserver: Some("1.1.1.1".into()),
        node_count: 3,
        master_count: 3,
        magnum_url: "http://magnum:9511/v1".into(),
        auth_url: "http://keystone/identity/v3/".into(),
        region_name: Some("RegionOne".into()),
        trustee: Some(Trustee {
            domain_id: "d".into(),
            user_id: "tu".into(),
            username: "u".into(),
            password: "pw".into(),
            trust_id: String::new(),
        }),
        ..ClusterSpec::default()
    }
}

/// A spec that sets every optional input, and every label the driver passes through.
fn full_spec(d: &HeatDriver, labels: &[(&str, Kind)]) -> ClusterSpec {
    let mut s = spec(d);
    s.tls_disabled = true;
    s.floating_ip_enabled = false;
    s.fixed_network = Some("net".into());
    s.fixed_subnet = Some("sub".into());
    s.fixed_subnet_cidr = Some("192.168.0.0/24".into());
    s.http_proxy = Some("http://proxy:3128".into());
    s.https_proxy = Some("http://proxy:3128".into());
    s.no_proxy = Some("localhost".into());
    s.docker_volume_size = Some(5);
    s.docker_storage_driver = Some("overlay2".into());
    s.discovery_url = Some("https://discovery.etcd.io/x".into());
    s.openstack_ca = Some("ca".into());
    s.registry_enabled = true;
    s.master_count = 1;
    for (label, kind) in labels {
        let v = match (*label, kind) {
            ("flannel_backend", _) => "host-gw",
            ("container_runtime", _) => "containerd",
            ("exhibitor_storage_backend", _) => "zookeeper",
            ("dcos_overlay_enable", _) => "false",
            ("swarm_strategy", _) => "binpack",
            (_, Kind::Str) => "x",
            (_, Kind::Number) => "3",
            (_, Kind::Bool) => "true",
        };
        s.labels.insert(label.to_string(), v.to_string());
    }
    s
}

fn parsed(d: &HeatDriver) -> BTreeMap<String, Template> {
    let (templates, errors) = check_set(d.top_name, d.top_yaml, &d.template_files());
    assert!(errors.is_empty(), "{}: {errors:#?}", d.name);
    templates
}

#[test]
fn templates_are_consistent_and_within_the_supported_subset() {
    for (d, _) in drivers() {
        let t = parsed(d);
        assert_eq!(t.len(), 1 + d.files.len(), "{}", d.name);
    }
}

#[test]
fn parameters_are_declared_typed_and_complete() {
    for (d, labels) in drivers() {
        let templates = parsed(d);
        let top = &templates[d.top_name];
        for s in [spec(d), full_spec(d, labels)] {
            let req = d.create_stack_request(&s).unwrap();
            assert_eq!(req.template["heat_template_version"], "queens");
            for (name, value) in &req.parameters {
                let p = top
                    .params
                    .get(name)
                    .unwrap_or_else(|| panic!("{}: parameter {name} not declared", d.name));
                if let Err(e) = check_value(&p.kind, &p.constraints, value) {
                    panic!("{}: parameter {name} = {value}: {e}", d.name);
                }
            }
            for (name, p) in &top.params {
                assert!(
                    p.default.is_some() || req.parameters.contains_key(name),
                    "{}: required parameter {name} not sent",
                    d.name
                );
            }
        }
        let full = d.create_stack_request(&full_spec(d, labels)).unwrap();
        for (label, kind) in labels {
            let expected = match kind {
                Kind::Str => "string",
                Kind::Number => "number",
                Kind::Bool => "boolean",
            };
            assert_eq!(top.params[*label].kind, expected, "{}: {label}", d.name);
            assert!(full.parameters.contains_key(*label), "{}: {label}", d.name);
        }
    }
}

#[test]
fn names_the_mappings_read_exist() {
    for (d, _) in drivers() {
        let templates = parsed(d);
        let top = &templates[d.top_name];
        for o in d.outputs.output_names() {
            assert!(top.outputs.contains_key(o), "{}: output {o}", d.name);
        }
        let o = &d.outputs;
        for p in [o.master_count_param, o.node_count_param, d.remove_param]
            .into_iter()
            .chain(o.coe_version_param)
        {
            assert!(top.params.contains_key(p), "{}: parameter {p}", d.name);
        }
        // The worker group removes the members the remove parameter names.
        let policy = json!([{"resource_list": {"get_param": d.remove_param}}]);
        assert!(
            top.resources
                .values()
                .any(|r| r["properties"]["removal_policies"] == policy),
            "{}: no group removes by {}",
            d.name,
            d.remove_param
        );
        let sent = d.create_stack_request(&spec(d)).unwrap().parameters;
        assert_eq!(sent[o.node_count_param], json!(3), "{}", d.name);
        assert_eq!(sent[o.master_count_param], json!(3), "{}", d.name);
    }
}

fn stack(outputs: Value, params: &[(&str, &str)]) -> Stack {
    Stack {
        id: "id".into(),
        name: "n".into(),
        status: "CREATE_COMPLETE".into(),
        status_reason: String::new(),
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        outputs: serde_json::from_value(outputs).unwrap(),
        output_errors: BTreeMap::new(),
        creation_time: None,
        updated_time: None,
        timeout_mins: None,
        disable_rollback: None,
    }
}

#[test]
fn api_address_shape_per_coe() {
    let expect = [
        (
            "k8s_fedora_atomic_v1",
            "https://172.24.4.10:6443",
            "http://172.24.4.10:8080",
        ),
        (
            "k8s_coreos_v1",
            "https://172.24.4.10:6443",
            "http://172.24.4.10:8080",
        ),
        (
            "k8s_fedora_ironic_v1",
            "https://172.24.4.10:6443",
            "http://172.24.4.10:8080",
        ),
        (
            "swarm_fedora_atomic_v1",
            "tcp://172.24.4.10:2376",
            "tcp://172.24.4.10:2376",
        ),
        (
            "swarm_fedora_atomic_v2",
            "tcp://172.24.4.10:2375",
            "tcp://172.24.4.10:2375",
        ),
        (
            "mesos_ubuntu_v1",
            "http://172.24.4.10:5050",
            "http://172.24.4.10:5050",
        ),
        (
            "dcos_centos_v1",
            "https://172.24.4.10:443",
            "https://172.24.4.10:443",
        ),
    ];
    for (d, _) in drivers() {
        let (_, tls, plain) = expect.iter().find(|e| e.0 == d.name).unwrap();
        let s = stack(json!({"api_address": "172.24.4.10"}), &[]);
        for (tls_disabled, want) in [(false, tls), (true, plain)] {
            let o = d.map_outputs(
                &OutputOptions {
                    tls_disabled,
                    floating_ip_enabled: true,
                },
                &s,
            );
            assert_eq!(o.api_address.as_deref(), Some(*want), "{}", d.name);
        }
    }
}

#[test]
fn addresses_counts_and_versions_are_read_by_driver_names() {
    let d = &crate::swarm_fedora_atomic_v2::DRIVER;
    let s = stack(
        json!({
            "api_address": "172.24.4.10",
            "swarm_primary_master": ["172.24.4.10"],
            "swarm_secondary_masters": ["172.24.4.11", null],
            "swarm_primary_master_private": ["10.0.0.3"],
            "swarm_secondary_masters_private": ["10.0.0.4", "10.0.0.5"],
            "swarm_nodes": ["172.24.4.12"],
            "swarm_nodes_private": ["10.0.0.6"],
        }),
        &[("number_of_masters", "3"), ("number_of_nodes", "1.0")],
    );
    let public = d.map_outputs(
        &OutputOptions {
            tls_disabled: false,
            floating_ip_enabled: true,
        },
        &s,
    );
    assert_eq!(public.master_addresses, vec!["172.24.4.10", "172.24.4.11"]);
    assert_eq!(public.node_addresses, vec!["172.24.4.12"]);
    assert_eq!(public.master_count, Some(3));
    assert_eq!(public.node_count, Some(1));
    assert_eq!(public.coe_version, None);
    let private = d.map_outputs(
        &OutputOptions {
            tls_disabled: false,
            floating_ip_enabled: false,
        },
        &s,
    );
    assert_eq!(
        private.master_addresses,
        vec!["10.0.0.3", "10.0.0.4", "10.0.0.5"]
    );
    assert_eq!(private.node_addresses, vec!["10.0.0.6"]);

    let v1 = &crate::swarm_fedora_atomic_v1::DRIVER;
    let s = stack(
        json!({"swarm_masters": ["172.24.4.20"], "swarm_nodes": []}),
        &[("number_of_nodes", "2"), ("swarm_version", "1.2.5")],
    );
    let o = v1.map_outputs(
        &OutputOptions {
            tls_disabled: false,
            floating_ip_enabled: true,
        },
        &s,
    );
    assert_eq!(o.api_address, None);
    assert_eq!(o.master_addresses, vec!["172.24.4.20"]);
    assert_eq!(o.node_count, Some(2));
    assert_eq!(o.coe_version.as_deref(), Some("1.2.5"));

    let mesos = &crate::mesos_ubuntu_v1::DRIVER;
    let s = stack(
        json!({"mesos_master_private": ["10.0.0.3"], "mesos_slaves_private": ["10.0.0.4", "10.0.0.5"]}),
        &[("number_of_slaves", "2")],
    );
    let o = mesos.map_outputs(
        &OutputOptions {
            tls_disabled: false,
            floating_ip_enabled: false,
        },
        &s,
    );
    assert_eq!(o.master_addresses, vec!["10.0.0.3"]);
    assert_eq!(o.node_addresses, vec!["10.0.0.4", "10.0.0.5"]);
    assert_eq!(o.node_count, Some(2));
}

#[test]
fn scale_requests_use_the_drivers_names() {
    for (d, _) in drivers() {
        let u = d.scale_request(&ScaleSpec {
            node_count: 4,
            nodes_to_remove: vec!["srv-1".into()],
            rollback: false,
        });
        let mut want = serde_json::Map::new();
        want.insert(d.outputs.node_count_param.into(), json!(4));
        want.insert(d.remove_param.into(), json!(["srv-1"]));
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"parameters": want, "disable_rollback": true}),
            "{}",
            d.name
        );
    }
}

#[test]
fn driver_specific_parameters() {
    let sent = |d: &HeatDriver, s: &ClusterSpec| d.create_stack_request(s).unwrap().parameters;
    let v2 = &crate::swarm_fedora_atomic_v2::DRIVER;
    let p = sent(v2, &spec(v2));
    assert_eq!(p["number_of_secondary_masters"], json!(2));
    assert_eq!(p["node_image"], json!("img-1"));
    assert_eq!(p["node_flavor"], json!("m1.medium"));
    assert_eq!(p["master_flavor"], json!("m1.large"));

    let v1 = &crate::swarm_fedora_atomic_v1::DRIVER;
    let p = sent(v1, &spec(v1));
    assert_eq!(p["network_driver"], json!("docker"));
    assert_eq!(p["fixed_network_cidr"], json!("10.0.0.0/24"));
    assert_eq!(p["auth_url"], json!("http://keystone/identity/v3"));
    let mut s = full_spec(v1, crate::swarm_fedora_atomic_v1::LABEL_PARAMS);
    s.network_driver = Some("flannel".into());
    let p = sent(v1, &s);
    assert_eq!(p["network_driver"], json!("flannel"));
    assert_eq!(p["flannel_network_subnetlen"], json!(3));
    assert_eq!(p["rexray_preempt"], json!(true));
    assert_eq!(p["no_proxy"], json!("localhost,192.168.0.0/24"));
    assert_eq!(p["fixed_network"], json!("net"));

    let mesos = &crate::mesos_ubuntu_v1::DRIVER;
    let p = sent(mesos, &spec(mesos));
    assert_eq!(p["number_of_slaves"], json!(3));
    assert_eq!(p["slave_flavor"], json!("m1.medium"));
    assert_eq!(p["cluster_name"], json!("prod"));
    assert_eq!(p["tenant_name"], json!("p1"));
    assert_eq!(p["username"], json!("alice"));
    assert!(!p.contains_key("tls_disabled"));

    let ironic = &crate::k8s_fedora_ironic_v1::DRIVER;
    let p = sent(ironic, &spec(ironic));
    assert_eq!(p["number_of_minions"], json!(3));
    assert_eq!(p["kubernetes_port"], json!(6443));
}

#[test]
fn bad_inputs_are_user_readable() {
    for (d, _) in drivers() {
        let mut s = spec(d);
        s.external_network_id = None;
        let e = d.create_stack_request(&s).unwrap_err();
        assert!(e.is_permanent());
        assert!(e.to_string().contains(d.name), "{e}");
        let mut s = spec(d);
        s.master_count = 2;
        assert!(d.create_stack_request(&s).is_err(), "{}", d.name);
    }
    let d = &crate::swarm_fedora_atomic_v1::DRIVER;
    let mut s = spec(d);
    s.labels.insert("rexray_preempt".into(), "maybe".into());
    assert_eq!(
        d.create_stack_request(&s).unwrap_err().to_string(),
        "Label rexray_preempt must be a boolean, got \"maybe\"."
    );
}
