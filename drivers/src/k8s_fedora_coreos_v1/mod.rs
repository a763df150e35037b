//! Driver `k8s_fedora_coreos_v1`: Kubernetes on Fedora CoreOS VMs through one Heat stack per cluster.
//!
//! The stack is `kubecluster.yaml` (sent as a JSON object) with the nested `kubemaster.yaml` and
//! `kubeminion.yaml` in `files`, under the names their ResourceGroups use as `type:`. The templates
//! stay within the HOT subset of the project's Heat simulator (no SoftwareConfig, no yaql, no
//! environment `resource_registry`), so there are no environment files: what upstream switched with
//! environments (private network or not, floating IPs or not) is switched with `conditions`.
//!
//! Differences from upstream worth knowing:
//! - No load balancer resources: `api_address` is the first master's floating IP (or private IP
//!   when floating IPs are disabled), whatever `master_lb_enabled` says.
//! - No SoftwareDeployments: nodes get their parameters through `user_data`.

mod outputs;
pub(crate) mod params;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};

pub use outputs::{api_url, map_outputs, KUBE_INSECURE_PORT, KUBE_SECURE_PORT};
pub use params::{
    DEFAULT_CREATE_TIMEOUT_MINS, DEFAULT_FIXED_SUBNET_CIDR, DEFAULT_NETWORK_DRIVER,
    DEFAULT_PODS_NETWORK_CIDR,
};

use crate::driver::{ClusterOutputs, ClusterSpec, Driver, DriverKey, OutputOptions, ScaleSpec};
use crate::error::DriverError;
use crate::heat_driver::fedora_nodegroup;
use crate::openstack::{CreateStack, Stack, UpdateStack};

/// Entry-point name.
pub const NAME: &str = "k8s_fedora_coreos_v1";

/// The top-level template (YAML text).
pub const KUBECLUSTER_YAML: &str =
    include_str!("../../templates/k8s_fedora_coreos_v1/kubecluster.yaml");
/// The master member template.
pub const KUBEMASTER_YAML: &str =
    include_str!("../../templates/k8s_fedora_coreos_v1/kubemaster.yaml");
/// The worker member template.
pub const KUBEMINION_YAML: &str =
    include_str!("../../templates/k8s_fedora_coreos_v1/kubeminion.yaml");

/// `files` key (and ResourceGroup `type:`) of the master template.
pub const KUBEMASTER_FILE: &str = "kubemaster.yaml";
/// `files` key (and ResourceGroup `type:`) of the worker template.
pub const KUBEMINION_FILE: &str = "kubeminion.yaml";

const PROVIDES: &[DriverKey] = &[DriverKey {
    server_type: "vm",
    os_distro: "fedora-coreos",
    coe: "kubernetes",
}];

/// The top-level template parsed once into JSON.
fn cluster_template() -> Result<&'static Value, DriverError> {
    static PARSED: OnceLock<Result<Value, String>> = OnceLock::new();
    PARSED
        .get_or_init(|| serde_yaml::from_str::<Value>(KUBECLUSTER_YAML).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| {
            DriverError::Config(format!(
                "embedded template kubecluster.yaml does not parse: {e}"
            ))
        })
}

/// The nested templates, keyed as the top-level template's `type:` names them.
pub fn template_files() -> BTreeMap<String, String> {
    BTreeMap::from([
        (KUBEMASTER_FILE.to_string(), KUBEMASTER_YAML.to_string()),
        (KUBEMINION_FILE.to_string(), KUBEMINION_YAML.to_string()),
    ])
}

/// The driver (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct K8sFedoraCoreosV1;

impl Driver for K8sFedoraCoreosV1 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn provides(&self) -> &'static [DriverKey] {
        PROVIDES
    }

    fn create_stack_request(&self, spec: &ClusterSpec) -> Result<CreateStack, DriverError> {
        self.validate_master_count(spec.master_count)?;
        Ok(CreateStack {
            stack_name: self.stack_name(&spec.name, spec.cluster_uuid),
            template: cluster_template()?.clone(),
            files: template_files(),
            environment_files: None,
            parameters: params::cluster_parameters(spec)?,
            timeout_mins: params::create_timeout_mins(spec),
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
        outputs::map_outputs(opts, stack)
    }

    fn supports_nodegroups(&self) -> bool {
        true
    }

    fn nodegroup_stack_request(
        &self,
        cluster: &ClusterSpec,
        ng: &crate::NodeGroupSpec,
        cluster_stack: &Stack,
    ) -> Result<CreateStack, DriverError> {
        let name = self.nodegroup_stack_name(&cluster.name, &ng.name, ng.uuid);
        let parts = fedora_nodegroup::StackParts {
            template: cluster_template()?.clone(),
            files: template_files(),
            params: params::cluster_parameters,
        };
        fedora_nodegroup::stack_request(parts, cluster, ng, cluster_stack, name)
    }

    fn supports_upgrade(&self) -> bool {
        true
    }

    fn upgrade_request(&self, up: &crate::UpgradeSpec) -> Result<UpdateStack, DriverError> {
        fedora_nodegroup::upgrade_request(up)
    }

    fn check_ca_rotation(&self) -> Result<(), DriverError> {
        Ok(())
    }
}

#[cfg(test)]
mod nodegroup_tests;
#[cfg(test)]
mod template_tests;

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::driver::Trustee;

    pub(crate) fn spec() -> ClusterSpec {
        ClusterSpec {
            cluster_uuid: Uuid::parse_str("5d12f6fd-a196-4bf0-ae4c-1f639a523a52").unwrap(),
            name: "prod".into(),
            project_id: "p1".into(),
            username: Some("alice".into()),
            image_id: "img-1".into(),
            flavor_id: Some("m1.medium".into()),
            master_flavor_id: Some("m1.large".into()),
            keypair: Some("kp".into()),
            external_network_id: Some("ext-net-id".into()),
            dns_nameserver: Some("1.1.1.1,8.8.8.8".into()),
            docker_volume_size: Some(20),
            no_proxy: Some("localhost".into()),
            labels: BTreeMap::from([
                ("kube_tag".into(), "v1.27.3".into()),
                ("auto_scaling_enabled".into(), "True".into()),
                ("etcd_volume_size".into(), "5".into()),
                ("unknown_label".into(), "x".into()),
            ]),
            node_count: 3,
            master_count: 1,
            create_timeout: 0,
            magnum_url: "http://magnum:9511/v1".into(),
            auth_url: "http://keystone/identity/v3/".into(),
            region_name: Some("RegionOne".into()),
            trustee: Some(Trustee {
                domain_id: "d".into(),
                user_id: "tu".into(),
                username: "5d12f6fd-a196-4bf0-ae4c-1f639a523a52_p1".into(),
                password: "pw".into(),
                trust_id: String::new(),
            }),
            ..ClusterSpec::default()
        }
    }

    #[test]
    fn create_request_golden_subset() {
        let req = K8sFedoraCoreosV1.create_stack_request(&spec()).unwrap();
        assert_eq!(
            req.stack_name,
            crate::naming::stack_name("prod", spec().cluster_uuid)
        );
        assert_eq!(req.timeout_mins, 60);
        assert!(req.disable_rollback);
        assert_eq!(req.template["heat_template_version"], "queens");
        assert_eq!(
            req.files.keys().collect::<Vec<_>>(),
            vec!["kubemaster.yaml", "kubeminion.yaml"]
        );
        let p = &req.parameters;
        let expect = [
            ("is_cluster_stack", json!(true)),
            (
                "cluster_uuid",
                json!("5d12f6fd-a196-4bf0-ae4c-1f639a523a52"),
            ),
            ("number_of_masters", json!(1)),
            ("number_of_minions", json!(3)),
            ("master_flavor", json!("m1.large")),
            ("minion_flavor", json!("m1.medium")),
            ("master_image", json!("img-1")),
            ("minion_image", json!("img-1")),
            ("ssh_key_name", json!("kp")),
            ("external_network", json!("ext-net-id")),
            ("fixed_network_name", json!("prod")),
            ("fixed_subnet_cidr", json!("10.0.0.0/24")),
            ("dns_nameserver", json!("1.1.1.1,8.8.8.8")),
            ("network_driver", json!("flannel")),
            ("pods_network_cidr", json!("10.100.0.0/16")),
            ("no_proxy", json!("localhost,10.0.0.0/24")),
            ("tls_disabled", json!(false)),
            ("kubernetes_port", json!(6443)),
            ("loadbalancing_protocol", json!("TCP")),
            ("kube_tag", json!("v1.27.3")),
            ("kube_version", json!("v1.27.3")),
            ("master_kube_tag", json!("v1.27.3")),
            ("minion_kube_tag", json!("v1.27.3")),
            ("auto_scaling_enabled", json!(true)),
            ("etcd_volume_size", json!(5)),
            ("docker_volume_size", json!(20)),
            ("min_node_count", json!(0)),
            ("max_node_count", json!(4)),
            ("master_nodegroup_name", json!("default-master")),
            ("worker_nodegroup_name", json!("default-worker")),
            ("master_role", json!("master")),
            ("worker_role", json!("worker")),
            ("magnum_url", json!("http://magnum:9511/v1")),
            ("auth_url", json!("http://keystone/identity/v3")),
            ("region_name", json!("RegionOne")),
            ("username", json!("alice")),
            ("project_id", json!("p1")),
            (
                "trustee_username",
                json!("5d12f6fd-a196-4bf0-ae4c-1f639a523a52_p1"),
            ),
            ("trustee_password", json!("pw")),
            ("trust_id", json!("")),
            ("floating_ip_enabled", json!(true)),
        ];
        for (k, v) in expect {
            assert_eq!(p.get(k), Some(&v), "parameter {k}");
        }
        assert!(!p.contains_key("unknown_label"));
        assert!(!p.contains_key("fixed_network"));
        assert!(!p.contains_key("fixed_subnet"));
        assert!(!p.contains_key("minions_to_remove"));
    }

    #[test]
    fn tls_disabled_calico_existing_network() {
        let mut s = spec();
        s.tls_disabled = true;
        s.network_driver = Some("calico".into());
        s.fixed_network = Some("net-uuid".into());
        s.fixed_network_name = Some("mynet".into());
        s.fixed_subnet = Some("subnet-uuid".into());
        s.fixed_subnet_cidr = Some("192.168.0.0/24".into());
        s.create_timeout = 15;
        s.floating_ip_enabled = false;
        s.labels
            .insert("calico_ipv4pool".into(), "10.200.0.0/16".into());
        s.labels
            .insert("service_cluster_ip_range".into(), "10.96.0.0/12".into());
        s.labels.insert("max_node_count".into(), "10".into());
        s.min_node_count = Some(2);
        let req = K8sFedoraCoreosV1.create_stack_request(&s).unwrap();
        let p = &req.parameters;
        assert_eq!(req.timeout_mins, 15);
        assert_eq!(p["kubernetes_port"], json!(8080));
        assert_eq!(p["loadbalancing_protocol"], json!("HTTP"));
        assert_eq!(p["fixed_network"], json!("net-uuid"));
        assert_eq!(p["fixed_network_name"], json!("mynet"));
        assert_eq!(p["fixed_subnet"], json!("subnet-uuid"));
        assert_eq!(p["fixed_subnet_cidr"], json!("192.168.0.0/24"));
        assert_eq!(p["no_proxy"], json!("localhost,192.168.0.0/24"));
        assert_eq!(p["pods_network_cidr"], json!("10.200.0.0/16"));
        assert_eq!(p["portal_network_cidr"], json!("10.96.0.0/12"));
        assert_eq!(p["floating_ip_enabled"], json!(false));
        assert_eq!(p["min_node_count"], json!(2));
        assert_eq!(p["max_node_count"], json!(10));
    }

    #[test]
    fn invalid_inputs_are_user_readable() {
        let mut s = spec();
        s.external_network_id = None;
        let e = K8sFedoraCoreosV1.create_stack_request(&s).unwrap_err();
        assert!(e.is_permanent());
        assert!(e.to_string().contains("external_network_id"), "{e}");

        let mut s = spec();
        s.labels
            .insert("auto_healing_enabled".into(), "sometimes".into());
        let e = K8sFedoraCoreosV1.create_stack_request(&s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Label auto_healing_enabled must be a boolean, got \"sometimes\"."
        );

        let mut s = spec();
        s.labels
            .insert("ingress_controller".into(), "Octavia".into());
        assert!(K8sFedoraCoreosV1.create_stack_request(&s).is_err());

        let mut s = spec();
        s.master_count = 2;
        assert!(K8sFedoraCoreosV1.create_stack_request(&s).is_err());
    }

    #[test]
    fn scale_requests() {
        let u = K8sFedoraCoreosV1.scale_request(&ScaleSpec {
            node_count: 5,
            nodes_to_remove: vec![],
            rollback: true,
        });
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"parameters": {"number_of_minions": 5}, "disable_rollback": false})
        );
        let u = K8sFedoraCoreosV1.scale_request(&ScaleSpec {
            node_count: 1,
            nodes_to_remove: vec!["srv-1".into(), "2".into()],
            rollback: false,
        });
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"parameters": {"number_of_minions": 1, "minions_to_remove": ["srv-1", "2"]}, "disable_rollback": true})
        );
    }

    #[test]
    fn create_request_serializes_as_heat_expects() {
        let req = K8sFedoraCoreosV1.create_stack_request(&spec()).unwrap();
        let body = serde_json::to_value(&req).unwrap();
        assert!(body["template"].is_object());
        assert!(body["files"]["kubemaster.yaml"].is_string());
        assert!(body.get("environment_files").is_none());
        assert_eq!(body["timeout_mins"], json!(60));
        assert_eq!(body["disable_rollback"], json!(true));
    }
}
