//! Simulated physical resources: default latencies, failure rules, reference ids and
//! attributes (with IP allocation for ports, servers and floating IPs).

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{Action, HeatState, Resource};
use crate::util::{host_in, random_alnum, short_id};

/// Default simulated latency in seconds (before `time_scale`).
pub(crate) fn default_latency(rtype: &str, action: Action) -> f64 {
    match (rtype, action) {
        ("OS::Nova::Server", Action::Create) => 2.0,
        ("OS::Nova::Server", Action::Delete) => 1.0,
        ("OS::Nova::Server", _) => 0.5,
        ("OS::Heat::ResourceGroup", _) => 0.0,
        (t, _) if t.starts_with("OS::Neutron::") => 0.2,
        (t, _) if t.starts_with("OS::Octavia::") => 0.5,
        ("OS::Nova::ServerGroup", _) => 0.2,
        ("OS::Cinder::Volume", _) | ("OS::Cinder::VolumeAttachment", _) => 0.3,
        (t, _) if t.starts_with("OS::Heat::") => 0.05,
        _ => 0.05,
    }
}

/// `OS::Heat::TestResource` waits (`action_wait_secs.<action>` or `wait_secs`).
pub(crate) fn test_resource_wait(props: &Value, action: Action) -> Option<f64> {
    let key = match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
        _ => return None,
    };
    let n = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    props
        .get("action_wait_secs")
        .and_then(|a| a.get(key))
        .and_then(n)
        .or_else(|| props.get("wait_secs").and_then(n))
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on" | "t" | "y"
        ),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

/// A failure the resource type itself produces: `(error type, message)`.
pub(crate) fn intrinsic_failure(
    rtype: &str,
    name: &str,
    props: &Value,
    action: Action,
) -> Option<(String, String)> {
    if rtype == "OS::Heat::TestResource" && truthy(props.get("fail")) && action != Action::Delete {
        return Some(("ValueError".into(), format!("Test Resource failed {name}")));
    }
    None
}

fn s(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(x) if !x.is_empty() => Some(x.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first item of list property `key` (`null` when absent or empty).
fn first_item(props: &Value, key: &str) -> Value {
    props
        .get(key)
        .and_then(Value::as_array)
        .and_then(|l| l.first())
        .cloned()
        .unwrap_or(Value::Null)
}

/// The first fixed IP address of a port's attributes.
fn first_fixed_ip(attrs: &Map<String, Value>) -> Option<&Value> {
    attrs
        .get("fixed_ips")
        .and_then(|f| f.get(0))
        .and_then(|f| f.get("ip_address"))
}

const DEFAULT_CIDR: &str = "10.0.0.0/24";

/// Allocate a fixed IP from `cidr` in the root stack's pool.
fn alloc_fixed(st: &mut HeatState, root: Uuid, cidr: &str) -> String {
    let Some(stack) = st.stacks.get_mut(&root) else {
        return host_in(cidr, 0, 3);
    };
    let next = stack.pools.entry(cidr.to_string()).or_insert(0);
    let ip = host_in(cidr, *next, 3);
    *next = next.wrapping_add(1);
    ip
}

/// Allocate a floating IP from the public pool (global).
fn alloc_floating(st: &mut HeatState) -> String {
    let ip = host_in(st.networks.floating_cidr(), st.floating_next, 10);
    st.floating_next = st.floating_next.wrapping_add(1);
    ip
}

/// A resource of the root stack's tree with this physical id.
fn find_physical(st: &HeatState, root: Uuid, pid: &str) -> Option<Resource> {
    st.stacks
        .values()
        .filter(|s| s.root == root)
        .flat_map(|s| s.resources.values())
        .find(|r| r.physical_id == pid)
        .cloned()
}

fn cidr_of_subnet(st: &HeatState, root: Uuid, r: &str) -> Option<String> {
    if let Some(res) = find_physical(st, root, r).filter(|x| x.impl_type == "OS::Neutron::Subnet") {
        return Some(s(res.props.get("cidr")).unwrap_or_else(|| DEFAULT_CIDR.into()));
    }
    st.networks.subnet(r).map(|n| n.cidr.clone())
}

fn cidr_of_network(st: &HeatState, root: Uuid, r: &str) -> Option<String> {
    if let Some(n) = st.networks.network(r) {
        return Some(n.cidr.clone());
    }
    st.stacks
        .values()
        .filter(|s| s.root == root)
        .flat_map(|s| s.resources.values())
        .find(|x| {
            x.impl_type == "OS::Neutron::Subnet"
                && (s(x.props.get("network")).as_deref() == Some(r)
                    || s(x.props.get("network_id")).as_deref() == Some(r))
        })
        .map(|x| s(x.props.get("cidr")).unwrap_or_else(|| DEFAULT_CIDR.into()))
}

/// The port of a server's first address (kept across updates).
fn server_port(prev: Option<&Resource>) -> Option<Value> {
    let addresses = prev?.attrs.get("addresses")?.as_object()?;
    addresses
        .values()
        .filter_map(|a| a.get(0)?.get("port").cloned())
        .next()
}

/// The fixed address of a server of the root stack's tree on Neutron port `port`.
fn server_address_on_port(st: &HeatState, root: Uuid, port: &str) -> Option<Value> {
    st.stacks
        .values()
        .filter(|s| s.root == root)
        .flat_map(|s| s.resources.values())
        .filter(|r| r.impl_type == "OS::Nova::Server")
        .filter_map(|r| r.attrs.get("addresses")?.as_object().cloned())
        .flat_map(|a| a.into_iter().filter_map(|(_, v)| v.as_array().cloned()))
        .flatten()
        .find(|a| a.get("port").and_then(Value::as_str) == Some(port))
        .and_then(|a| a.get("addr").cloned())
}

fn mac() -> String {
    let id = Uuid::new_v4();
    let b = id.as_bytes();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// The result of creating/updating a leaf resource.
pub(crate) struct Built {
    pub physical_id: String,
    pub attrs: Map<String, Value>,
}

/// Build the reference id and attributes of a leaf resource (after its simulated latency).
/// `prev` is the resource as it was before (kept ids and IPs on update).
pub(crate) fn build(
    st: &mut HeatState,
    stack_id: Uuid,
    name: &str,
    rtype: &str,
    props: &Value,
    prev: Option<&Resource>,
) -> Built {
    let (root, stack_name) = st
        .stacks
        .get(&stack_id)
        .map(|s| (s.root, s.name.clone()))
        .unwrap_or((stack_id, String::new()));
    let prev_pid = prev
        .map(|p| p.physical_id.clone())
        .filter(|p| !p.is_empty());
    let prev_attr = |k: &str| prev.and_then(|p| p.attrs.get(k)).cloned();
    let pid = prev_pid
        .clone()
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let phys_name = || format!("{stack_name}-{name}-{}", short_id());
    let name_prop = s(props.get("name"));
    let mut a = Map::new();
    let mut physical_id = pid.clone();
    match rtype {
        "OS::Heat::RandomString" => {
            let len = props
                .get("length")
                .and_then(|l| {
                    l.as_u64()
                        .or_else(|| l.as_str().and_then(|x| x.parse().ok()))
                })
                .unwrap_or(32)
                .min(512) as usize;
            let value = match (prev_attr("value"), prev) {
                (Some(Value::String(v)), Some(p)) if p.props == *props => v,
                _ => random_alnum(len),
            };
            physical_id = value.clone();
            a.insert("value".into(), Value::String(value));
        }
        "OS::Heat::TestResource" => {
            // Heat's TestResource uses its physical resource name as resource id.
            physical_id = prev_pid.clone().unwrap_or_else(phys_name);
            let v = props
                .get("value")
                .cloned()
                .unwrap_or_else(|| json!("test_string"));
            a.insert("output".into(), v);
        }
        "OS::Heat::Value" => {
            a.insert(
                "value".into(),
                props.get("value").cloned().unwrap_or(Value::Null),
            );
        }
        "OS::Heat::SoftwareConfig"
        | "OS::Heat::CloudConfig"
        | "OS::Heat::MultipartMime"
        | "OS::Heat::StructuredConfig" => {
            a.insert(
                "config".into(),
                props.get("config").cloned().unwrap_or(Value::Null),
            );
        }
        "OS::Heat::SoftwareDeployment"
        | "OS::Heat::StructuredDeployment"
        | "OS::Heat::SoftwareDeploymentGroup" => {
            a.insert("deploy_stdout".into(), json!(""));
            a.insert("deploy_stderr".into(), json!(""));
            a.insert("deploy_status_code".into(), json!(0));
        }
        "OS::Neutron::Net" => {
            a.insert("name".into(), json!(name_prop.unwrap_or_else(phys_name)));
            a.insert("status".into(), json!("ACTIVE"));
            a.insert("admin_state_up".into(), json!(true));
            a.insert("mtu".into(), json!(1450));
            a.insert("subnets".into(), json!([]));
            a.insert(
                "tenant_id".into(),
                json!(st.stacks.get(&stack_id).map(|s| s.project_id.clone())),
            );
        }
        "OS::Neutron::Subnet" => {
            let cidr = s(props.get("cidr")).unwrap_or_else(|| DEFAULT_CIDR.into());
            let gw = s(props.get("gateway_ip")).unwrap_or_else(|| host_in(&cidr, 0, 1));
            a.insert("name".into(), json!(name_prop.unwrap_or_else(phys_name)));
            a.insert("cidr".into(), json!(cidr));
            a.insert("gateway_ip".into(), json!(gw));
            a.insert("ip_version".into(), json!(4));
            a.insert(
                "network_id".into(),
                json!(s(props.get("network")).or_else(|| s(props.get("network_id")))),
            );
            a.insert(
                "allocation_pools".into(),
                json!([{"start": host_in(&cidr, 0, 2), "end": host_in(&cidr, u32::MAX - 1, 2)}]),
            );
            a.insert("enable_dhcp".into(), json!(true));
        }
        "OS::Neutron::Port" => {
            let fixed = first_item(props, "fixed_ips");
            let subnet_ref = s(fixed.get("subnet")).or_else(|| s(fixed.get("subnet_id")));
            let network_ref = s(props.get("network")).or_else(|| s(props.get("network_id")));
            let ip = match prev_attr("fixed_ips") {
                Some(v) if v.get(0).and_then(|x| x.get("ip_address")).is_some() => {
                    v[0]["ip_address"].clone()
                }
                _ => {
                    let ip = s(fixed.get("ip_address")).unwrap_or_else(|| {
                        let cidr = subnet_ref
                            .as_deref()
                            .and_then(|r| cidr_of_subnet(st, root, r))
                            .or_else(|| {
                                network_ref
                                    .as_deref()
                                    .and_then(|r| cidr_of_network(st, root, r))
                            })
                            .unwrap_or_else(|| DEFAULT_CIDR.into());
                        alloc_fixed(st, root, &cidr)
                    });
                    Value::String(ip)
                }
            };
            let subnet_id = subnet_ref
                .clone()
                .or_else(|| {
                    network_ref
                        .as_deref()
                        .and_then(|r| st.networks.network(r))
                        .map(|n| n.subnet_id.clone())
                })
                .unwrap_or_else(|| {
                    st.networks
                        .all()
                        .iter()
                        .find(|n| !n.external)
                        .map(|n| n.subnet_id.clone())
                        .unwrap_or_default()
                });
            let mac_addr = prev_attr("mac_address").unwrap_or_else(|| json!(mac()));
            a.insert(
                "fixed_ips".into(),
                json!([{"ip_address": ip, "subnet_id": subnet_id}]),
            );
            a.insert("mac_address".into(), mac_addr);
            a.insert("network_id".into(), json!(network_ref));
            a.insert("name".into(), json!(name_prop.unwrap_or_else(phys_name)));
            a.insert("device_id".into(), json!(""));
            a.insert("status".into(), json!("ACTIVE"));
            a.insert("subnets".into(), json!([]));
        }
        "OS::Neutron::FloatingIP" => {
            let ip = match prev_attr("floating_ip_address") {
                Some(Value::String(x)) => x,
                _ => alloc_floating(st),
            };
            let port = s(props.get("port_id"));
            let fixed = port
                .as_deref()
                .and_then(|p| {
                    find_physical(st, root, p)
                        .and_then(|p| first_fixed_ip(&p.attrs).cloned())
                        .or_else(|| server_address_on_port(st, root, p))
                })
                .unwrap_or(Value::Null);
            a.insert("floating_ip_address".into(), json!(ip));
            a.insert("fixed_ip_address".into(), fixed);
            a.insert("port_id".into(), json!(port));
            a.insert(
                "floating_network_id".into(),
                json!(s(props.get("floating_network"))
                    .or_else(|| s(props.get("floating_network_id")))),
            );
            a.insert("router_id".into(), Value::Null);
        }
        "OS::Octavia::LoadBalancer" | "OS::Neutron::LBaaS::LoadBalancer" => {
            let ip = match prev_attr("vip_address") {
                Some(Value::String(x)) => x,
                _ => {
                    let cidr = s(props.get("vip_subnet"))
                        .and_then(|r| cidr_of_subnet(st, root, &r))
                        .unwrap_or_else(|| DEFAULT_CIDR.into());
                    alloc_fixed(st, root, &cidr)
                }
            };
            a.insert("vip_address".into(), json!(ip));
            a.insert("vip_port_id".into(), json!(Uuid::new_v4().to_string()));
            a.insert("provisioning_status".into(), json!("ACTIVE"));
            a.insert("operating_status".into(), json!("ONLINE"));
        }
        "OS::Nova::Server" => {
            let server_name = name_prop.unwrap_or_else(|| {
                prev_attr("name")
                    .and_then(|n| n.as_str().map(str::to_string))
                    .unwrap_or_else(phys_name)
            });
            let first_net = first_item(props, "networks");
            let port = s(first_net.get("port")).and_then(|p| find_physical(st, root, &p));
            let net_key = s(first_net.get("network"))
                .or_else(|| port.as_ref().and_then(|p| s(p.props.get("network"))))
                .and_then(|n| {
                    st.networks
                        .network(&n)
                        .map(|x| x.name.to_string())
                        .or(Some(n))
                })
                .unwrap_or_else(|| "private".into());
            let ip = match prev_attr("first_address") {
                Some(Value::String(x)) if !x.is_empty() => x,
                _ => port
                    .as_ref()
                    .and_then(|p| {
                        first_fixed_ip(&p.attrs)
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .or_else(|| s(first_net.get("fixed_ip")))
                    .unwrap_or_else(|| {
                        let cidr = s(first_net.get("subnet"))
                            .and_then(|r| cidr_of_subnet(st, root, &r))
                            .or_else(|| {
                                s(first_net.get("network"))
                                    .and_then(|r| cidr_of_network(st, root, &r))
                            })
                            .unwrap_or_else(|| DEFAULT_CIDR.into());
                        alloc_fixed(st, root, &cidr)
                    }),
            };
            let mac_addr = port
                .as_ref()
                .and_then(|p| p.attrs.get("mac_address").cloned())
                .unwrap_or_else(|| json!(mac()));
            // Heat adds the Neutron port to each address; a server booted on a network (e.g. an
            // Ironic node) gets a port Nova made, whose id stays across updates.
            let port_id = port
                .as_ref()
                .map(|p| json!(p.physical_id))
                .or_else(|| server_port(prev))
                .unwrap_or_else(|| json!(Uuid::new_v4().to_string()));
            let mut networks = Map::new();
            networks.insert(net_key.clone(), json!([ip]));
            let mut addresses = Map::new();
            addresses.insert(
                net_key,
                json!([{"addr": ip, "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac_addr, "port": port_id}]),
            );
            a.insert("first_address".into(), json!(ip));
            a.insert("name".into(), json!(server_name));
            a.insert("networks".into(), Value::Object(networks));
            a.insert("addresses".into(), Value::Object(addresses.clone()));
            a.insert("accessIPv4".into(), json!(""));
            a.insert("accessIPv6".into(), json!(""));
            a.insert(
                "instance_name".into(),
                json!(format!("instance-{}", &pid[..8.min(pid.len())])),
            );
            a.insert("console_urls".into(), json!({}));
            a.insert(
                "show".into(),
                json!({"id": pid, "name": server_name, "status": "ACTIVE", "addresses": addresses,
                       "flavor": props.get("flavor"), "image": props.get("image"), "key_name": props.get("key_name")}),
            );
        }
        "OS::Cinder::Volume" => {
            let size = props
                .get("size")
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|x| x.parse().ok()))
                })
                .unwrap_or(1);
            a.insert("size".into(), json!(size));
            a.insert(
                "display_name".into(),
                json!(name_prop.unwrap_or_else(phys_name)),
            );
            a.insert(
                "volume_type".into(),
                json!(s(props.get("volume_type")).unwrap_or_else(|| "lvmdriver-1".into())),
            );
            a.insert("status".into(), json!("available"));
            a.insert("bootable".into(), json!(props.get("image").is_some()));
            a.insert("availability_zone".into(), json!("nova"));
            a.insert("encrypted".into(), json!(false));
            a.insert("multiattach".into(), json!(false));
            a.insert("attachments".into(), json!("[]"));
        }
        "OS::Nova::ServerGroup" => {
            a.insert("name".into(), json!(name_prop.unwrap_or_else(phys_name)));
            a.insert(
                "policies".into(),
                props.get("policies").cloned().unwrap_or_else(|| json!([])),
            );
        }
        "OS::Neutron::SecurityGroup" | "OS::Neutron::Router" => {
            a.insert("name".into(), json!(name_prop.unwrap_or_else(phys_name)));
            if rtype == "OS::Neutron::Router" {
                a.insert(
                    "external_gateway_info".into(),
                    props
                        .get("external_gateway_info")
                        .cloned()
                        .unwrap_or(Value::Null),
                );
                a.insert("status".into(), json!("ACTIVE"));
            }
        }
        _ => {}
    }
    if !a.contains_key("show") {
        let mut show = props.as_object().cloned().unwrap_or_default();
        show.insert("id".into(), Value::String(physical_id.clone()));
        for (k, v) in &a {
            show.entry(k.clone()).or_insert_with(|| v.clone());
        }
        a.insert("show".into(), Value::Object(show));
    }
    Built {
        physical_id,
        attrs: a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_and_server_ports() {
        let mut st = HeatState::default();
        let stack = Uuid::new_v4();
        let v = build(
            &mut st,
            stack,
            "docker_volume",
            "OS::Cinder::Volume",
            &json!({"size": "5"}),
            None,
        );
        assert_eq!(v.attrs["size"], json!(5));
        assert_eq!(v.attrs["status"], json!("available"));
        assert_eq!(v.attrs["show"]["id"], json!(v.physical_id));

        // A server booted on a network gets a port in its addresses; a floating IP on that port
        // resolves the server's fixed address.
        let props = json!({"networks": [{"network": "private"}]});
        let built = build(&mut st, stack, "srv", "OS::Nova::Server", &props, None);
        let port = built.attrs["addresses"]["private"][0]["port"].clone();
        assert!(port.as_str().is_some_and(|p| !p.is_empty()), "{port}");
        assert_eq!(
            built.attrs["addresses"]["private"][0]["addr"],
            built.attrs["first_address"]
        );
    }
}
