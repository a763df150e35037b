//! A table-driven Heat driver: one struct, filled in per driver with its templates (data files),
//! its parameter mapping and its output/scale names. Every driver except
//! `k8s_fedora_coreos_v1` (which predates this and keeps its own type) is a [`HeatDriver`].

pub(crate) mod fedora_nodegroup;
pub(crate) mod outputs;
pub(crate) mod params;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};

pub use outputs::{ApiEndpoint, OutputSpec};

use crate::driver::{ClusterOutputs, ClusterSpec, Driver, DriverKey, OutputOptions, ScaleSpec};
use crate::error::DriverError;
use crate::openstack::{CreateStack, Stack, UpdateStack};

/// Builds a cluster's stack parameters.
pub type ParamsFn = fn(&ClusterSpec) -> Result<BTreeMap<String, Value>, DriverError>;

/// One Heat COE driver described as data.
pub struct HeatDriver {
    /// Entry-point name.
    pub name: &'static str,
    /// `(server_type, os_distro, coe)` served.
    pub provides: &'static [DriverKey],
    /// File name of the top-level template (for messages).
    pub top_name: &'static str,
    /// The top-level template (YAML text).
    pub top_yaml: &'static str,
    /// Nested templates, keyed as the top-level template's `type:` names them.
    pub files: &'static [(&'static str, &'static str)],
    /// Cluster → parameters.
    pub params: ParamsFn,
    /// Stack → cluster fields.
    pub outputs: OutputSpec,
    /// Parameter listing the workers to remove first on a scale-down.
    pub remove_param: &'static str,
    /// Upstream's `FedoraKubernetesDriver` (the k8s templates with `is_cluster_stack`): nodegroup
    /// stacks of their own and the `kube_tag` upgrade (`fedora_nodegroup`), as
    /// `k8s_fedora_coreos_v1`.
    pub fedora_kubernetes: bool,
    /// The top-level template parsed once.
    pub parsed: OnceLock<Result<Value, String>>,
}

impl std::fmt::Debug for HeatDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeatDriver")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl HeatDriver {
    /// The nested templates as sent in `files`.
    pub fn template_files(&self) -> BTreeMap<String, String> {
        self.files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn template(&self) -> Result<Value, DriverError> {
        self.parsed
            .get_or_init(|| serde_yaml::from_str::<Value>(self.top_yaml).map_err(|e| e.to_string()))
            .clone()
            .map_err(|e| {
                DriverError::Config(format!(
                    "embedded template {} of {} does not parse: {e}",
                    self.top_name, self.name
                ))
            })
    }
}

impl Driver for HeatDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn provides(&self) -> &'static [DriverKey] {
        self.provides
    }

    fn create_stack_request(&self, spec: &ClusterSpec) -> Result<CreateStack, DriverError> {
        self.validate_master_count(spec.master_count)?;
        Ok(CreateStack {
            stack_name: self.stack_name(&spec.name, spec.cluster_uuid),
            template: self.template()?,
            files: self.template_files(),
            environment_files: None,
            parameters: (self.params)(spec)?,
            timeout_mins: params::create_timeout_mins(spec),
            disable_rollback: true,
        })
    }

    fn scale_request(&self, scale: &ScaleSpec) -> UpdateStack {
        let mut parameters = BTreeMap::from([(
            self.outputs.node_count_param.to_string(),
            json!(scale.node_count),
        )]);
        if !scale.nodes_to_remove.is_empty() {
            parameters.insert(self.remove_param.to_string(), json!(scale.nodes_to_remove));
        }
        UpdateStack {
            parameters,
            disable_rollback: Some(!scale.rollback),
            ..UpdateStack::default()
        }
    }

    fn map_outputs(&self, opts: &OutputOptions, stack: &Stack) -> ClusterOutputs {
        self.outputs.map(opts, stack)
    }

    fn supports_nodegroups(&self) -> bool {
        self.fedora_kubernetes
    }

    fn nodegroup_stack_request(
        &self,
        cluster: &ClusterSpec,
        ng: &crate::NodeGroupSpec,
        cluster_stack: &Stack,
    ) -> Result<CreateStack, DriverError> {
        if !self.fedora_kubernetes {
            return Err(crate::driver::nodegroups_unsupported(self.name));
        }
        let name = self.nodegroup_stack_name(&cluster.name, &ng.name, ng.uuid);
        let parts = fedora_nodegroup::StackParts {
            template: self.template()?,
            files: self.template_files(),
            params: self.params,
        };
        fedora_nodegroup::stack_request(parts, cluster, ng, cluster_stack, name)
    }

    fn supports_upgrade(&self) -> bool {
        self.fedora_kubernetes
    }

    fn upgrade_request(&self, up: &crate::UpgradeSpec) -> Result<UpdateStack, DriverError> {
        if !self.fedora_kubernetes {
            return Err(crate::driver::upgrade_unsupported(self.name));
        }
        fedora_nodegroup::upgrade_request(up)
    }

    fn check_ca_rotation(&self) -> Result<(), DriverError> {
        // Upstream's FedoraKubernetesDriver rotates only for cluster_distro fedora-coreos; every
        // other Heat driver keeps the base driver's refusal.
        match (self.fedora_kubernetes, self.provides.first()) {
            (true, Some(k)) => Err(DriverError::InvalidInput(format!(
                "Rotating the CA certificate is not supported for cluster with cluster_distro: \
                 {}.",
                k.os_distro
            ))),
            _ => Err(crate::driver::ca_rotation_unsupported()),
        }
    }
}
