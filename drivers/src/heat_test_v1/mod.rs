//! Driver `heat_test_v1`: a cluster as a stack of `OS::Heat::*` resources only, selected by images
//! whose `os_distro` is `heat-test`. It lets the conductor run against a real Heat that has no
//! Nova or Neutron behind it (the peers toolkit), with the same stack shape as a Kubernetes
//! cluster: ResourceGroups of masters and workers (scaled by `number_of_minions`, with
//! `minions_to_remove` as removal policy), outputs `api_address`, `kube_masters`, `kube_minions`.
//!
//! Labels: `heat_test_create_secs` (how long the API resource's create takes, for failover
//! tests) and `heat_test_fail` (`true`: the create fails with TestResource's error).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::driver::{ClusterOutputs, ClusterSpec, Driver, DriverKey, OutputOptions, ScaleSpec};
use crate::error::DriverError;
use crate::k8s_fedora_coreos_v1::map_outputs;
use crate::openstack::{CreateStack, Stack, UpdateStack};

/// Entry-point name.
pub const NAME: &str = "heat_test_v1";

/// The image `os_distro` that selects this driver.
pub const OS_DISTRO: &str = "heat-test";

/// The top-level template (YAML text).
pub const CLUSTER_YAML: &str = include_str!("../../templates/heat_test_v1/cluster.yaml");

static PROVIDES: &[DriverKey] = &[DriverKey {
    server_type: "vm",
    os_distro: OS_DISTRO,
    coe: "kubernetes",
}];

fn cluster_template() -> Result<&'static Value, DriverError> {
    static PARSED: OnceLock<Result<Value, String>> = OnceLock::new();
    PARSED
        .get_or_init(|| serde_yaml::from_str::<Value>(CLUSTER_YAML).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| DriverError::Config(format!("embedded heat_test_v1 template: {e}")))
}

fn label_u32(spec: &ClusterSpec, key: &str) -> Result<u32, DriverError> {
    match spec.labels.get(key) {
        None => Ok(0),
        Some(v) => v.trim().parse().map_err(|_| {
            DriverError::InvalidInput(format!(
                "label {key} must be a number of seconds, not {v:?}"
            ))
        }),
    }
}

/// The driver (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeatTestV1;

impl Driver for HeatTestV1 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn provides(&self) -> &'static [DriverKey] {
        PROVIDES
    }

    fn create_stack_request(&self, spec: &ClusterSpec) -> Result<CreateStack, DriverError> {
        self.validate_master_count(spec.master_count)?;
        let fail = spec
            .labels
            .get("heat_test_fail")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let parameters = BTreeMap::from([
            (
                "cluster_uuid".to_string(),
                json!(spec.cluster_uuid.to_string()),
            ),
            ("number_of_masters".to_string(), json!(spec.master_count)),
            ("number_of_minions".to_string(), json!(spec.node_count)),
            (
                "create_secs".to_string(),
                json!(label_u32(spec, "heat_test_create_secs")?),
            ),
            ("fail".to_string(), json!(fail)),
        ]);
        Ok(CreateStack {
            stack_name: self.stack_name(&spec.name, spec.cluster_uuid),
            template: cluster_template()?.clone(),
            files: BTreeMap::new(),
            environment_files: None,
            parameters,
            timeout_mins: if spec.create_timeout == 0 {
                60
            } else {
                spec.create_timeout
            },
            disable_rollback: true,
        })
    }

    fn scale_request(&self, scale: &ScaleSpec) -> UpdateStack {
        let mut parameters =
            BTreeMap::from([("number_of_minions".to_string(), json!(scale.node_count))]);
        if !scale.nodes_to_remove.is_empty() {
            parameters.insert(
                "minions_to_remove".to_string(),
                json!(scale.nodes_to_remove),
            );
        }
        UpdateStack {
            parameters,
            disable_rollback: Some(!scale.rollback),
            ..UpdateStack::default()
        }
    }

    fn map_outputs(&self, opts: &OutputOptions, stack: &Stack) -> ClusterOutputs {
        map_outputs(opts, stack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find_driver;

    fn spec() -> ClusterSpec {
        ClusterSpec {
            name: "ht".into(),
            cluster_distro: OS_DISTRO.into(),
            node_count: 2,
            labels: BTreeMap::from([("heat_test_create_secs".into(), "5".into())]),
            ..ClusterSpec::default()
        }
    }

    #[test]
    fn selected_by_os_distro() {
        let d = find_driver("vm", "heat-test", "kubernetes").unwrap();
        assert_eq!(d.name(), NAME);
    }

    #[test]
    fn template_uses_only_heat_resources() {
        let req = HeatTestV1.create_stack_request(&spec()).unwrap();
        let mut types = Vec::new();
        for (_, r) in req.template["resources"].as_object().unwrap() {
            types.push(r["type"].as_str().unwrap().to_string());
            if let Some(m) = r["properties"]["resource_def"]["type"].as_str() {
                types.push(m.to_string());
            }
        }
        assert!(
            types.iter().all(|t| t.starts_with("OS::Heat::")),
            "{types:?}"
        );
        assert_eq!(req.parameters["create_secs"], json!(5));
        assert_eq!(req.parameters["number_of_minions"], json!(2));
        assert_eq!(req.parameters["fail"], json!(false));
    }

    #[test]
    fn bad_label_is_refused() {
        let mut s = spec();
        s.labels
            .insert("heat_test_create_secs".into(), "soon".into());
        assert!(matches!(
            HeatTestV1.create_stack_request(&s),
            Err(DriverError::InvalidInput(_))
        ));
    }
}
