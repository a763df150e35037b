//! Clusters: create (202 after commit) → show, list, detail, delete, validation, tenancy.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use magnum_proto::{OpKind, ShardId, Step};
use serde_json::{json, Value};

async fn with_template(h: &Harness) -> Value {
    h.template("member-a", json!({"docker_volume_size": 10}))
        .await
}

#[tokio::test]
async fn create_then_show() {
    let h = harness();
    let t = with_template(&h).await;
    // What the CLI sends (capture of `openstack coe cluster create ... --merge-labels`).
    let body = json!({"cluster_template_id": "k8s-tmpl", "create_timeout": 30,
        "discovery_url": null, "keypair": "default", "master_count": 1, "name": "k8s",
        "node_count": 2, "labels": {"x": "y"}, "flavor_id": "m1.medium", "merge_labels": true,
        "master_lb_enabled": true});
    let r = h.post("/v1/clusters", "member-a", body).await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let uuid = r.body["uuid"].as_str().unwrap().to_string();
    assert_eq!(r.body, json!({"uuid": uuid}));

    // The row exists as soon as the 202 is out.
    let r = h.get("/v1/clusters/k8s", "reader-a").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let c = &r.body;
    assert_eq!(c["uuid"], uuid);
    assert_eq!(c["status"], "CREATE_IN_PROGRESS");
    assert_eq!(c["cluster_template_id"], t["uuid"]);
    assert_eq!(c["node_count"], 2);
    assert_eq!(c["master_count"], 1);
    assert_eq!(c["docker_volume_size"], 10);
    assert_eq!(c["flavor_id"], "m1.medium");
    assert_eq!(c["master_flavor_id"], "m1.small");
    assert_eq!(c["keypair"], "default");
    assert_eq!(c["create_timeout"], 30);
    assert_eq!(
        c["labels"],
        json!({"foo": "bar", "kube_tag": "v1.27.0", "x": "y"})
    );
    assert_eq!(c["labels_added"], json!({"x": "y"}));
    assert_eq!(c["labels_overridden"], json!({}));
    assert_eq!(c["labels_skipped"], json!({}));
    assert_eq!(c["merge_labels"], false);
    assert_eq!(c["master_lb_enabled"], true);
    assert_eq!(c["floating_ip_enabled"], true);
    assert_eq!(c["health_status_reason"], json!({}));
    assert_eq!(c["stack_id"], Value::Null);
    assert_eq!(c["project_id"], PROJECT_A);
    assert!(c.get("faults").is_none());
    assert_eq!(
        c["links"][0]["href"],
        format!("http://magnum.test:9511/v1/clusters/{uuid}")
    );
    assert!(r.raw.starts_with("{\"uuid\":"));

    // Nodegroups and the create operation were committed with it.
    let views = h.backend.all_clusters();
    assert_eq!(views.len(), 1);
    let ngs = &views[0].nodegroups;
    let names: Vec<&str> = ngs.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["default-master", "default-worker"]);
    assert!(ngs
        .iter()
        .all(|n| n.is_default && n.image_id.as_deref() == Some("fedora-coreos-40")));
    assert_eq!(ngs[1].flavor_id.as_deref(), Some("m1.medium"));
    let ops = h.backend.operations(0);
    assert_eq!(ops.len(), 1);
    let op = &ops[0];
    assert_eq!(op.kind, OpKind::Create);
    assert_eq!(op.step, Step::GenerateCerts);
    assert!(op.stack_name.starts_with("k8s-") && op.stack_name.len() == 4 + 12);
    assert_eq!(
        op.deadline.0 - op.started_at.0,
        (30 + 10) * 60 * 1_000_000,
        "deadline = create_timeout + 10 min slack"
    );
    assert_eq!(
        op.template.uuid.map(|u| u.to_string()).as_deref(),
        t["uuid"].as_str()
    );
}

#[tokio::test]
async fn create_defaults_inherit_from_the_template() {
    let h = harness();
    with_template(&h).await;
    let uuid = h
        .cluster("member-a", json!({"cluster_template_id": "k8s-tmpl"}))
        .await;
    let r = h.get(&format!("/v1/clusters/{uuid}"), "member-a").await;
    let c = &r.body;
    assert!(c["name"].as_str().unwrap().ends_with("-cluster"));
    assert_eq!(c["node_count"], 1);
    assert_eq!(c["master_count"], 1);
    assert_eq!(c["create_timeout"], 60);
    assert_eq!(c["keypair"], "default");
    assert_eq!(c["flavor_id"], "m1.small");
    assert_eq!(c["labels"], json!({"foo": "bar", "kube_tag": "v1.27.0"}));
    assert_eq!(c["labels_added"], json!({}));
    // Labels given without merge replace the template's.
    let uuid = h
        .cluster(
            "member-a",
            json!({"cluster_template_id": "k8s-tmpl", "labels": {"kube_tag": "v2"}}),
        )
        .await;
    let c = h
        .get(&format!("/v1/clusters/{uuid}"), "member-a")
        .await
        .body;
    assert_eq!(c["labels"], json!({"kube_tag": "v2"}));
    assert_eq!(c["labels_overridden"], json!({"kube_tag": "v1.27.0"}));
    assert_eq!(c["labels_skipped"], json!({"foo": "bar"}));
}

#[tokio::test]
async fn create_validation_errors_persist_nothing() {
    let h = harness();
    with_template(&h).await;
    h.template(
        "member-a",
        json!({"name": "dm", "docker_storage_driver": "devicemapper", "docker_volume_size": 5}),
    )
    .await;
    let before = h.backend.command_count();
    let base = |extra: Value| {
        let mut b = json!({"cluster_template_id": "k8s-tmpl", "name": "k8s"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"cluster_template_id": "nope"}), 404, "ClusterTemplate nope could not be found."),
        (json!({"name": "1bad"}), 400, "Invalid input for field/attribute name. Value: '1bad'. Value should match the pattern ^[a-zA-Z][a-zA-Z0-9_.-]*$"),
        (json!({"name": "bad name"}), 400, "Value should match the pattern"),
        (json!({"name": "a".repeat(243)}), 400, "Value should have a maximum character requirement of 242"),
        (json!({"node_count": -1}), 400, "Invalid input for field/attribute node_count. Value: '-1'. Value should be greater or equal to 0"),
        (json!({"node_count": "two"}), 400, "invalid literal for int() with base 10: 'two'"),
        (json!({"node_count": [2]}), 400, "int() argument must be a string"),
        (json!({"master_count": 0}), 400, "Value should be greater or equal to 1"),
        (json!({"master_count": 2, "master_lb_enabled": true}), 400, "master nodegroup size of 2 is invalid, size cannot be an even number."),
        (json!({"master_count": 3}), 400, "master_count must be 1 when master_lb_enabled is False"),
        (json!({"create_timeout": -5}), 400, "Value should be greater or equal to 0"),
        (json!({"keypair": "missing"}), 404, "Unable to find keypair missing."),
        (json!({"flavor_id": "m1.huge"}), 400, "Unable to find flavor m1.huge."),
        (json!({"master_flavor_id": "m1.nodisk"}), 400, "Flavor with zero root volume size"),
        (json!({"fixed_network": "nowhere"}), 400, "Unable to find fixed network nowhere."),
        (json!({"fixed_subnet": "nowhere"}), 400, "Unable to find fixed subnet nowhere."),
        (json!({"labels": "k=v"}), 400, "Value not a valid dict"),
        (json!({"labels": {"min_node_count": "x"}}), 400, "min_node_count"),
        (json!({"merge_labels": "sometimes"}), 400, "Unrecognized value 'sometimes'"),
        (json!({"api_address": "1.2.3.4"}), 400, "Invalid input for field/attribute api_address. Value: '1.2.3.4'. Cannot set read only field."),
        (json!({"foo": "bar", "baz": 1}), 400, "Unknown attributes for argument cluster: baz, foo"),
        (json!({"uuid": "zzz"}), 400, "Expected a uuid but received zzz."),
        (json!({"status": "BROKEN"}), 400, "Value should be one of: CREATE_IN_PROGRESS"),
        (json!({"cluster_template_id": "dm", "docker_volume_size": 2}), 400, "docker volume size 2 GB is not valid"),
        (json!({"cluster_template_id": null}), 400, "Invalid input for field/attribute cluster_template_id. Value: 'None'. Mandatory field missing."),
    ];
    for (extra, status, detail) in cases {
        let r = h
            .post("/v1/clusters", "member-a", base(extra.clone()))
            .await;
        assert_error(&r, status, detail);
        assert_nothing_persisted(&h, before);
    }
    // Up to 1.9 an unknown template is a 400 (upstream's ct_not_found_to_bad_request).
    let r = h
        .req("POST", "/v1/clusters")
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 1.9")
        .json(base(json!({"cluster_template_id": "nope"})))
        .send()
        .await;
    assert_error(&r, 400, "ClusterTemplate nope could not be found.");
    assert_nothing_persisted(&h, before);
    let r = h
        .post("/v1/clusters", "member-a", json!({"name": "x"}))
        .await;
    assert_error(&r, 400, "Invalid input for field/attribute cluster_template_id. Value: 'None'. Mandatory field missing.");
    let r = h.post("/v1/clusters", "reader-a", base(json!({}))).await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow cluster:create to be performed.",
    );
    // A project cannot use another project's private template.
    let r = h.post("/v1/clusters", "member-b", base(json!({}))).await;
    assert_error(&r, 404, "ClusterTemplate k8s-tmpl could not be found.");
    assert_nothing_persisted(&h, before);
    assert!(h.backend.all_clusters().is_empty());
}

#[tokio::test]
async fn node_count_zero_needs_1_10() {
    let h = harness();
    with_template(&h).await;
    let body = json!({"cluster_template_id": "k8s-tmpl", "node_count": 0});
    let r = h
        .req("POST", "/v1/clusters")
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 1.9")
        .json(body.clone())
        .send()
        .await;
    assert_error(
        &r,
        400,
        "Resizing a nodegroup to zero is not supported in the provided microversion.",
    );
    let r = h
        .req("POST", "/v1/clusters")
        .token("member-a")
        .no_version()
        .json(body.clone())
        .send()
        .await;
    assert_error(&r, 400, "Resizing a nodegroup to zero");
    let r = h
        .req("POST", "/v1/clusters")
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 1.10")
        .json(body)
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let c = h
        .get(
            &format!("/v1/clusters/{}", r.body["uuid"].as_str().unwrap()),
            "member-a",
        )
        .await;
    assert_eq!(c.body["node_count"], 0);
}

#[tokio::test]
async fn public_template_of_another_shard_can_be_used() {
    let h = harness();
    h.template("admin-token", json!({"name": "shared", "public": true}))
        .await;
    let uuid = h
        .cluster(
            "member-b",
            json!({"cluster_template_id": "shared", "name": "b1"}),
        )
        .await;
    let r = h.get(&format!("/v1/clusters/{uuid}"), "member-b").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["project_id"], PROJECT_B);
    assert_eq!(r.body["labels_added"], json!({}));
}

#[tokio::test]
async fn list_detail_and_tenancy() {
    let h = harness();
    with_template(&h).await;
    h.template("member-b", json!({"name": "b-tmpl"})).await;
    let a = h
        .cluster(
            "member-a",
            json!({"cluster_template_id": "k8s-tmpl", "name": "a1"}),
        )
        .await;
    let b = h
        .cluster(
            "member-b",
            json!({"cluster_template_id": "b-tmpl", "name": "b1"}),
        )
        .await;

    let r = h.get("/v1/clusters", "reader-a").await;
    assert_eq!(r.status, 200);
    let items = r.body["clusters"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let keys: Vec<&String> = items[0].as_object().unwrap().keys().collect();
    let mut want = vec![
        "uuid",
        "name",
        "cluster_template_id",
        "keypair",
        "node_count",
        "master_count",
        "docker_volume_size",
        "labels",
        "master_flavor_id",
        "flavor_id",
        "create_timeout",
        "links",
        "cluster_id", // `stack_id` before 1.13
        "status",
        "health_status",
        "merge_labels",
    ];
    want.sort();
    let mut got: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    got.sort();
    assert_eq!(got, want);
    assert!(r.body.get("next").is_none());

    let r = h.get("/v1/clusters/detail", "member-a").await;
    let c = &r.body["clusters"][0];
    assert_eq!(c["uuid"], a);
    assert!(c.get("labels_added").is_some() && c.get("faults").is_none());

    // Admin sees both projects, merged across shards.
    let r = h.get("/v1/clusters", "admin-token").await;
    assert_eq!(r.body["clusters"].as_array().unwrap().len(), 2);
    // Its uuid names its shard (project B's, 1 of 4): the admin's look-up asks that one.
    let lookups = || h.backend.cluster_lookups.lock().unwrap().clone();
    let before = lookups().len();
    let r = h.get(&format!("/v1/clusters/{b}"), "admin-token").await;
    assert_eq!(r.status, 200);
    assert_eq!(lookups()[before..], [ShardId(1)]);
    // A uuid naming a shard that does not hold it: that shard, then every shard, then 404.
    let stray = format!("{}4d470003", &b[..28]);
    let r = h.get(&format!("/v1/clusters/{stray}"), "admin-token").await;
    assert_error(&r, 404, &format!("Cluster {stray} could not be found."));
    assert_eq!(lookups()[before + 1..], [3, 0, 1, 2, 3].map(ShardId));

    // Project B can neither see nor delete project A's cluster.
    let before = h.backend.command_count();
    for ident in [a.as_str(), "a1"] {
        let r = h.get(&format!("/v1/clusters/{ident}"), "member-b").await;
        assert_error(&r, 404, &format!("Cluster {ident} could not be found."));
        let r = h.delete(&format!("/v1/clusters/{ident}"), "member-b").await;
        assert_error(&r, 404, "could not be found");
    }
    let r = h.delete(&format!("/v1/clusters/{a}"), "reader-a").await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow cluster:delete to be performed.",
    );
    let r = h.get("/v1/clusters", "norole-a").await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow cluster:get_all to be performed.",
    );
    assert_nothing_persisted(&h, before);
}

#[tokio::test]
async fn ambiguous_cluster_name_is_409() {
    let h = harness();
    with_template(&h).await;
    h.cluster(
        "member-a",
        json!({"cluster_template_id": "k8s-tmpl", "name": "twin"}),
    )
    .await;
    h.cluster(
        "member-a",
        json!({"cluster_template_id": "k8s-tmpl", "name": "twin"}),
    )
    .await;
    let r = h.get("/v1/clusters/twin", "member-a").await;
    assert_error(
        &r,
        409,
        "Multiple clusters exist with same name. Please use the cluster uuid instead.",
    );
}

#[tokio::test]
async fn delete_cluster() {
    let h = harness();
    with_template(&h).await;
    let uuid = h
        .cluster(
            "member-a",
            json!({"cluster_template_id": "k8s-tmpl", "name": "k8s"}),
        )
        .await;
    let r = h.delete("/v1/clusters/k8s", "member-a").await;
    assert_eq!(r.status, 204, "{}", r.raw);
    assert!(r.raw.is_empty());
    let r = h.get(&format!("/v1/clusters/{uuid}"), "member-a").await;
    assert_eq!(r.body["status"], "DELETE_IN_PROGRESS");
    let ops = h.backend.operations(0);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].kind, OpKind::Delete);
    let r = h.delete("/v1/clusters/nope", "member-a").await;
    assert_error(&r, 404, "Cluster nope could not be found.");
}

#[tokio::test]
async fn quota_exceeded_is_403() {
    let h = harness();
    with_template(&h).await;
    for i in 0..magnum_proto::DEFAULT_CLUSTER_QUOTA {
        h.cluster(
            "member-a",
            json!({"cluster_template_id": "k8s-tmpl", "name": format!("c{i}")}),
        )
        .await;
    }
    let r = h
        .post(
            "/v1/clusters",
            "member-a",
            json!({"cluster_template_id": "k8s-tmpl", "name": "one-more"}),
        )
        .await;
    assert_error(
        &r,
        403,
        "Resource limit exceeded: You have reached the maximum clusters per project, 20.",
    );
}

/// Microversion 1.13: cluster responses name the stack `cluster_id` instead of `stack_id`.
#[tokio::test]
async fn stack_id_becomes_cluster_id_at_1_13() {
    let h = harness();
    with_template(&h).await;
    let uuid = h
        .cluster(
            "member-a",
            json!({"cluster_template_id": "k8s-tmpl", "name": "v13"}),
        )
        .await;
    let id = magnum_proto::ClusterId(uuid.parse().unwrap());
    h.backend.complete_create(0, id);
    for path in [
        format!("/v1/clusters/{uuid}"),
        "/v1/clusters".to_string(),
        "/v1/clusters/detail".to_string(),
    ] {
        for (ver, present, absent) in [
            ("1.12", "stack_id", "cluster_id"),
            ("1.13", "cluster_id", "stack_id"),
        ] {
            let r = h
                .req("GET", &path)
                .token("member-a")
                .header("OpenStack-API-Version", &format!("container-infra {ver}"))
                .send()
                .await;
            assert_eq!(r.status, 200, "{}", r.raw);
            let c = if path.ends_with(&uuid) {
                r.body.clone()
            } else {
                r.body["clusters"][0].clone()
            };
            assert_eq!(c[present], "stack-1", "{path} at {ver}: {c}");
            assert!(c.get(absent).is_none(), "{path} at {ver}: {c}");
        }
    }
}
