#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
use magnum_chaos_tests::Deployment;
use reqwest::Method;
use serde_json::{json, Value};

pub use magnum_chaos_tests::chaos::template_body;

pub async fn create_template(d: &Deployment, token: &str, name: &str) -> String {
    let (s, v) = d
        .call(
            Method::POST,
            "/clustertemplates",
            Some(token),
            Some(template_body(name)),
        )
        .await;
    assert_eq!(s, 201, "template create: {v}");
    v["uuid"].as_str().unwrap().to_string()
}

pub async fn create_cluster(
    d: &Deployment,
    token: &str,
    template: &str,
    name: &str,
    nodes: u32,
) -> String {
    let body = json!({"name": name, "cluster_template_id": template, "master_count": 1, "node_count": nodes});
    let (s, v) = d
        .call(Method::POST, "/clusters", Some(token), Some(body))
        .await;
    assert_eq!(s, 202, "cluster create: {v}");
    v["uuid"].as_str().unwrap().to_string()
}

/// Stacks cloud-sim ever created whose name starts with `prefix`.
pub async fn stacks_named(d: &Deployment, prefix: &str) -> Vec<Value> {
    let all = d.sim_stacks().await;
    let list = all
        .get("stacks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.into_iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

/// GET with the latest microversion (nodegroups need ≥ 1.9).
pub async fn get_latest(d: &Deployment, token: &str, path: &str) -> (u16, Value) {
    let r = d
        .http
        .get(format!("{}{path}", d.api))
        .header("X-Auth-Token", token)
        .header("OpenStack-API-Version", "container-infra latest")
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Any call with the latest microversion; the status and JSON body.
pub async fn call_latest(
    d: &Deployment,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rq = d
        .http
        .request(method, format!("{}{path}", d.api))
        .header("X-Auth-Token", token)
        .header("OpenStack-API-Version", "container-infra latest");
    if let Some(b) = body {
        rq = rq.json(&b);
    }
    let r = rq.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}
