//! `PATCH /v1/clusters/{ident}`: node_count starts an update, health fields are saved, every
//! other attribute is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_proto::{ClusterId, ClusterStatus, OpKind};
use serde_json::json;

fn replace(path: &str, value: serde_json::Value) -> serde_json::Value {
    json!([{"op": "replace", "path": path, "value": value}])
}

/// Cluster `k` of member-a with 2 workers, still CREATE_IN_PROGRESS.
async fn cluster_k() -> (Harness, String, ClusterId) {
    let h = harness();
    let t = h.template("member-a", json!({"name": "t"})).await;
    let id = h
        .cluster(
            "member-a",
            json!({"name": "k", "cluster_template_id": t["uuid"], "node_count": 2}),
        )
        .await;
    let cid = ClusterId(uuid::Uuid::parse_str(&id).unwrap());
    (h, id, cid)
}

#[tokio::test]
async fn patch_node_count_and_health() {
    let (h, id, cid) = cluster_k().await;
    // Still creating: the status gate refuses a new count.
    let r = h
        .patch(
            "/v1/clusters/k",
            "member-a",
            replace("/node_count", json!(3)),
        )
        .await;
    assert_error(
        &r,
        400,
        "Updating a cluster when status is \"CREATE_IN_PROGRESS\" is not supported.",
    );
    h.backend.complete_create(0, cid);

    let before = h.backend.command_count();
    for (body, detail) in [
        (
            replace("/name", json!("other")),
            "cannot change cluster property(ies) name.",
        ),
        (replace("/api_address", json!("x")), "api_address"),
        (replace("/node_count", json!(-1)), "node_count"),
        (replace("/node_count", json!("many")), "node_count"),
        (json!({"op": "replace"}), "patch"),
    ] {
        assert_error(
            &h.patch("/v1/clusters/k", "member-a", body).await,
            400,
            detail,
        );
    }
    assert_error(
        &h.patch(
            "/v1/clusters/k",
            "reader-a",
            replace("/node_count", json!(3)),
        )
        .await,
        403,
        "cluster:update",
    );
    assert_nothing_persisted(&h, before);

    let r = h
        .patch(
            "/v1/clusters/k?rollback=True",
            "member-a",
            replace("/node_count", json!(4)),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.raw);
    assert_eq!(r.body, json!({"uuid": id}));
    let ops = h.backend.operations(0);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].kind, OpKind::Update);
    assert!(ops[0].rollback);
    assert_eq!(ops[0].restore_node_count, Some(2));
    let show = h.get("/v1/clusters/k", "member-a").await;
    assert_eq!(
        show.body["status"],
        ClusterStatus::UPDATE_IN_PROGRESS.as_str()
    );
    assert_eq!(show.body["node_count"], 4);

    // Health fields are saved whatever the status, without an operation.
    let body = json!([
        {"op": "replace", "path": "/health_status", "value": "HEALTHY"},
        {"op": "replace", "path": "/health_status_reason", "value": "{'api': 'ok'}"}
    ]);
    let r = h
        .patch(&format!("/v1/clusters/{id}"), "member-a", body)
        .await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let show = h.get("/v1/clusters/k", "member-a").await;
    assert_eq!(show.body["health_status"], "HEALTHY");
    assert_eq!(show.body["health_status_reason"], json!({"api": "ok"}));
}

#[tokio::test]
async fn resize_a_worker_nodegroup() {
    let (h, _id, cid) = cluster_k().await;
    let path = "/v1/clusters/k/actions/resize";
    let old = h
        .req("POST", path)
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 1.6")
        .json(json!({"node_count": 3}))
        .send()
        .await;
    assert_eq!(old.status, 406, "{}", old.raw);
    h.backend.complete_create(0, cid);
    let before = h.backend.command_count();
    for (body, status, detail) in [
        (json!({}), 400, "node_count"),
        (json!({"node_count": -1}), 400, "node_count"),
        (
            json!({"node_count": 3, "nodes_to_remove": "srv1"}),
            400,
            "nodes_to_remove",
        ),
        (
            json!({"node_count": 3, "nodegroup": "nope"}),
            404,
            "Nodegroup nope",
        ),
        (json!({"node_count": 3, "bogus": 1}), 400, "bogus"),
    ] {
        assert_error(&h.post(path, "member-a", body).await, status, detail);
    }
    assert_error(
        &h.post(
            path,
            "member-a",
            json!({"node_count": 3, "nodegroup": "default-master"}),
        )
        .await,
        400,
        "Resizing a master nodegroup is not supported.",
    );
    assert_error(
        &h.post(path, "reader-a", json!({"node_count": 3})).await,
        403,
        "cluster:resize",
    );
    assert_nothing_persisted(&h, before + 1);
    let r = h
        .post(
            path,
            "member-a",
            json!({"node_count": 1, "nodes_to_remove": ["srv-1"], "nodegroup": "default-worker"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let ops = h.backend.operations(0);
    assert_eq!(ops[0].nodes_to_remove, vec!["srv-1".to_string()]);
    assert!(!ops[0].rollback);
    // The autoscaler may resize again while that update runs: it supersedes it.
    let r = h.post(path, "member-a", json!({"node_count": 4})).await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let ops = h.backend.operations(0);
    assert_eq!(ops.len(), 1);
    assert!(ops[0].nodes_to_remove.is_empty());
    assert_eq!(
        h.get("/v1/clusters/k", "member-a").await.body["node_count"],
        4
    );
}
