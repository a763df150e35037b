//! The conductor against REAL Heat (peers toolkit): cloud-sim serves Keystone and the look-ups
//! and lists the real Heat as `orchestration` (`--heat-url`); clusters use the `heat-test` image,
//! whose driver builds stacks of `OS::Heat::*` resources only. The shard leader is SIGKILLed
//! while real Heat has the stack `CREATE_IN_PROGRESS`; and a cluster is deleted during its create.
//! "Exactly one stack per cluster" is checked by listing the real Heat's stacks.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use magnum_chaos_tests::{real_heat, Deployment, Options};
use magnum_proto::{shard_of, ProjectId, ShardId};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn deployment(name: &str) -> Deployment {
    let url = real_heat::ensure_up();
    Deployment::up(
        name,
        Options {
            sim_args: format!("--heat-url {url}"),
            // The peers' Heat is sqlite-backed: poll it gently.
            poll_ms: 1000,
            ..Options::default()
        },
    )
}

async fn heat_test_template(d: &Deployment, token: &str, create_secs: u32) -> String {
    let body = json!({
        "name": format!("ht-{}", uuid::Uuid::new_v4().simple()), "coe": "kubernetes",
        "image_id": "heat-test", "external_network_id": "public", "flavor_id": "m1.small",
        "master_flavor_id": "m1.small", "keypair_id": "default",
        "labels": {"heat_test_create_secs": create_secs.to_string()}
    });
    let (s, v) = d
        .call(Method::POST, "/clustertemplates", Some(token), Some(body))
        .await;
    assert_eq!(s, 201, "template create: {v}");
    v["uuid"].as_str().unwrap().to_string()
}

/// A cluster name unique on the shared real Heat (stack names start with it).
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

async fn wait_real_stack(http: &reqwest::Client, prefix: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stacks = real_heat::stacks_with_prefix(http, prefix, false).await;
        if let Some(s) = stacks.iter().find(|s| s["stack_status"] == status) {
            return s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {status} stack {prefix}* in real Heat: {stacks:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_heat_leader_killed_while_create_in_progress() {
    let d = deployment("failover-real-heat");
    let token = d.token("admin", "admin").await;
    let tpl = heat_test_template(&d, &token, 8).await;
    let name = unique("frh");
    let t0 = Instant::now();
    let id = common::create_cluster(&d, &token, &tpl, &name, 2).await;
    let (_, cluster) = d
        .call(Method::GET, &format!("/clusters/{id}"), Some(&token), None)
        .await;
    let project = ProjectId(cluster["project_id"].as_str().unwrap().to_string());
    let client = d.conductor_client();
    let shard: ShardId = shard_of(&project, client.shards().await.unwrap());
    let leader = client.leader_of(shard).await.unwrap().expect("leader");

    let stack = wait_real_stack(&d.http, &name, "CREATE_IN_PROGRESS").await;
    d.kill_conductor(leader.0);
    let killed = t0.elapsed();

    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(120), |s, v| {
            s == 200 && v["status"] != "CREATE_IN_PROGRESS"
        })
        .await;
    let complete = t0.elapsed();
    assert_eq!(v["status"], "CREATE_COMPLETE", "{v}");
    assert_eq!(v["api_address"], "https://127.0.0.1:6443", "{v}");
    assert_eq!(v["node_addresses"], json!(["10.0.1.0", "10.0.1.1"]), "{v}");
    let ever = real_heat::stacks_with_prefix(&d.http, &name, true).await;
    assert_eq!(ever.len(), 1, "exactly one stack in real Heat: {ever:?}");
    assert_eq!(ever[0]["id"], stack["id"]);
    assert_eq!(
        v["stack_id"], stack["id"],
        "the cluster adopted the one stack"
    );
    let new_leader = client.leader_of(shard).await.unwrap();
    assert_ne!(new_leader, Some(leader), "leadership moved");

    // Scale through the new leader, then delete: real Heat ends with the one stack deleted.
    let patch = json!([{"op": "replace", "path": "/node_count", "value": 3}]);
    let (s, body) = d
        .call(
            Method::PATCH,
            &format!("/clusters/{id}"),
            Some(&token),
            Some(patch),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(90), |s, v| {
            s == 200 && v["status"] != "UPDATE_IN_PROGRESS"
        })
        .await;
    assert_eq!(v["status"], "UPDATE_COMPLETE", "{v}");
    assert_eq!(v["node_addresses"].as_array().unwrap().len(), 3, "{v}");
    let (s, _) = d
        .call(
            Method::DELETE,
            &format!("/clusters/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 204);
    d.wait_cluster(&token, &id, Duration::from_secs(90), |s, _| s == 404)
        .await;
    let ever = real_heat::stacks_with_prefix(&d.http, &name, true).await;
    assert_eq!(ever.len(), 1, "{ever:?}");
    assert_eq!(ever[0]["stack_status"], "DELETE_COMPLETE", "{ever:?}");
    println!(
        "MEASURE failover_real_heat: leader killed {} ms after create, CREATE_COMPLETE after {} ms (stack create_secs 8)",
        killed.as_millis(),
        complete.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_heat_delete_during_create() {
    let d = deployment("delete-real-heat");
    let token = d.token("admin", "admin").await;
    let tpl = heat_test_template(&d, &token, 8).await;
    let name = unique("drh");
    let t0 = Instant::now();
    let id = common::create_cluster(&d, &token, &tpl, &name, 1).await;
    wait_real_stack(&d.http, &name, "CREATE_IN_PROGRESS").await;
    let (s, body) = d
        .call(
            Method::DELETE,
            &format!("/clusters/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 204, "{body}");
    d.wait_cluster(&token, &id, Duration::from_secs(120), |s, v| {
        s == 404 || v["status"] == "DELETE_FAILED"
    })
    .await;
    let gone = t0.elapsed();
    let ever = real_heat::stacks_with_prefix(&d.http, &name, true).await;
    assert_eq!(ever.len(), 1, "exactly one stack ever: {ever:?}");
    assert_eq!(ever[0]["stack_status"], "DELETE_COMPLETE", "{ever:?}");
    println!(
        "MEASURE delete_real_heat: cluster gone {} ms after its create (legacy Heat lets the running create finish first)",
        gone.as_millis()
    );
}
