//! Design §7 row 1 on the create path: the owning shard's leader is SIGKILLed after the stack
//! create was sent and before its result was committed; a new leader resumes the operation and
//! the cluster completes with exactly one stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_chaos_tests::{Deployment, Options};
use magnum_proto::{shard_of, ProjectId, ShardId};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_create_resumes_with_one_stack() {
    let d = Deployment::up(
        "failover",
        Options {
            time_scale: 0.5,
            ..Options::default()
        },
    );
    let token = d.token("admin", "admin").await;
    let tpl = create_template(&d, &token, "failover-tpl").await;

    // Side effect at once, answer 4 s later: the window between "sent" and "recorded".
    d.sim_post("/sim/heat/faults", json!({"kind": "response_delay", "method": "POST", "path_glob": "*/stacks", "seconds": 4.0, "count": 1})).await;
    let t_create = Instant::now();
    let id = create_cluster(&d, &token, &tpl, "failover", 2).await;
    let (_, cluster) = d
        .call(Method::GET, &format!("/clusters/{id}"), Some(&token), None)
        .await;
    let project = ProjectId(cluster["project_id"].as_str().unwrap().to_string());
    let client = d.conductor_client();
    let shard: ShardId = shard_of(&project, client.shards().await.unwrap());
    let leader = client
        .leader_of(shard)
        .await
        .unwrap()
        .expect("shard has a leader");

    // Wait until Heat has the stack (the create was sent), then kill the leader at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stacks_named(&d, "failover-").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "stack create never reached cloud-sim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.kill_conductor(leader.0);
    let killed_at = Instant::now();

    // First successful write on that shard after the kill (same project ⇒ same shard).
    let mut n = 0;
    let first_write = loop {
        n += 1;
        let (s, _) = d
            .call(
                Method::POST,
                "/clustertemplates",
                Some(&token),
                Some(template_body(&format!("probe-{n}"))),
            )
            .await;
        if s == 201 {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "no write succeeded on shard {shard} after the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let new_leader = client.leader_of(shard).await.unwrap();
    assert_ne!(new_leader, Some(leader), "leadership must have moved");

    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(90), |s, v| {
            s == 200 && v["status"] != "CREATE_IN_PROGRESS"
        })
        .await;
    let complete_after = t_create.elapsed();
    assert_eq!(v["status"], "CREATE_COMPLETE", "{v}");
    assert!(!v["api_address"].as_str().unwrap_or("").is_empty(), "{v}");
    assert_eq!(v["node_addresses"].as_array().unwrap().len(), 2, "{v}");

    let stacks = stacks_named(&d, "failover-").await;
    assert_eq!(
        stacks.len(),
        1,
        "exactly one stack for the cluster: {stacks:?}"
    );
    assert_eq!(
        v["stack_id"], stacks[0]["id"],
        "the cluster adopted the one stack"
    );

    // The killed node comes back and catches up on that shard.
    d.start("conductor", Some(leader.0));
    let gid = u64::from(shard.0) + 1;
    let leader_applied = applied(&d, new_leader.unwrap().0, gid).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if applied(&d, leader.0, gid)
            .await
            .is_some_and(|a| a >= leader_applied)
        {
            break;
        }
        assert!(Instant::now() < deadline, "restarted node did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "MEASURE failover: kill → first successful write on shard {} = {} ms; cluster create → CREATE_COMPLETE (with the failover) = {} ms",
        shard,
        first_write.as_millis(),
        complete_after.as_millis()
    );
}

async fn applied(d: &Deployment, node: u64, gid: u64) -> Option<u64> {
    let addr = d.conductor_service(node);
    let get = |h: &reqwest::Client, url| h.get(url);
    let t: serde_json::Value = d
        .internal_http()
        .send(&addr, "/internal/v1/topology", get)
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    t["groups"].as_array()?.iter().find(|g| g["group"] == gid)?["last_applied"].as_u64()
}
