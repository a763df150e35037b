//! Status sync of finished clusters (reference §7.5) and health polling (§7.4), on cloud-sim:
//! a stack changed in Heat directly, a stack that vanished, a stack Heat leaves in progress
//! (conductor-side timeout), a non-default nodegroup's own stack that vanished, and the
//! simulated cluster API turning unhealthy and unreachable.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_chaos_tests::{Deployment, Options};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

fn deployment() -> Deployment {
    Deployment::up(
        "status-sync",
        Options {
            raft_args: "--sync-interval-ms 300 --health-interval-ms 300 --stalled-after-secs 3"
                .into(),
            ..Options::default()
        },
    )
}

async fn complete_cluster(d: &Deployment, token: &str, tpl: &str, name: &str) -> Value {
    let id = create_cluster(d, token, tpl, name, 1).await;
    let (_, v) = d
        .wait_cluster(token, &id, Duration::from_secs(60), |s, v| {
            s == 200 && v["status"] != "CREATE_IN_PROGRESS"
        })
        .await;
    assert_eq!(v["status"], "CREATE_COMPLETE", "{v}");
    v
}

/// `(name, id)` of the cluster's stack, as cloud-sim's Heat addresses it.
async fn stack_url(d: &Deployment, v: &Value) -> String {
    let id = v["stack_id"].as_str().unwrap();
    let all = d.sim_stacks().await;
    let s = all["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
        .clone();
    format!(
        "{}/heat-api/v1/{}/stacks/{}/{}",
        d.sim,
        v["project_id"].as_str().unwrap(),
        s["name"].as_str().unwrap(),
        id
    )
}

/// Waits until `path` (latest microversion) satisfies `pred`; the last answer.
async fn wait_latest(
    d: &Deployment,
    token: &str,
    path: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = get_latest(d, token, path).await;
        if s == 200 && pred(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never matched: {s} {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn heat_call(d: &Deployment, token: &str, method: Method, url: &str, body: Option<Value>) {
    let mut rq = d.http.request(method, url).header("X-Auth-Token", token);
    if let Some(b) = body {
        rq = rq.json(&b);
    }
    let r = rq.send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_clusters_follow_their_stacks_and_health() {
    let d = deployment();
    let token = d.token("admin", "admin").await;
    let tpl = create_template(&d, &token, "sync-tpl").await;

    // Health: HEALTHY with every node Ready, then one node not Ready, then unreachable.
    let v = complete_cluster(&d, &token, &tpl, "health").await;
    let id = v["uuid"].as_str().unwrap().to_string();
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(30), |_, v| {
            v["health_status"] == "HEALTHY"
        })
        .await;
    let reason = v["health_status_reason"].as_object().unwrap().clone();
    assert_eq!(reason["api"], "ok", "{v}");
    let node = reason
        .keys()
        .find(|k| k.ends_with(".Ready"))
        .expect("nodes listed")
        .trim_end_matches(".Ready")
        .to_string();
    let k8s = format!("/sim/k8s/{}", v["stack_id"].as_str().unwrap());
    d.sim_post(&k8s, json!({"not_ready": [node]})).await;
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(30), |_, v| {
            v["health_status"] == "UNHEALTHY"
        })
        .await;
    assert_eq!(
        v["health_status_reason"][format!("{node}.Ready")],
        "False",
        "{v}"
    );
    d.sim_post(&k8s, json!({"reachable": false})).await;
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(30), |_, v| {
            v["health_status"] == "UNKNOWN"
        })
        .await;
    assert_eq!(
        v["health_status_reason"]["api"], "The cluster health is not accessible.",
        "{v}"
    );

    // A stack scaled in Heat directly: the finished cluster takes its status and outputs.
    let url = stack_url(&d, &v).await;
    let patch = json!({"parameters": {"number_of_minions": 3}});
    heat_call(&d, &token, Method::PATCH, &url, Some(patch)).await;
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(30), |_, v| {
            v["status"] == "UPDATE_COMPLETE"
        })
        .await;
    assert_eq!(v["node_addresses"].as_array().unwrap().len(), 3, "{v}");

    // A stack Heat leaves in progress: failed by the conductor after --stalled-after-secs.
    d.sim_post(
        "/sim/heat/latency",
        json!({"resource_type": "OS::Nova::Server", "action": "CREATE", "seconds": 200.0}),
    )
    .await;
    let patch = json!({"parameters": {"number_of_minions": 4}});
    heat_call(&d, &token, Method::PATCH, &url, Some(patch)).await;
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(30), |_, v| {
            v["status"] == "UPDATE_FAILED"
        })
        .await;
    assert!(
        v["status_reason"]
            .as_str()
            .unwrap()
            .contains("timed out in the conductor"),
        "{v}"
    );

    // Back to cloud-sim's default server create latency.
    d.sim_post(
        "/sim/heat/latency",
        json!({"resource_type": "OS::Nova::Server", "action": "CREATE", "seconds": 2.0}),
    )
    .await;

    // A stack deleted in Heat directly: the cluster fails with Magnum's reason, then deletes.
    let stack_id = v["stack_id"].as_str().unwrap().to_string();
    heat_call(&d, &token, Method::DELETE, &url, None).await;
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(30), |_, v| {
            v["status_reason"] == format!("Stack with id {stack_id} not found in Heat.")
        })
        .await;
    assert_eq!(v["status"], "UPDATE_FAILED", "{v}");
    let (s, _) = d
        .call(
            Method::DELETE,
            &format!("/clusters/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 204);
    d.wait_cluster(&token, &id, Duration::from_secs(30), |s, _| s == 404)
        .await;

    // Vanished under a CREATE_COMPLETE cluster.
    let v = complete_cluster(&d, &token, &tpl, "vanish").await;
    let id = v["uuid"].as_str().unwrap().to_string();
    let url = stack_url(&d, &v).await;
    heat_call(&d, &token, Method::DELETE, &url, None).await;
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(30), |_, v| {
            v["status"] != "CREATE_COMPLETE"
        })
        .await;
    assert_eq!(v["status"], "CREATE_FAILED", "{v}");
    assert_eq!(
        v["status_reason"],
        format!(
            "Stack with id {} not found in Heat.",
            v["stack_id"].as_str().unwrap()
        )
    );

    // A non-default nodegroup's own stack deleted behind the conductor's back: the nodegroup
    // fails with Magnum's reason, the defaults stay, the cluster is aggregated from them all.
    let v = complete_cluster(&d, &token, &tpl, "ngsync").await;
    let id = v["uuid"].as_str().unwrap().to_string();
    let cluster_stack = v["stack_id"].as_str().unwrap().to_string();
    let r = d
        .http
        .post(format!("{}/clusters/{id}/nodegroups", d.api))
        .header("X-Auth-Token", &token)
        .header("OpenStack-API-Version", "container-infra latest")
        .json(&json!({"name": "ng1", "node_count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "nodegroup create");
    let ng_path = format!("/clusters/{id}/nodegroups/ng1");
    let ng = wait_latest(&d, &token, &ng_path, |v| {
        v["status"] != "CREATE_IN_PROGRESS"
    })
    .await;
    assert_eq!(ng["status"], "CREATE_COMPLETE", "{ng}");
    let ng_stack = ng["stack_id"].as_str().unwrap().to_string();
    assert_ne!(ng_stack, cluster_stack);
    let ng_url = stack_url(
        &d,
        &json!({"stack_id": ng_stack, "project_id": v["project_id"]}),
    )
    .await;
    heat_call(&d, &token, Method::DELETE, &ng_url, None).await;
    let reason = format!("Stack with id {ng_stack} not found in Heat.");
    let ng = wait_latest(&d, &token, &ng_path, |v| v["status"] != "CREATE_COMPLETE").await;
    assert_eq!(ng["status"], "CREATE_FAILED", "{ng}");
    assert_eq!(ng["status_reason"], reason.as_str(), "{ng}");
    let c = wait_latest(&d, &token, &format!("/clusters/{id}"), |v| {
        v["status"] == "UPDATE_FAILED"
    })
    .await;
    assert_eq!(c["status_reason"], "ng1 failed", "{c}");
    let (_, list) = get_latest(&d, &token, &format!("/clusters/{id}/nodegroups")).await;
    for n in list["nodegroups"].as_array().unwrap() {
        if n["name"] != "ng1" {
            let (_, full) = get_latest(
                &d,
                &token,
                &format!("/clusters/{id}/nodegroups/{}", n["uuid"].as_str().unwrap()),
            )
            .await;
            assert_eq!(full["status"], "CREATE_COMPLETE", "{full}");
        }
    }
    // Written once: later rounds leave the rows as they are.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, again) = get_latest(&d, &token, &ng_path).await;
    assert_eq!(again["updated_at"], ng["updated_at"], "{again}");

    // cloud-sim lets an admin list across projects: the looks above went through shared
    // listings (cloud/feed.rs), never refused.
    let lists = d
        .metric_sum("magnum_heat_stack_lists_total{outcome=\"ok\"}")
        .await;
    let listed = d
        .metric_sum("magnum_heat_stack_looks_total{result=\"listed\"}")
        .await;
    let refused = d
        .metric_sum("magnum_heat_stack_lists_total{outcome=\"refused\"}")
        .await;
    println!("MEASURE status sync: {lists} listings answered {listed} looks, {refused} refused");
    assert!(
        lists > 0.0 && listed > 0.0,
        "{lists} listings, {listed} looks listed"
    );
    assert_eq!(refused, 0.0);
}
