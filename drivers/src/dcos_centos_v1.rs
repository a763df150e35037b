//! Driver `dcos_centos_v1`: DC/OS on CentOS VMs (upstream's contrib driver).
//!
//! Parameters follow upstream's `DcosCentosTemplateDefinition` (`number_of_slaves`,
//! `slave_flavor`, `slave_image`, `cluster_name`, the `dcos_*`/`exhibitor_*` labels; scale-down
//! names `slaves_to_remove`). `api_address` is the first master's admin router,
//! `https://IP:443`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::driver::{ClusterSpec, DriverKey};
use crate::error::DriverError;
use crate::heat_driver::params::{common, Kind, Params};
use crate::heat_driver::{ApiEndpoint, HeatDriver, OutputSpec};
use crate::mesos_ubuntu_v1::slaves;

/// Entry-point name.
pub const NAME: &str = "dcos_centos_v1";
/// Port of the DC/OS admin router.
pub const ADMIN_ROUTER_PORT: u16 = 443;

/// Labels passed through to the parameter of the same name (DC/OS's config.yaml keys).
pub(crate) const LABEL_PARAMS: &[(&str, Kind)] = &[
    ("availability_zone", Kind::Str),
    ("check_time", Kind::Str),
    ("dcos_overlay_config_attempts", Kind::Str),
    ("dcos_overlay_enable", Kind::Str),
    ("dcos_overlay_mtu", Kind::Str),
    ("dcos_overlay_network", Kind::Str),
    ("dns_search", Kind::Str),
    ("docker_remove_delay", Kind::Str),
    ("docker_volume_type", Kind::Str),
    ("exhibitor_storage_backend", Kind::Str),
    ("exhibitor_zk_hosts", Kind::Str),
    ("exhibitor_zk_path", Kind::Str),
    ("gc_delay", Kind::Str),
    ("log_directory", Kind::Str),
    ("oauth_enabled", Kind::Str),
    ("process_timeout", Kind::Str),
    ("rexray_preempt", Kind::Bool),
    ("telemetry_enabled", Kind::Str),
];

/// The driver.
pub static DRIVER: HeatDriver = HeatDriver {
    name: NAME,
    provides: &[DriverKey {
        server_type: "vm",
        os_distro: "centos",
        coe: "dcos",
    }],
    top_name: "dcoscluster.yaml",
    top_yaml: include_str!("../templates/dcos_centos_v1/dcoscluster.yaml"),
    files: &[
        (
            "dcosmaster.yaml",
            include_str!("../templates/dcos_centos_v1/dcosmaster.yaml"),
        ),
        (
            "dcosslave.yaml",
            include_str!("../templates/dcos_centos_v1/dcosslave.yaml"),
        ),
    ],
    params,
    outputs: OutputSpec {
        api: ApiEndpoint {
            tls: ("https", ADMIN_ROUTER_PORT),
            plain: ("https", ADMIN_ROUTER_PORT),
        },
        masters: &["dcos_master"],
        masters_private: &["dcos_master_private"],
        nodes: "dcos_slaves",
        nodes_private: "dcos_slaves_private",
        master_count_param: "number_of_masters",
        node_count_param: "number_of_slaves",
        coe_version_param: None,
    },
    remove_param: "slaves_to_remove",
    fedora_kubernetes: false,
    parsed: OnceLock::new(),
};

fn params(spec: &ClusterSpec) -> Result<BTreeMap<String, Value>, DriverError> {
    let mut p = Params::default();
    common(&mut p, spec, NAME)?;
    slaves(&mut p, spec);
    p.labels(spec, LABEL_PARAMS)?;
    Ok(p.0)
}
