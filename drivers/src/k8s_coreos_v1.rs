//! Driver `k8s_coreos_v1`: Kubernetes on Container Linux (CoreOS) VMs.
//!
//! Same parameters and outputs as `k8s_fedora_coreos_v1`; the nodes get a `#cloud-config`
//! document (heat parameters in `write_files`, kubernetes units started by `coreos.units`).
//! Like upstream's plain `KubernetesDriver`: no nodegroup stacks, no upgrade, no CA rotation.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::driver::{ClusterSpec, DriverKey};
use crate::error::DriverError;
use crate::heat_driver::outputs::K8S_OUTPUTS;
use crate::heat_driver::HeatDriver;

/// Entry-point name.
pub const NAME: &str = "k8s_coreos_v1";

/// The driver.
pub static DRIVER: HeatDriver = HeatDriver {
    name: NAME,
    provides: &[DriverKey {
        server_type: "vm",
        os_distro: "coreos",
        coe: "kubernetes",
    }],
    top_name: "kubecluster.yaml",
    top_yaml: include_str!("../templates/k8s_coreos_v1/kubecluster.yaml"),
    files: &[
        (
            "kubemaster.yaml",
            include_str!("../templates/k8s_coreos_v1/kubemaster.yaml"),
        ),
        (
            "kubeminion.yaml",
            include_str!("../templates/k8s_coreos_v1/kubeminion.yaml"),
        ),
    ],
    params,
    outputs: K8S_OUTPUTS,
    remove_param: "minions_to_remove",
    fedora_kubernetes: false,
    parsed: OnceLock::new(),
};

/// The Kubernetes parameters of upstream's `K8sTemplateDefinition`, shared with
/// `k8s_fedora_coreos_v1` (the templates declare the same set).
fn params(spec: &ClusterSpec) -> Result<BTreeMap<String, Value>, DriverError> {
    crate::k8s_fedora_coreos_v1::params::cluster_parameters_for(spec, NAME)
}
