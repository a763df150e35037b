//! Design §7 "bad input on any endpoint": 4xx in Magnum's envelope, never 5xx, nothing persisted;
//! auth failures are Keystone-style 401s. Run against the real multi-process system.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_chaos_tests::{Deployment, Options};
use reqwest::Method;
use serde_json::{json, Value};

fn assert_envelope(status: u16, v: &Value, expect: u16, what: &str) {
    assert_eq!(status, expect, "{what}: {v}");
    let e = &v["errors"][0];
    assert_eq!(e["status"], expect, "{what}: {v}");
    assert_eq!(e["code"], "client", "{what}: {v}");
    assert!(
        e["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{what}: {v}"
    );
    assert!(e["detail"].as_str().is_some(), "{what}: {v}");
}

async fn counts(d: &Deployment, tok: &str) -> (usize, usize) {
    let (_, t) = d
        .call(Method::GET, "/clustertemplates", Some(tok), None)
        .await;
    let (_, c) = d.call(Method::GET, "/clusters", Some(tok), None).await;
    (
        t["clustertemplates"].as_array().unwrap().len(),
        c["clusters"].as_array().unwrap().len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_4xx_envelopes_and_persists_nothing() {
    let d = Deployment::up("badinput", Options::default());
    let tok = d.token("demo", "demo").await;
    let tpl = create_template(&d, &tok, "good").await;
    let before = counts(&d, &tok).await;

    // Malformed JSON, raw.
    for (path, body) in [("/clustertemplates", "{\"name\": "), ("/clusters", "[1,2")] {
        let r = d
            .http
            .post(format!("{}{path}", d.api))
            .header("X-Auth-Token", &tok)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_envelope(s, &v, 400, &format!("malformed JSON on {path}"));
    }
    let mut unknown = template_body("x");
    unknown["bogus_field"] = json!(1);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/clustertemplates", unknown, 400, "unknown field"),
        (
            "/clustertemplates",
            json!({"coe": "kubernetes", "image_id": "fedora-coreos-40", "docker_volume_size": "big"}),
            400,
            "wrong type",
        ),
        (
            "/clustertemplates",
            json!({"image_id": "fedora-coreos-40"}),
            400,
            "missing coe",
        ),
        (
            "/clustertemplates",
            json!({"coe": "kubernetes", "image_id": "no-such-image", "external_network_id": "public"}),
            400,
            "unknown image",
        ),
        (
            "/clusters",
            json!({"name": "ok", "cluster_template_id": "no-such-template"}),
            400,
            "unknown template",
        ),
        (
            "/clusters",
            json!({"name": "9starts-with-digit", "cluster_template_id": tpl}),
            400,
            "invalid name",
        ),
        (
            "/clusters",
            json!({"name": "x".repeat(243), "cluster_template_id": tpl}),
            400,
            "name too long",
        ),
        (
            "/clusters",
            json!({"name": "ok", "cluster_template_id": tpl, "node_count": -1}),
            400,
            "negative node_count",
        ),
        (
            "/clusters",
            json!({"name": "ok", "cluster_template_id": tpl, "master_count": 2}),
            400,
            "even master_count",
        ),
        (
            "/clusters",
            json!({"name": "ok", "cluster_template_id": tpl, "node_count": "two"}),
            400,
            "wrong type",
        ),
        (
            "/clusters",
            json!({"name": "ok", "cluster_template_id": tpl, "bogus": true}),
            400,
            "unknown field",
        ),
    ];
    for (path, body, expect, what) in cases {
        let (s, v) = d.call(Method::POST, path, Some(&tok), Some(body)).await;
        // Unknown template: Magnum ≤1.9 answers 400 (the default microversion is 1.1).
        assert_envelope(s, &v, expect, what);
    }
    let (s, v) = d
        .call(
            Method::GET,
            "/clusters/00000000-0000-0000-0000-000000000000",
            Some(&tok),
            None,
        )
        .await;
    assert_envelope(s, &v, 404, "unknown cluster");

    // Missing and bad tokens: Keystone-style 401.
    for t in [None, Some("not-a-token")] {
        let r = d.http.get(format!("{}/clusters", d.api));
        let r = match t {
            Some(t) => r.header("X-Auth-Token", t),
            None => r,
        };
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert!(r
            .headers()
            .get("www-authenticate")
            .is_some_and(|h| h.to_str().unwrap().starts_with("Keystone uri=")));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], 401);
    }

    // Another project can't see or delete this project's template.
    let alt = d.token("alt_demo", "alt_demo").await;
    let (s, v) = d
        .call(
            Method::DELETE,
            &format!("/clustertemplates/{tpl}"),
            Some(&alt),
            None,
        )
        .await;
    assert_envelope(s, &v, 404, "foreign template delete");

    assert_eq!(
        counts(&d, &tok).await,
        before,
        "nothing was persisted by rejected requests"
    );
}
