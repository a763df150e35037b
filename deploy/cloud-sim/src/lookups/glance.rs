//! Glance v2 image look-ups.

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
use crate::util::{det_hex, det_uuid};
use crate::Sim;

/// Seeded images: (name, os_distro).
const IMAGES: &[(&str, Option<&str>)] = &[
    ("fedora-coreos-40", Some("fedora-coreos")),
    ("fedora-atomic-29", Some("fedora-atomic")),
    ("coreos-stable", Some("coreos")),
    ("ubuntu-mesos", Some("ubuntu")),
    ("centos-dcos", Some("centos")),
    ("fedora-ironic", Some("fedora")),
    ("cirros-no-distro", None),
    // Selects the heat_test_v1 driver (a cluster of OS::Heat resources only).
    ("heat-test", Some("heat-test")),
];

pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/image", get(image_versions))
        .route("/image/", get(image_versions))
        .route("/image/v2/images", get(list_images))
        .route("/image/v2/images/{id}", get(show_image))
}

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
        "checksum": det_hex("image-checksum", name),
        "os_hash_algo": "sha512",
        "os_hash_value": format!("{}{}", det_hex("h1", name), det_hex("h2", name)),
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
    single_version(
        StatusCode::MULTIPLE_CHOICES,
        "v2.16",
        format!("{}/image/v2/", sim.base_url),
    )
}

async fn list_images(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, SimError> {
    authenticate(&sim, &headers).await?;
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
    authenticate(&sim, &headers).await?;
    IMAGES
        .iter()
        .find(|(n, _)| det_uuid("image", n).to_string() == id)
        .map(|(n, d)| json_response(StatusCode::OK, &image_json(n, *d)))
        .ok_or(SimError::Glance {
            status: StatusCode::NOT_FOUND,
            message: format!("No image found with ID {id}"),
        })
}
