//! Nova flavor and keypair look-ups (quota sets are in `quota_sets`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::SEEDED_AT;
use crate::error::{json_response, SimError};
use crate::keystone::authenticate;
use crate::Sim;

/// Seeded flavors: (id, name, ram MB, vcpus, disk GB).
const FLAVORS: &[(&str, &str, u64, u64, u64)] = &[
    ("1", "m1.tiny", 512, 1, 1),
    ("2", "m1.small", 2048, 1, 20),
    ("3", "m1.medium", 4096, 2, 40),
    ("4", "m1.large", 8192, 4, 80),
    ("5", "baremetal", 8192, 4, 80),
    ("6", "m1.nodisk", 2048, 1, 0),
];

/// vCPUs of a seeded flavor, by id or name.
pub(crate) fn flavor_vcpus(id_or_name: &str) -> Option<u64> {
    FLAVORS
        .iter()
        .find(|f| f.0 == id_or_name || f.1 == id_or_name)
        .map(|f| f.3)
}

pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
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
}

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
    authenticate(&sim, &headers).await?;
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
    authenticate(&sim, &headers).await?;
    let flavors: Vec<Value> = FLAVORS.iter().map(|f| flavor_detail(&sim, f)).collect();
    Ok(json_response(StatusCode::OK, &json!({"flavors": flavors})))
}

async fn show_flavor(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    authenticate(&sim, &headers).await?;
    FLAVORS
        .iter()
        .find(|f| f.0 == id)
        .map(|f| json_response(StatusCode::OK, &json!({"flavor": flavor_detail(&sim, f)})))
        .ok_or_else(|| flavor_not_found(&id))
}

async fn flavor_extra_specs(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    authenticate(&sim, &headers).await?;
    if FLAVORS.iter().any(|f| f.0 == id) {
        Ok(json_response(StatusCode::OK, &json!({"extra_specs": {}})))
    } else {
        Err(flavor_not_found(&id))
    }
}

fn flavor_not_found(id: &str) -> SimError {
    SimError::Nova {
        status: StatusCode::NOT_FOUND,
        message: format!("Flavor {id} could not be found."),
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
    let caller = authenticate(&sim, &headers).await?;
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
    let caller = authenticate(&sim, &headers).await?;
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
