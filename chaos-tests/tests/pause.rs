//! Design §7 row 2, "leader paused (SIGSTOP) then resumed after a new leader took over", on the
//! create path: the shard leader stops between its leadership check and its Heat create (the
//! `pause@` failpoint: the process SIGSTOPs itself there), stays stopped past its lease, a new
//! leader creates the stack, and the old one, woken up, sends its stale create. Heat refuses
//! the second create of the name, the old leader's result is fenced by its stale epoch, and
//! the cluster has exactly one stack.
//!
//! The same pause on the delete path: the old leader stays stopped while the new one completes
//! the create and the user deletes the cluster; woken, it creates the stack again under the
//! now free name. Nothing owns that stack: the orphan-stack reaper (`leader/reap.rs`) finds it
//! under the deleted cluster's tombstone and deletes it.
//!
//! The nodegroup path is the same: a nodegroup deleted on its own while the old leader sleeps
//! before its Heat create of the nodegroup's stack leaves a tombstone of its own (cluster
//! version 4), and the reaper deletes the stale stack while the cluster lives on.
//!
//! And on the update path: the old leader's stale PATCH lands after a newer update; the status
//! sync's drift repair PATCHes the rows' count back.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_chaos_tests::chaos::nemesis::proc_state;
use magnum_chaos_tests::{Deployment, Options};
use magnum_proto::{shard_of, NodeId, ProjectId, ShardId};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A deployment whose shard leader of the demo project stopped itself right before its Heat
/// create of cluster `cluster`, and a new leader that completed that create meanwhile.
struct Paused {
    d: Deployment,
    token: String,
    project: String,
    /// The cluster's id, and the status the new leader gave it.
    id: String,
    completed: Value,
    old: NodeId,
    shard: ShardId,
}

impl Paused {
    async fn new(name: &str, cluster: &str, raft_args: &str) -> Paused {
        let Ready {
            d,
            token,
            project,
            tpl,
            shard,
            old,
            pid,
        } = Ready::new(name, cluster, raft_args).await;
        d.arm_failpoints(
            old.0,
            &format!("pause@create:heat:create:before:1:{cluster}"),
        );

        let id = create_cluster(&d, &token, &tpl, cluster, 1).await;
        wait_stopped(pid, "its Heat create").await;
        d.disarm_failpoints(old.0);
        let paused_at = Instant::now();

        // A new leader takes the shard over and creates the stack while the old one sleeps.
        let (_, completed) = d
            .wait_cluster(&token, &id, Duration::from_secs(60), |s, v| {
                s == 200 && v["status"] != "CREATE_IN_PROGRESS"
            })
            .await;
        assert_eq!(completed["status"], "CREATE_COMPLETE", "{completed}");
        let new = d.conductor_client().leader_of(shard).await.unwrap();
        assert!(
            new.is_some() && new != Some(old),
            "leadership moved: {new:?}"
        );
        println!(
            "new leader {new:?} completed the create {:?} after the pause",
            paused_at.elapsed()
        );
        Paused {
            d,
            token,
            project,
            id,
            completed,
            old,
            shard,
        }
    }

    /// The old leader wakes up right before its Heat create, now stale.
    async fn wake(&self) {
        let name = format!("conductor-{}", self.old.0);
        self.d.signal("conductor", Some(self.old.0), "CONT");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self
            .d
            .log(&name)
            .contains("FAILPOINT resumed create:heat:create:before")
        {
            assert!(Instant::now() < deadline, "the old leader did not resume");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_before_its_heat_create_wakes_up_fenced() {
    let p = Paused::new("pause", "pause-c", "").await;
    let (d, token, id) = (&p.d, &p.token, &p.id);
    p.wake().await;
    // Time for its create, its adoption of the existing stack and its fenced commit.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let stacks = stacks_named(d, "pause-c").await;
    assert_eq!(stacks.len(), 1, "exactly one stack: {stacks:?}");
    assert_eq!(stacks[0]["creates_by_name"], 1, "Heat accepted one create");
    let (s, after) = d
        .call(Method::GET, &format!("/clusters/{id}"), Some(token), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(after["status"], "CREATE_COMPLETE", "{after}");
    assert_eq!(after["stack_id"], stacks[0]["id"], "{after}");
    assert_eq!(
        after["updated_at"], p.completed["updated_at"],
        "the stale leader changed nothing"
    );
    // The replicas agree. (The placement controller may hand the old node a leadership back
    // later to balance; it then leads under a new epoch.)
    d.manage(&["verify"]);
    d.down();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_created_by_a_leader_woken_after_the_delete_is_reaped() {
    // The reaper's first look 2 s after a delete, then at 4, 8, 16 s; the tombstone goes at the
    // first look past 10 s that finds every name free.
    let args = "--orphan-stack-grace-secs 2 --orphan-stack-retention-secs 10";
    let p = Paused::new("pause-reap", "pause-d", args).await;
    let (d, token, id) = (&p.d, &p.token, &p.id);
    let (s, _) = d
        .call(
            Method::DELETE,
            &format!("/clusters/{id}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, 204);
    d.wait_cluster(token, id, Duration::from_secs(60), |s, _| s == 404)
        .await;
    // The delete left its tombstone.
    one_tombstone_watched(d, p.shard, p.old).await;
    // A stack of the user's own in the same project, named like the cluster's: never touched.
    let heat = format!("{}/heat-api/v1/{}/stacks", d.sim, p.project);
    let mine = d
        .http
        .post(&heat)
        .header("X-Auth-Token", token)
        .json(&json!({
            "stack_name": "pause-d-mine",
            "template": {"heat_template_version": "2018-08-31", "resources": {}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status().as_u16(), 201, "{:?}", mine.text().await);

    // Woken, the old leader creates the stack again under the deleted cluster's name.
    p.wake().await;
    let reapable = || async {
        stacks_named(d, "pause-d")
            .await
            .into_iter()
            .filter(|s| s["name"] != "pause-d-mine")
            .collect::<Vec<Value>>()
    };
    stale_create_is_reaped(d, p.shard, reapable).await;
    // Nothing else was touched: the user's stack lives, the cluster is still gone, the replicas
    // agree.
    let mine = stacks_named(d, "pause-d-mine").await;
    assert_eq!(mine.len(), 1);
    assert_ne!(mine[0]["status"], "DELETE_COMPLETE", "{mine:?}");
    assert_eq!(mine[0]["status"], "CREATE_COMPLETE", "{mine:?}");
    let (s, _) = d
        .call(Method::GET, &format!("/clusters/{id}"), Some(token), None)
        .await;
    assert_eq!(s, 404);
    d.manage(&["verify"]);
    d.down();
}

/// A nodegroup's stack created by a leader woken after the nodegroup's own delete: the reaper
/// deletes it (the nodegroup's tombstone), and touches nothing of the live cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodegroup_stack_created_by_a_leader_woken_after_its_delete_is_reaped() {
    let args = "--orphan-stack-grace-secs 2 --orphan-stack-retention-secs 10";
    let ready = Ready::new("pause-ng", "pause-n", args).await;
    let id = ready.cluster("pause-n").await;
    let Ready {
        d,
        token,
        shard,
        old,
        pid,
        ..
    } = ready;
    d.arm_failpoints(
        old.0,
        "pause@nodegroupcreate:heat:create_nodegroup:before:1:pause-n",
    );
    let ngs = format!("/clusters/{id}/nodegroups");
    let body = json!({"name": "ng1", "node_count": 1});
    let (s, v) = call_latest(&d, &token, Method::POST, &ngs, Some(body)).await;
    assert_eq!(s, 202, "{v}");
    wait_stopped(pid, "its Heat create of the nodegroup's stack").await;
    d.disarm_failpoints(old.0);

    // A new leader creates the nodegroup's stack; the user deletes the nodegroup.
    let ng = format!("{ngs}/ng1");
    let settled = |want: u16| {
        let (d, token, ng) = (&d, &token, &ng);
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (s, v) = call_latest(d, token, Method::GET, ng, None).await;
                let busy = v["status"].as_str().unwrap_or("").ends_with("_IN_PROGRESS");
                if s == want && !busy {
                    return v;
                }
                assert!(Instant::now() < deadline, "nodegroup: {s} {v}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let v = settled(200).await;
    assert_eq!(v["status"], "CREATE_COMPLETE", "{v}");
    let (s, v) = call_latest(&d, &token, Method::DELETE, &ng, None).await;
    assert_eq!(s, 204, "{v}");
    settled(404).await;
    one_tombstone_watched(&d, shard, old).await;

    // Woken, the old leader creates the nodegroup's stack again.
    d.signal("conductor", Some(old.0), "CONT");
    stale_create_is_reaped(&d, shard, || stacks_named(&d, "pause-n-ng1")).await;
    // The cluster and its own stack are untouched; the nodegroup stays gone.
    let (s, v) = d
        .call(Method::GET, &format!("/clusters/{id}"), Some(&token), None)
        .await;
    assert_eq!(s, 200);
    // (A nodegroup's create and delete end as an update of the cluster, as upstream's do.)
    assert_eq!(v["status"], "UPDATE_COMPLETE", "{v}");
    let own: Vec<Value> = stacks_named(&d, "pause-n-")
        .await
        .into_iter()
        .filter(|s| !s["name"].as_str().unwrap_or("").starts_with("pause-n-ng1"))
        .collect();
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0]["status"], "CREATE_COMPLETE", "{own:?}");
    assert_eq!(own[0]["id"], v["stack_id"], "{own:?}");
    let (s, _) = call_latest(&d, &token, Method::GET, &ng, None).await;
    assert_eq!(s, 404);
    d.manage(&["verify"]);
    d.down();
}

/// The update path: the shard leader stops between its leadership check and its Heat PATCH of
/// an update to 2 workers; a new leader finishes that update, and the user updates to 3 (done in
/// Heat). Woken, the old leader sends its stale PATCH, and the stack completes with 2 workers
/// while the rows say 3. The status sync finds the drift and PATCHes 3 back
/// (`leader/sync/drift.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_update_patch_from_a_woken_leader_is_patched_back() {
    let ready = Ready::new("pause-update", "pause-u", "--sync-interval-ms 1000").await;
    let id = ready.cluster("pause-u").await;
    let Ready {
        d,
        token,
        project,
        shard,
        old,
        pid,
        ..
    } = ready;
    let done = |n: u64| {
        move |s: u16, v: &Value| {
            s == 200
                && v["node_count"] == n
                && !v["status"].as_str().unwrap_or("").ends_with("_IN_PROGRESS")
        }
    };
    d.arm_failpoints(old.0, "pause@update:heat:update:before:1:pause-u");

    let update = |n: u32| {
        let (d, token, id) = (&d, &token, &id);
        async move {
            let body = json!([{"op": "replace", "path": "/node_count", "value": n}]);
            let (s, v) = d
                .call(
                    Method::PATCH,
                    &format!("/clusters/{id}"),
                    Some(token),
                    Some(body),
                )
                .await;
            assert_eq!(s, 202, "{v}");
        }
    };
    update(2).await;
    wait_stopped(pid, "its Heat PATCH").await;
    d.disarm_failpoints(old.0);
    // A new leader finishes the update to 2; the user then updates to 3, done in Heat.
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(60), done(2))
        .await;
    assert_eq!(v["status"], "UPDATE_COMPLETE", "{v}");
    update(3).await;
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(60), done(3))
        .await;
    assert_eq!(v["status"], "UPDATE_COMPLETE", "{v}");
    let stack_id = v["stack_id"].as_str().unwrap().to_string();
    let stacks = stacks_named(&d, "pause-u").await;
    let stack_name = stacks[0]["name"].as_str().unwrap().to_string();
    let stack_url = format!(
        "{}/heat-api/v1/{project}/stacks/{stack_name}/{stack_id}",
        d.sim
    );
    let minions = || async {
        let r = d
            .http
            .get(&stack_url)
            .header("X-Auth-Token", &token)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let p = &v["stack"]["parameters"]["number_of_minions"];
        let n = p.as_u64().or_else(|| p.as_str()?.parse().ok());
        (
            n,
            v["stack"]["stack_status"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    };
    assert_eq!(minions().await.0, Some(3));

    // Woken, the old leader PATCHes 2 into the stack: the stale write lands... Its worker and
    // its Raft replica resume together, and now and then the replica learns of the new term and
    // stops the worker before the PATCH leaves (then nothing stale reaches Heat). The stale
    // write is what this test is about, so it is then sent as the old leader would have.
    d.signal("conductor", Some(old.0), "CONT");
    let mut deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = false;
    while minions().await.0 != Some(2) {
        if Instant::now() >= deadline {
            assert!(!sent, "the stale PATCH did not land");
            println!("the woken leader stood down before its PATCH left; sending that PATCH");
            let r = d
                .http
                .patch(&stack_url)
                .header("X-Auth-Token", &token)
                .json(&json!({"parameters": {"number_of_minions": 2}}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{:?}", r.text().await);
            sent = true;
            deadline = Instant::now() + Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let landed = Instant::now();
    // ...and the sync PATCHes the rows' 3 back.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (n, status) = minions().await;
        if n == Some(3) && status == "UPDATE_COMPLETE" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the drift was not repaired: {n:?} {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "stale count PATCHed back {:?} after it landed",
        landed.elapsed()
    );
    let repaired = metric_sum(&d, "magnum_stack_drift_repairs_total", shard, &[1, 2, 3]).await;
    assert!(
        repaired.is_some_and(|n| n >= 1.0),
        "repairs counted: {repaired:?}"
    );
    let (_, v) = d
        .wait_cluster(&token, &id, Duration::from_secs(30), done(3))
        .await;
    assert_eq!(v["status"], "UPDATE_COMPLETE", "{v}");
    let stacks = stacks_named(&d, "pause-u").await;
    assert_eq!(stacks.len(), 1, "one stack: {stacks:?}");
    d.manage(&["verify"]);
    d.down();
}

/// A deployment (failpoint files, `raft_args`), the demo project's token, a template, and that
/// project's shard leader, to pause.
struct Ready {
    d: Deployment,
    token: String,
    project: String,
    tpl: String,
    shard: ShardId,
    old: NodeId,
    pid: u32,
}

impl Ready {
    async fn new(name: &str, cluster: &str, raft_args: &str) -> Ready {
        let d = Deployment::up(
            name,
            Options {
                failpoint_files: true,
                raft_args: raft_args.into(),
                ..Options::default()
            },
        );
        let (token, project) = d.login("demo", "demo").await;
        let tpl = create_template(&d, &token, &format!("{cluster}-tpl")).await;
        let client = d.conductor_client();
        let shard = shard_of(&ProjectId(project.clone()), client.shards().await.unwrap());
        let old = client.leader_of(shard).await.unwrap().expect("a leader");
        let pid = d.pid(&format!("conductor-{}", old.0)).unwrap();
        Ready {
            d,
            token,
            project,
            tpl,
            shard,
            old,
            pid,
        }
    }

    /// Creates cluster `name` (one worker) and waits for `CREATE_COMPLETE`; its id.
    async fn cluster(&self, name: &str) -> String {
        let id = create_cluster(&self.d, &self.token, &self.tpl, name, 1).await;
        let (_, v) = self
            .d
            .wait_cluster(&self.token, &id, Duration::from_secs(60), |s, v| {
                s == 200 && v["status"] != "CREATE_IN_PROGRESS"
            })
            .await;
        assert_eq!(v["status"], "CREATE_COMPLETE", "{v}");
        id
    }
}

/// The conductors but the paused `old` show one tombstone watched (the gauge is refreshed each
/// second).
async fn one_tombstone_watched(d: &Deployment, shard: ShardId, old: NodeId) {
    let awake: Vec<u64> = (1..=3).filter(|n| *n != old.0).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric_sum(d, "magnum_deleted_clusters_watched", shard, &awake).await != Some(1.0) {
        assert!(Instant::now() < deadline, "no tombstone watched");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A woken leader's stale create among `stacks()` (the second accepted create of the name) is
/// deleted by the reaper and counted once, and the tombstone goes after its retention.
async fn stale_create_is_reaped<F, Fut>(d: &Deployment, shard: ShardId, stacks: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<Value>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    let orphan = loop {
        let live = stacks().await;
        if let Some(s) = live.iter().find(|s| s["status"] != "DELETE_COMPLETE") {
            break s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the stale create never reached Heat"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(orphan["creates_by_name"], 2, "{orphan}");
    let born = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = stacks().await;
        if all.iter().all(|s| s["status"] == "DELETE_COMPLETE") {
            assert_eq!(all.len(), 2, "{all:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the orphan stack was not reaped: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("orphan stack reaped {:?} after its create", born.elapsed());
    let reaped = metric_sum(d, "magnum_orphan_stacks_reaped_total", shard, &[1, 2, 3]).await;
    assert_eq!(reaped, Some(1.0), "one orphan counted");
    let deadline = Instant::now() + Duration::from_secs(40);
    while metric_sum(d, "magnum_deleted_clusters_watched", shard, &[1, 2, 3]).await != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "the tombstone outlived its retention"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits (30 s at most) until the process stopped itself at its `pause@` failpoint.
async fn wait_stopped(pid: u32, site: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while proc_state(pid) != Some('T') {
        assert!(
            Instant::now() < deadline,
            "the leader never paused at {site}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sum over conductors `ids` of `metric{group="<shard's group>"}` from `/metrics`; `None`
/// when none of them shows it.
async fn metric_sum(d: &Deployment, metric: &str, shard: ShardId, ids: &[u64]) -> Option<f64> {
    let label = format!("{metric}{{group=\"{}\"}} ", u64::from(shard.0) + 1);
    let http = d.internal_http();
    let mut sum = None;
    for id in ids {
        let Ok(r) = http
            .send(&d.conductor_service(*id), "/metrics", |h, url| h.get(url))
            .await
        else {
            continue;
        };
        let text = r.text().await.unwrap_or_default();
        for v in text.lines().filter_map(|l| l.strip_prefix(&label)) {
            if let Ok(v) = v.trim().parse::<f64>() {
                *sum.get_or_insert(0.0) += v;
            }
        }
    }
    sum
}
