//! Stack outputs and parameters → cluster fields, by name per driver.

use serde_json::Value;

use crate::driver::{ClusterOutputs, OutputOptions};
use crate::openstack::Stack;

/// How `api_address` is formed from the address the stack outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiEndpoint {
    /// `(scheme, port)` with TLS.
    pub tls: (&'static str, u16),
    /// `(scheme, port)` when the template has `tls_disabled`.
    pub plain: (&'static str, u16),
}

impl ApiEndpoint {
    /// `scheme://address:port` (IPv6 addresses bracketed).
    pub fn url(&self, address: &str, tls_disabled: bool) -> String {
        let (scheme, port) = if tls_disabled { self.plain } else { self.tls };
        if address.contains(':') && !address.starts_with('[') {
            format!("{scheme}://[{address}]:{port}")
        } else {
            format!("{scheme}://{address}:{port}")
        }
    }
}

/// The names a driver's stack uses for what Magnum reads back.
#[derive(Debug, Clone, Copy)]
pub struct OutputSpec {
    /// Scheme and port of `api_address`.
    pub api: ApiEndpoint,
    /// Outputs listing the masters' public addresses (concatenated in this order).
    pub masters: &'static [&'static str],
    /// The same, private addresses (read when floating IPs are disabled).
    pub masters_private: &'static [&'static str],
    /// Output listing the workers' public addresses.
    pub nodes: &'static str,
    /// Output listing the workers' private addresses.
    pub nodes_private: &'static str,
    /// Stack parameter holding the master count.
    pub master_count_param: &'static str,
    /// Stack parameter holding the worker count (also what a scale PATCH sets).
    pub node_count_param: &'static str,
    /// Stack parameter holding the COE version, if the driver has one.
    pub coe_version_param: Option<&'static str>,
}

fn non_empty_str(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A list output (or a single string) as addresses, dropping nulls and empty strings.
pub(crate) fn addresses(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(non_empty_str)
            .map(str::to_string)
            .collect(),
        Some(other) => non_empty_str(other)
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

/// A number parameter as Heat shows it (`"3"`, sometimes `"3.0"`).
fn count(s: Option<&str>) -> Option<u32> {
    let s = s?.trim();
    s.parse::<u32>().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u32)
    })
}

impl OutputSpec {
    /// Reads the cluster fields from a stack shown with outputs.
    pub fn map(&self, opts: &OutputOptions, stack: &Stack) -> ClusterOutputs {
        let (masters, nodes) = if opts.floating_ip_enabled {
            (self.masters, self.nodes)
        } else {
            (self.masters_private, self.nodes_private)
        };
        ClusterOutputs {
            api_address: stack
                .outputs
                .get("api_address")
                .and_then(non_empty_str)
                .map(|ip| self.api.url(ip, opts.tls_disabled)),
            master_addresses: masters
                .iter()
                .flat_map(|k| addresses(stack.outputs.get(*k)))
                .collect(),
            node_addresses: addresses(stack.outputs.get(nodes)),
            master_count: count(stack.param(self.master_count_param)),
            node_count: count(stack.param(self.node_count_param)),
            coe_version: self
                .coe_version_param
                .and_then(|p| stack.param(p))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        }
    }

    /// Every output name the mapping reads.
    pub fn output_names(&self) -> Vec<&'static str> {
        let mut v = vec!["api_address", self.nodes, self.nodes_private];
        v.extend(self.masters);
        v.extend(self.masters_private);
        v
    }
}

/// The Kubernetes drivers' names (`https://IP:6443`, or `http://IP:8080` without TLS).
pub const K8S_OUTPUTS: OutputSpec = OutputSpec {
    api: ApiEndpoint {
        tls: ("https", 6443),
        plain: ("http", 8080),
    },
    masters: &["kube_masters"],
    masters_private: &["kube_masters_private"],
    nodes: "kube_minions",
    nodes_private: "kube_minions_private",
    master_count_param: "number_of_masters",
    node_count_param: "number_of_minions",
    coe_version_param: Some("kube_version"),
};
