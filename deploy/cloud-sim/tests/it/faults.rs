use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::start;

fn body(name: &str) -> Value {
    json!({"stack_name": name, "template": {"heat_template_version": "queens",
        "resources": {"r": {"type": "OS::Heat::None"}}}})
}

async fn creates(sim: &crate::common::Sim, name: &str) -> u64 {
    let v: Value = sim.admin_json("/sim/heat/stacks").await;
    v["creates_by_name"][name].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn api_error_fault() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    let r = sim
        .add_fault(
            json!({"kind": "api_error", "method": "POST", "path_glob": "*/stacks", "status": 503, "count": 2}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let stacks = sim.stacks("demo");
    // GETs are not affected.
    let r = sim.call(Method::GET, &stacks, &tok, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..2 {
        let r = sim.call(Method::POST, &stacks, &tok, Some(body("f"))).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], 503);
        assert_eq!(v["title"], "Service Unavailable");
        assert!(v["error"]["type"].is_string());
    }
    assert_eq!(creates(&sim, "f").await, 0, "no side effect");
    let url = sim.create_stack(&tok, "demo", body("f")).await;
    assert_eq!(
        sim.wait(&tok, &url).await["stack_status"],
        "CREATE_COMPLETE"
    );
    assert_eq!(creates(&sim, "f").await, 1);

    // Keystone faults use Keystone's envelope; DELETE clears.
    sim.add_fault(
        json!({"kind": "api_error", "path_glob": "/identity/v3/auth/tokens", "status": 500, "count": 0}),
    )
    .await;
    let r = sim
        .http
        .post(sim.url("/identity/v3/auth/tokens"))
        .json(&crate::common::password_body("demo", Some("demo")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 500);
    let v: Value = sim.admin_json("/sim/heat/faults").await;
    assert_eq!(v["faults"].as_array().unwrap().len(), 1);
    let r = sim.admin(Method::DELETE, "/sim/heat/faults", None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    sim.login("demo", "demo").await;

    // Bad fault specs.
    let r = sim.add_fault(json!({"kind": "nonsense"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn response_delay_fault() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    sim.add_fault(
        json!({"kind": "response_delay", "method": "POST", "path_glob": "*/stacks", "seconds": 5, "count": 1}),
    )
    .await;
    let stacks = sim.stacks("demo");
    // The caller gives up (like a killed conductor) before the response arrives...
    let started = Instant::now();
    let r = sim
        .http
        .post(&stacks)
        .header("X-Auth-Token", &tok)
        .json(&body("delayed"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(r.is_err(), "timed out");
    assert!(started.elapsed() < Duration::from_secs(2));
    // ...but the stack was created.
    assert_eq!(creates(&sim, "delayed").await, 1);
    let r = sim
        .call(Method::GET, &format!("{stacks}/delayed"), &tok, None)
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    // A retry sees 409 and can adopt the existing stack.
    let r = sim
        .call(Method::POST, &stacks, &tok, Some(body("delayed")))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn lost_response_fault() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    sim.add_fault(json!({"kind": "lost_response", "method": "POST", "path_glob": "*/stacks"}))
        .await;
    let stacks = sim.stacks("demo");
    let r = sim
        .call(Method::POST, &stacks, &tok, Some(body("lost")))
        .await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(creates(&sim, "lost").await, 1);
    let r = sim
        .call(Method::POST, &stacks, &tok, Some(body("lost")))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn latency_override_and_reset() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    let r = sim
        .set_latency(
            json!({"resource_type": "OS::Heat::None", "action": "CREATE", "seconds": 100.0}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let url = sim.create_stack(&tok, "demo", body("lat")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        sim.show(&tok, &url).await["stack_status"],
        "CREATE_IN_PROGRESS",
        "100 s × 0.01 = 1 s"
    );
    assert_eq!(
        sim.wait(&tok, &url).await["stack_status"],
        "CREATE_COMPLETE"
    );

    let r = sim.admin(Method::GET, "/sim/health", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = sim.admin(Method::POST, "/sim/reset", None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let v: Value = sim.admin_json("/sim/heat/stacks").await;
    assert!(v["stacks"].as_array().unwrap().is_empty());
    // Tokens are gone too.
    let r = sim.call(Method::GET, &sim.stacks("demo"), &tok, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
