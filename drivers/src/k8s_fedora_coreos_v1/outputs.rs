//! Stack outputs and parameters → cluster fields (upstream `K8sApiAddressOutputMapping`,
//! `MasterAddressOutputMapping`, `NodeAddressOutputMapping` and the `is_stack_param` mappings).

use serde_json::Value;

use crate::driver::{ClusterOutputs, OutputOptions};
use crate::openstack::Stack;

/// Kubernetes API port with TLS.
pub const KUBE_SECURE_PORT: u16 = 6443;
/// Kubernetes API port without TLS.
pub const KUBE_INSECURE_PORT: u16 = 8080;

/// `https://IP:6443`, or `http://IP:8080` when TLS is disabled (IPv6 addresses bracketed).
pub fn api_url(address: &str, tls_disabled: bool) -> String {
    let (scheme, port) = if tls_disabled {
        ("http", KUBE_INSECURE_PORT)
    } else {
        ("https", KUBE_SECURE_PORT)
    };
    if address.contains(':') && !address.starts_with('[') {
        format!("{scheme}://[{address}]:{port}")
    } else {
        format!("{scheme}://{address}:{port}")
    }
}

fn non_empty_str(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A list output (or a single string) as addresses, dropping nulls and empty strings.
fn addresses(v: Option<&Value>) -> Vec<String> {
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

/// Reads the cluster fields from a stack shown with outputs.
pub fn map_outputs(opts: &OutputOptions, stack: &Stack) -> ClusterOutputs {
    let (masters_key, minions_key) = if opts.floating_ip_enabled {
        ("kube_masters", "kube_minions")
    } else {
        ("kube_masters_private", "kube_minions_private")
    };
    ClusterOutputs {
        api_address: stack
            .outputs
            .get("api_address")
            .and_then(non_empty_str)
            .map(|ip| api_url(ip, opts.tls_disabled)),
        master_addresses: addresses(stack.outputs.get(masters_key)),
        node_addresses: addresses(stack.outputs.get(minions_key)),
        master_count: count(stack.param("number_of_masters")),
        node_count: count(stack.param("number_of_minions")),
        coe_version: stack
            .param("kube_version")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn stack(outputs: Value, params: &[(&str, &str)]) -> Stack {
        let outputs: BTreeMap<String, Value> = serde_json::from_value(outputs).unwrap();
        Stack {
            id: "id".into(),
            name: "n".into(),
            status: "CREATE_COMPLETE".into(),
            status_reason: String::new(),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            outputs,
            output_errors: BTreeMap::new(),
            creation_time: None,
            updated_time: None,
            timeout_mins: None,
            disable_rollback: None,
        }
    }

    fn full() -> Stack {
        stack(
            json!({
                "api_address": "172.24.4.10",
                "kube_masters": ["172.24.4.10"],
                "kube_masters_private": ["10.0.0.5"],
                "kube_minions": ["172.24.4.11", null, "172.24.4.13"],
                "kube_minions_private": ["10.0.0.6", "10.0.0.7", "10.0.0.8"],
            }),
            &[
                ("number_of_masters", "1"),
                ("number_of_minions", "3"),
                ("kube_version", "v1.28.9"),
            ],
        )
    }

    #[test]
    fn public_addresses_with_tls() {
        let out = map_outputs(
            &OutputOptions {
                tls_disabled: false,
                floating_ip_enabled: true,
            },
            &full(),
        );
        assert_eq!(
            out,
            ClusterOutputs {
                api_address: Some("https://172.24.4.10:6443".into()),
                master_addresses: vec!["172.24.4.10".into()],
                node_addresses: vec!["172.24.4.11".into(), "172.24.4.13".into()],
                master_count: Some(1),
                node_count: Some(3),
                coe_version: Some("v1.28.9".into()),
            }
        );
    }

    #[test]
    fn private_addresses_without_tls() {
        let out = map_outputs(
            &OutputOptions {
                tls_disabled: true,
                floating_ip_enabled: false,
            },
            &full(),
        );
        assert_eq!(out.api_address.as_deref(), Some("http://172.24.4.10:8080"));
        assert_eq!(out.master_addresses, vec!["10.0.0.5"]);
        assert_eq!(out.node_addresses, vec!["10.0.0.6", "10.0.0.7", "10.0.0.8"]);
    }

    #[test]
    fn unresolved_outputs_give_nothing() {
        let s = stack(
            json!({"api_address": null, "kube_masters": [null], "kube_minions": [null, null]}),
            &[("number_of_minions", "2.0")],
        );
        let out = map_outputs(
            &OutputOptions {
                tls_disabled: false,
                floating_ip_enabled: true,
            },
            &s,
        );
        assert_eq!(out.api_address, None);
        assert!(out.master_addresses.is_empty());
        assert!(out.node_addresses.is_empty());
        assert_eq!(out.node_count, Some(2));
        assert_eq!(out.master_count, None);
        assert_eq!(out.coe_version, None);
        let empty = stack(json!({}), &[("number_of_minions", "x")]);
        assert_eq!(
            map_outputs(
                &OutputOptions {
                    tls_disabled: false,
                    floating_ip_enabled: true
                },
                &empty
            ),
            ClusterOutputs::default()
        );
    }

    #[test]
    fn ipv6_is_bracketed() {
        assert_eq!(api_url("2001:db8::1", false), "https://[2001:db8::1]:6443");
    }
}
