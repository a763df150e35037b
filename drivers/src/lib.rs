//! magnum-drivers: everything that talks to OpenStack services, and the COE drivers.
//!
//! **Owns**
//! - [`openstack`]: clients of Keystone v3 (service session with cached, refreshed token; cached
//!   user-token validation; the service catalog), Heat v1 (stack create/find/show/update/delete/list
//!   with an error type that separates conflict, not-found, permanent and transient failures), and
//!   the Glance/Nova/Neutron look-ups needed to validate cluster templates.
//! - [`driver`]: the [`Driver`] trait and its plain inputs and outputs.
//! - [`registry`]: every driver of this build, the look-ups that select one by name or by
//!   `(server_type, os_distro, coe)`, and [`driver_for`], the one rule that gives a cluster
//!   template its driver.
//! - [`k8s_fedora_coreos_v1`]: the Kubernetes-on-Fedora-CoreOS Heat driver: HOT templates (data
//!   files under `templates/`), the mapping of a cluster onto stack parameters, and of stack
//!   outputs/parameters back onto cluster fields.
//! - [`heat_driver`]: the table-driven [`heat_driver::HeatDriver`] behind the other seven drivers
//!   (`k8s_fedora_atomic_v1`, `k8s_coreos_v1`, `k8s_fedora_ironic_v1`, `swarm_fedora_atomic_v1`,
//!   `swarm_fedora_atomic_v2`, `mesos_ubuntu_v1`, `dcos_centos_v1`): each module holds its
//!   templates (data files under `templates/<driver>/`), parameter mapping and output names.
//!   It also holds the nodegroup stacks and upgrades that both Fedora Kubernetes drivers share;
//!   it names no specific driver (they depend on it, not the reverse).
//! - [`naming`]: deterministic Heat stack names derived from the cluster uuid.
//!
//! **Must not know**: Raft, sled, Magnum's REST API, or the conductor's state model. Inputs are the
//! plain structs defined here ([`ClusterSpec`], [`ScaleSpec`], [`OutputOptions`]); outputs are plain
//! values ([`openstack::CreateStack`], [`ClusterOutputs`], ...). Callers own retries, fencing and
//! persistence; this crate makes each call once and classifies its failure ([`Error`]).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

pub mod dcos_centos_v1;
pub mod driver;
#[cfg(test)]
mod driver_tests;
pub mod error;
pub mod heat_driver;
pub mod heat_test_v1;
#[cfg(test)]
mod hot_check;
pub mod k8s_coreos_v1;
pub mod k8s_fedora_atomic_v1;
pub mod k8s_fedora_coreos_v1;
pub mod k8s_fedora_ironic_v1;
pub mod mesos_ubuntu_v1;
pub mod naming;
pub mod nodegroup;
pub mod openstack;
pub mod registry;
pub mod swarm_fedora_atomic_v1;
pub mod swarm_fedora_atomic_v2;

pub use driver::{
    ClusterOutputs, ClusterSpec, Driver, DriverKey, OutputOptions, ScaleSpec, Trustee,
};
pub use error::{DriverError, Error, HeatError, Result};
pub use naming::{nodegroup_stack_name, stack_name};
pub use nodegroup::{NodeGroupSpec, NodeTaint, UpgradeSpec};
pub use registry::{all_drivers, driver_by_name, driver_for, find_driver, TemplateKey};
