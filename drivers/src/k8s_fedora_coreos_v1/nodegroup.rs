//! Nodegroup stacks and upgrades of upstream's `FedoraKubernetesDriver` family
//! (`k8s_fedora_coreos_v1`, `k8s_fedora_atomic_v1`). A non-default nodegroup's stack is the
//! driver's `kubecluster.yaml` again with `is_cluster_stack=false` and no masters (as upstream):
//! only the worker ResourceGroup and its server group, joined to the cluster stack's network,
//! security group and first master.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::params;
use crate::driver::ClusterSpec;
use crate::error::DriverError;
use crate::heat_driver::ParamsFn;
use crate::nodegroup::{node_labels_arg, node_taints_arg, NodeGroupSpec, UpgradeSpec};
use crate::openstack::{CreateStack, Stack, UpdateStack};

/// What a driver of the family sends for a stack: its top-level template, the nested ones and
/// its parameter mapping.
pub(crate) struct StackParts {
    pub(crate) template: Value,
    pub(crate) files: BTreeMap<String, String>,
    pub(crate) params: ParamsFn,
}

/// A string output of the cluster stack (the first entry of a list output).
fn output_str<'a>(stack: &'a Stack, key: &str) -> Option<&'a str> {
    let v = stack.outputs.get(key)?;
    let s = match v {
        Value::Array(items) => items.iter().find_map(Value::as_str),
        other => other.as_str(),
    };
    s.map(str::trim).filter(|s| !s.is_empty())
}

pub(crate) fn stack_request(
    parts: StackParts,
    cluster: &ClusterSpec,
    ng: &NodeGroupSpec,
    cluster_stack: &Stack,
    stack_name: String,
) -> Result<CreateStack, DriverError> {
    let missing = |what: &str| {
        DriverError::InvalidInput(format!(
            "The cluster stack {} has no {what} output; nodegroups need a complete cluster.",
            cluster_stack.name
        ))
    };
    let master_ip = output_str(cluster_stack, "kube_masters_private")
        .ok_or_else(|| missing("kube_masters_private"))?;
    let secgroup = output_str(cluster_stack, "secgroup_kube_minion")
        .ok_or_else(|| missing("secgroup_kube_minion"))?;
    let network =
        output_str(cluster_stack, "fixed_network").ok_or_else(|| missing("fixed_network"))?;
    let subnet =
        output_str(cluster_stack, "fixed_subnet").ok_or_else(|| missing("fixed_subnet"))?;

    let mut spec = cluster.clone();
    spec.labels = ng.labels.clone();
    spec.node_count = ng.node_count;
    spec.master_count = 0;
    spec.min_node_count = Some(ng.min_node_count);
    spec.max_node_count = Some(ng.max_node_count.unwrap_or(ng.node_count.saturating_add(1)));
    spec.worker_nodegroup_name = ng.name.clone();
    if let Some(f) = &ng.flavor_id {
        spec.flavor_id = Some(f.clone());
    }
    if let Some(i) = &ng.image_id {
        spec.image_id = i.clone();
    }
    if ng.docker_volume_size.is_some() {
        spec.docker_volume_size = ng.docker_volume_size;
    }
    spec.fixed_network = Some(network.to_string());
    spec.fixed_subnet = Some(subnet.to_string());
    let mut p = (parts.params)(&spec)?;
    let mut set = |k: &str, v: Value| {
        p.insert(k.to_string(), v);
    };
    set("is_cluster_stack", json!(false));
    set("number_of_masters", json!(0));
    set("worker_role", json!(ng.role));
    set("existing_master_private_ip", json!(master_ip));
    set("existing_security_group", json!(secgroup));
    set("node_labels", json!(node_labels_arg(&ng.node_labels)));
    set("node_taints", json!(node_taints_arg(&ng.node_taints)));
    Ok(CreateStack {
        stack_name,
        template: parts.template,
        files: parts.files,
        environment_files: None,
        parameters: p,
        timeout_mins: params::create_timeout_mins(cluster),
        disable_rollback: true,
    })
}

/// Upstream's historical Heat upgrade: every version parameter to the new `kube_tag`, nodes
/// replaced `update_max_batch_size` at a time.
pub(crate) fn upgrade_request(up: &UpgradeSpec) -> Result<UpdateStack, DriverError> {
    let tag = up.kube_tag.trim();
    if tag.is_empty() {
        return Err(DriverError::InvalidInput(
            "The cluster template has no kube_tag label to upgrade to.".into(),
        ));
    }
    if up.max_batch_size == 0 {
        return Err(DriverError::InvalidInput(
            "max_batch_size must be at least 1.".into(),
        ));
    }
    let mut parameters = BTreeMap::new();
    for k in [
        "kube_tag",
        "kube_version",
        "master_kube_tag",
        "minion_kube_tag",
    ] {
        parameters.insert(k.to_string(), json!(tag));
    }
    parameters.insert("update_max_batch_size".into(), json!(up.max_batch_size));
    Ok(UpdateStack {
        parameters,
        disable_rollback: Some(true),
        ..UpdateStack::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodegroup::NodeTaint;
    use crate::Driver;
    use uuid::Uuid;

    fn cluster_stack() -> Stack {
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
        let d = super::super::K8sFedoraCoreosV1;
        assert!(d.supports_nodegroups());
        let req = d
            .nodegroup_stack_request(&super::super::tests::spec(), &ng(), &cluster_stack())
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
            .nodegroup_stack_request(&super::super::tests::spec(), &ng(), &incomplete)
            .is_err());
    }

    #[test]
    fn upgrade_sets_every_tag_and_the_batch_size() {
        let d = super::super::K8sFedoraCoreosV1;
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
}
