//! Neutron network and subnet look-ups.

use std::sync::{Arc, LazyLock};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{admin_project, filter_items, SEEDED_AT};
use crate::error::{json_response, single_version, SimError};
use crate::keystone::require_token;
use crate::util::det_uuid;
use crate::Sim;

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

pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/networking", get(network_versions))
        .route("/networking/", get(network_versions))
        .route("/networking/v2.0/networks", get(neutron_list::<Networks>))
        .route(
            "/networking/v2.0/networks.json",
            get(neutron_list::<Networks>),
        )
        .route(
            "/networking/v2.0/networks/{id}",
            get(neutron_show::<Networks>),
        )
        .route("/networking/v2.0/subnets", get(neutron_list::<Subnets>))
        .route(
            "/networking/v2.0/subnets.json",
            get(neutron_list::<Subnets>),
        )
        .route(
            "/networking/v2.0/subnets/{id}",
            get(neutron_show::<Subnets>),
        )
}

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
    single_version(
        StatusCode::OK,
        "v2.0",
        format!("{}/networking/v2.0/", sim.base_url),
    )
}

fn strip_json(id: &str) -> &str {
    id.strip_suffix(".json").unwrap_or(id)
}

/// A Neutron collection served from the seeded networks: the networks, or their subnets.
trait NeutronCollection {
    /// The list's key (`networks`).
    const PLURAL: &'static str;
    /// The show's key (`network`).
    const MEMBER: &'static str;
    /// Error type of a 404 (`NetworkNotFound`).
    const NOT_FOUND: &'static str;
    /// How the 404 message names a member (`Network`).
    const LABEL: &'static str;
    fn id(n: &SeedNet) -> &str;
    fn json(n: &SeedNet) -> Value;
}

struct Networks;

impl NeutronCollection for Networks {
    const PLURAL: &'static str = "networks";
    const MEMBER: &'static str = "network";
    const NOT_FOUND: &'static str = "NetworkNotFound";
    const LABEL: &'static str = "Network";
    fn id(n: &SeedNet) -> &str {
        &n.id
    }
    fn json(n: &SeedNet) -> Value {
        network_json(n)
    }
}

struct Subnets;

impl NeutronCollection for Subnets {
    const PLURAL: &'static str = "subnets";
    const MEMBER: &'static str = "subnet";
    const NOT_FOUND: &'static str = "SubnetNotFound";
    const LABEL: &'static str = "Subnet";
    fn id(n: &SeedNet) -> &str {
        &n.subnet_id
    }
    fn json(n: &SeedNet) -> Value {
        subnet_json(n)
    }
}

async fn neutron_list<C: NeutronCollection>(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    let all = NETWORKS.iter().map(C::json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ C::PLURAL: filter_items(all, raw.as_deref()) }),
    ))
}

async fn neutron_show<C: NeutronCollection>(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    let id = strip_json(&id);
    NETWORKS
        .iter()
        .find(|n| C::id(n) == id)
        .map(|n| json_response(StatusCode::OK, &json!({ C::MEMBER: C::json(n) })))
        .ok_or_else(|| SimError::Neutron {
            status: StatusCode::NOT_FOUND,
            kind: C::NOT_FOUND.into(),
            message: format!("{} {id} could not be found.", C::LABEL),
        })
}
