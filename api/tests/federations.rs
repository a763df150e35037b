//! Federations: stored in the owning project's shard and completed at once; join/leave rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};

async fn setup(h: &Harness) -> (String, String, String) {
    h.template("member-a", json!({})).await;
    let mut ids = Vec::new();
    for name in ["host", "m1", "m2"] {
        ids.push(
            h.cluster(
                "member-a",
                json!({"cluster_template_id": "k8s-tmpl", "name": name}),
            )
            .await,
        );
    }
    (ids[0].clone(), ids[1].clone(), ids[2].clone())
}

fn props() -> Value {
    json!({"dns-zone": "example.com."})
}

#[tokio::test]
async fn create_list_show_update_delete() {
    let h = harness();
    let (host, m1, m2) = setup(&h).await;
    let body = json!({"name": "fed", "hostcluster_id": "host", "properties": props(),
                      "member_ids": [m1]});
    let r = h.post("/v1/federations", "member-a", body).await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let uuid = r.body["uuid"].as_str().unwrap().to_string();
    assert_eq!(r.body, json!({"uuid": uuid}));

    // Committed before the answer, in project A's shard, complete at once.
    let r = h.get(&format!("/v1/federations/{uuid}"), "reader-a").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let f = &r.body;
    assert_eq!(f["name"], "fed");
    assert_eq!(f["hostcluster_id"], host.as_str());
    assert_eq!(f["member_ids"], json!([m1]));
    assert_eq!(f["status"], "CREATE_COMPLETE");
    assert_eq!(f["properties"], props());
    assert_eq!(f["project_id"], PROJECT_A);
    assert_eq!(
        f["links"][0]["href"],
        format!("http://magnum.test:9511/v1/federations/{uuid}")
    );

    let r = h.get("/v1/federations", "member-a").await;
    let items = r.body["federations"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let mut keys: Vec<&str> = items[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "hostcluster_id",
            "links",
            "member_ids",
            "name",
            "project_id",
            "status",
            "uuid"
        ]
    );
    let r = h.get("/v1/federations/detail", "member-a").await;
    assert_eq!(r.body["federations"][0]["properties"], props());
    // Other projects see nothing; admins see it.
    let r = h.get("/v1/federations", "member-b").await;
    assert_eq!(r.body["federations"], json!([]));
    assert_error(
        &h.get("/v1/federations/fed", "member-b").await,
        404,
        "Federation fed could not be found.",
    );
    assert_eq!(
        h.get("/v1/federations/fed", "admin-token").await.status,
        200
    );

    // Join: `add` of one uuid is rewritten to a replace of the list.
    let path = format!("/v1/federations/{uuid}");
    let join = |m: &str| json!([{"op": "add", "path": "/member_ids", "value": m}]);
    let r = h.patch(&path, "member-a", join(&m2)).await;
    assert_eq!(r.status, 202, "{}", r.raw);
    assert_eq!(r.body, json!({"uuid": uuid}));
    let r = h.get(&path, "member-a").await;
    assert_eq!(r.body["member_ids"], json!([m1, m2]));
    assert_eq!(r.body["status"], "UPDATE_COMPLETE");
    assert_error(
        &h.patch(&path, "member-a", join(&m2)).await,
        409,
        &format!("A cluster with UUID {m2} is already a member of the federation fed."),
    );
    let missing = "0b9d7fd4-2c27-4ee2-9f4f-3c0a4b0c1d2e";
    assert_error(
        &h.patch(&path, "member-a", join(missing)).await,
        404,
        "could not be found",
    );
    // Leave.
    let leave = |m: &str| json!([{"op": "remove", "path": "/member_ids", "value": m}]);
    assert_eq!(h.patch(&path, "member-a", leave(&m1)).await.status, 202);
    assert_error(
        &h.patch(&path, "member-a", leave(&m1)).await,
        404,
        &format!("Cluster {m1} is not a member of the federation fed."),
    );
    assert_eq!(
        h.get(&path, "member-a").await.body["member_ids"],
        json!([m2])
    );
    // Properties change (a nested path), rollback accepted.
    let p = json!([{"op": "replace", "path": "/properties/dns-zone", "value": "other.org."}]);
    let r = h
        .patch(&format!("{path}?rollback=True"), "member-a", p)
        .await;
    assert_eq!(r.status, 202, "{}", r.raw);
    assert_eq!(
        h.get(&path, "member-a").await.body["properties"]["dns-zone"],
        "other.org."
    );

    // Delete.
    let r = h.delete(&path, "member-a").await;
    assert_eq!(r.status, 204, "{}", r.raw);
    assert_error(&h.get(&path, "member-a").await, 404, "could not be found");
}

#[tokio::test]
async fn bad_input_is_400_and_persists_nothing() {
    let h = harness();
    let (_, m1, _) = setup(&h).await;
    let r = h
        .post(
            "/v1/federations",
            "member-a",
            json!({"name": "fed", "hostcluster_id": "host", "properties": props()}),
        )
        .await;
    assert_eq!(r.status, 202);
    let path = "/v1/federations/fed";
    let before = h.backend.command_count();
    for (body, detail) in [
        (json!({"properties": props()}), "No hostcluster specified."),
        (
            json!({"hostcluster_id": "nope", "properties": props()}),
            "Cluster nope could not be found.",
        ),
        (json!({"hostcluster_id": "host"}), "No DNS zone specified."),
        (
            json!({"hostcluster_id": "host", "properties": {"x": "y"}}),
            "No DNS zone specified.",
        ),
        (
            json!({"hostcluster_id": "host", "properties": props(), "foo": 1}),
            "Unknown attribute for argument federation: foo",
        ),
        (
            json!({"hostcluster_id": "host", "properties": props(), "name": "9bad"}),
            "name",
        ),
        (
            json!({"hostcluster_id": "host", "properties": props(), "member_ids": "x"}),
            "member_ids",
        ),
        (
            json!({"hostcluster_id": "host", "properties": props(), "project_id": "p"}),
            "project_id",
        ),
        (json!([1]), "federation"),
    ] {
        let r = h.post("/v1/federations", "member-a", body.clone()).await;
        assert_error(&r, 400, detail);
    }
    for (patch, detail) in [
        (
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
            "cannot change federation property(ies) name.",
        ),
        (
            json!([{"op": "replace", "path": "/hostcluster_id", "value": m1}]),
            "cannot change federation property(ies) hostcluster_id.",
        ),
        (
            json!([{"op": "remove", "path": "/properties/dns-zone"}]),
            "No DNS zone specified.",
        ),
        (
            json!([{"op": "replace", "path": "/uuid", "value": "x"}]),
            "internal attribute",
        ),
        (json!({"op": "x"}), ""),
    ] {
        let r = h.patch(path, "member-a", patch.clone()).await;
        assert_error(&r, 400, detail);
    }
    let r = h
        .patch(&format!("{path}?rollback=maybe"), "member-a", json!([]))
        .await;
    assert_error(&r, 400, "maybe");
    assert_error(
        &h.post(
            "/v1/federations",
            "reader-a",
            json!({"hostcluster_id": "host", "properties": props()}),
        )
        .await,
        403,
        "federation:create",
    );
    assert_error(&h.delete(path, "reader-a").await, 403, "federation:delete");
    assert_nothing_persisted(&h, before);
}

/// A federation names only clusters its creator can see: another project's cluster is refused
/// at create and in a `member_ids` replace, as an unknown one is.
#[tokio::test]
async fn members_must_be_visible_clusters() {
    let h = harness();
    let (_, m1, _) = setup(&h).await;
    h.template("member-b", json!({"name": "tb"})).await;
    let other = h
        .cluster(
            "member-b",
            json!({"cluster_template_id": "tb", "name": "theirs"}),
        )
        .await;
    for members in [json!([other]), json!([m1, "no-such-cluster"])] {
        let body = json!({"hostcluster_id": "host", "properties": props(), "member_ids": members});
        let r = h.post("/v1/federations", "member-a", body).await;
        assert_eq!(r.status, 400, "{}", r.raw);
        assert!(r.raw.contains("could not be found"), "{}", r.raw);
    }
    let body = json!({"name": "fed", "hostcluster_id": "host", "properties": props(), "member_ids": ["m1"]});
    let r = h.post("/v1/federations", "member-a", body).await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let r = h.get("/v1/federations/fed", "member-a").await;
    assert_eq!(r.body["member_ids"], json!([m1]), "stored by uuid");
    let replace = json!([{"op": "replace", "path": "/member_ids", "value": [other]}]);
    let r = h.patch("/v1/federations/fed", "member-a", replace).await;
    assert_eq!(r.status, 400, "{}", r.raw);
}
