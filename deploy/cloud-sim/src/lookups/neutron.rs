//! Neutron network and subnet look-ups.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{admin_project, filter_items, SEEDED_AT};
use crate::error::{json_response, single_version, SimError};
use crate::keystone::authenticate;
use crate::util::{det_uuid, host_in, last_host};
use crate::Sim;

/// The `public` network's subnet, where floating IPs come from, unless configured otherwise
/// ([`crate::SimConfig::floating_ip_range`]).
pub const DEFAULT_FLOATING_IP_RANGE: &str = "172.24.4.0/24";

/// A seeded Neutron network with its single subnet.
#[derive(Debug)]
pub(crate) struct SeedNet {
    pub name: &'static str,
    pub id: String,
    pub external: bool,
    pub subnet_name: &'static str,
    pub subnet_id: String,
    pub cidr: String,
    pub gateway: String,
}

impl SeedNet {
    fn new(name: &'static str, external: bool, subnet_name: &'static str, cidr: &str) -> Self {
        SeedNet {
            name,
            id: det_uuid("network", name).to_string(),
            external,
            subnet_name,
            subnet_id: det_uuid("subnet", subnet_name).to_string(),
            cidr: cidr.to_string(),
            gateway: host_in(cidr, 0, 1),
        }
    }
}

/// The seeded networks of one simulator: `public` (router:external; its subnet is the
/// floating IP range) and `private` (10.0.0.0/24). Ids are the same whatever the range.
#[derive(Debug)]
pub(crate) struct SeedNetworks(Vec<SeedNet>);

impl SeedNetworks {
    /// `floating` must be a normalised range (`util::floating_range`).
    pub(crate) fn new(floating: &str) -> Self {
        SeedNetworks(vec![
            SeedNet::new("public", true, "public-subnet", floating),
            SeedNet::new("private", false, "private-subnet", "10.0.0.0/24"),
        ])
    }

    pub(crate) fn all(&self) -> &[SeedNet] {
        &self.0
    }

    /// The seeded network named or identified by `r`.
    pub(crate) fn network(&self, r: &str) -> Option<&SeedNet> {
        self.0.iter().find(|n| n.id == r || n.name == r)
    }

    /// The seeded network whose subnet is named or identified by `r`.
    pub(crate) fn subnet(&self, r: &str) -> Option<&SeedNet> {
        self.0
            .iter()
            .find(|n| n.subnet_id == r || n.subnet_name == r)
    }

    /// Where floating IPs are allocated: the external network's subnet.
    pub(crate) fn floating_cidr(&self) -> &str {
        self.0
            .iter()
            .find(|n| n.external)
            .map_or(DEFAULT_FLOATING_IP_RANGE, |n| n.cidr.as_str())
    }
}

impl Default for SeedNetworks {
    fn default() -> Self {
        SeedNetworks::new(DEFAULT_FLOATING_IP_RANGE)
    }
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
    json!({
        "id": n.subnet_id, "name": n.subnet_name, "network_id": n.id,
        "cidr": n.cidr, "ip_version": 4, "gateway_ip": n.gateway, "enable_dhcp": !n.external,
        "allocation_pools": [{"start": host_in(&n.cidr, 0, 2), "end": last_host(&n.cidr)}],
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
    authenticate(&sim, &headers).await?;
    let all = sim.networks.all().iter().map(C::json).collect();
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
    authenticate(&sim, &headers).await?;
    let id = strip_json(&id);
    sim.networks
        .all()
        .iter()
        .find(|n| C::id(n) == id)
        .map(|n| json_response(StatusCode::OK, &json!({ C::MEMBER: C::json(n) })))
        .ok_or_else(|| SimError::Neutron {
            status: StatusCode::NOT_FOUND,
            kind: C::NOT_FOUND.into(),
            message: format!("{} {id} could not be found.", C::LABEL),
        })
}
