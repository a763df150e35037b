//! The COE driver interface and its plain inputs and outputs. The list of drivers is in
//! [`crate::registry`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DriverError;
use crate::openstack::{CreateStack, Stack, UpdateStack};

/// What a driver provides: `(server_type, os_distro, coe)`, e.g. `("vm", "fedora-coreos", "kubernetes")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DriverKey {
    /// `vm` or `bm`.
    pub server_type: &'static str,
    /// Glance `os_distro` of the image (the template's `cluster_distro`).
    pub os_distro: &'static str,
    /// `kubernetes`, `swarm`, `swarm-mode`, `mesos` or `dcos`.
    pub coe: &'static str,
}

impl DriverKey {
    pub(crate) fn matches(&self, server_type: &str, os_distro: &str, coe: &str) -> bool {
        self.server_type.eq_ignore_ascii_case(server_type)
            && self.os_distro.eq_ignore_ascii_case(os_distro)
            && self.coe.eq_ignore_ascii_case(coe)
    }
}

/// Credentials of the cluster's trustee, handed to the nodes (upstream's `trustee_*` parameters).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trustee {
    /// Trustee domain id.
    pub domain_id: String,
    /// Trustee user id.
    pub user_id: String,
    /// Trustee user name (upstream: `<cluster_uuid>_<project_id>`).
    pub username: String,
    /// Trustee password.
    pub password: String,
    /// Trust id (empty unless the deployment passes trusts to clusters).
    pub trust_id: String,
}

impl fmt::Debug for Trustee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trustee")
            .field("domain_id", &self.domain_id)
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("trust_id", &"<redacted>")
            .finish()
    }
}

/// Everything a driver needs to build a cluster's stack: the cluster, its template's fields (already
/// merged: cluster values override template values), and deployment settings. Names and ids of
/// OpenStack resources are passed as validated by the API (image, flavors, networks resolved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterSpec {
    /// Cluster uuid (also the source of the stack name's suffix).
    pub cluster_uuid: Uuid,
    /// Cluster name.
    pub name: String,
    /// Owning project id.
    pub project_id: String,
    /// Name of the requesting user (upstream's `username` parameter).
    pub username: Option<String>,

    /// `kubernetes`.
    pub coe: String,
    /// `vm` or `bm`.
    pub server_type: String,
    /// Image `os_distro`, e.g. `fedora-coreos`.
    pub cluster_distro: String,
    /// Glance image id.
    pub image_id: String,
    /// Worker flavor (name or id).
    pub flavor_id: Option<String>,
    /// Master flavor (name or id).
    pub master_flavor_id: Option<String>,
    /// Nova keypair name.
    pub keypair: Option<String>,
    /// The keypair's public key, if the caller fetched it.
    pub ssh_public_key: Option<String>,
    /// External network id (required by this driver).
    pub external_network_id: Option<String>,
    /// Existing private network (name or id); `None` creates one.
    pub fixed_network: Option<String>,
    /// The existing network's name (for the cloud provider), if `fixed_network` is set.
    pub fixed_network_name: Option<String>,
    /// Existing subnet id; `None` creates one.
    pub fixed_subnet: Option<String>,
    /// The existing subnet's CIDR, if `fixed_subnet` is set.
    pub fixed_subnet_cidr: Option<String>,
    /// Comma-separated DNS servers.
    pub dns_nameserver: Option<String>,
    /// `flannel` or `calico`.
    pub network_driver: Option<String>,
    /// `cinder` or none.
    pub volume_driver: Option<String>,
    /// Serve the Kubernetes API over plain HTTP on 8080.
    pub tls_disabled: bool,
    /// Run a docker registry.
    pub registry_enabled: bool,
    /// Insecure registry URL.
    pub insecure_registry: Option<String>,
    /// Docker volume size in GB.
    pub docker_volume_size: Option<u32>,
    /// Docker storage driver.
    pub docker_storage_driver: Option<String>,
    /// HTTP proxy for the nodes.
    pub http_proxy: Option<String>,
    /// HTTPS proxy for the nodes.
    pub https_proxy: Option<String>,
    /// No-proxy list for the nodes.
    pub no_proxy: Option<String>,
    /// Cluster labels (already merged with the template's).
    pub labels: BTreeMap<String, String>,
    /// Give nodes floating IPs (upstream default true).
    pub floating_ip_enabled: bool,
    /// Put the API behind a load balancer (not modelled by this driver's templates: see its docs).
    pub master_lb_enabled: bool,

    /// Number of workers in the default worker nodegroup.
    pub node_count: u32,
    /// Number of masters.
    pub master_count: u32,
    /// Worker nodegroup minimum (autoscaler); falls back to label `min_node_count`, then 0.
    pub min_node_count: Option<u32>,
    /// Worker nodegroup maximum (autoscaler); falls back to label `max_node_count`, then node_count + 1.
    pub max_node_count: Option<u32>,
    /// Name of the default master nodegroup.
    pub master_nodegroup_name: String,
    /// Name of the default worker nodegroup.
    pub worker_nodegroup_name: String,
    /// Create timeout in minutes; 0 means the default (60).
    pub create_timeout: u32,
    /// etcd discovery URL.
    pub discovery_url: Option<String>,
    /// Kubernetes service-account public key (PEM).
    pub kube_service_account_key: Option<String>,
    /// Kubernetes service-account private key (PEM).
    pub kube_service_account_private_key: Option<String>,

    /// Magnum's public URL, ending in `/v1`.
    pub magnum_url: String,
    /// Keystone v3 URL for the nodes.
    pub auth_url: String,
    /// Region name.
    pub region_name: Option<String>,
    /// Trustee credentials for the nodes.
    pub trustee: Option<Trustee>,
    /// Whether nodes verify the OpenStack CA.
    pub verify_ca: bool,
    /// The OpenStack CA bundle for the nodes.
    pub openstack_ca: Option<String>,
}

impl Default for ClusterSpec {
    /// Upstream defaults: one master, one worker, floating IPs on, `vm`/`fedora-coreos`/`kubernetes`.
    fn default() -> Self {
        ClusterSpec {
            cluster_uuid: Uuid::nil(),
            name: String::new(),
            project_id: String::new(),
            username: None,
            coe: "kubernetes".into(),
            server_type: "vm".into(),
            cluster_distro: "fedora-coreos".into(),
            image_id: String::new(),
            flavor_id: None,
            master_flavor_id: None,
            keypair: None,
            ssh_public_key: None,
            external_network_id: None,
            fixed_network: None,
            fixed_network_name: None,
            fixed_subnet: None,
            fixed_subnet_cidr: None,
            dns_nameserver: None,
            network_driver: None,
            volume_driver: None,
            tls_disabled: false,
            registry_enabled: false,
            insecure_registry: None,
            docker_volume_size: None,
            docker_storage_driver: None,
            http_proxy: None,
            https_proxy: None,
            no_proxy: None,
            labels: BTreeMap::new(),
            floating_ip_enabled: true,
            master_lb_enabled: false,
            node_count: 1,
            master_count: 1,
            min_node_count: None,
            max_node_count: None,
            master_nodegroup_name: "default-master".into(),
            worker_nodegroup_name: "default-worker".into(),
            create_timeout: 60,
            discovery_url: None,
            kube_service_account_key: None,
            kube_service_account_private_key: None,
            magnum_url: String::new(),
            auth_url: String::new(),
            region_name: None,
            trustee: None,
            verify_ca: true,
            openstack_ca: None,
        }
    }
}

/// A resize of the default worker nodegroup (cluster PATCH of `node_count`, or `actions/resize`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleSpec {
    /// New worker count.
    pub node_count: u32,
    /// Servers to remove first (server ids or member names), from `nodes_to_remove`.
    pub nodes_to_remove: Vec<String>,
    /// Let Heat roll back a failed update (cluster PATCH `?rollback=true`); resize uses false.
    pub rollback: bool,
}

/// The cluster settings that decide how stack outputs are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputOptions {
    /// `api_address` becomes `http://IP:8080` instead of `https://IP:6443`.
    pub tls_disabled: bool,
    /// Read public (`kube_masters`/`kube_minions`) or private (`*_private`) addresses.
    pub floating_ip_enabled: bool,
}

impl From<&ClusterSpec> for OutputOptions {
    fn from(spec: &ClusterSpec) -> Self {
        OutputOptions {
            tls_disabled: spec.tls_disabled,
            floating_ip_enabled: spec.floating_ip_enabled,
        }
    }
}

/// Cluster fields read back from a stack (outputs and parameters). `None`/empty means "not known
/// yet": callers keep their previous value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterOutputs {
    /// `https://IP:6443` (or `http://IP:8080` when TLS is disabled).
    pub api_address: Option<String>,
    /// Master addresses (public or private per [`OutputOptions::floating_ip_enabled`]), nulls dropped.
    pub master_addresses: Vec<String>,
    /// Worker addresses, nulls dropped.
    pub node_addresses: Vec<String>,
    /// Stack parameter `number_of_masters`.
    pub master_count: Option<u32>,
    /// Stack parameter `number_of_minions`.
    pub node_count: Option<u32>,
    /// Stack parameter `kube_version`.
    pub coe_version: Option<String>,
}

/// A COE driver: maps clusters onto Heat stacks and back. Implementations are stateless.
pub trait Driver: Send + Sync + fmt::Debug {
    /// Entry-point name, e.g. `k8s_fedora_coreos_v1` (a template's `driver` field may name it).
    fn name(&self) -> &'static str;

    /// The `(server_type, os_distro, coe)` triples this driver serves.
    fn provides(&self) -> &'static [DriverKey];

    /// The deterministic name of a cluster's stack.
    fn stack_name(&self, cluster_name: &str, cluster_uuid: Uuid) -> String {
        crate::naming::stack_name(cluster_name, cluster_uuid)
    }

    /// Checks the master count (upstream: odd and at least 1), before anything is persisted.
    fn validate_master_count(&self, master_count: u32) -> Result<(), DriverError> {
        if master_count == 0 || master_count.is_multiple_of(2) {
            return Err(DriverError::InvalidInput(format!(
                "master nodegroup size of {master_count} is invalid, size cannot be an even number."
            )));
        }
        Ok(())
    }

    /// The `POST /stacks` body for a new cluster.
    fn create_stack_request(&self, spec: &ClusterSpec) -> Result<CreateStack, DriverError>;

    /// The `PATCH` body that resizes the default worker nodegroup.
    fn scale_request(&self, scale: &ScaleSpec) -> UpdateStack;

    /// Reads cluster fields from a stack fetched with outputs.
    fn map_outputs(&self, opts: &OutputOptions, stack: &Stack) -> ClusterOutputs;

    /// Whether non-default nodegroups get stacks of their own ([`Driver::nodegroup_stack_request`]).
    fn supports_nodegroups(&self) -> bool {
        false
    }

    /// The deterministic name of a non-default nodegroup's stack.
    fn nodegroup_stack_name(&self, cluster_name: &str, ng_name: &str, ng_uuid: Uuid) -> String {
        crate::naming::nodegroup_stack_name(cluster_name, ng_name, ng_uuid)
    }

    /// The `POST /stacks` body of a non-default nodegroup's stack; `cluster_stack` is the
    /// cluster's stack shown with outputs (the network, security group and master address the
    /// nodegroup joins). A resize of the nodegroup uses [`Driver::scale_request`] on its stack.
    fn nodegroup_stack_request(
        &self,
        _cluster: &ClusterSpec,
        _nodegroup: &crate::NodeGroupSpec,
        _cluster_stack: &Stack,
    ) -> Result<CreateStack, DriverError> {
        Err(nodegroups_unsupported(self.name()))
    }

    /// Whether [`Driver::upgrade_request`] is implemented.
    fn supports_upgrade(&self) -> bool {
        false
    }

    /// The `PATCH` body of a rolling upgrade of a stack (cluster or nodegroup stack).
    fn upgrade_request(&self, _upgrade: &crate::UpgradeSpec) -> Result<UpdateStack, DriverError> {
        Err(upgrade_unsupported(self.name()))
    }

    /// `Ok` if the driver can rotate a cluster's CA (`PATCH /v1/certificates`), else the
    /// refusal the API answers with 400 before anything changes.
    fn check_ca_rotation(&self) -> Result<(), DriverError> {
        Err(ca_rotation_unsupported())
    }
}

/// What a driver without nodegroup stacks answers.
pub(crate) fn nodegroups_unsupported(driver: &str) -> DriverError {
    DriverError::InvalidInput(format!("The {driver} driver does not support nodegroups."))
}

/// What a driver without upgrades answers.
pub(crate) fn upgrade_unsupported(driver: &str) -> DriverError {
    DriverError::InvalidInput(format!(
        "Upgrading a cluster that uses the {driver} driver is not supported."
    ))
}

/// Upstream's base driver's refusal of a CA rotation.
pub(crate) fn ca_rotation_unsupported() -> DriverError {
    DriverError::InvalidInput("'rotate_ca_certificate' is not supported by this driver.".into())
}
