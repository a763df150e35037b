//! The OpenAPI document: served without a token, names every route of the router, and every
//! operation it names is routed.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use magnum_api::openapi::endpoints::ENDPOINTS;
use serde_json::json;
use std::collections::BTreeSet;

/// Route paths declared in `src/routes/*.rs` (without their trailing-slash twins).
fn declared_routes() -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for part in text.split(".route(").skip(1) {
            let Some(rest) = part.trim_start().strip_prefix('"') else {
                continue;
            };
            let path = &rest[..rest.find('"').unwrap()];
            let path = path
                .strip_suffix('/')
                .filter(|p| !p.is_empty())
                .unwrap_or(path);
            out.insert(path.to_string());
        }
    }
    out
}

#[tokio::test]
async fn document_is_public_and_complete() {
    let h = harness();
    let r = h.req("GET", "/v1/openapi.json").no_version().send().await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let doc = &r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let declared = declared_routes();
    assert!(declared.len() > 20, "{declared:?}");
    for p in &declared {
        assert!(
            paths.contains_key(p),
            "route {p} is not in the OpenAPI document"
        );
    }
    for e in ENDPOINTS {
        let op = &paths[e.path][e.method];
        assert_eq!(op["operationId"], e.id, "{} {}", e.method, e.path);
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.contains_key(&e.status.to_string()));
        assert!(responses.contains_key("400") && responses.contains_key("404"));
        if !e.public {
            assert!(responses.contains_key("401") && responses.contains_key("403"));
        }
    }
    // Request bodies come from the validators' field tables.
    let ct = &doc["components"]["schemas"]["ClusterTemplate"];
    assert_eq!(ct["required"], json!(["coe", "image_id"]));
    assert_eq!(ct["additionalProperties"], false);
    assert_eq!(ct["properties"]["apiserver_port"]["minimum"], 1024);
    assert_eq!(ct["properties"]["links"]["readOnly"], true);
    let bay = &doc["components"]["schemas"]["Bay"];
    assert!(bay["properties"].get("baymodel_id").is_some());
    assert!(bay["properties"].get("cluster_template_id").is_none());
    let env = &doc["components"]["schemas"]["Error"];
    assert!(env["properties"]["errors"]["items"]["properties"]["detail"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["keystone"]["name"],
        "X-Auth-Token"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let h = harness();
    for e in ENDPOINTS {
        let path = e
            .path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        let mut req = h.req(&e.method.to_uppercase(), &path).token("member-a");
        if e.method != "get" && e.method != "delete" {
            req = req.json(json!({}));
        }
        let r = req.send().await;
        let route_missing =
            r.status == 404 && r.body["errors"][0]["detail"] == "The resource could not be found.";
        assert!(
            !route_missing && r.status != 405,
            "{} {path}: {} {}",
            e.method,
            r.status,
            r.raw
        );
    }
}
