use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::start;

#[tokio::test]
async fn requests_are_counted_per_route_and_reset_clears_them() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    let stacks = sim.stacks("demo");
    for q in ["?id=a", "?id=b&id=c"] {
        let r = sim
            .call(Method::GET, &format!("{stacks}{q}"), &tok, None)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    sim.call(Method::GET, &format!("{stacks}/web/0b6a"), &tok, None)
        .await;
    let v: Value = sim.admin_json("/sim/requests").await;
    let r = &v["requests"];
    assert_eq!(r["GET heat-api /v1/{}/stacks?id"], 2, "{v}");
    assert_eq!(r["GET heat-api /v1/{}/stacks/{}/{}"], 1, "{v}");
    assert_eq!(r["POST identity /v3/auth/tokens"], 1, "{v}");
    // The admin API reading them is not counted.
    assert!(!v.to_string().contains("GET sim"), "{v}");

    sim.admin(Method::POST, "/sim/reset", None).await;
    let v: Value = sim.admin_json("/sim/requests").await;
    assert_eq!(v["requests"], serde_json::json!({}), "{v}");
}
