//! `/v1/clusters/{cluster}/nodegroups` reads (≥ 1.9).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn default_nodegroups_are_listed_and_shown() {
    let h = harness();
    let t = h.template("member-a", json!({"name": "t"})).await;
    let id = h
        .cluster(
            "member-a",
            json!({"name": "k", "cluster_template_id": t["uuid"], "node_count": 3,
                   "labels": {"kube_tag": "v1.28.0", "extra": "1"}}),
        )
        .await;
    let r = h.get("/v1/clusters/k/nodegroups/", "member-a").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let ngs = r.body["nodegroups"].as_array().unwrap();
    let names: Vec<&str> = ngs.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default-master", "default-worker"]);
    let w = &ngs[1];
    assert_eq!(w["node_count"], 3);
    assert_eq!(w["role"], "worker");
    assert_eq!(w["is_default"], true);
    assert_eq!(w["status"], "CREATE_IN_PROGRESS");
    assert_eq!(w["max_node_count"], serde_json::Value::Null);
    assert!(w.get("links").is_none() && w.get("id").is_none());

    let r = h
        .get("/v1/clusters/k/nodegroups?role=master", "member-a")
        .await;
    assert_eq!(r.body["nodegroups"].as_array().unwrap().len(), 1);
    let r = h.get("/v1/clusters/k/nodegroups?limit=1", "member-a").await;
    let next = r.body["next"].as_str().unwrap();
    assert!(
        next.contains(&format!("/v1/clusters/{id}/nodegroups?")),
        "{next}"
    );

    let r = h
        .get(
            &format!("/v1/clusters/{id}/nodegroups/default-worker"),
            "reader-a",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["cluster_id"], id);
    assert!(r.body["id"].as_u64().unwrap() > 0);
    assert_eq!(
        r.body["labels"],
        json!({"kube_tag": "v1.28.0", "extra": "1"})
    );
    assert_eq!(r.body["labels_skipped"], json!({}));
    assert_eq!(r.body["labels_added"], json!({}));
    assert!(r.body["links"][0]["href"]
        .as_str()
        .unwrap()
        .contains(&format!("/v1/clusters/{id}/nodegroups/")));
    let by_uuid = h
        .get(
            &format!(
                "/v1/clusters/k/nodegroups/{}",
                r.body["uuid"].as_str().unwrap()
            ),
            "member-a",
        )
        .await;
    assert_eq!(by_uuid.body["name"], "default-worker");

    assert_error(
        &h.get("/v1/clusters/k/nodegroups/nope", "member-a").await,
        404,
        "Nodegroup nope could not be found.",
    );
    assert_error(
        &h.get("/v1/clusters/k/nodegroups", "member-b").await,
        404,
        "Cluster k could not be found.",
    );
    let old = h
        .req("GET", "/v1/clusters/k/nodegroups")
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 1.8")
        .send()
        .await;
    assert_eq!(old.status, 406, "{}", old.raw);
    let e = &old.body["errors"][0];
    assert_eq!(e["title"], "Not Acceptable");
    assert_eq!(
        e["detail"],
        "Version 1.8 was requested but the requested API get_all is not supported for this \
         version."
    );
}
