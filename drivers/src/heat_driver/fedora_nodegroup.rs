//! Nodegroup stacks and upgrades of upstream's `FedoraKubernetesDriver` family
//! (`k8s_fedora_coreos_v1`, `k8s_fedora_atomic_v1`). A non-default nodegroup's stack is the
//! driver's `kubecluster.yaml` again with `is_cluster_stack=false` and no masters (as upstream):
//! only the worker ResourceGroup and its server group, joined to the cluster stack's network,
//! security group and first master. Each driver passes its own templates and parameter mapping
//! ([`StackParts`]), so this layer knows no particular driver.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{params, ParamsFn};
use crate::driver::ClusterSpec;
use crate::error::DriverError;
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
