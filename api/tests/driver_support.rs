//! Operations a cluster's driver cannot run are refused with 400 before anything is
//! committed (nodegroup create, upgrade, CA rotation); the ones it can run are accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_proto::ClusterId;
use serde_json::{json, Value};

/// A CREATE_COMPLETE cluster `name` of member-a on a template with `extra` fields, and a second
/// template `<name>-new` of the same driver with a newer kube_tag.
async fn cluster(h: &Harness, name: &str, extra: Value) {
    let mut t = extra.clone();
    t["name"] = json!(name);
    let tpl = h.template("member-a", t).await;
    let mut newer = extra;
    newer["name"] = json!(format!("{name}-new"));
    newer["labels"] = json!({"kube_tag": "v1.28.9"});
    h.template("member-a", newer).await;
    let id = h
        .cluster(
            "member-a",
            json!({"name": name, "cluster_template_id": tpl["uuid"], "node_count": 1}),
        )
        .await;
    h.backend
        .complete_create(0, ClusterId(uuid::Uuid::parse_str(&id).unwrap()));
}

async fn ng_create(h: &Harness, c: &str) -> Resp {
    h.post(
        &format!("/v1/clusters/{c}/nodegroups"),
        "member-a",
        json!({"name": "ng1", "node_count": 1}),
    )
    .await
}

async fn upgrade(h: &Harness, c: &str) -> Resp {
    h.post(
        &format!("/v1/clusters/{c}/actions/upgrade"),
        "member-a",
        json!({"cluster_template": format!("{c}-new"), "max_batch_size": 1}),
    )
    .await
}

async fn rotate_ca(h: &Harness, c: &str) -> Resp {
    h.req("PATCH", &format!("/v1/certificates/{c}"))
        .token("member-a")
        .send()
        .await
}

async fn status(h: &Harness, c: &str) -> Value {
    h.get(&format!("/v1/clusters/{c}"), "member-a").await.body["status"].clone()
}

#[tokio::test]
async fn swarm_refuses_nodegroups_upgrade_and_ca_rotation_up_front() {
    let h = harness();
    let swarm = json!({"coe": "swarm", "image_id": "fedora-atomic-29"});
    cluster(&h, "sw", swarm).await;
    let before = h.backend.command_count();
    assert_error(
        &ng_create(&h, "sw").await,
        400,
        "Creating nodegroups is not supported by the swarm_fedora_atomic_v1 driver.",
    );
    assert_error(
        &upgrade(&h, "sw").await,
        400,
        "Upgrading a cluster that uses the swarm_fedora_atomic_v1 driver is not supported.",
    );
    assert_error(
        &rotate_ca(&h, "sw").await,
        400,
        "'rotate_ca_certificate' is not supported by this driver.",
    );
    assert_nothing_persisted(&h, before);
    assert_eq!(status(&h, "sw").await, "CREATE_COMPLETE");
    let ngs = h.get("/v1/clusters/sw/nodegroups", "member-a").await;
    assert_eq!(ngs.body["nodegroups"].as_array().unwrap().len(), 2);
    // The autoscaler bounds of a default nodegroup are saved on every driver (upstream's
    // HeatDriver.update_nodegroup).
    let r = h
        .patch(
            "/v1/clusters/sw/nodegroups/default-worker",
            "member-a",
            json!([{"op": "replace", "path": "/max_node_count", "value": 3}]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.raw);
    assert_eq!(r.body["max_node_count"], 3);
}

#[tokio::test]
async fn fedora_atomic_kubernetes_takes_nodegroups_and_upgrades_but_not_ca_rotation() {
    let h = harness();
    let atomic = json!({"image_id": "fedora-atomic-29", "labels": {"kube_tag": "v1.27.0"}});
    cluster(&h, "fa", atomic).await;
    let before = h.backend.command_count();
    assert_error(
        &rotate_ca(&h, "fa").await,
        400,
        "Rotating the CA certificate is not supported for cluster with cluster_distro: \
         fedora-atomic.",
    );
    assert_nothing_persisted(&h, before);
    assert_eq!(status(&h, "fa").await, "CREATE_COMPLETE");
    let r = upgrade(&h, "fa").await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.raw);
    assert_eq!(status(&h, "fa").await, "UPDATE_IN_PROGRESS");

    // A second cluster for the nodegroup (one operation per cluster).
    let h = harness();
    cluster(
        &h,
        "fb",
        json!({"image_id": "fedora-atomic-29", "labels": {"kube_tag": "v1.27.0"}}),
    )
    .await;
    let r = ng_create(&h, "fb").await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.raw);
    assert_eq!(r.body["status"], "CREATE_IN_PROGRESS");
}

#[tokio::test]
async fn fedora_coreos_rotates_its_ca() {
    let h = harness();
    cluster(&h, "fc", json!({})).await;
    let r = rotate_ca(&h, "fc").await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.raw);
    assert_eq!(status(&h, "fc").await, "UPDATE_IN_PROGRESS");
}
