//! The nodegroup stack and upgrade PATCH of `k8s_fedora_coreos_v1` (the shared code is
//! `heat_driver::fedora_nodegroup`).

use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;

use super::tests::spec;
use super::K8sFedoraCoreosV1;
use crate::driver_tests::nodegroups::cluster_stack;
use crate::nodegroup::{NodeGroupSpec, NodeTaint, UpgradeSpec};
use crate::Driver;

fn ng() -> NodeGroupSpec {
    NodeGroupSpec {
        uuid: Uuid::parse_str("5d12f6fd-a196-4bf0-ae4c-1f639a523a52").unwrap(),
        name: "gpu_workers".into(),
        role: "gpu".into(),
        node_count: 2,
        min_node_count: 1,
        max_node_count: Some(5),
        flavor_id: Some("g1.large".into()),
        labels: BTreeMap::from([("kube_tag".into(), "v1.28.9".into())]),
        node_labels: BTreeMap::from([("zone".into(), "a".into())]),
        node_taints: vec![NodeTaint {
            key: "gpu".into(),
            value: None,
            effect: "NoSchedule".into(),
        }],
        ..NodeGroupSpec::default()
    }
}

#[test]
fn nodegroup_stack_joins_the_cluster_stack() {
    let d = K8sFedoraCoreosV1;
    assert!(d.supports_nodegroups());
    let req = d
        .nodegroup_stack_request(&spec(), &ng(), &cluster_stack())
        .unwrap();
    assert_eq!(req.stack_name, "prod-gpu-worke-d4fuhtcddl3u");
    let p = &req.parameters;
    for (k, v) in [
        ("is_cluster_stack", json!(false)),
        ("number_of_masters", json!(0)),
        ("number_of_minions", json!(2)),
        ("minion_flavor", json!("g1.large")),
        ("worker_role", json!("gpu")),
        ("worker_nodegroup_name", json!("gpu_workers")),
        ("existing_master_private_ip", json!("10.0.0.5")),
        ("existing_security_group", json!("sg-1")),
        ("fixed_network", json!("net-1")),
        ("fixed_subnet", json!("sub-1")),
        ("min_node_count", json!(1)),
        ("max_node_count", json!(5)),
        ("node_labels", json!("zone=a")),
        ("node_taints", json!("gpu:NoSchedule")),
        ("kube_tag", json!("v1.28.9")),
    ] {
        assert_eq!(p.get(k), Some(&v), "{k}");
    }
    let mut incomplete = cluster_stack();
    incomplete.outputs.remove("secgroup_kube_minion");
    assert!(d
        .nodegroup_stack_request(&spec(), &ng(), &incomplete)
        .is_err());
}

#[test]
fn upgrade_sets_every_tag_and_the_batch_size() {
    let d = K8sFedoraCoreosV1;
    assert!(d.supports_upgrade());
    let r = d
        .upgrade_request(&UpgradeSpec {
            kube_tag: "v1.29.1".into(),
            max_batch_size: 2,
        })
        .unwrap();
    for k in [
        "kube_tag",
        "kube_version",
        "master_kube_tag",
        "minion_kube_tag",
    ] {
        assert_eq!(r.parameters[k], json!("v1.29.1"));
    }
    assert_eq!(r.parameters["update_max_batch_size"], json!(2));
    assert!(d
        .upgrade_request(&UpgradeSpec {
            kube_tag: String::new(),
            max_batch_size: 1
        })
        .is_err());
}
