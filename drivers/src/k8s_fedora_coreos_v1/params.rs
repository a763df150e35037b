//! Cluster → `kubecluster.yaml` parameters (upstream `K8sFedoraTemplateDefinition.get_params`,
//! reduced to the parameters our templates declare).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::driver::ClusterSpec;
use crate::error::DriverError;

pub use crate::heat_driver::params::DEFAULT_CREATE_TIMEOUT_MINS;
pub(crate) use crate::heat_driver::params::{create_timeout_mins, Kind};
use crate::heat_driver::params::{label_value, non_empty};
/// `fixed_subnet_cidr` when neither an existing subnet nor the label gives one.
pub const DEFAULT_FIXED_SUBNET_CIDR: &str = "10.0.0.0/24";
/// `pods_network_cidr` when no label gives one.
pub const DEFAULT_PODS_NETWORK_CIDR: &str = "10.100.0.0/16";
/// `network_driver` when the template has none.
pub const DEFAULT_NETWORK_DRIVER: &str = "flannel";

/// Labels passed through unchanged to the parameter of the same name. Labels not listed here (and
/// not handled specially below) are not sent: Heat rejects parameters a template does not declare.
pub(crate) const LABEL_PARAMS: &[(&str, Kind)] = &[
    ("auto_healing_enabled", Kind::Bool),
    ("auto_scaling_enabled", Kind::Bool),
    ("availability_zone", Kind::Str),
    ("boot_volume_size", Kind::Number),
    ("boot_volume_type", Kind::Str),
    ("cinder_csi_enabled", Kind::Bool),
    ("cloud_provider_enabled", Kind::Bool),
    ("container_infra_prefix", Kind::Str),
    ("container_runtime", Kind::Str),
    ("docker_volume_type", Kind::Str),
    ("etcd_tag", Kind::Str),
    ("etcd_volume_size", Kind::Number),
    ("flannel_backend", Kind::Str),
    ("keystone_auth_enabled", Kind::Bool),
    ("kubelet_options", Kind::Str),
];

/// Parameters set from labels by special rules (listed so tests can check they are declared).
#[cfg(test)]
pub(crate) const DERIVED_LABEL_PARAMS: &[(&str, Kind)] = &[
    ("kube_tag", Kind::Str),
    ("kube_version", Kind::Str),
    ("master_kube_tag", Kind::Str),
    ("minion_kube_tag", Kind::Str),
    ("portal_network_cidr", Kind::Str),
    ("pods_network_cidr", Kind::Str),
    ("fixed_subnet_cidr", Kind::Str),
    ("min_node_count", Kind::Number),
    ("max_node_count", Kind::Number),
    ("ingress_controller", Kind::Str),
];

fn label_count(spec: &ClusterSpec, label: &str) -> Result<Option<u32>, DriverError> {
    match spec.labels.get(label) {
        None => Ok(None),
        Some(raw) => raw.trim().parse::<u32>().map(Some).map_err(|_| {
            DriverError::InvalidInput(format!(
                "Label {label} must be a non-negative integer, got {raw:?}."
            ))
        }),
    }
}

/// Builds the stack parameters of a new cluster stack.
pub(crate) fn cluster_parameters(
    spec: &ClusterSpec,
) -> Result<BTreeMap<String, Value>, DriverError> {
    cluster_parameters_for(spec, super::NAME)
}

/// The same for another Kubernetes driver whose templates declare the same parameters.
pub(crate) fn cluster_parameters_for(
    spec: &ClusterSpec,
    driver: &str,
) -> Result<BTreeMap<String, Value>, DriverError> {
    let external_network = crate::heat_driver::params::required(spec, driver)?;

    let mut p: BTreeMap<String, Value> = BTreeMap::new();
    let mut set = |k: &str, v: Value| {
        p.insert(k.to_string(), v);
    };

    // Stack role and identity.
    set("is_cluster_stack", json!(true));
    set("master_role", json!("master"));
    set("worker_role", json!("worker"));
    set("master_nodegroup_name", json!(spec.master_nodegroup_name));
    set("worker_nodegroup_name", json!(spec.worker_nodegroup_name));
    set("cluster_uuid", json!(spec.cluster_uuid.to_string()));
    set("magnum_url", json!(spec.magnum_url));
    set("auth_url", json!(spec.auth_url.trim_end_matches('/')));
    set("project_id", json!(spec.project_id));
    if let Some(region) = non_empty(&spec.region_name) {
        set("region_name", json!(region));
    }
    if let Some(user) = non_empty(&spec.username) {
        set("username", json!(user));
    }
    if let Some(url) = non_empty(&spec.discovery_url) {
        set("discovery_url", json!(url));
    }

    // Sizing and images.
    set("number_of_masters", json!(spec.master_count));
    set("number_of_minions", json!(spec.node_count));
    set("master_image", json!(spec.image_id));
    set("minion_image", json!(spec.image_id));
    if let Some(f) = non_empty(&spec.master_flavor_id) {
        set("master_flavor", json!(f));
    }
    if let Some(f) = non_empty(&spec.flavor_id) {
        set("minion_flavor", json!(f));
    }
    if let Some(k) = non_empty(&spec.keypair) {
        set("ssh_key_name", json!(k));
    }
    if let Some(k) = non_empty(&spec.ssh_public_key) {
        set("ssh_public_key", json!(k));
    }
    if let Some(size) = spec.docker_volume_size {
        set("docker_volume_size", json!(size));
    }
    if let Some(d) = non_empty(&spec.docker_storage_driver) {
        set("docker_storage_driver", json!(d));
    }
    let min_nodes = match spec.min_node_count {
        Some(n) => n,
        None => label_count(spec, "min_node_count")?.unwrap_or(0),
    };
    let max_nodes = match spec.max_node_count {
        Some(n) => n,
        None => label_count(spec, "max_node_count")?.unwrap_or(spec.node_count.saturating_add(1)),
    };
    set("min_node_count", json!(min_nodes));
    set("max_node_count", json!(max_nodes));

    // Network.
    set("external_network", json!(external_network));
    let fixed_network = non_empty(&spec.fixed_network);
    if let Some(net) = fixed_network {
        set("fixed_network", json!(net));
    }
    let network_name = non_empty(&spec.fixed_network_name)
        .or(fixed_network)
        .or(Some(spec.name.trim()).filter(|n| !n.is_empty()))
        .unwrap_or("private");
    set("fixed_network_name", json!(network_name));
    if let Some(subnet) = non_empty(&spec.fixed_subnet) {
        set("fixed_subnet", json!(subnet));
    }
    let subnet_cidr = non_empty(&spec.fixed_subnet_cidr)
        .or_else(|| {
            spec.labels
                .get("fixed_subnet_cidr")
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or(DEFAULT_FIXED_SUBNET_CIDR)
        .to_string();
    set("fixed_subnet_cidr", json!(subnet_cidr));
    if let Some(dns) = non_empty(&spec.dns_nameserver) {
        set("dns_nameserver", json!(dns));
    }
    let network_driver = non_empty(&spec.network_driver).unwrap_or(DEFAULT_NETWORK_DRIVER);
    set("network_driver", json!(network_driver));
    let pods_label = if network_driver == "calico" {
        "calico_ipv4pool"
    } else {
        "flannel_network_cidr"
    };
    let pods_cidr = spec
        .labels
        .get(pods_label)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_PODS_NETWORK_CIDR);
    set("pods_network_cidr", json!(pods_cidr));
    if let Some(range) = spec
        .labels
        .get("service_cluster_ip_range")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        set("portal_network_cidr", json!(range));
    }
    set("floating_ip_enabled", json!(spec.floating_ip_enabled));
    set("master_lb_enabled", json!(spec.master_lb_enabled));
    set("octavia_enabled", json!(false));
    if let Some(v) = non_empty(&spec.http_proxy) {
        set("http_proxy", json!(v));
    }
    if let Some(v) = non_empty(&spec.https_proxy) {
        set("https_proxy", json!(v));
    }
    if let Some(v) = non_empty(&spec.no_proxy) {
        let already = v.split(',').any(|e| e.trim() == subnet_cidr);
        let value = if already {
            v.to_string()
        } else {
            format!("{v},{subnet_cidr}")
        };
        set("no_proxy", json!(value));
    }

    // Kubernetes.
    set("tls_disabled", json!(spec.tls_disabled));
    if spec.tls_disabled {
        set("loadbalancing_protocol", json!("HTTP"));
        set("kubernetes_port", json!(8080));
    } else {
        set("loadbalancing_protocol", json!("TCP"));
        set("kubernetes_port", json!(6443));
    }
    set("registry_enabled", json!(spec.registry_enabled));
    if let Some(v) = non_empty(&spec.insecure_registry) {
        set("insecure_registry_url", json!(v));
    }
    if let Some(v) = non_empty(&spec.volume_driver) {
        set("volume_driver", json!(v));
    }
    if let Some(tag) = spec
        .labels
        .get("kube_tag")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        for k in [
            "kube_tag",
            "kube_version",
            "master_kube_tag",
            "minion_kube_tag",
        ] {
            set(k, json!(tag));
        }
    }
    if let Some(ingress) = spec.labels.get("ingress_controller") {
        let ingress = ingress.trim().to_ascii_lowercase();
        if ingress == "octavia" {
            return Err(DriverError::InvalidInput(
                "Octavia service needs to be deployed for octavia ingress controller.".into(),
            ));
        }
        set("ingress_controller", json!(ingress));
    }
    if let Some(k) = non_empty(&spec.kube_service_account_key) {
        set("kube_service_account_key", json!(k));
    }
    if let Some(k) = non_empty(&spec.kube_service_account_private_key) {
        set("kube_service_account_private_key", json!(k));
    }
    for (label, kind) in LABEL_PARAMS {
        if let Some(raw) = spec.labels.get(*label) {
            set(label, label_value(label, raw, *kind)?);
        }
    }

    // Identity for the nodes.
    set("verify_ca", json!(spec.verify_ca));
    if let Some(ca) = non_empty(&spec.openstack_ca) {
        set("openstack_ca", json!(ca));
    }
    if let Some(t) = &spec.trustee {
        set("trustee_domain_id", json!(t.domain_id));
        set("trustee_user_id", json!(t.user_id));
        set("trustee_username", json!(t.username));
        set("trustee_password", json!(t.password));
        set("trust_id", json!(t.trust_id));
    }

    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bool_and_number_labels() {
        assert_eq!(label_value("x", "True", Kind::Bool).unwrap(), json!(true));
        assert_eq!(label_value("x", "off", Kind::Bool).unwrap(), json!(false));
        assert!(label_value("x", "maybe", Kind::Bool).is_err());
        assert_eq!(label_value("x", " 20 ", Kind::Number).unwrap(), json!(20));
        assert!(label_value("x", "-1", Kind::Number).is_err());
        assert_eq!(label_value("x", " a ", Kind::Str).unwrap(), json!(" a "));
    }
}
