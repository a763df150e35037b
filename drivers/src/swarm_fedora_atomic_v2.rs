//! Driver `swarm_fedora_atomic_v2`: Docker swarm mode on Fedora Atomic VMs.
//!
//! Parameters follow upstream's `SwarmModeTemplateDefinition`. Upstream's template derives the
//! secondary managers' count from `number_of_masters` with yaql; ours has no yaql, so the driver
//! sends `number_of_secondary_masters = number_of_masters - 1` too. `api_address` is
//! `tcp://IP:2375`; master addresses are the primary's followed by the secondaries'.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::driver::{ClusterSpec, DriverKey};
use crate::error::DriverError;
use crate::heat_driver::params::{common, Kind, Params};
use crate::heat_driver::{ApiEndpoint, HeatDriver, OutputSpec};
use crate::swarm_fedora_atomic_v1::swarm_common;

/// Entry-point name.
pub const NAME: &str = "swarm_fedora_atomic_v2";
/// Port of the managers' docker API.
pub const DOCKER_PORT: u16 = 2375;

/// Labels passed through to the parameter of the same name.
pub(crate) const LABEL_PARAMS: &[(&str, Kind)] = &[
    ("availability_zone", Kind::Str),
    ("docker_volume_type", Kind::Str),
    ("rexray_preempt", Kind::Bool),
];

/// The driver.
pub static DRIVER: HeatDriver = HeatDriver {
    name: NAME,
    provides: &[DriverKey {
        server_type: "vm",
        os_distro: "fedora-atomic",
        coe: "swarm-mode",
    }],
    top_name: "swarmcluster.yaml",
    top_yaml: include_str!("../templates/swarm_fedora_atomic_v2/swarmcluster.yaml"),
    files: &[
        (
            "swarmmaster.yaml",
            include_str!("../templates/swarm_fedora_atomic_v2/swarmmaster.yaml"),
        ),
        (
            "swarmnode.yaml",
            include_str!("../templates/swarm_fedora_atomic_v2/swarmnode.yaml"),
        ),
    ],
    params,
    outputs: OutputSpec {
        api: ApiEndpoint {
            tls: ("tcp", DOCKER_PORT),
            plain: ("tcp", DOCKER_PORT),
        },
        masters: &["swarm_primary_master", "swarm_secondary_masters"],
        masters_private: &[
            "swarm_primary_master_private",
            "swarm_secondary_masters_private",
        ],
        nodes: "swarm_nodes",
        nodes_private: "swarm_nodes_private",
        master_count_param: "number_of_masters",
        node_count_param: "number_of_nodes",
        coe_version_param: None,
    },
    remove_param: "nodes_to_remove",
    fedora_kubernetes: false,
    parsed: OnceLock::new(),
};

fn params(spec: &ClusterSpec) -> Result<BTreeMap<String, Value>, DriverError> {
    let mut p = Params::default();
    common(&mut p, spec, NAME)?;
    swarm_common(&mut p, spec);
    p.set(
        "number_of_secondary_masters",
        json!(spec.master_count.saturating_sub(1)),
    );
    p.set("swarm_port", json!(DOCKER_PORT));
    p.labels(spec, LABEL_PARAMS)?;
    Ok(p.0)
}
