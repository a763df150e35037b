//! `/v1/quotas` and `/v1/stats` against the real shard state machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use serde_json::json;

fn body(project: &str, limit: i64) -> serde_json::Value {
    json!({"project_id": project, "resource": "Cluster", "hard_limit": limit})
}

#[tokio::test]
async fn quota_lifecycle_and_its_errors() {
    let h = harness();
    let r = h
        .post("/v1/quotas", "admin-token", body(PROJECT_B, 1))
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.body["project_id"], PROJECT_B);
    assert_eq!(r.body["hard_limit"], 1);
    assert!(r.body["id"].as_u64().unwrap() > 0);
    assert!(r.body["created_at"].is_string());
    assert_eq!(r.body["updated_at"], serde_json::Value::Null);

    assert_error(
        &h.post("/v1/quotas", "admin-token", body(PROJECT_B, 3))
            .await,
        409,
        &format!("Quota for project {PROJECT_B} already exists for resource Cluster."),
    );
    assert_error(
        &h.post("/v1/quotas", "admin-token", body("nope", 3)).await,
        404,
        "Project nope could not be found.",
    );
    assert_error(
        &h.post("/v1/quotas", "admin-token", json!({"hard_limit": 3}))
            .await,
        400,
        "Must provide a valid project ID.",
    );
    assert_error(
        &h.post("/v1/quotas", "admin-token", body(PROJECT_A, 0))
            .await,
        400,
        "hard_limit",
    );
    assert_error(
        &h.post(
            "/v1/quotas",
            "admin-token",
            json!({"project_id": PROJECT_A, "resource": "Pod"}),
        )
        .await,
        400,
        "resource",
    );
    assert_error(
        &h.post("/v1/quotas", "member-a", body(PROJECT_A, 3)).await,
        403,
        "Policy doesn't allow quota:create to be performed.",
    );

    // The quota binds cluster creates in that project's shard.
    let t = h.template("member-b", json!({"name": "tb"})).await;
    let c = json!({"name": "c1", "cluster_template_id": t["uuid"], "node_count": 1});
    h.cluster("member-b", c).await;
    let r = h
        .post(
            "/v1/clusters",
            "member-b",
            json!({"name": "c2", "cluster_template_id": t["uuid"], "node_count": 1}),
        )
        .await;
    assert_error(&r, 403, "maximum clusters per project, 1");

    let path = format!("/v1/quotas/{PROJECT_B}/Cluster");
    let r = h.patch(&path, "admin-token", body(PROJECT_B, 5)).await;
    assert_eq!(r.status, 202, "{}", r.raw);
    assert_eq!(r.body["hard_limit"], 5);
    assert!(r.body["updated_at"].is_string());
    let r = h.get(&path, "member-b").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["hard_limit"], 5);
    assert_error(&h.get(&path, "member-a").await, 403, "Not authorized.");

    // Without a row: the default, no id.
    let r = h
        .get(&format!("/v1/quotas/{PROJECT_A}/Cluster"), "member-a")
        .await;
    assert_eq!(
        r.body,
        json!({"project_id": PROJECT_A, "resource": "Cluster", "hard_limit": 20})
    );
    assert_error(
        &h.patch(
            &format!("/v1/quotas/{PROJECT_A}/Cluster"),
            "admin-token",
            body(PROJECT_A, 2),
        )
        .await,
        404,
        &format!("Quota could not be found: project_id {PROJECT_A} resource Cluster."),
    );

    assert_eq!(h.delete(&path, "admin-token").await.status, 204);
    assert_eq!(h.delete(&path, "admin-token").await.status, 404);
}

#[tokio::test]
async fn quota_lists_are_per_project_unless_all_tenants() {
    let h = harness();
    for p in [PROJECT_A, PROJECT_B] {
        let r = h.post("/v1/quotas", "admin-token", body(p, 7)).await;
        assert_eq!(r.status, 201, "{}", r.raw);
    }
    let mine = h.get("/v1/quotas", "admin-token").await;
    assert_eq!(mine.body["quotas"].as_array().unwrap().len(), 1);
    let all = h.get("/v1/quotas?all_tenants=True", "admin-token").await;
    let rows = all.body["quotas"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    let page = h
        .get("/v1/quotas?all_tenants=1&limit=1", "admin-token")
        .await;
    assert_eq!(page.body["quotas"].as_array().unwrap().len(), 1);
    let next = page.body["next"].as_str().unwrap();
    let first_id = page.body["quotas"][0]["id"].as_u64().unwrap();
    assert!(next.contains(&format!("marker={first_id}")), "{next}");
    let rest = h
        .get(
            &format!("/v1/quotas?all_tenants=1&marker={first_id}"),
            "admin-token",
        )
        .await;
    assert_eq!(rest.body["quotas"].as_array().unwrap().len(), 1);
    assert_ne!(rest.body["quotas"][0]["id"], first_id);
    assert_error(
        &h.get("/v1/quotas?marker=abc", "admin-token").await,
        400,
        "marker",
    );
    assert_error(
        &h.get("/v1/quotas?marker=999", "admin-token").await,
        404,
        "999",
    );
    assert_error(
        &h.get("/v1/quotas?sort_key=foo", "admin-token").await,
        400,
        "foo",
    );
    assert_error(&h.get("/v1/quotas", "member-a").await, 403, "quota:get_all");
}

#[tokio::test]
async fn stats_count_clusters_and_all_their_nodes() {
    let h = harness();
    let t = h.template("member-a", json!({"name": "ta"})).await;
    for (name, nodes) in [("s1", 2), ("s2", 3)] {
        let c = json!({"name": name, "cluster_template_id": t["uuid"], "node_count": nodes, "master_count": 1});
        h.cluster("member-a", c).await;
    }
    let r = h.get("/v1/stats", "member-a").await;
    assert_eq!(r.body, json!({"clusters": 2, "nodes": 7}), "{}", r.raw);
    let r = h
        .get(&format!("/v1/stats?project_id={PROJECT_B}"), "member-b")
        .await;
    assert_eq!(r.body, json!({"clusters": 0, "nodes": 0}));
    assert_error(
        &h.get(&format!("/v1/stats?project_id={PROJECT_A}"), "member-b")
            .await,
        403,
        "stats:get_all",
    );
    assert_error(&h.get("/v1/stats?type=pods", "member-a").await, 400, "pods");
    let r = h.get("/v1/stats?type=CLUSTER", "admin-token").await;
    assert_eq!(r.body, json!({"clusters": 2, "nodes": 7}));
}
