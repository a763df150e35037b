//! Design §7 row 2, "leader paused (SIGSTOP) then resumed after a new leader took over", on the
//! create path: the shard leader stops between its leadership check and its Heat create (the
//! `pause@` failpoint: the process SIGSTOPs itself there), stays stopped past its lease, a new
//! leader creates the stack, and the old one, woken up, sends its stale create. Heat refuses
//! the second create of the name, the old leader's result is fenced by its stale epoch, and
//! the cluster has exactly one stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_chaos_tests::{Deployment, Options};
use magnum_proto::{shard_of, ProjectId, ShardId};
use reqwest::Method;
use std::time::{Duration, Instant};

/// The state letter of a process (`T` = stopped), from /proc.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_before_its_heat_create_wakes_up_fenced() {
    let d = Deployment::up(
        "pause",
        Options {
            failpoint_files: true,
            ..Options::default()
        },
    );
    let (token, project) = d.login("demo", "demo").await;
    let tpl = create_template(&d, &token, "pause-tpl").await;
    let client = d.conductor_client();
    let shard: ShardId = shard_of(&ProjectId(project), client.shards().await.unwrap());
    let old = client.leader_of(shard).await.unwrap().expect("a leader");
    let name = format!("conductor-{}", old.0);
    let pid = d.pid(&name).unwrap();
    d.arm_failpoints(old.0, "pause@create:heat:create:before:1:pause-c");

    let id = create_cluster(&d, &token, &tpl, "pause-c", 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while proc_state(pid) != Some('T') {
        assert!(
            Instant::now() < deadline,
            "the leader never paused at its Heat create"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.disarm_failpoints(old.0);
    let paused_at = Instant::now();

    // A new leader takes the shard over and creates the stack while the old one sleeps.
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(60), |s, v| {
            s == 200 && v["status"] != "CREATE_IN_PROGRESS"
        })
        .await;
    assert_eq!(v["status"], "CREATE_COMPLETE", "{v}");
    let new = client.leader_of(shard).await.unwrap();
    assert!(
        new.is_some() && new != Some(old),
        "leadership moved: {new:?}"
    );
    println!(
        "new leader {new:?} completed the create {:?} after the pause",
        paused_at.elapsed()
    );

    // The old leader wakes up right before its Heat create, now stale.
    d.signal("conductor", Some(old.0), "CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d
        .log(&name)
        .contains("FAILPOINT resumed create:heat:create:before")
    {
        assert!(Instant::now() < deadline, "the old leader did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Time for its create, its adoption of the existing stack and its fenced commit.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let stacks = stacks_named(&d, "pause-c").await;
    assert_eq!(stacks.len(), 1, "exactly one stack: {stacks:?}");
    assert_eq!(stacks[0]["creates_by_name"], 1, "Heat accepted one create");
    let (s, after) = d
        .call(Method::GET, &format!("/clusters/{id}"), Some(&token), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(after["status"], "CREATE_COMPLETE", "{after}");
    assert_eq!(after["stack_id"], stacks[0]["id"], "{after}");
    assert_eq!(
        after["updated_at"], v["updated_at"],
        "the stale leader changed nothing"
    );
    // The replicas agree. (The placement controller may hand the old node a leadership back
    // later to balance; it then leads under a new epoch.)
    d.manage(&["verify"]);
    d.down();
}
