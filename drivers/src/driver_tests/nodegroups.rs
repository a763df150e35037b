//! Which drivers have nodegroup stacks, upgrades and CA rotation (upstream: only the
//! `FedoraKubernetesDriver` family, CA rotation only on fedora-coreos), and the nodegroup stack
//! and upgrade PATCH of `k8s_fedora_atomic_v1` against its own templates.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use uuid::Uuid;

use super::{parsed, spec};
use crate::heat_driver::HeatDriver;
use crate::hot_check::check_value;
use crate::openstack::Stack;
use crate::{Driver, NodeGroupSpec, UpgradeSpec};

const ATOMIC: &HeatDriver = &crate::k8s_fedora_atomic_v1::DRIVER;

/// `(driver, nodegroups, upgrade, CA rotation refusal)` as upstream's driver classes give them.
const MATRIX: &[(&str, bool, bool, Option<&str>)] = &[
    ("k8s_fedora_coreos_v1", true, true, None),
    (
        "k8s_fedora_atomic_v1",
        true,
        true,
        Some("Rotating the CA certificate is not supported for cluster with cluster_distro: fedora-atomic."),
    ),
    ("k8s_coreos_v1", false, false, Some(BASE_CA)),
    ("k8s_fedora_ironic_v1", false, false, Some(BASE_CA)),
    ("swarm_fedora_atomic_v1", false, false, Some(BASE_CA)),
    ("swarm_fedora_atomic_v2", false, false, Some(BASE_CA)),
    ("mesos_ubuntu_v1", false, false, Some(BASE_CA)),
    ("dcos_centos_v1", false, false, Some(BASE_CA)),
    ("heat_test_v1", false, false, Some(BASE_CA)),
];

const BASE_CA: &str = "'rotate_ca_certificate' is not supported by this driver.";

/// A finished cluster stack with the outputs a nodegroup stack joins (shared with the
/// `k8s_fedora_coreos_v1` nodegroup tests).
pub(crate) fn cluster_stack() -> Stack {
    Stack {
        id: "cid".into(),
        name: "prod-abc".into(),
        status: "CREATE_COMPLETE".into(),
        status_reason: String::new(),
        parameters: BTreeMap::new(),
        output_errors: BTreeMap::new(),
        creation_time: None,
        updated_time: None,
        timeout_mins: None,
        disable_rollback: None,
        outputs: BTreeMap::from([
            ("kube_masters_private".into(), json!(["10.0.0.5"])),
            ("secgroup_kube_minion".into(), json!("sg-1")),
            ("fixed_network".into(), json!("net-1")),
            ("fixed_subnet".into(), json!("sub-1")),
        ]),
    }
}

fn ng() -> NodeGroupSpec {
    NodeGroupSpec {
        uuid: Uuid::parse_str("5d12f6fd-a196-4bf0-ae4c-1f639a523a52").unwrap(),
        name: "big".into(),
        role: "worker".into(),
        node_count: 2,
        min_node_count: 1,
        max_node_count: Some(4),
        flavor_id: Some("m1.large".into()),
        docker_volume_size: Some(7),
        node_labels: BTreeMap::from([("zone".into(), "b".into())]),
        ..NodeGroupSpec::default()
    }
}

#[test]
fn only_the_fedora_kubernetes_family_has_nodegroups_and_upgrades() {
    assert_eq!(crate::all_drivers().len(), MATRIX.len());
    let stack = cluster_stack();
    let up = UpgradeSpec {
        kube_tag: "v1.29.1".into(),
        max_batch_size: 1,
    };
    for (name, nodegroups, upgrade, ca) in MATRIX {
        let d = crate::driver_by_name(name).unwrap();
        assert_eq!(d.supports_nodegroups(), *nodegroups, "{name}");
        assert_eq!(d.supports_upgrade(), *upgrade, "{name}");
        let rotation = d.check_ca_rotation().err().map(|e| e.to_string());
        assert_eq!(rotation.as_deref(), *ca, "{name}");
        if !nodegroups {
            let e = d.nodegroup_stack_request(&spec(ATOMIC), &ng(), &stack);
            assert_eq!(
                e.unwrap_err().to_string(),
                format!("The {name} driver does not support nodegroups.")
            );
        }
        if !upgrade {
            assert_eq!(
                d.upgrade_request(&up).unwrap_err().to_string(),
                format!("Upgrading a cluster that uses the {name} driver is not supported.")
            );
        }
    }
}

#[test]
fn atomic_nodegroup_stack_is_its_own_template_joined_to_the_cluster_stack() {
    let req = ATOMIC
        .nodegroup_stack_request(&spec(ATOMIC), &ng(), &cluster_stack())
        .unwrap();
    assert_eq!(req.stack_name, "prod-big-d4fuhtcddl3u");
    // Atomic's own member templates (SoftwareConfig user data), not coreos's.
    assert_eq!(req.files, ATOMIC.template_files());
    assert!(req.files["kubeminion.yaml"].contains("OS::Heat::SoftwareConfig"));
    assert_eq!(
        req.template,
        ATOMIC.create_stack_request(&spec(ATOMIC)).unwrap().template
    );
    let p = &req.parameters;
    for (k, v) in [
        ("is_cluster_stack", json!(false)),
        ("number_of_masters", json!(0)),
        ("number_of_minions", json!(2)),
        ("minion_flavor", json!("m1.large")),
        ("docker_volume_size", json!(7)),
        ("worker_nodegroup_name", json!("big")),
        ("existing_master_private_ip", json!("10.0.0.5")),
        ("existing_security_group", json!("sg-1")),
        ("fixed_network", json!("net-1")),
        ("fixed_subnet", json!("sub-1")),
        ("min_node_count", json!(1)),
        ("max_node_count", json!(4)),
        ("node_labels", json!("zone=b")),
        ("node_taints", json!("")),
    ] {
        assert_eq!(p.get(k), Some(&v), "{k}");
    }
    let templates = parsed(ATOMIC);
    let top = &templates[ATOMIC.top_name];
    for (name, value) in p {
        let decl = top
            .params
            .get(name)
            .unwrap_or_else(|| panic!("parameter {name} not declared"));
        check_value(&decl.kind, &decl.constraints, value)
            .unwrap_or_else(|e| panic!("parameter {name} = {value}: {e}"));
    }
    let mut incomplete = cluster_stack();
    incomplete.outputs.remove("fixed_subnet");
    assert!(ATOMIC
        .nodegroup_stack_request(&spec(ATOMIC), &ng(), &incomplete)
        .is_err());
}

#[test]
fn atomic_cluster_stack_has_the_outputs_a_nodegroup_joins() {
    let templates = parsed(ATOMIC);
    let top = &templates[ATOMIC.top_name];
    for o in [
        "kube_masters_private",
        "secgroup_kube_minion",
        "fixed_network",
        "fixed_subnet",
    ] {
        assert!(top.outputs.contains_key(o), "output {o}");
    }
}

#[test]
fn atomic_upgrade_patches_declared_tags_and_batch_size() {
    let r = ATOMIC
        .upgrade_request(&UpgradeSpec {
            kube_tag: "v1.29.1".into(),
            max_batch_size: 3,
        })
        .unwrap();
    let templates = parsed(ATOMIC);
    let top = &templates[ATOMIC.top_name];
    let want: BTreeMap<String, Value> = [
        ("kube_tag", json!("v1.29.1")),
        ("kube_version", json!("v1.29.1")),
        ("master_kube_tag", json!("v1.29.1")),
        ("minion_kube_tag", json!("v1.29.1")),
        ("update_max_batch_size", json!(3)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(r.parameters, want);
    for k in want.keys() {
        assert!(top.params.contains_key(k), "parameter {k} not declared");
    }
    assert_eq!(r.disable_rollback, Some(true));
    assert!(ATOMIC
        .upgrade_request(&UpgradeSpec {
            kube_tag: " ".into(),
            max_batch_size: 1,
        })
        .is_err());
}
