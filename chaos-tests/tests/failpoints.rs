//! Design §7 row 1 as a matrix: for every operation kind (create, node_count update, resize,
//! upgrade, delete, CA rotation, credential rotation, nodegroup create and delete) and every
//! site that kind passes (before / after each committed `OpEvent`, after each Heat call), the
//! shard leader aborts there (`conductor/src/failpoints.rs`), is restarted without failpoints,
//! and the operation still ends with the right terminal status, exactly one stack create per
//! cluster in cloud-sim's ledger, no live stack after a delete, the stack's worker count equal
//! to the last acknowledged intent, and after an upgrade the new template and tags.
//!
//! The sites are not listed here: a dry run of each kind prints every site it passes
//! (`FAILPOINT-SITE`), so kinds and events added later join the matrix by themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "failpoints/checks.rs"]
mod checks;
mod common;
#[path = "failpoints/ops.rs"]
mod ops;

use checks::*;
use common::*;
use magnum_chaos_tests::{tail, Deployment, Options};
use magnum_proto::{shard_of, NodeId, ProjectId, ShardId};
use ops::*;
use reqwest::Method;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROJECTS: [&str; 3] = ["admin", "demo", "alt_demo"];
/// The nodegroup the nodegroup cases create and delete.
const NODEGROUP: &str = "ng1";
/// The `kube_tag` of the upgrade cases' template (the driver's default is older).
const UPGRADE_TAG: &str = "v1.29.4";
/// The upgrade cases' `max_batch_size` (the stack's default is 1).
const UPGRADE_BATCH: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    Resize,
    Upgrade,
    Delete,
    RotateCa,
    RotateCredential,
    NodeGroupCreate,
    NodeGroupDelete,
}

impl Op {
    /// The operation kind the conductor names its sites with.
    fn kind(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update | Op::Resize => "update",
            Op::Upgrade => "upgrade",
            Op::Delete => "delete",
            Op::RotateCa => "rotateca",
            Op::RotateCredential => "rotatecredential",
            Op::NodeGroupCreate => "nodegroupcreate",
            Op::NodeGroupDelete => "nodegroupdelete",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update node_count",
            Op::Resize => "resize",
            Op::Upgrade => "upgrade",
            Op::Delete => "delete",
            Op::RotateCa => "CA rotate",
            Op::RotateCredential => "credential rotate",
            Op::NodeGroupCreate => "nodegroup create",
            Op::NodeGroupDelete => "nodegroup delete",
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    op: Op,
    /// `<site>:<before|after>`.
    point: String,
    name: String,
    project: usize,
    /// Set for cases that act on an existing cluster.
    cluster: Option<String>,
}

struct Env {
    d: Deployment,
    tokens: Vec<String>,
    templates: Vec<String>,
    /// Per project, a template of the same driver with `kube_tag` [`UPGRADE_TAG`].
    upgrade_templates: Vec<String>,
    projects: Vec<ProjectId>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_at_every_site_of_every_operation() {
    let started = Instant::now();
    let d = Deployment::up(
        "failpoints",
        Options {
            failpoint_files: true,
            // Heat latency matters only for ordering; keep the matrix short.
            time_scale: 0.05,
            ..Options::default()
        },
    );
    let mut tokens = Vec::new();
    let mut templates = Vec::new();
    let mut upgrade_templates = Vec::new();
    let mut projects = Vec::new();
    for p in PROJECTS {
        let t = d.token(p, p).await;
        let tpl = create_template(&d, &t, &format!("fp-tpl-{p}")).await;
        let (_, v) = d
            .call(
                Method::GET,
                &format!("/clustertemplates/{tpl}"),
                Some(&t),
                None,
            )
            .await;
        projects.push(ProjectId(v["project_id"].as_str().unwrap().to_string()));
        templates.push(tpl);
        upgrade_templates.push(upgrade_template(&d, &t, &format!("fp-up-{p}")).await);
        tokens.push(t);
    }
    // Every case makes a cluster: more than the default quota of 20 per project.
    for p in &projects {
        let body = json!({"project_id": p.0, "resource": "Cluster", "hard_limit": 100});
        let (s, v) = d
            .call(Method::POST, "/quotas", Some(&tokens[0]), Some(body))
            .await;
        assert_eq!(s, 201, "quota create: {v}");
    }
    let env = Arc::new(Env {
        d,
        tokens,
        templates,
        upgrade_templates,
        projects,
    });

    // Dry run: one cluster through every kind, unarmed; the sites come from the logs.
    let dry = "fpdry";
    let id = create(&env, 0, dry).await;
    wait_terminal(&env, 0, &id, Op::Create).await.unwrap();
    start_op(&env, 0, &id, Op::Update).await;
    wait_terminal(&env, 0, &id, Op::Update).await.unwrap();
    set_count(&env, 0, &id, 1).await;
    start_op(&env, 0, &id, Op::Resize).await;
    wait_terminal(&env, 0, &id, Op::Resize).await.unwrap();
    for op in [
        Op::RotateCa,
        Op::RotateCredential,
        Op::NodeGroupCreate,
        Op::NodeGroupDelete,
        Op::Upgrade,
    ] {
        if op == Op::Upgrade {
            // The upgrade check below could not fail if the stack had the tag already.
            let tag = live_stack_parameter(&env, 0, dry, "kube_tag").await;
            assert_ne!(
                tag, UPGRADE_TAG,
                "the dry run's stack has the new tag already"
            );
        }
        start_op(&env, 0, &id, op).await;
        wait_terminal(&env, 0, &id, op).await.unwrap();
    }
    start_op(&env, 0, &id, Op::Delete).await;
    wait_terminal(&env, 0, &id, Op::Delete).await.unwrap();
    let sites = sites_seen(&env.d, dry);
    let dry_run = started.elapsed();
    for k in [
        "create",
        "update",
        "delete",
        "rotateca",
        "rotatecredential",
        "nodegroupcreate",
        "nodegroupdelete",
        "upgrade",
    ] {
        assert!(
            sites.iter().any(|(kind, _)| kind == k),
            "no site seen for {k}: {sites:?}"
        );
    }

    // One case per (kind, site); an operation on an existing cluster gets its own base cluster.
    let mut cases = Vec::new();
    for op in [
        Op::Create,
        Op::Update,
        Op::Resize,
        Op::Upgrade,
        Op::Delete,
        Op::RotateCa,
        Op::RotateCredential,
        Op::NodeGroupCreate,
        Op::NodeGroupDelete,
    ] {
        for (kind, point) in &sites {
            // An external call's "before" is the previous commit's "after" plus a leadership check: skip it.
            let external = point.starts_with("heat:") || point.starts_with("keystone:");
            if kind != op.kind() || (external && point.ends_with(":before")) {
                continue;
            }
            let n = cases.len();
            cases.push(Case {
                op,
                point: point.clone(),
                name: format!("fpc{n:02}x"),
                project: n % PROJECTS.len(),
                cluster: None,
            });
        }
    }
    let mut bases = Vec::new();
    for c in cases.iter_mut().filter(|c| c.op != Op::Create) {
        c.cluster = Some(create(&env, c.project, &c.name).await);
        bases.push((c.project, c.cluster.clone().unwrap()));
    }
    for (p, id) in &bases {
        wait_terminal(&env, *p, id, Op::Create).await.unwrap();
    }
    // A nodegroup delete needs its nodegroup.
    for c in cases.iter().filter(|c| c.op == Op::NodeGroupDelete) {
        let id = c.cluster.as_deref().unwrap();
        start_op(&env, c.project, id, Op::NodeGroupCreate).await;
        wait_terminal(&env, c.project, id, Op::NodeGroupCreate)
            .await
            .unwrap();
    }
    let setup = started.elapsed();

    // Rounds: at most one armed case per conductor, so each crash is the one its case asked for.
    let client = env.d.conductor_client();
    let shards = client.shards().await.unwrap();
    let mut queues: Vec<VecDeque<Case>> = vec![VecDeque::new(); PROJECTS.len()];
    for c in cases {
        queues[c.project].push_back(c);
    }
    let mut rows = Vec::new();
    let matrix_started = Instant::now();
    while queues.iter().any(|q| !q.is_empty()) {
        for n in 1..=3 {
            env.d.wait_conductor_up(n, Duration::from_secs(30)).await;
        }
        // The controller hands leaderships back to the conductor restarted last round; a case
        // armed on a leader that then hands its shard away never reaches its failpoint.
        wait_leaders_settled(&client).await;
        let mut chosen: HashMap<NodeId, Case> = HashMap::new();
        for q in queues.iter_mut() {
            let Some(c) = q.front() else { continue };
            let shard: ShardId = shard_of(&env.projects[c.project], shards);
            let leader = wait_leader(&client, shard).await;
            if let std::collections::hash_map::Entry::Vacant(e) = chosen.entry(leader) {
                e.insert(q.pop_front().unwrap());
            }
        }
        let mut handles = Vec::new();
        for (leader, case) in chosen {
            let env = env.clone();
            handles.push(tokio::spawn(
                async move { run_case(&env, leader, case).await },
            ));
        }
        for h in handles {
            rows.push(h.await.unwrap());
        }
    }
    let matrix = matrix_started.elapsed();

    let mut failures = Vec::new();
    for r in &rows {
        println!(
            "MEASURE failpoints: {:<18} × {:<28} → {:<40} {:>6} ms",
            r.op.label(),
            r.point,
            r.result
                .as_ref()
                .map_or_else(|e| e.as_str(), |s| s.as_str()),
            r.ms
        );
        if let Err(e) = &r.result {
            failures.push(format!("{} × {}: {e}", r.op.label(), r.point));
        }
    }
    println!(
        "MEASURE failpoints: {} cases, dry run {} ms, setup {} ms, matrix {} ms, total {} ms",
        rows.len(),
        dry_run.as_millis(),
        setup.as_millis(),
        matrix.as_millis(),
        started.elapsed().as_millis()
    );
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}

struct Row {
    op: Op,
    point: String,
    result: Result<String, String>,
    ms: u128,
}

async fn run_case(env: &Env, leader: NodeId, case: Case) -> Row {
    let start = Instant::now();
    let result = drive_case(env, leader, &case).await;
    Row {
        op: case.op,
        point: case.point,
        result,
        ms: start.elapsed().as_millis(),
    }
}

async fn drive_case(env: &Env, leader: NodeId, case: &Case) -> Result<String, String> {
    let d = &env.d;
    let node = leader.0;
    let pid = d
        .pid(&format!("conductor-{node}"))
        .ok_or("leader not running")?;
    d.arm_failpoints(
        node,
        &format!("{}:{}:1:{}", case.op.kind(), case.point, case.name),
    );
    let id = match &case.cluster {
        None => create(env, case.project, &case.name).await,
        Some(id) => {
            start_op(env, case.project, id, case.op).await;
            id.clone()
        }
    };
    // The armed leader must crash at the point: a point never reached is a matrix bug.
    let deadline = Instant::now() + Duration::from_secs(60);
    while alive(pid) {
        if Instant::now() > deadline {
            d.disarm_failpoints(node);
            return Err(format!("conductor {node} never reached the failpoint"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.disarm_failpoints(node);
    let log = d.log(&format!("conductor-{node}"));
    if !log.contains(&format!(
        "FAILPOINT fired {}:{}",
        case.op.kind(),
        case.point
    )) {
        return Err(format!(
            "conductor {node} died without firing:\n{}",
            tail(&log, 20)
        ));
    }
    let _ = std::fs::remove_file(d.dir.join(format!("conductor-{node}.pid")));
    d.start("conductor", Some(node));
    let status = wait_terminal(env, case.project, &id, case.op).await?;
    check_ledger(env, case).await?;
    check_trustee(env, case, &id).await?;
    Ok(format!("{status}, 1 stack create, 1 trustee"))
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.contains(") Z "),
        Err(_) => false,
    }
}

async fn wait_leader(client: &magnum_proto::client::ConductorClient, shard: ShardId) -> NodeId {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(l)) = client.leader_of(shard).await {
            return l;
        }
        assert!(Instant::now() < deadline, "shard {shard} has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every group has a leader, no conductor leads more than its share (what the
/// placement controller rebalances towards, one transfer per 300 ms step) and the leaders
/// stayed put over two polls.
async fn wait_leaders_settled(client: &magnum_proto::client::ConductorClient) {
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut last: Option<HashMap<u64, NodeId>> = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let Ok(t) = client.refresh_topology().await else {
            continue;
        };
        let leaders: HashMap<u64, NodeId> = t
            .groups
            .iter()
            .filter_map(|g| Some((g.group, g.leader?)))
            .collect();
        let mut led: HashMap<NodeId, usize> = HashMap::new();
        for l in leaders.values() {
            *led.entry(*l).or_default() += 1;
        }
        let share = t.groups.len().div_ceil(t.nodes.len().max(1));
        let balanced = leaders.len() == t.groups.len() && led.values().all(|n| *n <= share);
        if balanced && last.as_ref() == Some(&leaders) {
            return;
        }
        last = balanced.then_some(leaders);
    }
    println!("failpoints: leaders did not settle within 45 s; choosing anyway");
}

/// A template like [`template_body`]'s with the newer `kube_tag` the upgrade cases move to.
async fn upgrade_template(d: &Deployment, token: &str, name: &str) -> String {
    let mut body = template_body(name);
    body["labels"] = json!({ "kube_tag": UPGRADE_TAG });
    let (s, v) = d
        .call(Method::POST, "/clustertemplates", Some(token), Some(body))
        .await;
    assert_eq!(s, 201, "upgrade template create: {v}");
    v["uuid"].as_str().unwrap().to_string()
}
