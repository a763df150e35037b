//! The service catalog, as Keystone renders it inside tokens and at `/v3/auth/catalog`.

use serde_json::{json, Value};

use crate::util::det_hex;
use crate::Sim;

/// Catalog entries. `project_id` substitutes `%(tenant_id)s` in the orchestration endpoint;
/// without a project (domain scope) that endpoint is left out, as Keystone does.
pub(crate) fn catalog(sim: &Sim, project_id: Option<&str>) -> Vec<Value> {
    let base = &sim.base_url;
    let mut services: Vec<(&str, &str, String)> = vec![
        ("identity", "keystone", format!("{base}/identity")),
        ("image", "glance", format!("{base}/image")),
        ("compute", "nova", format!("{base}/compute/v2.1")),
        ("network", "neutron", format!("{base}/networking")),
    ];
    if let Some(p) = project_id {
        let url = match &sim.heat_url {
            Some(u) => u.replace("%(tenant_id)s", p).replace("$(project_id)s", p),
            None => format!("{base}/heat-api/v1/{p}"),
        };
        services.insert(1, ("orchestration", "heat", url));
    }
    if let Some(url) = &sim.container_infra_url {
        services.push(("container-infra", "magnum", url.clone()));
    }
    services
        .into_iter()
        .map(|(ty, name, url)| {
            let endpoints: Vec<Value> = ["public", "internal", "admin"]
                .into_iter()
                .map(|iface| {
                    json!({
                        "id": det_hex("endpoint", &format!("{ty}/{iface}")),
                        "interface": iface,
                        "region": "RegionOne",
                        "region_id": "RegionOne",
                        "url": url,
                    })
                })
                .collect();
            json!({
                "id": det_hex("service", ty),
                "type": ty,
                "name": name,
                "endpoints": endpoints,
            })
        })
        .collect()
}
