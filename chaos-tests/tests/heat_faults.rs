//! Design §7 "Heat returns 5xx / times out / 409" and row 1 on the delete path: retried with
//! backoff and idempotency, never a duplicate stack; a permanent error ends the operation
//! `*_FAILED` with a reason the user can read; a leader killed mid-delete still deletes.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_chaos_tests::{Deployment, Options};
use magnum_proto::{shard_of, ProjectId};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn creates(all: &Value, name: &str) -> u64 {
    all["creates_by_name"][name].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heat_errors_are_retried_or_reported_and_never_duplicate() {
    let d = Deployment::up("heatfaults", Options::default());
    let tok = d.token("demo", "demo").await;
    let tpl = create_template(&d, &tok, "faults").await;

    // Transient: two 503s and one lost response on stack create; the operation retries, adopts
    // the stack the lost response created, and completes with exactly one stack.
    d.sim_post("/sim/heat/faults", json!({"kind": "api_error", "method": "POST", "path_glob": "*/stacks", "status": 503, "count": 2})).await;
    d.sim_post(
        "/sim/heat/faults",
        json!({"kind": "lost_response", "method": "POST", "path_glob": "*/stacks", "count": 1}),
    )
    .await;
    let id = create_cluster(&d, &tok, &tpl, "retry", 1).await;
    let (_, v) = d
        .wait_cluster(&tok, &id, Duration::from_secs(60), |_, v| {
            v["status"] != "CREATE_IN_PROGRESS"
        })
        .await;
    assert_eq!(v["status"], "CREATE_COMPLETE", "{v}");
    let stacks = stacks_named(&d, "retry-").await;
    assert_eq!(stacks.len(), 1, "{stacks:?}");
    assert_eq!(
        creates(&d.sim_stacks().await, stacks[0]["name"].as_str().unwrap()),
        1
    );

    // Permanent: a server fails to build; the cluster ends CREATE_FAILED with Heat's reason.
    d.sim_post(
        "/sim/heat/faults",
        json!({"kind": "resource_fail", "resource_type": "OS::Nova::Server", "action": "CREATE",
        "message": "No valid host was found", "count": 1}),
    )
    .await;
    let id = create_cluster(&d, &tok, &tpl, "doomed", 1).await;
    let (_, v) = d
        .wait_cluster(&tok, &id, Duration::from_secs(60), |_, v| {
            v["status"] != "CREATE_IN_PROGRESS"
        })
        .await;
    assert_eq!(v["status"], "CREATE_FAILED", "{v}");
    assert!(
        v["status_reason"]
            .as_str()
            .unwrap_or("")
            .contains("No valid host was found"),
        "{v}"
    );
    // A failed cluster can still be deleted, and its stack goes with it.
    let (s, _) = d
        .call(Method::DELETE, &format!("/clusters/{id}"), Some(&tok), None)
        .await;
    assert_eq!(s, 204);
    d.wait_cluster(&tok, &id, Duration::from_secs(60), |s, _| s == 404)
        .await;
    let gone = stacks_named(&d, "doomed-").await;
    assert!(
        gone.iter().all(|s| s["status"] == "DELETE_COMPLETE"),
        "{gone:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_delete_still_deletes() {
    let d = Deployment::up("deletefailover", Options::default());
    let tok = d.token("demo", "demo").await;
    let tpl = create_template(&d, &tok, "del").await;
    let id = create_cluster(&d, &tok, &tpl, "victim", 1).await;
    let (_, v) = d
        .wait_cluster(&tok, &id, Duration::from_secs(60), |_, v| {
            v["status"] == "CREATE_COMPLETE"
        })
        .await;
    let client = d.conductor_client();
    let shard = shard_of(
        &ProjectId(v["project_id"].as_str().unwrap().into()),
        client.shards().await.unwrap(),
    );
    let leader = client.leader_of(shard).await.unwrap().unwrap();

    // The stack delete happens at once; its answer comes 4 s later.
    d.sim_post("/sim/heat/faults", json!({"kind": "response_delay", "method": "DELETE", "path_glob": "*/stacks/*", "seconds": 4.0, "count": 1})).await;
    let (s, _) = d
        .call(Method::DELETE, &format!("/clusters/{id}"), Some(&tok), None)
        .await;
    assert_eq!(s, 204);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = stacks_named(&d, "victim-").await;
        if st.iter().any(|s| {
            s["status"]
                .as_str()
                .is_some_and(|x| x.starts_with("DELETE"))
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stack delete never reached cloud-sim: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.kill_conductor(leader.0);

    d.wait_cluster(&tok, &id, Duration::from_secs(60), |s, _| s == 404)
        .await;
    let st = stacks_named(&d, "victim-").await;
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(st[0]["status"], "DELETE_COMPLETE", "{st:?}");
    d.start("conductor", Some(leader.0));
}
