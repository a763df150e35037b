//! The registry: every driver this build can run, and how a cluster template picks one.

use crate::driver::Driver;
use crate::heat_test_v1::HeatTestV1;
use crate::k8s_fedora_coreos_v1::K8sFedoraCoreosV1;

static K8S_FEDORA_COREOS_V1: K8sFedoraCoreosV1 = K8sFedoraCoreosV1;

static HEAT_TEST_V1: HeatTestV1 = HeatTestV1;

static DRIVERS: &[&(dyn Driver + 'static)] = &[
    &K8S_FEDORA_COREOS_V1,
    &crate::k8s_fedora_atomic_v1::DRIVER,
    &crate::k8s_coreos_v1::DRIVER,
    &crate::k8s_fedora_ironic_v1::DRIVER,
    &crate::swarm_fedora_atomic_v1::DRIVER,
    &crate::swarm_fedora_atomic_v2::DRIVER,
    &crate::mesos_ubuntu_v1::DRIVER,
    &crate::dcos_centos_v1::DRIVER,
    &HEAT_TEST_V1,
];

/// Every registered driver.
pub fn all_drivers() -> &'static [&'static dyn Driver] {
    DRIVERS
}

/// The driver serving `(server_type, os_distro, coe)` (compared case-insensitively), if any.
pub fn find_driver(server_type: &str, os_distro: &str, coe: &str) -> Option<&'static dyn Driver> {
    DRIVERS.iter().copied().find(|d| {
        d.provides()
            .iter()
            .any(|k| k.matches(server_type, os_distro, coe))
    })
}

/// The driver with this entry-point name, if any.
pub fn driver_by_name(name: &str) -> Option<&'static dyn Driver> {
    DRIVERS.iter().copied().find(|d| d.name() == name)
}

/// The fields of a cluster template that choose its driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TemplateKey<'a> {
    /// The template's `driver`: an entry-point name.
    pub driver: Option<&'a str>,
    /// `server_type`; unset means `vm`.
    pub server_type: Option<&'a str>,
    /// `cluster_distro` (the image's `os_distro`).
    pub cluster_distro: Option<&'a str>,
    /// `coe`.
    pub coe: Option<&'a str>,
}

impl<'a> TemplateKey<'a> {
    /// The `(server_type, os_distro, coe)` looked up when no registered driver is named. An unset
    /// distro or COE becomes `""`, which no driver provides.
    pub fn triple(&self) -> (&'a str, &'a str, &'a str) {
        (
            self.server_type.unwrap_or("vm"),
            self.cluster_distro.unwrap_or(""),
            self.coe.unwrap_or(""),
        )
    }
}

/// A cluster template's driver: the registered driver its `driver` field names, else the one
/// serving its [`TemplateKey::triple`]. The API's checks and the conductor's stacks both go
/// through here, so they never disagree on a template's driver.
pub fn driver_for(t: &TemplateKey<'_>) -> Option<&'static dyn Driver> {
    t.driver.and_then(driver_by_name).or_else(|| {
        let (server_type, os_distro, coe) = t.triple();
        find_driver(server_type, os_distro, coe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lookup() {
        let d = find_driver("vm", "fedora-coreos", "kubernetes").unwrap();
        assert_eq!(d.name(), "k8s_fedora_coreos_v1");
        assert!(find_driver("VM", "Fedora-CoreOS", "Kubernetes").is_some());
        assert!(find_driver("bm", "fedora-coreos", "kubernetes").is_none());
        assert!(find_driver("vm", "ubuntu", "kubernetes").is_none());
        assert!(find_driver("vm", "fedora-coreos", "swarm").is_none());
        assert_eq!(
            driver_by_name("k8s_fedora_coreos_v1").unwrap().name(),
            "k8s_fedora_coreos_v1"
        );
        assert!(driver_by_name("k8s_fedora_atomic_v2").is_none());
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
            assert_eq!(find_driver(st, os, coe).unwrap().name(), name);
            assert_eq!(driver_by_name(name).unwrap().name(), name);
        }
        assert!(find_driver("vm", "fedora", "kubernetes").is_none());
        assert_eq!(all_drivers().len(), 9);
        let mut keys: Vec<_> = all_drivers().iter().flat_map(|d| d.provides()).collect();
        let n = keys.len();
        keys.sort_by_key(|k| (k.server_type, k.os_distro, k.coe));
        keys.dedup();
        assert_eq!(keys.len(), n, "two drivers provide the same triple");
        assert!(driver_by_name("heat_test_v1").is_some());
    }

    #[test]
    fn template_driver_by_name_else_by_triple() {
        let key = |driver, server_type, distro, coe| TemplateKey {
            driver,
            server_type,
            cluster_distro: distro,
            coe,
        };
        let name = |t: TemplateKey<'_>| driver_for(&t).map(|d| d.name());
        // A registered name wins over the triple.
        let named = key(
            Some("swarm_fedora_atomic_v1"),
            None,
            Some("fedora-coreos"),
            Some("kubernetes"),
        );
        assert_eq!(name(named), Some("swarm_fedora_atomic_v1"));
        // An unknown name falls back to the triple; an unset server type is vm.
        let unknown = key(
            Some("nope"),
            None,
            Some("fedora-coreos"),
            Some("kubernetes"),
        );
        assert_eq!(name(unknown), Some("k8s_fedora_coreos_v1"));
        assert_eq!(unknown.triple(), ("vm", "fedora-coreos", "kubernetes"));
        let bm = key(None, Some("bm"), Some("fedora"), Some("kubernetes"));
        assert_eq!(name(bm), Some("k8s_fedora_ironic_v1"));
        assert_eq!(name(key(None, None, None, Some("kubernetes"))), None);
        assert_eq!(TemplateKey::default().triple(), ("vm", "", ""));
    }

    #[test]
    fn master_count_must_be_odd() {
        let d = find_driver("vm", "fedora-coreos", "kubernetes").unwrap();
        assert!(d.validate_master_count(1).is_ok());
        assert!(d.validate_master_count(3).is_ok());
        assert!(d.validate_master_count(0).is_err());
        assert!(d.validate_master_count(2).is_err());
    }
}
