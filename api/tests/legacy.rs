//! Legacy `/v1/bays` and `/v1/baymodels`: the cluster and template handlers under the old
//! names, with the 1.1 semantics of bays (201/200 with the full bay) and node_count ≥ 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};

async fn v(h: &Harness, method: &str, path: &str, ver: Option<&str>, body: Option<Value>) -> Resp {
    let mut r = h.req(method, path).token("member-a");
    r = match ver {
        Some(v) => r.header("OpenStack-API-Version", &format!("container-infra {v}")),
        None => r.no_version(),
    };
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().await
}

fn baymodel_body() -> Value {
    json!({"name": "bm", "coe": "kubernetes", "image_id": "fedora-coreos-40",
           "external_network_id": "public", "flavor_id": "m1.small",
           "master_flavor_id": "m1.small", "keypair_id": "default"})
}

#[tokio::test]
async fn baymodels_are_cluster_templates() {
    let h = harness();
    let r = v(&h, "POST", "/v1/baymodels", None, Some(baymodel_body())).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let uuid = r.body["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("http://magnum.test:9511/v1/baymodels/{uuid}").as_str())
    );
    assert_eq!(
        r.body["links"][0]["href"],
        format!("http://magnum.test:9511/v1/baymodels/{uuid}")
    );
    assert_eq!(r.body["cluster_distro"], "fedora-coreos");
    // The same row is a cluster template.
    let t = h
        .get(&format!("/v1/clustertemplates/{uuid}"), "member-a")
        .await;
    assert_eq!(t.status, 200);
    assert_eq!(t.body["name"], "bm");

    for path in ["/v1/baymodels", "/v1/baymodels/detail"] {
        let r = v(&h, "GET", path, Some("1.1"), None).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert!(r.body.get("clustertemplates").is_none());
        assert_eq!(r.body["baymodels"][0]["uuid"], uuid.as_str());
    }
    let r = v(&h, "GET", "/v1/baymodels?limit=1", None, None).await;
    assert_eq!(
        r.body["next"],
        format!(
            "http://magnum.test:9511/v1/baymodels?sort_key=id&sort_dir=asc&limit=1&marker={uuid}"
        )
    );
    let r = v(&h, "GET", "/v1/baymodels/bm", Some("latest"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["uuid"], uuid.as_str());

    let patch = json!([{"op": "replace", "path": "/name", "value": "bm2"}]);
    let r = v(
        &h,
        "PATCH",
        &format!("/v1/baymodels/{uuid}"),
        None,
        Some(patch),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["name"], "bm2");
    assert!(r.body["links"][1]["href"]
        .as_str()
        .unwrap()
        .contains("/baymodels/"));

    // Errors keep the envelope and name the legacy argument.
    let before = h.backend.command_count();
    let mut bad = baymodel_body();
    bad["foo"] = json!(1);
    let r = v(&h, "POST", "/v1/baymodels", None, Some(bad)).await;
    assert_error(&r, 400, "Unknown attribute for argument baymodel: foo");
    let r = h
        .req("POST", "/v1/baymodels")
        .token("member-a")
        .send()
        .await;
    assert_error(&r, 400, "Missing argument: \"baymodel\"");
    let r = v(&h, "GET", "/v1/baymodels/nope", None, None).await;
    assert_error(&r, 404, "ClusterTemplate nope could not be found.");
    assert_nothing_persisted(&h, before);

    let r = v(&h, "DELETE", &format!("/v1/baymodels/{uuid}"), None, None).await;
    assert_eq!(r.status, 204, "{}", r.raw);
    assert!(h.backend.all_templates().is_empty());
}

#[tokio::test]
async fn bays_at_1_1_are_synchronous_and_renamed() {
    let h = harness();
    let t = h.template("member-a", json!({})).await;
    let body = json!({"name": "bay1", "baymodel_id": "k8s-tmpl", "node_count": 2,
                      "bay_create_timeout": 30, "master_count": 1});
    let r = v(&h, "POST", "/v1/bays", None, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let b = &r.body;
    let uuid = b["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("http://magnum.test:9511/v1/bays/{uuid}").as_str())
    );
    assert_eq!(b["baymodel_id"], t["uuid"]);
    assert_eq!(b["bay_create_timeout"], 30);
    assert_eq!(b["node_count"], 2);
    assert_eq!(b["status"], "CREATE_IN_PROGRESS");
    assert!(b.get("stack_id").is_some());
    for gone in ["cluster_template_id", "create_timeout", "cluster_id"] {
        assert!(b.get(gone).is_none(), "{gone} in {b}");
    }
    assert_eq!(
        b["links"][0]["href"],
        format!("http://magnum.test:9511/v1/bays/{uuid}")
    );
    // It was committed before the answer: the cluster exists with its create operation.
    let views = h.backend.all_clusters();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].cluster.uuid.to_string(), uuid);
    assert_eq!(views[0].cluster.create_timeout, 30);
    assert_eq!(h.backend.operations(0).len(), 1);

    // Reads at any version (bays are kept past upstream's 1.11 removal; always `stack_id`).
    for ver in [None, Some("1.11"), Some("latest")] {
        let r = v(&h, "GET", "/v1/bays", ver, None).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        let item = &r.body["bays"][0];
        assert_eq!(item["baymodel_id"], t["uuid"]);
        assert!(item.get("stack_id").is_some() && item.get("cluster_id").is_none());
        let r = v(&h, "GET", "/v1/bays/detail", ver, None).await;
        assert_eq!(r.body["bays"][0]["bay_create_timeout"], 30);
        let r = v(&h, "GET", "/v1/bays/bay1", ver, None).await;
        assert_eq!(r.body["uuid"], uuid.as_str());
    }

    // PATCH at 1.1: 200 with the full bay.
    let id = magnum_proto::ClusterId(uuid.parse().unwrap());
    h.backend.complete_create(0, id);
    let patch = json!([{"op": "replace", "path": "/node_count", "value": 3}]);
    let r = v(&h, "PATCH", "/v1/bays/bay1", None, Some(patch)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["node_count"], 3);
    assert_eq!(r.body["status"], "UPDATE_IN_PROGRESS");
    assert_eq!(r.body["baymodel_id"], t["uuid"]);

    let r = v(&h, "DELETE", "/v1/bays/bay1", None, None).await;
    assert_eq!(r.status, 204, "{}", r.raw);
    assert_eq!(
        h.backend.all_clusters()[0].cluster.status.as_str(),
        "DELETE_IN_PROGRESS"
    );
}

#[tokio::test]
async fn bays_from_1_2_are_async_and_1_3_rolls_back() {
    let h = harness();
    h.template("member-a", json!({})).await;
    let body = json!({"name": "bay2", "baymodel_id": "k8s-tmpl"});
    let r = v(&h, "POST", "/v1/bays", Some("1.2"), Some(body)).await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let uuid = r.body["uuid"].as_str().unwrap().to_string();
    assert_eq!(r.body, json!({"uuid": uuid}));
    let id = magnum_proto::ClusterId(uuid.parse().unwrap());
    h.backend.complete_create(0, id);

    let patch = json!([{"op": "replace", "path": "/node_count", "value": 4}]);
    let path = format!("/v1/bays/{uuid}?rollback=True");
    let r = v(&h, "PATCH", &path, Some("1.3"), Some(patch)).await;
    assert_eq!(r.status, 202, "{}", r.raw);
    assert_eq!(r.body, json!({"uuid": uuid}));
    let ops = h.backend.operations(0);
    assert_eq!(ops.len(), 1);
    assert!(
        ops[0].rollback,
        "?rollback=True at 1.3 reaches the operation"
    );
}

#[tokio::test]
async fn bay_input_errors_use_bay_names_and_persist_nothing() {
    let h = harness();
    h.template("member-a", json!({})).await;
    let before = h.backend.command_count();
    for (ver, body, status, detail) in [
        (
            Some("latest"),
            json!({"baymodel_id": "k8s-tmpl", "node_count": 0}),
            400,
            "Invalid input for field/attribute node_count. Value: '0'. Value should be greater or equal to 1",
        ),
        (
            None,
            json!({"cluster_template_id": "k8s-tmpl"}),
            400,
            "Unknown attribute for argument bay: cluster_template_id",
        ),
        (None, json!({"baymodel_id": "k8s-tmpl", "foo": 1}), 400, "Unknown attribute for argument bay: foo"),
        (None, json!({"name": "x"}), 400, "baymodel_id"),
        (None, json!({"baymodel_id": "nope"}), 400, "ClusterTemplate nope could not be found."),
    ] {
        let r = v(&h, "POST", "/v1/bays", ver, Some(body.clone())).await;
        assert_error(&r, status, detail);
        assert!(!r.raw.contains("cluster_template_id") || detail.contains("cluster_template_id"), "{body}: {}", r.raw);
    }
    let r = h.req("POST", "/v1/bays").token("member-a").send().await;
    assert_error(&r, 400, "Missing argument: \"bay\"");
    let r = h
        .req("POST", "/v1/bays")
        .token("reader-a")
        .json(json!({"baymodel_id": "k8s-tmpl"}))
        .send()
        .await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow cluster:create to be performed.",
    );
    assert_nothing_persisted(&h, before);

    let uuid = h
        .cluster(
            "member-a",
            json!({"cluster_template_id": "k8s-tmpl", "name": "c"}),
        )
        .await;
    h.backend
        .complete_create(0, magnum_proto::ClusterId(uuid.parse().unwrap()));
    let before = h.backend.command_count();
    let path = format!("/v1/bays/{uuid}");
    let r = v(
        &h,
        "PATCH",
        &path,
        None,
        Some(json!([{"op": "replace", "path": "/node_count", "value": 0}])),
    )
    .await;
    assert_error(&r, 400, "Value should be greater or equal to 1");
    let r = v(
        &h,
        "PATCH",
        &path,
        None,
        Some(json!([{"op": "replace", "path": "/baymodel_id", "value": "x"}])),
    )
    .await;
    assert_error(&r, 400, "cannot change cluster property(ies) baymodel_id.");
    let r = v(&h, "GET", "/v1/bays/nope", None, None).await;
    assert_error(&r, 404, "Cluster nope could not be found.");
    assert_nothing_persisted(&h, before);
}
