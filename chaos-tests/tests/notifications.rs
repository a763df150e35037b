//! CADF notifications across a shard leader SIGKILL: every transition of a cluster's create and
//! delete reaches the sink under exactly one idempotency key (`message_id`), none is missing, and
//! a redelivery after the kill repeats the key rather than inventing a new notification.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_chaos_tests::{Deployment, Options};
use magnum_proto::{shard_of, ProjectId};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// `message_id` → every (event_type, outcome) delivered under it, and the raw line count.
fn delivered(
    path: &std::path::Path,
    cluster: &str,
) -> (BTreeMap<String, Vec<(String, String)>>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut by_id: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut lines = 0;
    for line in text.lines() {
        let m: Value = serde_json::from_str(line).expect("one JSON message per line");
        if m["payload"]["target"]["id"] != cluster {
            continue;
        }
        lines += 1;
        let kind = (
            m["event_type"].as_str().unwrap().to_string(),
            m["payload"]["outcome"].as_str().unwrap().to_string(),
        );
        by_id
            .entry(m["message_id"].as_str().unwrap().to_string())
            .or_default()
            .push(kind);
    }
    (by_id, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transition_is_notified_once_across_a_leader_sigkill() {
    let sink_dir = std::env::temp_dir().join(format!("magnum-notify-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&sink_dir).unwrap();
    let sink = sink_dir.join("notifications.jsonl");
    let d = Deployment::up(
        "notifications",
        Options {
            time_scale: 0.5,
            raft_args: format!("--notification-sink file:{}", sink.display()),
            ..Options::default()
        },
    );
    let token = d.token("admin", "admin").await;
    let tpl = create_template(&d, &token, "notify-tpl").await;
    d.sim_post("/sim/heat/faults", json!({"kind": "response_delay", "method": "POST", "path_glob": "*/stacks", "seconds": 2.0, "count": 1})).await;
    let id = create_cluster(&d, &token, &tpl, "notify", 1).await;
    let (_, cluster) = d
        .call(Method::GET, &format!("/clusters/{id}"), Some(&token), None)
        .await;
    let project = ProjectId(cluster["project_id"].as_str().unwrap().to_string());
    let client = d.conductor_client();
    let shard = shard_of(&project, client.shards().await.unwrap());
    let leader = client.leader_of(shard).await.unwrap().expect("a leader");

    // Kill the shard leader while the create is in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stacks_named(&d, "notify-").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "stack create never reached cloud-sim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.kill_conductor(leader.0);
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(120), |s, v| {
            s == 200 && v["status"] != "CREATE_IN_PROGRESS"
        })
        .await;
    assert_eq!(v["status"], "CREATE_COMPLETE", "{v}");
    d.start("conductor", Some(leader.0));

    let (s, _) = d
        .call(
            Method::DELETE,
            &format!("/clusters/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 204);
    d.wait_cluster(&token, &id, Duration::from_secs(120), |s, _| s == 404)
        .await;

    let want: BTreeSet<(String, String)> = [
        ("magnum.cluster.create", "pending"),
        ("magnum.cluster.create", "success"),
        ("magnum.cluster.delete", "pending"),
        ("magnum.cluster.delete", "success"),
    ]
    .iter()
    .map(|(e, o)| (e.to_string(), o.to_string()))
    .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (by_id, lines) = loop {
        let (by_id, lines) = delivered(&sink, &id);
        let got: BTreeSet<(String, String)> = by_id.values().flatten().cloned().collect();
        if got == want || Instant::now() > deadline {
            break (by_id, lines);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // One key per transition, and a key always names the same transition.
    let mut per_kind: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (key, kinds) in &by_id {
        let first = &kinds[0];
        assert!(
            kinds.iter().all(|k| k == first),
            "{key} names two transitions: {kinds:?}"
        );
        *per_kind.entry(first.clone()).or_default() += 1;
    }
    let expected: BTreeMap<(String, String), usize> =
        want.iter().cloned().map(|k| (k, 1)).collect();
    assert_eq!(per_kind, expected, "notifications by transition: {by_id:?}");
    let first_at = by_id.keys().next().unwrap();
    println!(
        "MEASURE notifications: {} transitions, {} deliveries ({} redelivered under the same key), first key {first_at}",
        by_id.len(),
        lines,
        lines - by_id.len()
    );
    let _ = std::fs::remove_dir_all(&sink_dir);
}
