//! Bad input on every write endpoint: Magnum's envelope, never a 5xx, nothing persisted.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn malformed_bodies() {
    let h = harness();
    h.template("member-a", json!({})).await;
    let before = h.backend.command_count();
    let endpoints = [
        ("POST", "/v1/clustertemplates", "cluster_template"),
        ("POST", "/v1/clusters", "cluster"),
        ("PATCH", "/v1/clustertemplates/k8s-tmpl", "patch"),
    ];
    for (method, path, arg) in endpoints {
        for bad in ["{", "{\"name\": }", "[1,", "nul", "\u{0}"] {
            let r = h
                .req(method, path)
                .token("member-a")
                .raw("application/json", bad)
                .send()
                .await;
            assert_error(&r, 400, "Request is not in valid JSON format");
        }
        let r = h
            .req(method, path)
            .token("member-a")
            .raw("application/json", "")
            .send()
            .await;
        assert_error(&r, 400, &format!("Missing argument: \"{arg}\""));
        let r = h
            .req(method, path)
            .token("member-a")
            .raw("text/plain", "{}")
            .send()
            .await;
        assert_error(&r, 415, "Unknown mimetype: text/plain");
        let r = h
            .req(method, path)
            .token("member-a")
            .raw("application/x-www-form-urlencoded", "a=b")
            .send()
            .await;
        assert_error(&r, 415, "Unknown mimetype");
        // Wrong JSON shapes.
        for shape in [json!(7), json!("x"), json!(null)] {
            let r = h
                .req(method, path)
                .token("member-a")
                .json(shape)
                .send()
                .await;
            assert!(r.status.is_client_error(), "{method} {path}: {}", r.raw);
            assert!(r.body["errors"].is_array());
        }
    }
    // Bodies too large are refused in the envelope too.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(3 << 20));
    let r = h
        .req("POST", "/v1/clustertemplates")
        .token("member-a")
        .raw("application/json", &big)
        .send()
        .await;
    assert_eq!(r.status, 413);
    assert!(
        r.body["errors"].is_array(),
        "{}",
        &r.raw[..r.raw.len().min(200)]
    );
    assert_nothing_persisted(&h, before);
}

#[tokio::test]
async fn unauthenticated_writes_persist_nothing() {
    let h = harness();
    for (method, path) in [
        ("POST", "/v1/clustertemplates"),
        ("POST", "/v1/clusters"),
        ("DELETE", "/v1/clusters/x"),
        ("DELETE", "/v1/clustertemplates/x"),
        ("PATCH", "/v1/clustertemplates/x"),
    ] {
        for token in [None, Some("expired-token")] {
            let mut req = h.req(method, path).json(json!({"name": "x"}));
            if let Some(t) = token {
                req = req.token(t);
            }
            let r = req.send().await;
            assert_eq!(r.status, 401, "{method} {path}");
            assert!(r
                .header("www-authenticate")
                .unwrap()
                .starts_with("Keystone uri="));
        }
    }
    assert_nothing_persisted(&h, 0);
}

#[tokio::test]
async fn delete_without_body_and_octet_stream_is_fine() {
    // The CLI sends DELETE with Content-Type: application/octet-stream and no body.
    let h = harness();
    h.template("member-a", json!({})).await;
    let r = h
        .req("DELETE", "/v1/clustertemplates/k8s-tmpl")
        .token("member-a")
        .raw("application/octet-stream", "")
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.raw);
}

#[tokio::test]
async fn fuzzish_inputs_never_5xx() {
    let h = harness();
    h.template("member-a", json!({})).await;
    let values = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!(""),
        json!("x"),
        json!([]),
        json!({}),
        json!({"a": null}),
        json!("\u{1F600}"),
        json!(u64::MAX),
    ];
    let before = h.backend.command_count();
    let tfields = [
        "name",
        "coe",
        "image_id",
        "flavor_id",
        "labels",
        "apiserver_port",
        "docker_volume_size",
        "public",
        "dns_nameserver",
        "uuid",
        "server_type",
        "tags",
    ];
    for f in tfields {
        for v in &values {
            let mut b = json!({"coe": "kubernetes", "image_id": "nope", "name": "t"});
            b[f] = v.clone();
            let r = h.post("/v1/clustertemplates", "member-a", b).await;
            assert!(
                r.status.is_client_error(),
                "{f}={v}: {} {}",
                r.status,
                r.raw
            );
            assert!(r.body["errors"].is_array(), "{f}={v}: {}", r.raw);
        }
    }
    let cfields = [
        "name",
        "cluster_template_id",
        "node_count",
        "master_count",
        "labels",
        "create_timeout",
        "keypair",
        "merge_labels",
        "health_status_reason",
        "uuid",
    ];
    for f in cfields {
        for v in &values {
            let mut b = json!({"cluster_template_id": "missing", "name": "c"});
            b[f] = v.clone();
            let r = h.post("/v1/clusters", "member-a", b).await;
            assert!(
                r.status.is_client_error(),
                "{f}={v}: {} {}",
                r.status,
                r.raw
            );
            assert!(r.body["errors"].is_array(), "{f}={v}: {}", r.raw);
        }
    }
    for v in &values {
        for path in [
            "/name",
            "/labels",
            "/labels/x",
            "/docker_volume_size",
            "/nope/deeper",
        ] {
            for op in ["add", "replace", "remove"] {
                let r = h
                    .patch(
                        "/v1/clustertemplates/k8s-tmpl",
                        "member-a",
                        json!([{"op": op, "path": path, "value": v}]),
                    )
                    .await;
                assert!(r.status.as_u16() < 500, "{op} {path} {v}: {}", r.raw);
                if !r.status.is_success() {
                    assert!(r.body["errors"].is_array(), "{}", r.raw);
                }
            }
        }
    }
    // Only successful PATCHes may have written.
    assert!(h.backend.command_count() >= before);
    assert!(h.backend.all_clusters().is_empty());
}

/// Sizes a cloud cannot serve are refused before anything is stored: labels over 64 KiB, a
/// node count over the deployment's limit (create, PATCH, resize, nodegroup create), a master
/// count over its limit.
#[tokio::test]
async fn oversized_labels_and_counts_are_refused() {
    let h = harness();
    h.template("member-a", json!({})).await;
    let id = h
        .cluster(
            "member-a",
            json!({"name": "c1", "cluster_template_id": "k8s-tmpl"}),
        )
        .await;
    let before = h.backend.command_count();
    let huge = json!({"k": "v".repeat(70_000)});
    let version = ("OpenStack-API-Version", "container-infra latest");
    let cases = [
        (
            "POST",
            "/v1/clustertemplates".to_string(),
            json!({"name": "t2", "coe": "kubernetes", "image_id": "fedora-coreos-40", "labels": huge}),
            "labels take",
        ),
        (
            "POST",
            "/v1/clusters".to_string(),
            json!({"name": "c2", "cluster_template_id": "k8s-tmpl", "labels": huge}),
            "labels take",
        ),
        (
            "POST",
            "/v1/clusters".to_string(),
            json!({"name": "c3", "cluster_template_id": "k8s-tmpl", "node_count": 1_000_000}),
            "lower or equal to 5000",
        ),
        (
            "POST",
            "/v1/clusters".to_string(),
            json!({"name": "c4", "cluster_template_id": "k8s-tmpl", "master_count": 9, "master_lb_enabled": true}),
            "lower or equal to 7",
        ),
        (
            "PATCH",
            format!("/v1/clusters/{id}"),
            json!([{"op": "replace", "path": "/node_count", "value": 1_000_000}]),
            "lower or equal to 5000",
        ),
        (
            "POST",
            format!("/v1/clusters/{id}/actions/resize"),
            json!({"node_count": 5001}),
            "lower or equal to 5000",
        ),
        (
            "POST",
            format!("/v1/clusters/{id}/nodegroups"),
            json!({"name": "ng", "node_count": 5001}),
            "lower or equal to 5000",
        ),
        (
            "POST",
            format!("/v1/clusters/{id}/nodegroups"),
            json!({"name": "ng", "node_labels": huge}),
            "labels take",
        ),
    ];
    for (method, path, body, want) in cases {
        let r = h
            .req(method, &path)
            .token("member-a")
            .header(version.0, version.1)
            .json(body)
            .send()
            .await;
        assert_eq!(
            r.status,
            400,
            "{method} {path}: {}",
            &r.raw[..r.raw.len().min(300)]
        );
        assert!(
            r.raw.contains(want),
            "{method} {path}: {}",
            &r.raw[..r.raw.len().min(300)]
        );
        assert!(r.raw.len() < 1000, "the refusal does not echo the input");
    }
    assert_eq!(h.backend.command_count(), before, "nothing was committed");
}

#[tokio::test]
async fn templates_per_project_are_bounded() {
    let mut settings = magnum_api::Settings::new("http://keystone.test:5000/v3");
    settings.validation.max_templates_per_project = 2;
    let h = harness_with(settings);
    h.template("member-a", json!({"name": "t1"})).await;
    h.template("member-a", json!({"name": "t2"})).await;
    let body = json!({"name": "t3", "coe": "kubernetes", "image_id": "fedora-coreos-40"});
    let r = h
        .post("/v1/clustertemplates", "member-a", body.clone())
        .await;
    assert_error(&r, 403, "maximum cluster templates per project, 2");
    assert_eq!(
        h.backend.all_templates().len(),
        2,
        "a refused create writes nothing"
    );
    // Per project: another one is not affected.
    h.template("member-b", json!({"name": "t1"})).await;
    // Room again after a delete.
    assert_eq!(
        h.delete("/v1/clustertemplates/t1", "member-a").await.status,
        204
    );
    let r = h.post("/v1/clustertemplates", "member-a", body).await;
    assert_eq!(r.status, 201, "{}", r.raw);
}
