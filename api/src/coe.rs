//! COE validators and driver resolution (Magnum's `validation.Validator` subclasses and
//! `Driver.get_driver`), reduced to data so deployments can change them without code.
use crate::error::ApiError;

/// COE values the `coe` field accepts (2026.1 has only kubernetes; the legacy ones are
/// accepted so that old templates can still be created and listed).
pub const COES: [&str; 5] = ["kubernetes", "swarm", "swarm-mode", "mesos", "dcos"];
pub const SERVER_TYPES: [&str; 2] = ["vm", "bm"];

/// One cluster driver: the `(server_type, os_distro, coe)` it provides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverDef {
    pub name: String,
    pub server_type: String,
    pub os: String,
    pub coe: String,
}

impl DriverDef {
    pub fn new(name: &str, server_type: &str, os: &str, coe: &str) -> Self {
        Self {
            name: name.into(),
            server_type: server_type.into(),
            os: os.into(),
            coe: coe.into(),
        }
    }
}

/// The drivers this build can run (magnum-drivers' registry): the in-tree Heat driver of 2026.1
/// plus the legacy drivers of reference §8, so validation never accepts a triple the conductor
/// cannot build.
pub fn default_drivers() -> Vec<DriverDef> {
    magnum_drivers::all_drivers()
        .iter()
        .flat_map(|d| {
            d.provides()
                .iter()
                .map(|k| DriverDef::new(d.name(), k.server_type, k.os_distro, k.coe))
        })
        .collect()
}

/// The driver of a template, by the rule the conductor uses too ([`magnum_drivers::driver_for`]):
/// the operations a driver cannot run are refused here, before anything changes.
pub fn template_driver(
    t: &magnum_proto::ClusterTemplate,
) -> Option<&'static dyn magnum_drivers::Driver> {
    magnum_drivers::driver_for(&magnum_drivers::TemplateKey {
        driver: t.driver.as_deref(),
        server_type: t.server_type.as_deref(),
        cluster_distro: t.cluster_distro.as_deref(),
        coe: t.coe.as_deref(),
    })
}

/// The server types some driver provides for `coe`, in `SERVER_TYPES` order.
fn server_types_for(drivers: &[DriverDef], coe: &str) -> Vec<String> {
    SERVER_TYPES
        .iter()
        .filter(|st| {
            drivers
                .iter()
                .any(|d| d.coe == coe && d.server_type == **st)
        })
        .map(|st| st.to_string())
        .collect()
}

/// Per-COE rules for templates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoeRules {
    pub coe: String,
    pub supported_network_drivers: Vec<String>,
    /// `["all"]` allows every supported driver.
    pub allowed_network_drivers: Vec<String>,
    pub default_network_driver: String,
    pub supported_server_types: Vec<String>,
    pub supported_volume_drivers: Vec<String>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `K8sValidator` of 2026.1 (allowed = `kubernetes_allowed_network_drivers` default) and the
/// legacy Swarm/Mesos validators (allowed = `all`, default `docker`). Swarm mode has only the
/// docker overlay (its templates run no flannel); DC/OS is validated like Mesos. A server type is
/// supported where some driver provides it (`bm` only for Kubernetes, by k8s_fedora_ironic_v1).
pub fn default_rules() -> Vec<CoeRules> {
    let drivers = default_drivers();
    let legacy = |coe: &str, nets: &[&str]| CoeRules {
        coe: coe.into(),
        supported_network_drivers: strings(nets),
        allowed_network_drivers: strings(&["all"]),
        default_network_driver: "docker".into(),
        supported_server_types: server_types_for(&drivers, coe),
        supported_volume_drivers: strings(&["rexray"]),
    };
    vec![
        CoeRules {
            coe: "kubernetes".into(),
            supported_network_drivers: strings(&["flannel", "calico", "cilium"]),
            allowed_network_drivers: strings(&["flannel", "calico"]),
            default_network_driver: "flannel".into(),
            supported_server_types: server_types_for(&drivers, "kubernetes"),
            supported_volume_drivers: strings(&["cinder"]),
        },
        legacy("swarm", &["docker", "flannel"]),
        legacy("swarm-mode", &["docker"]),
        legacy("mesos", &["docker"]),
        legacy("dcos", &["docker"]),
    ]
}

/// `Validator.get_coe_validator`.
pub fn rules_for<'a>(rules: &'a [CoeRules], coe: Option<&str>) -> Result<&'a CoeRules, ApiError> {
    coe.and_then(|c| rules.iter().find(|r| r.coe == c))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Requested COE type {} is not supported.",
                coe.unwrap_or("None")
            ))
        })
}

impl CoeRules {
    pub fn validate_server_type(&self, server_type: &str) -> Result<(), ApiError> {
        if self.supported_server_types.iter().any(|s| s == server_type) {
            return Ok(());
        }
        Err(ApiError::BadRequest(format!(
            "Server type {server_type} is not supported, expecting a {} server type.",
            with_unspecified(&self.supported_server_types)
        )))
    }

    /// Applies the default when unset, then checks supported and allowed; returns the driver.
    pub fn network_driver(&self, driver: Option<&str>) -> Result<String, ApiError> {
        let driver = match driver {
            Some(d) if !d.is_empty() => d.to_string(),
            _ => self.default_network_driver.clone(),
        };
        if !self.supported_network_drivers.contains(&driver) {
            return Err(ApiError::BadRequest(format!(
                "Network driver type {driver} is not supported, expecting a {} network driver.",
                with_unspecified(&self.supported_network_drivers)
            )));
        }
        let all = self.allowed_network_drivers.iter().any(|a| a == "all");
        if !all && !self.allowed_network_drivers.contains(&driver) {
            // Magnum's message ends with ". " (sic).
            return Err(ApiError::BadRequest(format!(
                "Network driver type {driver} is not allowed, expecting a {} network driver. ",
                with_unspecified(&self.allowed_network_drivers)
            )));
        }
        Ok(driver)
    }

    pub fn validate_volume_driver(&self, driver: Option<&str>) -> Result<(), ApiError> {
        match driver {
            None | Some("") => Ok(()),
            Some(d) if self.supported_volume_drivers.iter().any(|s| s == d) => Ok(()),
            Some(d) => Err(ApiError::BadRequest(format!(
                "Volume driver type {d} is not supported, expecting a {} volume driver.",
                with_unspecified(&self.supported_volume_drivers)
            ))),
        }
    }
}

fn with_unspecified(v: &[String]) -> String {
    let mut all: Vec<&str> = v.iter().map(String::as_str).collect();
    all.push("unspecified");
    all.join("/")
}

/// `Driver.get_driver(server_type, os, coe, driver_name)`: a named driver must exist; otherwise
/// the tuple must be provided by some driver.
pub fn resolve_driver<'a>(
    drivers: &'a [DriverDef],
    server_type: Option<&str>,
    os: Option<&str>,
    coe: Option<&str>,
    driver_name: Option<&str>,
) -> Result<&'a DriverDef, ApiError> {
    if let Some(name) = driver_name.filter(|n| !n.is_empty()) {
        return drivers.iter().find(|d| d.name == name).ok_or_else(|| {
            ApiError::BadRequest(format!("Cluster driver ({name}) not supported."))
        });
    }
    drivers
        .iter()
        .find(|d| {
            Some(d.server_type.as_str()) == server_type
                && Some(d.os.as_str()) == os
                && Some(d.coe.as_str()) == coe
        })
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Cluster type ({}, {}, {}) not supported.",
                server_type.unwrap_or("None"),
                os.unwrap_or("None"),
                coe.unwrap_or("None")
            ))
        })
}

/// `(status, storage driver, size)` rule shared by template and cluster create.
pub fn check_devicemapper_size(
    storage_driver: Option<&str>,
    size: Option<i64>,
) -> Result<(), ApiError> {
    if storage_driver == Some("devicemapper") && size.is_none_or(|s| s < 3) {
        let shown = size.map_or_else(|| "None".to_string(), |s| s.to_string());
        return Err(ApiError::BadRequest(format!(
            "docker volume size {shown} GB is not valid, expecting minimum value 3GB for \
             devicemapper storage driver."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k8s_network_drivers() {
        let rules = default_rules();
        let k8s = rules_for(&rules, Some("kubernetes")).unwrap();
        assert_eq!(k8s.network_driver(None).unwrap(), "flannel");
        assert_eq!(k8s.network_driver(Some("calico")).unwrap(), "calico");
        let e = k8s.network_driver(Some("cilium")).unwrap_err().to_string();
        assert!(e.contains("is not allowed"), "{e}");
        let e = k8s.network_driver(Some("weave")).unwrap_err().to_string();
        assert_eq!(
            e,
            "Network driver type weave is not supported, expecting a \
             flannel/calico/cilium/unspecified network driver."
        );
        assert!(rules_for(&rules, Some("nomad")).is_err());
    }

    #[test]
    fn legacy_coe_rules() {
        let rules = default_rules();
        let r = |coe| rules_for(&rules, Some(coe)).unwrap();
        assert_eq!(r("swarm").network_driver(None).unwrap(), "docker");
        assert_eq!(
            r("swarm").network_driver(Some("flannel")).unwrap(),
            "flannel"
        );
        assert_eq!(
            r("swarm-mode")
                .network_driver(Some("flannel"))
                .unwrap_err()
                .to_string(),
            "Network driver type flannel is not supported, expecting a docker/unspecified \
             network driver."
        );
        for coe in ["mesos", "dcos"] {
            assert_eq!(r(coe).network_driver(None).unwrap(), "docker");
            assert!(r(coe).network_driver(Some("calico")).is_err());
        }
        for coe in ["swarm", "swarm-mode", "mesos"] {
            assert!(r(coe).validate_volume_driver(Some("rexray")).is_ok());
            assert_eq!(
                r(coe)
                    .validate_volume_driver(Some("cinder"))
                    .unwrap_err()
                    .to_string(),
                "Volume driver type cinder is not supported, expecting a rexray/unspecified \
                 volume driver."
            );
        }
        assert!(r("kubernetes")
            .validate_volume_driver(Some("rexray"))
            .is_err());
        // bm only where a driver provides it.
        assert!(r("kubernetes").validate_server_type("bm").is_ok());
        for coe in ["swarm", "swarm-mode", "mesos", "dcos"] {
            assert!(r(coe).validate_server_type("vm").is_ok());
            assert_eq!(
                r(coe).validate_server_type("bm").unwrap_err().to_string(),
                "Server type bm is not supported, expecting a vm/unspecified server type."
            );
        }
    }

    #[test]
    fn every_registered_driver_resolves() {
        let d = default_drivers();
        assert_eq!(d.len(), magnum_drivers::all_drivers().len());
        for (st, os, coe, name) in [
            ("vm", "fedora-atomic", "kubernetes", "k8s_fedora_atomic_v1"),
            ("vm", "coreos", "kubernetes", "k8s_coreos_v1"),
            ("bm", "fedora", "kubernetes", "k8s_fedora_ironic_v1"),
            ("vm", "fedora-atomic", "swarm", "swarm_fedora_atomic_v1"),
            (
                "vm",
                "fedora-atomic",
                "swarm-mode",
                "swarm_fedora_atomic_v2",
            ),
            ("vm", "ubuntu", "mesos", "mesos_ubuntu_v1"),
            ("vm", "centos", "dcos", "dcos_centos_v1"),
        ] {
            let r = resolve_driver(&d, Some(st), Some(os), Some(coe), None).unwrap();
            assert_eq!(r.name, name);
            assert_eq!(
                resolve_driver(&d, None, None, None, Some(name))
                    .unwrap()
                    .name,
                name
            );
        }
        assert_eq!(
            resolve_driver(&d, Some("vm"), Some("fedora"), Some("kubernetes"), None)
                .unwrap_err()
                .to_string(),
            "Cluster type (vm, fedora, kubernetes) not supported."
        );
    }

    #[test]
    fn drivers_resolve() {
        let d = default_drivers();
        assert_eq!(
            resolve_driver(
                &d,
                Some("vm"),
                Some("fedora-coreos"),
                Some("kubernetes"),
                None
            )
            .unwrap()
            .name,
            "k8s_fedora_coreos_v1"
        );
        assert_eq!(
            resolve_driver(&d, Some("vm"), Some("ubuntu"), Some("kubernetes"), None)
                .unwrap_err()
                .to_string(),
            "Cluster type (vm, ubuntu, kubernetes) not supported."
        );
        assert!(resolve_driver(&d, None, None, None, Some("nope")).is_err());
    }
}
