//! Driver `swarm_fedora_atomic_v1`: Docker Swarm (classic) on Fedora Atomic VMs.
//!
//! Parameters follow upstream's `SwarmFedoraTemplateDefinition` (`number_of_nodes`, `node_flavor`,
//! `node_image`, the flannel and rexray labels, `swarm_strategy`); `api_address` is
//! `tcp://IP:2376` whatever `tls_disabled` says (upstream: the docker client does not speak
//! https, bug #1604812); `swarm_version` is read back as the COE version.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::driver::{ClusterSpec, DriverKey};
use crate::error::DriverError;
use crate::heat_driver::params::{common, non_empty, Kind, Params};
use crate::heat_driver::{ApiEndpoint, HeatDriver, OutputSpec};

/// Entry-point name.
pub const NAME: &str = "swarm_fedora_atomic_v1";
/// Port of the swarm manager's docker API.
pub const DOCKER_PORT: u16 = 2376;

/// Labels passed through to the parameter of the same name.
pub(crate) const LABEL_PARAMS: &[(&str, Kind)] = &[
    ("availability_zone", Kind::Str),
    ("docker_volume_type", Kind::Str),
    ("flannel_backend", Kind::Str),
    ("flannel_network_cidr", Kind::Str),
    ("flannel_network_subnetlen", Kind::Number),
    ("rexray_preempt", Kind::Bool),
    ("swarm_strategy", Kind::Str),
];

/// The driver.
pub static DRIVER: HeatDriver = HeatDriver {
    name: NAME,
    provides: &[DriverKey {
        server_type: "vm",
        os_distro: "fedora-atomic",
        coe: "swarm",
    }],
    top_name: "swarmcluster.yaml",
    top_yaml: include_str!("../templates/swarm_fedora_atomic_v1/swarmcluster.yaml"),
    files: &[
        (
            "swarmmaster.yaml",
            include_str!("../templates/swarm_fedora_atomic_v1/swarmmaster.yaml"),
        ),
        (
            "swarmnode.yaml",
            include_str!("../templates/swarm_fedora_atomic_v1/swarmnode.yaml"),
        ),
    ],
    params,
    outputs: OutputSpec {
        api: ApiEndpoint {
            tls: ("tcp", DOCKER_PORT),
            plain: ("tcp", DOCKER_PORT),
        },
        masters: &["swarm_masters"],
        masters_private: &["swarm_masters_private"],
        nodes: "swarm_nodes",
        nodes_private: "swarm_nodes_private",
        master_count_param: "number_of_masters",
        node_count_param: "number_of_nodes",
        coe_version_param: Some("swarm_version"),
    },
    remove_param: "nodes_to_remove",
    fedora_kubernetes: false,
    parsed: OnceLock::new(),
};

/// Parameters shared by both swarm drivers: workers, docker storage, certificates URL.
pub(crate) fn swarm_common(p: &mut Params, spec: &ClusterSpec) {
    p.set("number_of_nodes", json!(spec.node_count));
    p.set("node_image", json!(spec.image_id));
    p.opt("node_flavor", &spec.flavor_id);
    p.set("magnum_url", json!(spec.magnum_url));
    p.set("tls_disabled", json!(spec.tls_disabled));
    if let Some(size) = spec.docker_volume_size {
        p.set("docker_volume_size", json!(size));
    }
    p.opt("docker_storage_driver", &spec.docker_storage_driver);
    p.set("master_nodegroup_name", json!(spec.master_nodegroup_name));
    p.set("worker_nodegroup_name", json!(spec.worker_nodegroup_name));
}

fn params(spec: &ClusterSpec) -> Result<BTreeMap<String, Value>, DriverError> {
    let mut p = Params::default();
    common(&mut p, spec, NAME)?;
    swarm_common(&mut p, spec);
    p.opt("discovery_url", &spec.discovery_url);
    p.set("registry_enabled", json!(spec.registry_enabled));
    p.set(
        "network_driver",
        json!(non_empty(&spec.network_driver).unwrap_or("docker")),
    );
    p.labels(spec, LABEL_PARAMS)?;
    Ok(p.0)
}
