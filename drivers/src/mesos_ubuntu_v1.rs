//! Driver `mesos_ubuntu_v1`: Apache Mesos (with Marathon) on Ubuntu VMs.
//!
//! Parameters follow upstream's `UbuntuMesosTemplateDefinition` (`number_of_slaves`,
//! `slave_flavor`, `slave_image`, `cluster_name`, `username`, `tenant_name`, the `mesos_slave_*`
//! labels; scale-down names `slaves_to_remove`). Upstream stored the bare master address as
//! `api_address`; we give it the Mesos master's scheme and port, `http://IP:5050`, like the
//! other COEs' URLs. Mesos has no TLS switch.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::driver::{ClusterSpec, DriverKey};
use crate::error::DriverError;
use crate::heat_driver::params::{common, Kind, Params};
use crate::heat_driver::{ApiEndpoint, HeatDriver, OutputSpec};

/// Entry-point name.
pub const NAME: &str = "mesos_ubuntu_v1";
/// Port of the Mesos master's HTTP API.
pub const MESOS_PORT: u16 = 5050;

/// Labels passed through to the parameter of the same name.
pub(crate) const LABEL_PARAMS: &[(&str, Kind)] = &[
    ("availability_zone", Kind::Str),
    ("docker_volume_type", Kind::Str),
    ("executor_registration_timeout", Kind::Str),
    ("mesos_slave_executor_env_variables", Kind::Str),
    ("mesos_slave_image_providers", Kind::Str),
    ("mesos_slave_isolation", Kind::Str),
    ("mesos_slave_work_dir", Kind::Str),
    ("rexray_preempt", Kind::Bool),
];

/// The driver.
pub static DRIVER: HeatDriver = HeatDriver {
    name: NAME,
    provides: &[DriverKey {
        server_type: "vm",
        os_distro: "ubuntu",
        coe: "mesos",
    }],
    top_name: "mesoscluster.yaml",
    top_yaml: include_str!("../templates/mesos_ubuntu_v1/mesoscluster.yaml"),
    files: &[
        (
            "mesosmaster.yaml",
            include_str!("../templates/mesos_ubuntu_v1/mesosmaster.yaml"),
        ),
        (
            "mesosslave.yaml",
            include_str!("../templates/mesos_ubuntu_v1/mesosslave.yaml"),
        ),
    ],
    params,
    outputs: OutputSpec {
        api: ApiEndpoint {
            tls: ("http", MESOS_PORT),
            plain: ("http", MESOS_PORT),
        },
        masters: &["mesos_master"],
        masters_private: &["mesos_master_private"],
        nodes: "mesos_slaves",
        nodes_private: "mesos_slaves_private",
        master_count_param: "number_of_masters",
        node_count_param: "number_of_slaves",
        coe_version_param: None,
    },
    remove_param: "slaves_to_remove",
    fedora_kubernetes: false,
    parsed: OnceLock::new(),
};

/// Parameters shared by the mesos and dcos drivers: the slaves and their docker volume.
pub(crate) fn slaves(p: &mut Params, spec: &ClusterSpec) {
    p.set("cluster_name", json!(spec.name));
    p.set("number_of_slaves", json!(spec.node_count));
    p.set("slave_image", json!(spec.image_id));
    p.opt("slave_flavor", &spec.flavor_id);
    if let Some(size) = spec.docker_volume_size {
        p.set("docker_volume_size", json!(size));
    }
    p.set("master_nodegroup_name", json!(spec.master_nodegroup_name));
    p.set("worker_nodegroup_name", json!(spec.worker_nodegroup_name));
}

fn params(spec: &ClusterSpec) -> Result<BTreeMap<String, Value>, DriverError> {
    let mut p = Params::default();
    common(&mut p, spec, NAME)?;
    slaves(&mut p, spec);
    p.opt("username", &spec.username);
    p.set("tenant_name", json!(spec.project_id));
    p.labels(spec, LABEL_PARAMS)?;
    Ok(p.0)
}
