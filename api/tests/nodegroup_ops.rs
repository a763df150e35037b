//! Nodegroup create/update/delete (≥ 1.9), 1.14 node labels and taints, and cluster upgrade.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_proto::{ClusterId, ClusterStatus, NodeGroupId, OpEvent, OpKind, StackOutputs};
use serde_json::{json, Value};

/// Cluster `k` of member-a (2 workers), created to CREATE_COMPLETE.
async fn cluster_k() -> (Harness, ClusterId, Value) {
    let h = harness();
    let t = h.template("member-a", json!({"name": "t"})).await;
    let id = h
        .cluster(
            "member-a",
            json!({"name": "k", "cluster_template_id": t["uuid"], "node_count": 2}),
        )
        .await;
    let cid = ClusterId(uuid::Uuid::parse_str(&id).unwrap());
    h.backend.complete_create(0, cid);
    (h, cid, t)
}

const NG: &str = "/v1/clusters/k/nodegroups/";

fn ng_body() -> Value {
    json!({"name": "ng1", "node_count": 2, "max_node_count": 5, "min_node_count": 1,
           "role": "worker", "labels": {"a": "b"}, "flavor_id": "m1.large"})
}

fn finish_ng_create(h: &Harness, cid: ClusterId, status: ClusterStatus) {
    h.backend.advance(
        0,
        cid,
        vec![
            OpEvent::StackCreateIntent,
            OpEvent::NodeGroupStackCreated {
                stack_id: "ng-stack".into(),
            },
            OpEvent::NodeGroupCreateFinished {
                status,
                reason: status.is_failed().then(|| "no capacity".to_string()),
                node_addresses: vec!["172.24.4.9".into()],
            },
        ],
    );
}

#[tokio::test]
async fn create_answers_the_committed_nodegroup() {
    let (h, cid, t) = cluster_k().await;
    let r = h.post(NG, "member-a", ng_body()).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.raw);
    let b = &r.body;
    assert_eq!(b["name"], "ng1");
    assert_eq!(b["cluster_id"], cid.to_string());
    assert_eq!(b["node_count"], 2);
    assert_eq!(
        (b["min_node_count"].clone(), b["max_node_count"].clone()),
        (json!(1), json!(5))
    );
    assert_eq!(b["flavor_id"], "m1.large");
    assert_eq!(b["image_id"], t["image_id"]);
    assert_eq!(b["labels"], json!({"a": "b"}));
    assert_eq!(b["is_default"], false);
    assert_eq!(b["status"], "CREATE_IN_PROGRESS");
    assert_eq!(b["node_labels"], json!({}));
    assert_eq!(b["node_taints"], json!([]));
    let c = h.get("/v1/clusters/k", "member-a").await;
    assert_eq!(c.body["status"], "UPDATE_IN_PROGRESS");
    let ops = h.backend.operations(0);
    assert_eq!(ops[0].kind, OpKind::NodeGroupCreate);
    assert!(ops[0].stack_name.starts_with("k-ng1-"));

    finish_ng_create(&h, cid, ClusterStatus::CREATE_COMPLETE);
    let c = h.get("/v1/clusters/k", "member-a").await;
    assert_eq!(c.body["status"], "UPDATE_COMPLETE");
    assert_eq!(c.body["node_count"], 4);
    let n = h.get("/v1/clusters/k/nodegroups/ng1", "member-a").await;
    assert_eq!(n.body["status"], "CREATE_COMPLETE");
    assert_eq!(n.body["stack_id"], "ng-stack");
    assert_eq!(n.body["node_addresses"], json!(["172.24.4.9"]));
}

#[tokio::test]
async fn create_defaults_and_merged_labels() {
    let (h, _, _) = cluster_k().await;
    let r = h
        .post(
            NG,
            "member-a",
            json!({"name": "m", "labels": {"x": "1"}, "merge_labels": true}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.raw);
    assert_eq!(r.body["node_count"], 1);
    assert_eq!(r.body["role"], "worker");
    assert_eq!(r.body["flavor_id"], "m1.small");
    assert_eq!(r.body["labels"]["x"], "1");
    assert_eq!(r.body["labels"]["kube_tag"], "v1.27.0");
}

#[tokio::test]
async fn create_rejections() {
    let h = harness();
    let t = h.template("member-a", json!({"name": "t"})).await;
    let id = h
        .cluster(
            "member-a",
            json!({"name": "k", "cluster_template_id": t["uuid"]}),
        )
        .await;
    let cid = ClusterId(uuid::Uuid::parse_str(&id).unwrap());
    // No API address yet.
    assert_error(&h.post(NG, "member-a", ng_body()).await, 409, "API address");
    h.backend.complete_create(0, cid);

    let before = h.backend.command_count();
    let old = h
        .req("POST", NG)
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 1.8")
        .json(ng_body())
        .send()
        .await;
    assert_eq!(old.status.as_u16(), 406);
    for (body, detail) in [
        (json!({"name": "m", "role": "master"}), "master nodegroups"),
        (json!({"node_count": 1}), "name"),
        (json!({"name": "m", "node_count": -1}), "node_count"),
        (json!({"name": "m", "bogus": 1}), "Unknown attribute"),
        (json!({"name": "m", "stack_id": "x"}), "stack_id"),
        (
            json!({"name": "m", "docker_volume_size": 0}),
            "docker_volume_size",
        ),
    ] {
        assert_error(&h.post(NG, "member-a", body).await, 400, detail);
    }
    assert_error(
        &h.post(NG, "reader-a", ng_body()).await,
        403,
        "nodegroup:create",
    );
    assert_error(
        &h.post(NG, "member-b", ng_body()).await,
        404,
        "could not be found",
    );
    // Taints and node labels are 1.14 fields.
    let r = h
        .req("POST", NG)
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 1.13")
        .json(json!({"name": "m", "node_taints": []}))
        .send()
        .await;
    assert_error(&r, 400, "node_taints");
    for bad in [
        json!({"name": "m", "node_taints": [{"key": "a", "effect": "Sometimes"}]}),
        json!({"name": "m", "node_taints": [{"effect": "NoSchedule"}]}),
        json!({"name": "m", "node_taints": "a=b"}),
        json!({"name": "m", "node_labels": {"a": 1}}),
    ] {
        assert_error(&h.post(NG, "member-a", bad).await, 409, "is invalid");
    }
    assert_nothing_persisted(&h, before);

    // Checked by the shard: name, bounds.
    for (body, detail) in [
        (
            json!({"name": "default-worker"}),
            "already exists in the cluster",
        ),
        (
            json!({"name": "m", "node_count": 1, "min_node_count": 2}),
            "min_node_count (2)",
        ),
        (
            json!({"name": "m", "node_count": 6, "max_node_count": 5}),
            "max_node_count (5)",
        ),
        (
            json!({"name": "m", "node_count": 2, "min_node_count": 3, "max_node_count": 2}),
            "min_node_count (3)",
        ),
    ] {
        assert_error(&h.post(NG, "member-a", body).await, 409, detail);
    }
    let ngs = h.get(NG, "member-a").await;
    assert_eq!(ngs.body["nodegroups"].as_array().unwrap().len(), 2);
    assert!(h.backend.operations(0).is_empty());
}

#[tokio::test]
async fn taints_and_node_labels_round_trip_at_1_14_only() {
    let (h, _, _) = cluster_k().await;
    let body = json!({"name": "gpu", "node_labels": {"zone": "a"},
        "node_taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"},
                        {"key": "spot", "effect": "NoExecute"}]});
    let r = h.post(NG, "member-a", body).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.raw);
    let n = h.get("/v1/clusters/k/nodegroups/gpu", "member-a").await;
    assert_eq!(n.body["node_labels"], json!({"zone": "a"}));
    assert_eq!(
        n.body["node_taints"],
        json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"},
               {"key": "spot", "effect": "NoExecute"}])
    );
    let old = h
        .req("GET", "/v1/clusters/k/nodegroups/gpu")
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 1.13")
        .send()
        .await;
    assert!(old.body.get("node_taints").is_none());
    assert!(old.body.get("node_labels").is_none());
}

#[tokio::test]
async fn update_only_the_bounds() {
    let (h, cid, _) = cluster_k().await;
    h.post(NG, "member-a", ng_body()).await;
    // Still creating: the nodegroup's own status gates the update.
    let patch = json!([{"op": "replace", "path": "/min_node_count", "value": 1},
                       {"op": "replace", "path": "/max_node_count", "value": 6}]);
    assert_error(
        &h.patch("/v1/clusters/k/nodegroups/ng1", "member-a", patch.clone())
            .await,
        400,
        "CREATE_IN_PROGRESS",
    );
    finish_ng_create(&h, cid, ClusterStatus::CREATE_COMPLETE);
    let r = h
        .patch("/v1/clusters/k/nodegroups/ng1", "member-a", patch)
        .await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.raw);
    assert_eq!(r.body["max_node_count"], 6);
    assert_eq!(r.body["name"], "ng1");
    for (path, value) in [
        ("/node_count", json!(3)),
        ("/name", json!("x")),
        ("/labels", json!("{}")),
    ] {
        let p = json!([{"op": "replace", "path": path, "value": value}]);
        assert_error(
            &h.patch("/v1/clusters/k/nodegroups/ng1", "member-a", p)
                .await,
            400,
            "internal attribute",
        );
    }
    let p = json!([{"op": "replace", "path": "/max_node_count", "value": 1}]);
    assert_error(
        &h.patch("/v1/clusters/k/nodegroups/ng1", "member-a", p)
            .await,
        409,
        "max_node_count (1)",
    );
    let p = json!([{"op": "remove", "path": "/max_node_count"}]);
    let r = h
        .patch("/v1/clusters/k/nodegroups/ng1", "member-a", p)
        .await;
    assert_eq!(r.body["max_node_count"], Value::Null);
    let p = json!([{"op": "replace", "path": "/min_node_count", "value": 0}]);
    assert_error(
        &h.patch("/v1/clusters/k/nodegroups/nope", "member-a", p.clone())
            .await,
        404,
        "Nodegroup nope could not be found.",
    );
    assert_error(
        &h.patch("/v1/clusters/k/nodegroups/ng1", "reader-a", p)
            .await,
        403,
        "nodegroup:update",
    );
}

#[tokio::test]
async fn delete_and_the_default_nodegroups() {
    let (h, cid, _) = cluster_k().await;
    h.post(NG, "member-a", ng_body()).await;
    finish_ng_create(&h, cid, ClusterStatus::CREATE_COMPLETE);
    assert_error(
        &h.delete("/v1/clusters/k/nodegroups/default-worker", "member-a")
            .await,
        400,
        "default nodegroup",
    );
    assert_error(
        &h.delete("/v1/clusters/k/nodegroups/ng1", "reader-a").await,
        403,
        "nodegroup:delete",
    );
    let r = h.delete("/v1/clusters/k/nodegroups/ng1", "member-a").await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.raw);
    let n = h.get("/v1/clusters/k/nodegroups/ng1", "member-a").await;
    assert_eq!(n.body["status"], "DELETE_IN_PROGRESS");
    let ng: NodeGroupId = serde_json::from_value(n.body["uuid"].clone()).unwrap();
    h.backend
        .advance(0, cid, vec![OpEvent::NodeGroupDeleted { nodegroup: ng }]);
    assert_error(
        &h.get("/v1/clusters/k/nodegroups/ng1", "member-a").await,
        404,
        "Nodegroup ng1 could not be found.",
    );
    let c = h.get("/v1/clusters/k", "member-a").await;
    assert_eq!(c.body["status"], "UPDATE_COMPLETE");
}

#[tokio::test]
async fn failed_nodegroups_show_in_the_cluster() {
    let (h, cid, _) = cluster_k().await;
    h.post(NG, "member-a", ng_body()).await;
    finish_ng_create(&h, cid, ClusterStatus::CREATE_FAILED);
    let c = h.get("/v1/clusters/k", "member-a").await;
    assert_eq!(c.body["status"], "UPDATE_FAILED");
    assert_eq!(c.body["status_reason"], "ng1 failed");
    assert_eq!(c.body["faults"], json!({"ng1": "no capacity"}));
}

#[tokio::test]
async fn cluster_delete_marks_every_nodegroup() {
    let (h, cid, _) = cluster_k().await;
    h.post(NG, "member-a", ng_body()).await;
    finish_ng_create(&h, cid, ClusterStatus::CREATE_COMPLETE);
    let r = h.delete("/v1/clusters/k", "member-a").await;
    assert_eq!(r.status.as_u16(), 204);
    let ngs = h.get(NG, "member-a").await;
    for n in ngs.body["nodegroups"].as_array().unwrap() {
        assert_eq!(n["status"], "DELETE_IN_PROGRESS");
    }
}

const UP: &str = "/v1/clusters/k/actions/upgrade";

#[tokio::test]
async fn upgrade_moves_the_cluster_to_the_new_template() {
    let (h, cid, t) = cluster_k().await;
    let t2 = h
        .template(
            "member-a",
            json!({"name": "t2", "labels": {"kube_tag": "v1.28.9"}}),
        )
        .await;
    let body =
        json!({"cluster_template": "t2", "max_batch_size": 2, "nodegroup": "default-worker"});
    let r = h.post(UP, "member-a", body.clone()).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.raw);
    assert_eq!(r.body, json!({"uuid": cid.to_string()}));
    let ops = h.backend.operations(0);
    assert_eq!(ops[0].kind, OpKind::Upgrade);
    let up = ops[0].upgrade.clone().unwrap();
    assert_eq!((up.kube_tag.as_str(), up.max_batch_size), ("v1.28.9", 2));
    // One operation at a time.
    assert_error(
        &h.post(UP, "member-a", body).await,
        400,
        "UPDATE_IN_PROGRESS",
    );
    h.backend.advance(
        0,
        cid,
        vec![
            OpEvent::StackUpdateIntent,
            OpEvent::StackUpdateRequested {
                stack_id: "stack-1".into(),
            },
            OpEvent::UpdateFinished {
                status: ClusterStatus::UPDATE_COMPLETE,
                reason: None,
                outputs: StackOutputs::default(),
            },
        ],
    );
    let c = h.get("/v1/clusters/k", "member-a").await;
    assert_eq!(c.body["status"], "UPDATE_COMPLETE");
    assert_eq!(c.body["cluster_template_id"], t2["uuid"]);
    assert_ne!(c.body["cluster_template_id"], t["uuid"]);
    assert_eq!(c.body["labels"]["kube_tag"], "v1.28.9");
    assert_eq!(c.body["coe_version"], "v1.28.9");
}

#[tokio::test]
async fn upgrade_rejections() {
    let (h, cid, _) = cluster_k().await;
    h.template(
        "member-a",
        json!({"name": "old", "labels": {"kube_tag": "v1.26.1"}}),
    )
    .await;
    h.template(
        "member-a",
        json!({"name": "untagged", "labels": {"foo": "bar"}}),
    )
    .await;
    h.template(
        "member-a",
        json!({"name": "t2", "labels": {"kube_tag": "v1.28.9"}}),
    )
    .await;
    let up = |ct: &str| json!({"cluster_template": ct, "max_batch_size": 1});
    let at = |v: &str| {
        h.req("POST", UP)
            .token("member-a")
            .header("OpenStack-API-Version", &format!("container-infra {v}"))
            .json(up("t2"))
    };
    assert_error(&at("1.7").send().await, 400, "1.8");
    assert_eq!(at("1.6").send().await.status.as_u16(), 406);
    let before = h.backend.command_count();
    for (body, status, detail) in [
        (json!({"max_batch_size": 1}), 400, "cluster_template"),
        (
            json!({"cluster_template": "t2", "max_batch_size": 0}),
            400,
            "max_batch_size",
        ),
        (
            json!({"cluster_template": "t2", "x": 1}),
            400,
            "Unknown attribute",
        ),
        (
            json!({"cluster_template": "nope"}),
            404,
            "ClusterTemplate nope could not be found.",
        ),
        (
            json!({"cluster_template": "t2", "nodegroup": "nope"}),
            404,
            "Nodegroup nope",
        ),
    ] {
        assert_error(&h.post(UP, "member-a", body).await, status, detail);
    }
    assert_error(
        &h.post(UP, "reader-a", up("t2")).await,
        403,
        "cluster:upgrade",
    );
    assert_nothing_persisted(&h, before);
    assert_error(
        &h.post(UP, "member-a", up("untagged")).await,
        409,
        "kube_tag",
    );
    assert_error(&h.post(UP, "member-a", up("old")).await, 400, "v1.26.1");
    // A non-default nodegroup only follows the cluster's own template.
    h.post(NG, "member-a", ng_body()).await;
    finish_ng_create(&h, cid, ClusterStatus::CREATE_COMPLETE);
    let r = h
        .post(
            UP,
            "member-a",
            json!({"cluster_template": "t2", "nodegroup": "ng1"}),
        )
        .await;
    assert_error(&r, 409, "non-default");
    assert!(h.backend.operations(0).is_empty());
}
