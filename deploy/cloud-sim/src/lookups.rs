//! Glance (`/image`), Nova (`/compute/v2.1`) and Neutron (`/networking`) look-ups, seeded like
//! devstack plus the images the Magnum drivers expect. Read-only; every call needs a token.

use std::sync::{Arc, LazyLock};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::error::{json_response, SimError};
use crate::keystone::{self, require_token};
use crate::util::{det_uuid, parse_query};
use crate::Sim;

const SEEDED_AT: &str = "2024-01-01T00:00:00Z";

/// Seeded images: (name, os_distro).
pub(crate) const IMAGES: &[(&str, Option<&str>)] = &[
    ("fedora-coreos-40", Some("fedora-coreos")),
    ("fedora-atomic-29", Some("fedora-atomic")),
    ("coreos-stable", Some("coreos")),
    ("ubuntu-mesos", Some("ubuntu")),
    ("centos-dcos", Some("centos")),
    ("fedora-ironic", Some("fedora")),
    ("cirros-no-distro", None),
];

/// Seeded flavors: (id, name, ram MB, vcpus, disk GB).
pub(crate) const FLAVORS: &[(&str, &str, u64, u64, u64)] = &[
    ("1", "m1.tiny", 512, 1, 1),
    ("2", "m1.small", 2048, 1, 20),
    ("3", "m1.medium", 4096, 2, 40),
    ("4", "m1.large", 8192, 4, 80),
    ("5", "baremetal", 8192, 4, 80),
    ("6", "m1.nodisk", 2048, 1, 0),
];

/// A seeded Neutron network with its single subnet.
pub(crate) struct SeedNet {
    pub name: &'static str,
    pub id: String,
    pub external: bool,
    pub subnet_name: &'static str,
    pub subnet_id: String,
    pub cidr: &'static str,
    pub gateway: &'static str,
}

pub(crate) static NETWORKS: LazyLock<Vec<SeedNet>> = LazyLock::new(|| {
    vec![
        SeedNet {
            name: "public",
            id: det_uuid("network", "public").to_string(),
            external: true,
            subnet_name: "public-subnet",
            subnet_id: det_uuid("subnet", "public-subnet").to_string(),
            cidr: "172.24.4.0/24",
            gateway: "172.24.4.1",
        },
        SeedNet {
            name: "private",
            id: det_uuid("network", "private").to_string(),
            external: false,
            subnet_name: "private-subnet",
            subnet_id: det_uuid("subnet", "private-subnet").to_string(),
            cidr: "10.0.0.0/24",
            gateway: "10.0.0.1",
        },
    ]
});

/// The seeded network named or identified by `r`.
pub(crate) fn seeded_network(r: &str) -> Option<&'static SeedNet> {
    NETWORKS.iter().find(|n| n.id == r || n.name == r)
}

/// The seeded network whose subnet is named or identified by `r`.
pub(crate) fn seeded_subnet(r: &str) -> Option<&'static SeedNet> {
    NETWORKS
        .iter()
        .find(|n| n.subnet_id == r || n.subnet_name == r)
}

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/image", get(image_versions))
        .route("/image/", get(image_versions))
        .route("/image/v2/images", get(list_images))
        .route("/image/v2/images/{id}", get(show_image))
        .route("/compute", get(compute_versions))
        .route("/compute/", get(compute_versions))
        .route("/compute/v2.1", get(compute_version))
        .route("/compute/v2.1/", get(compute_version))
        .route("/compute/v2.1/flavors", get(list_flavors))
        .route("/compute/v2.1/flavors/detail", get(list_flavors_detail))
        .route("/compute/v2.1/flavors/{id}", get(show_flavor))
        .route(
            "/compute/v2.1/flavors/{id}/os-extra_specs",
            get(flavor_extra_specs),
        )
        .route("/compute/v2.1/os-keypairs", get(list_keypairs))
        .route("/compute/v2.1/os-keypairs/{name}", get(show_keypair))
        .route("/networking", get(network_versions))
        .route("/networking/", get(network_versions))
        .route("/networking/v2.0/networks", get(list_networks))
        .route("/networking/v2.0/networks.json", get(list_networks))
        .route("/networking/v2.0/networks/{id}", get(show_network))
        .route("/networking/v2.0/subnets", get(list_subnets))
        .route("/networking/v2.0/subnets.json", get(list_subnets))
        .route("/networking/v2.0/subnets/{id}", get(show_subnet))
}

fn admin_project() -> String {
    keystone::project_id("admin")
}

/// Keep items whose fields match every filter in the query (ignoring paging/field keys).
fn filter_items(items: Vec<Value>, raw: Option<&str>) -> Vec<Value> {
    let q = parse_query(raw);
    items
        .into_iter()
        .filter(|item| {
            q.iter().all(|(k, v)| {
                if matches!(
                    k.as_str(),
                    "fields" | "limit" | "marker" | "sort_key" | "sort_dir" | "member_status"
                ) {
                    return true;
                }
                let Some(field) = item.get(k) else {
                    // Unknown filters match nothing, except the ones Glance/Neutron ignore.
                    return false;
                };
                let field_s = match field {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                if let Some(list) = v.strip_prefix("in:") {
                    list.split(',').any(|x| x.trim_matches('"') == field_s)
                } else {
                    field_s.eq_ignore_ascii_case(v) && (field.is_boolean() || field_s == *v)
                }
            })
        })
        .collect()
}

// ---------------------------------------------------------------- Glance

fn image_json(name: &str, distro: Option<&str>) -> Value {
    let id = det_uuid("image", name).to_string();
    let mut v = json!({
        "id": id,
        "name": name,
        "status": "active",
        "visibility": "public",
        "protected": false,
        "os_hidden": false,
        "container_format": "bare",
        "disk_format": "qcow2",
        "min_disk": 0,
        "min_ram": 0,
        "size": 1_073_741_824u64,
        "virtual_size": null,
        "checksum": crate::util::det_hex("image-checksum", name),
        "os_hash_algo": "sha512",
        "os_hash_value": format!("{}{}", crate::util::det_hex("h1", name), crate::util::det_hex("h2", name)),
        "owner": admin_project(),
        "tags": [],
        "created_at": SEEDED_AT,
        "updated_at": SEEDED_AT,
        "self": format!("/v2/images/{id}"),
        "file": format!("/v2/images/{id}/file"),
        "schema": "/v2/schemas/image",
    });
    if let (Some(d), Some(o)) = (distro, v.as_object_mut()) {
        o.insert("os_distro".into(), Value::String(d.to_string()));
    }
    v
}

async fn image_versions(State(sim): State<Arc<Sim>>) -> Response {
    json_response(
        StatusCode::MULTIPLE_CHOICES,
        &json!({"versions": [{"id": "v2.16", "status": "CURRENT",
            "links": [{"rel": "self", "href": format!("{}/image/v2/", sim.base_url)}]}]}),
    )
}

async fn list_images(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    let all = IMAGES.iter().map(|(n, d)| image_json(n, *d)).collect();
    let images = filter_items(all, raw.as_deref());
    Ok(json_response(
        StatusCode::OK,
        &json!({"images": images, "first": "/v2/images", "schema": "/v2/schemas/images"}),
    ))
}

async fn show_image(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    IMAGES
        .iter()
        .find(|(n, _)| det_uuid("image", n).to_string() == id)
        .map(|(n, d)| json_response(StatusCode::OK, &image_json(n, *d)))
        .ok_or(SimError::Glance {
            status: StatusCode::NOT_FOUND,
            message: format!("No image found with ID {id}"),
        })
}

// ---------------------------------------------------------------- Nova

fn flavor_links(sim: &Sim, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{}/compute/v2.1/flavors/{id}", sim.base_url)},
        {"rel": "bookmark", "href": format!("{}/compute/flavors/{id}", sim.base_url)}
    ])
}

fn flavor_detail(sim: &Sim, f: &(&str, &str, u64, u64, u64)) -> Value {
    let (id, name, ram, vcpus, disk) = *f;
    json!({
        "id": id, "name": name, "ram": ram, "vcpus": vcpus, "disk": disk,
        "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": false,
        "os-flavor-access:is_public": true, "swap": 0, "rxtx_factor": 1.0,
        "description": null, "extra_specs": {},
        "links": flavor_links(sim, id),
    })
}

async fn compute_versions(State(sim): State<Arc<Sim>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"versions": [compute_version_obj(&sim)]}),
    )
}

fn compute_version_obj(sim: &Sim) -> Value {
    json!({"id": "v2.1", "status": "CURRENT", "version": "2.96", "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/compute/v2.1/", sim.base_url)}]})
}

async fn compute_version(State(sim): State<Arc<Sim>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"version": compute_version_obj(&sim)}),
    )
}

async fn list_flavors(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    let flavors: Vec<Value> = FLAVORS
        .iter()
        .map(|f| json!({"id": f.0, "name": f.1, "description": null, "links": flavor_links(&sim, f.0)}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"flavors": flavors})))
}

async fn list_flavors_detail(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    let flavors: Vec<Value> = FLAVORS.iter().map(|f| flavor_detail(&sim, f)).collect();
    Ok(json_response(StatusCode::OK, &json!({"flavors": flavors})))
}

async fn show_flavor(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    FLAVORS
        .iter()
        .find(|f| f.0 == id)
        .map(|f| json_response(StatusCode::OK, &json!({"flavor": flavor_detail(&sim, f)})))
        .ok_or(SimError::Nova {
            status: StatusCode::NOT_FOUND,
            message: format!("Flavor {id} could not be found."),
        })
}

async fn flavor_extra_specs(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    if FLAVORS.iter().any(|f| f.0 == id) {
        Ok(json_response(StatusCode::OK, &json!({"extra_specs": {}})))
    } else {
        Err(SimError::Nova {
            status: StatusCode::NOT_FOUND,
            message: format!("Flavor {id} could not be found."),
        })
    }
}

fn keypair_json(user_id: &str) -> Value {
    json!({
        "name": "default",
        "type": "ssh",
        "public_key": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDcloudsimcloudsimcloudsim cloud-sim@default",
        "fingerprint": "4e:2d:9a:0f:63:5c:10:77:ab:21:3d:54:c8:19:ee:07",
        "user_id": user_id,
        "created_at": SEEDED_AT,
        "updated_at": null,
        "deleted": false,
        "deleted_at": null,
        "id": 1,
    })
}

async fn list_keypairs(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let mut kp = keypair_json(&caller.user_id);
    if let Some(o) = kp.as_object_mut() {
        for k in [
            "user_id",
            "created_at",
            "updated_at",
            "deleted",
            "deleted_at",
            "id",
        ] {
            o.remove(k);
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"keypairs": [{"keypair": kp}]}),
    ))
}

async fn show_keypair(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    if name != "default" {
        return Err(SimError::Nova {
            status: StatusCode::NOT_FOUND,
            message: format!("Keypair {name} not found for user {}", caller.user_id),
        });
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"keypair": keypair_json(&caller.user_id)}),
    ))
}

// ---------------------------------------------------------------- Neutron

fn network_json(n: &SeedNet) -> Value {
    json!({
        "id": n.id, "name": n.name, "status": "ACTIVE", "admin_state_up": true,
        "shared": false, "router:external": n.external, "subnets": [n.subnet_id],
        "mtu": 1450, "availability_zones": ["nova"], "availability_zone_hints": [],
        "ipv4_address_scope": null, "ipv6_address_scope": null,
        "port_security_enabled": true, "is_default": n.external,
        "provider:network_type": if n.external { "flat" } else { "vxlan" },
        "provider:physical_network": if n.external { Value::String("public".into()) } else { Value::Null },
        "provider:segmentation_id": if n.external { Value::Null } else { json!(1001) },
        "project_id": admin_project(), "tenant_id": admin_project(),
        "description": "", "tags": [], "revision_number": 1,
        "created_at": SEEDED_AT, "updated_at": SEEDED_AT,
    })
}

fn subnet_json(n: &SeedNet) -> Value {
    let (base, _) = n.cidr.split_once('/').unwrap_or((n.cidr, "24"));
    let prefix = base.rsplit_once('.').map(|(p, _)| p).unwrap_or(base);
    json!({
        "id": n.subnet_id, "name": n.subnet_name, "network_id": n.id,
        "cidr": n.cidr, "ip_version": 4, "gateway_ip": n.gateway, "enable_dhcp": !n.external,
        "allocation_pools": [{"start": format!("{prefix}.2"), "end": format!("{prefix}.254")}],
        "dns_nameservers": [], "host_routes": [], "service_types": [],
        "ipv6_ra_mode": null, "ipv6_address_mode": null, "subnetpool_id": null,
        "project_id": admin_project(), "tenant_id": admin_project(),
        "description": "", "tags": [], "revision_number": 0,
        "created_at": SEEDED_AT, "updated_at": SEEDED_AT,
    })
}

async fn network_versions(State(sim): State<Arc<Sim>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"versions": [{"id": "v2.0", "status": "CURRENT",
            "links": [{"rel": "self", "href": format!("{}/networking/v2.0/", sim.base_url)}]}]}),
    )
}

fn strip_json(id: &str) -> &str {
    id.strip_suffix(".json").unwrap_or(id)
}

async fn list_networks(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    let all = NETWORKS.iter().map(network_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"networks": filter_items(all, raw.as_deref())}),
    ))
}

async fn show_network(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    let id = strip_json(&id);
    NETWORKS
        .iter()
        .find(|n| n.id == id)
        .map(|n| json_response(StatusCode::OK, &json!({"network": network_json(n)})))
        .ok_or_else(|| SimError::Neutron {
            status: StatusCode::NOT_FOUND,
            kind: "NetworkNotFound".into(),
            message: format!("Network {id} could not be found."),
        })
}

async fn list_subnets(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    let all = NETWORKS.iter().map(subnet_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"subnets": filter_items(all, raw.as_deref())}),
    ))
}

async fn show_subnet(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    let id = strip_json(&id);
    NETWORKS
        .iter()
        .find(|n| n.subnet_id == id)
        .map(|n| json_response(StatusCode::OK, &json!({"subnet": subnet_json(n)})))
        .ok_or_else(|| SimError::Neutron {
            status: StatusCode::NOT_FOUND,
            kind: "SubnetNotFound".into(),
            message: format!("Subnet {id} could not be found."),
        })
}
