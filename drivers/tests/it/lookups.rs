//! Glance / Nova / Neutron look-ups used by template validation.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_drivers::openstack::{
    ComputeClient, ImageClient, NetworkClient, StaticToken, TokenProvider,
};
use magnum_drivers::Error;
use serde_json::{json, Value};
use url::Url;

use crate::mock;

const FCOS_ID: &str = "0f0c3b2a-1111-4d4d-8e8e-000000000001";
const EXT_NET_ID: &str = "9a9a9a9a-2222-4d4d-8e8e-000000000002";
const SUBNET_ID: &str = "5b5b5b5b-3333-4d4d-8e8e-000000000003";

fn images() -> Vec<Value> {
    vec![
        json!({"id": FCOS_ID, "name": "fedora-coreos-40", "status": "active", "visibility": "public",
               "os_distro": "fedora-coreos", "magnum_driver": "k8s_fedora_coreos_v1", "min_disk": 0, "size": 123}),
        json!({"id": "dup-1", "name": "dup", "status": "active"}),
        json!({"id": "dup-2", "name": "dup", "status": "active"}),
        json!({"id": "plain", "name": "cirros", "status": "active", "min_disk": null}),
    ]
}

async fn image_list(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let list: Vec<Value> = images()
        .into_iter()
        .filter(|i| q.get("name").is_none_or(|n| i["name"] == n.as_str()))
        .collect();
    Json(json!({"images": list, "schema": "/v2/schemas/images", "first": "/v2/images"}))
}

async fn image_get(Path(id): Path<String>) -> Response {
    match images().into_iter().find(|i| i["id"] == id.as_str()) {
        Some(i) => Json(i).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "404 Not Found\n\nNo image found with ID x\n\n",
        )
            .into_response(),
    }
}

fn flavors() -> Vec<Value> {
    vec![
        json!({"id": "1", "name": "m1.tiny", "ram": 512, "disk": 1, "vcpus": 1}),
        json!({"id": "ds1", "name": "ds1G", "ram": 1024, "disk": 0, "vcpus": 1}),
        json!({"id": "a", "name": "twin", "ram": 1, "disk": 1, "vcpus": 1}),
        json!({"id": "b", "name": "twin", "ram": 1, "disk": 1, "vcpus": 1}),
    ]
}

async fn flavor_get(Path(id): Path<String>) -> Response {
    match flavors().into_iter().find(|f| f["id"] == id.as_str()) {
        Some(f) => Json(json!({"flavor": f})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"itemNotFound": {"code": 404, "message": format!("Flavor {id} could not be found.")}})),
        )
            .into_response(),
    }
}

async fn flavor_detail() -> Json<Value> {
    Json(json!({"flavors": flavors()}))
}

async fn keypair_get(Path(name): Path<String>) -> Response {
    if name == "kp" {
        Json(json!({"keypair": {"name": "kp", "public_key": "ssh-ed25519 AAAA", "fingerprint": "fp", "type": "ssh"}}))
            .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"itemNotFound": {"code": 404, "message": format!("Keypair {name} not found for user u")}})),
        )
            .into_response()
    }
}

fn networks() -> Vec<Value> {
    vec![
        json!({"id": EXT_NET_ID, "name": "public", "router:external": true, "subnets": [SUBNET_ID], "status": "ACTIVE"}),
        json!({"id": "n2", "name": "private", "router:external": false, "subnets": []}),
        json!({"id": "n3", "name": "private", "router:external": false, "subnets": []}),
    ]
}

fn neutron_404(kind: &str, id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"NeutronError": {"type": format!("{kind}NotFound"), "message": format!("{kind} {id} could not be found."), "detail": ""}})),
    )
        .into_response()
}

async fn network_list(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let list: Vec<Value> = networks()
        .into_iter()
        .filter(|n| q.get("name").is_none_or(|x| n["name"] == x.as_str()))
        .collect();
    Json(json!({"networks": list}))
}

async fn network_get(Path(id): Path<String>) -> Response {
    match networks().into_iter().find(|n| n["id"] == id.as_str()) {
        Some(n) => Json(json!({"network": n})).into_response(),
        None => neutron_404("Network", &id),
    }
}

fn subnets() -> Vec<Value> {
    vec![
        json!({"id": SUBNET_ID, "name": "public-subnet", "network_id": EXT_NET_ID, "cidr": "172.24.4.0/24", "ip_version": 4, "gateway_ip": "172.24.4.1"}),
    ]
}

async fn subnet_list(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let list: Vec<Value> = subnets()
        .into_iter()
        .filter(|n| q.get("name").is_none_or(|x| n["name"] == x.as_str()))
        .collect();
    Json(json!({"subnets": list}))
}

async fn subnet_get(Path(id): Path<String>) -> Response {
    match subnets().into_iter().find(|n| n["id"] == id.as_str()) {
        Some(n) => Json(json!({"subnet": n})).into_response(),
        None => neutron_404("Subnet", &id),
    }
}

async fn broken() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"computeFault": {"code": 500, "message": "boom"}})),
    )
        .into_response()
}

async fn clients() -> (ImageClient, ComputeClient, NetworkClient, String) {
    let router = Router::new()
        .route("/image/v2/images", get(image_list))
        .route("/image/v2/images/{id}", get(image_get))
        .route("/compute/v2.1/flavors/detail", get(flavor_detail))
        .route("/compute/v2.1/flavors/{id}", get(flavor_get))
        .route("/compute/v2.1/os-keypairs/{name}", get(keypair_get))
        .route("/broken/v2.1/flavors/{id}", get(broken))
        .route("/networking/v2.0/networks", get(network_list))
        .route("/networking/v2.0/networks/{id}", get(network_get))
        .route("/networking/v2.0/subnets", get(subnet_list))
        .route("/networking/v2.0/subnets/{id}", get(subnet_get));
    let base = mock::serve(router).await;
    let tokens: Arc<dyn TokenProvider> = Arc::new(StaticToken::new("user-token"));
    let url = |p: &str| Url::parse(&format!("{base}{p}")).unwrap();
    (
        ImageClient::new(mock::http(), url("/image"), tokens.clone()),
        ComputeClient::new(mock::http(), url("/compute/v2.1"), tokens.clone()),
        NetworkClient::new(mock::http(), url("/networking/"), tokens),
        base,
    )
}

#[tokio::test]
async fn images_by_id_and_name() {
    let (images, ..) = clients().await;
    let by_id = images.find(FCOS_ID).await.unwrap().unwrap();
    assert_eq!(by_id.os_distro.as_deref(), Some("fedora-coreos"));
    assert_eq!(by_id.magnum_driver(), Some("k8s_fedora_coreos_v1"));
    assert_eq!(by_id.properties["size"], json!(123));
    let by_name = images.find("fedora-coreos-40").await.unwrap().unwrap();
    assert_eq!(by_name.id, FCOS_ID);
    assert_eq!(
        images.find("cirros").await.unwrap().unwrap().os_distro,
        None
    );
    assert_eq!(images.find("missing").await.unwrap(), None);
    assert_eq!(
        images
            .find("00000000-0000-0000-0000-00000000ffff")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        images.find("dup").await.unwrap_err(),
        Error::Ambiguous {
            kind: "image",
            name: "dup".into()
        }
    );
}

#[tokio::test]
async fn flavors_and_keypairs() {
    let (_, compute, _, base) = clients().await;
    let f = compute.find_flavor("1").await.unwrap().unwrap();
    assert_eq!(
        (f.name.as_str(), f.ram, f.disk, f.vcpus),
        ("m1.tiny", 512, 1, 1)
    );
    assert_eq!(compute.find_flavor("ds1G").await.unwrap().unwrap().disk, 0);
    assert_eq!(compute.find_flavor("m1.huge").await.unwrap(), None);
    assert!(matches!(
        compute.find_flavor("twin").await,
        Err(Error::Ambiguous { kind: "flavor", .. })
    ));

    let kp = compute.get_keypair("kp").await.unwrap().unwrap();
    assert_eq!(kp.public_key, "ssh-ed25519 AAAA");
    assert_eq!(compute.get_keypair("other").await.unwrap(), None);

    let broken = ComputeClient::new(
        mock::http(),
        Url::parse(&format!("{base}/broken/v2.1")).unwrap(),
        Arc::new(StaticToken::new("t")),
    );
    let err = broken.find_flavor("1").await.unwrap_err();
    assert!(
        matches!(&err, Error::Transient(m) if m.contains("boom")),
        "{err:?}"
    );
}

#[tokio::test]
async fn networks_and_subnets() {
    let (_, _, network, _) = clients().await;
    let ext = network.find_network("public").await.unwrap().unwrap();
    assert!(ext.external);
    assert_eq!(ext.id, EXT_NET_ID);
    assert_eq!(ext.subnets, vec![SUBNET_ID]);
    assert_eq!(
        network
            .find_network(EXT_NET_ID)
            .await
            .unwrap()
            .unwrap()
            .name,
        "public"
    );
    assert_eq!(network.find_network("nope").await.unwrap(), None);
    assert_eq!(
        network
            .find_network("00000000-0000-0000-0000-00000000ffff")
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        network.find_network("private").await,
        Err(Error::Ambiguous {
            kind: "network",
            ..
        })
    ));

    let subnet = network.find_subnet("public-subnet").await.unwrap().unwrap();
    assert_eq!(subnet.cidr, "172.24.4.0/24");
    assert_eq!(
        network
            .find_subnet(SUBNET_ID)
            .await
            .unwrap()
            .unwrap()
            .network_id,
        EXT_NET_ID
    );
    assert_eq!(network.find_subnet("nope").await.unwrap(), None);
}
