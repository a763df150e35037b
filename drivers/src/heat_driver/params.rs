//! Helpers shared by the drivers' parameter mappings: typed labels, optional values, and the
//! parameters every Heat driver passes the same way (identity, network, proxies).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::driver::ClusterSpec;
use crate::error::DriverError;

/// Heat `timeout_mins` when the cluster's `create_timeout` is 0 (`[cluster_heat] create_timeout`).
pub const DEFAULT_CREATE_TIMEOUT_MINS: u32 = 60;

/// The type a label value must be converted to for its template parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Number,
    Bool,
}

/// A label's value converted for a parameter of `kind` (a clear 4xx-worthy error otherwise).
pub(crate) fn label_value(label: &str, raw: &str, kind: Kind) -> Result<Value, DriverError> {
    let v = raw.trim();
    match kind {
        Kind::Str => Ok(Value::String(raw.to_string())),
        Kind::Number => v.parse::<u64>().map(Value::from).map_err(|_| {
            DriverError::InvalidInput(format!(
                "Label {label} must be a non-negative integer, got {raw:?}."
            ))
        }),
        Kind::Bool => parse_bool(v).map(Value::Bool).ok_or_else(|| {
            DriverError::InvalidInput(format!("Label {label} must be a boolean, got {raw:?}."))
        }),
    }
}

/// oslo `strutils.bool_from_string(strict=True)`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// A trimmed, non-empty string.
pub(crate) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Heat `timeout_mins` for a cluster create.
pub(crate) fn create_timeout_mins(spec: &ClusterSpec) -> u32 {
    if spec.create_timeout == 0 {
        DEFAULT_CREATE_TIMEOUT_MINS
    } else {
        spec.create_timeout
    }
}

/// A parameter map under construction.
#[derive(Debug, Default)]
pub(crate) struct Params(pub(crate) BTreeMap<String, Value>);

impl Params {
    pub(crate) fn set(&mut self, k: &str, v: Value) {
        self.0.insert(k.to_string(), v);
    }

    /// Sets `k` when `v` is a non-empty string.
    pub(crate) fn opt(&mut self, k: &str, v: &Option<String>) {
        if let Some(v) = non_empty(v) {
            self.set(k, json!(v));
        }
    }

    /// Passes the listed labels through, converted to their parameter's type.
    pub(crate) fn labels(
        &mut self,
        spec: &ClusterSpec,
        table: &[(&str, Kind)],
    ) -> Result<(), DriverError> {
        for (label, kind) in table {
            if let Some(raw) = spec.labels.get(*label) {
                self.set(label, label_value(label, raw, *kind)?);
            }
        }
        Ok(())
    }
}

/// `external_network` is required by every Heat driver; `image_id` by every template.
pub(crate) fn required<'a>(spec: &'a ClusterSpec, driver: &str) -> Result<&'a str, DriverError> {
    let external = non_empty(&spec.external_network_id).ok_or_else(|| {
        DriverError::InvalidInput(format!(
            "The cluster template has no external_network_id; the {driver} driver requires one."
        ))
    })?;
    if spec.image_id.trim().is_empty() {
        return Err(DriverError::InvalidInput(
            "The cluster template has no image_id.".into(),
        ));
    }
    Ok(external)
}

/// Parameters the swarm, mesos and dcos templates share: cluster identity, the private network
/// (`fixed_network_cidr`, upstream's name there), DNS, key, proxies, Keystone and trustee.
pub(crate) fn common(p: &mut Params, spec: &ClusterSpec, driver: &str) -> Result<(), DriverError> {
    let external = required(spec, driver)?;
    p.set("cluster_uuid", json!(spec.cluster_uuid.to_string()));
    p.set("external_network", json!(external));
    p.opt("fixed_network", &spec.fixed_network);
    p.opt("fixed_subnet", &spec.fixed_subnet);
    let cidr = non_empty(&spec.fixed_subnet_cidr)
        .or_else(|| {
            spec.labels
                .get("fixed_network_cidr")
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("10.0.0.0/24")
        .to_string();
    p.set("fixed_network_cidr", json!(cidr));
    p.opt("dns_nameserver", &spec.dns_nameserver);
    p.opt("ssh_key_name", &spec.keypair);
    p.opt("http_proxy", &spec.http_proxy);
    p.opt("https_proxy", &spec.https_proxy);
    if let Some(v) = non_empty(&spec.no_proxy) {
        let value = if v.split(',').any(|e| e.trim() == cidr) {
            v.to_string()
        } else {
            format!("{v},{cidr}")
        };
        p.set("no_proxy", json!(value));
    }
    p.set("auth_url", json!(spec.auth_url.trim_end_matches('/')));
    p.opt("region_name", &spec.region_name);
    p.set("verify_ca", json!(spec.verify_ca));
    p.opt("openstack_ca", &spec.openstack_ca);
    if let Some(t) = &spec.trustee {
        p.set("trustee_domain_id", json!(t.domain_id));
        p.set("trustee_user_id", json!(t.user_id));
        p.set("trustee_username", json!(t.username));
        p.set("trustee_password", json!(t.password));
        p.set("trust_id", json!(t.trust_id));
    }
    p.set("floating_ip_enabled", json!(spec.floating_ip_enabled));
    p.set("number_of_masters", json!(spec.master_count));
    p.set("master_image", json!(spec.image_id));
    p.opt("master_flavor", &spec.master_flavor_id);
    p.opt("volume_driver", &spec.volume_driver);
    Ok(())
}
