//! `SimConfig::bench_projects` over HTTP: the admin scopes a token to a bench project and
//! `GET /v3/auth/projects` lists them. Its own test binary: the Keystone directory is seeded
//! once per process, and the other tests' simulators use the default one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use magnum_cloud_sim::{project_id, serve, SimConfig};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

fn password(user: &str, project: Option<&str>) -> Value {
    let mut auth = json!({"identity": {"methods": ["password"], "password": {"user":
        {"name": user, "domain": {"name": "Default"}, "password": "secret"}}}});
    if let Some(p) = project {
        auth["scope"] = json!({"project": {"name": p, "domain": {"id": "default"}}});
    }
    json!({ "auth": auth })
}

#[tokio::test]
async fn admin_holds_roles_on_the_bench_projects() {
    let cfg = || SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 0.01,
        bench_projects: 3,
        ..Default::default()
    };
    let sim = serve(cfg()).await.unwrap();
    let http = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let tokens = format!("{}/identity/v3/auth/tokens", sim.base_url());

    // Scoped by name, then by id.
    let r = http
        .post(&tokens)
        .json(&password("admin", Some("bench-00002")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let token = r.headers()["x-subject-token"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token"]["project"]["name"], "bench-00002");
    assert_eq!(body["token"]["project"]["id"], project_id("bench-00002"));
    let roles: Vec<&str> = body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["admin", "member", "reader"]);
    let mut by_id = password("admin", None);
    by_id["auth"]["scope"] = json!({"project": {"id": project_id("bench-00000")}});
    let r = http.post(&tokens).json(&by_id).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Only what was asked for, and only for the admin.
    for (user, project) in [("admin", "bench-00003"), ("demo", "bench-00000")] {
        let r = http
            .post(&tokens)
            .json(&password(user, Some(project)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user} on {project}");
    }

    let r = http
        .get(format!("{}/identity/v3/auth/projects", sim.base_url()))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let names: Vec<&str> = body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["admin", "bench-00000", "bench-00001", "bench-00002"]
    );

    // The admin listing finds one by name.
    let r = http
        .get(format!(
            "{}/identity/v3/projects?name=bench-00001",
            sim.base_url()
        ))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["projects"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["projects"][0]["id"], project_id("bench-00001"));

    // A second simulator in this process shares the directory: same count fine, another refused.
    let again = serve(cfg()).await.unwrap();
    let other = serve(SimConfig {
        bench_projects: 5,
        ..cfg()
    })
    .await;
    assert!(other.is_err(), "a different bench_projects in one process");
    again.shutdown().await;
    sim.shutdown().await;
}
