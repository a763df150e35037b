//! Design §7 row 1 as a matrix: for every operation kind (create, node_count update, resize,
//! delete, CA rotation, credential rotation, nodegroup create and delete) and every site that kind passes (before / after each committed `OpEvent`, after each
//! Heat call), the shard leader aborts there (`conductor/src/failpoints.rs`), is restarted
//! without failpoints, and the operation still ends with the right terminal status, exactly one
//! stack create per cluster in cloud-sim's ledger, no live stack after a delete, and the stack's
//! worker count equal to the last acknowledged intent.
//!
//! The sites are not listed here: a dry run of each kind prints every site it passes
//! (`FAILPOINT-SITE`), so kinds and events added later join the matrix by themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_chaos_tests::{tail, Deployment, Options};
use magnum_proto::{shard_of, NodeId, ProjectId, ShardId};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROJECTS: [&str; 3] = ["admin", "demo", "alt_demo"];
/// The nodegroup the nodegroup cases create and delete.
const NODEGROUP: &str = "ng1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    Resize,
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
    ] {
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

async fn create(env: &Env, p: usize, name: &str) -> String {
    create_cluster(&env.d, &env.tokens[p], &env.templates[p], name, 1).await
}

async fn set_count(env: &Env, p: usize, id: &str, n: u32) {
    let body = json!([{"op": "replace", "path": "/node_count", "value": n}]);
    let (s, v) = env
        .d
        .call(
            Method::PATCH,
            &format!("/clusters/{id}"),
            Some(&env.tokens[p]),
            Some(body),
        )
        .await;
    assert_eq!(s, 202, "PATCH node_count: {v}");
    env.d
        .wait_cluster(&env.tokens[p], id, Duration::from_secs(60), |_, v| {
            v["status"] == "UPDATE_COMPLETE" && v["node_count"] == n
        })
        .await;
}

/// Starts `op` on an existing cluster of node count 1 (update and resize go to 2).
async fn start_op(env: &Env, p: usize, id: &str, op: Op) {
    let token = &env.tokens[p];
    let d = &env.d;
    let (s, v) = match op {
        Op::Create => unreachable!("create has no existing cluster"),
        Op::Update => {
            let body = json!([{"op": "replace", "path": "/node_count", "value": 2}]);
            d.call(
                Method::PATCH,
                &format!("/clusters/{id}"),
                Some(token),
                Some(body),
            )
            .await
        }
        Op::Resize => {
            let rq = d
                .http
                .post(format!("{}/clusters/{id}/actions/resize", d.api))
                .json(&json!({"node_count": 2}));
            send(rq, token, "1.7").await
        }
        Op::Delete => {
            d.call(
                Method::DELETE,
                &format!("/clusters/{id}"),
                Some(token),
                None,
            )
            .await
        }
        Op::NodeGroupCreate => {
            let rq = d
                .http
                .post(format!("{}/clusters/{id}/nodegroups", d.api))
                .json(&json!({"name": NODEGROUP, "node_count": 1}));
            send(rq, token, "latest").await
        }
        Op::NodeGroupDelete => {
            let url = format!("{}/clusters/{id}/nodegroups/{NODEGROUP}", d.api);
            send(d.http.delete(url), token, "latest").await
        }
        Op::RotateCa => {
            let url = format!("{}/certificates/{id}", d.api);
            send(d.http.patch(url), token, "latest").await
        }
        Op::RotateCredential => {
            let url = format!("{}/credentials/{id}", d.api);
            send(d.http.patch(url), token, "latest").await
        }
    };
    assert!(s == 202 || s == 204, "{op:?} on {id}: {s} {v}");
}

/// Sends `rq` with the token and microversion; the status and JSON body.
async fn send(rq: reqwest::RequestBuilder, token: &str, version: &str) -> (u16, Value) {
    let r = rq
        .header("X-Auth-Token", token)
        .header(
            "OpenStack-API-Version",
            format!("container-infra {version}"),
        )
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Waits for the terminal status `op` must end in; `Err` on a wrong one or a timeout.
async fn wait_terminal(env: &Env, p: usize, id: &str, op: Op) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // A pooled connection can be cut while a node crashes: ask again, it is a read.
        let path = match op {
            Op::NodeGroupCreate | Op::NodeGroupDelete => {
                format!("/clusters/{id}/nodegroups/{NODEGROUP}")
            }
            _ => format!("/clusters/{id}"),
        };
        let Some((s, v)) = get_path(env, p, &path).await else {
            if Instant::now() > deadline {
                return Err("API unreachable for 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let status = v["status"].as_str().unwrap_or("").to_string();
        match op {
            Op::Delete | Op::NodeGroupDelete if s == 404 => return Ok("gone".into()),
            Op::NodeGroupCreate if status == "CREATE_COMPLETE" => return Ok(status),
            Op::Create if status == "CREATE_COMPLETE" => return Ok(status),
            Op::RotateCa | Op::RotateCredential if status == "UPDATE_COMPLETE" => {
                return Ok(status)
            }
            Op::Update | Op::Resize if status == "UPDATE_COMPLETE" => {
                return if v["node_count"] == 2 {
                    Ok(status)
                } else {
                    Err(format!(
                        "UPDATE_COMPLETE with node_count {}",
                        v["node_count"]
                    ))
                };
            }
            _ if status.ends_with("_FAILED") => {
                return Err(format!("{status}: {}", v["status_reason"]))
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(format!("no terminal status after 120 s: {s} {status}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_path(env: &Env, p: usize, path: &str) -> Option<(u16, Value)> {
    let r = env
        .d
        .http
        .get(format!("{}{path}", env.d.api))
        .header("X-Auth-Token", &env.tokens[p])
        .header("OpenStack-API-Version", "container-infra latest")
        .send()
        .await
        .ok()?;
    let s = r.status().as_u16();
    Some((s, r.json().await.unwrap_or(Value::Null)))
}

/// Exactly one accepted stack create per stack name (the cluster's, and its nodegroup's for the
/// nodegroup cases); a live cluster stack with the intended worker count, or none after a
/// delete; the nodegroup's stack live after its create, gone after its delete.
async fn check_ledger(env: &Env, case: &Case) -> Result<(), String> {
    let all = env.d.sim_stacks().await;
    let stacks = stacks_named(&env.d, &case.name).await;
    let ng_prefix = format!("{}-{NODEGROUP}-", case.name);
    let is_ng = |s: &Value| {
        s["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(&ng_prefix))
    };
    let names: BTreeSet<&str> = stacks.iter().filter_map(|s| s["name"].as_str()).collect();
    for name in &names {
        let creates = all["creates_by_name"][name].as_u64().unwrap_or(0);
        if creates != 1 {
            return Err(format!("{creates} stack creates accepted for {name}"));
        }
    }
    let ng_names = names.iter().filter(|n| n.starts_with(&ng_prefix)).count();
    let has_ng = matches!(case.op, Op::NodeGroupCreate | Op::NodeGroupDelete);
    if names.len() - ng_names != 1 || ng_names != usize::from(has_ng) {
        return Err(format!("unexpected stack names {names:?}"));
    }
    let live: Vec<&Value> = stacks.iter().filter(|s| s["deleted"] != true).collect();
    let live_ng = live.iter().filter(|s| is_ng(s)).count();
    if live_ng != usize::from(case.op == Op::NodeGroupCreate) {
        return Err(format!("{live_ng} live nodegroup stacks: {live:?}"));
    }
    let live_cluster: Vec<&&Value> = live.iter().filter(|s| !is_ng(s)).collect();
    if case.op == Op::Delete {
        return match live_cluster.as_slice() {
            [] => Ok(()),
            l => Err(format!("orphan stack after delete: {l:?}")),
        };
    }
    let [stack] = live_cluster.as_slice() else {
        return Err(format!("expected one live cluster stack, got {live:?}"));
    };
    let want = if matches!(case.op, Op::Update | Op::Resize) {
        2
    } else {
        1
    };
    let got = stack_workers(env, case.project, stack).await?;
    if got != want {
        return Err(format!("stack number_of_minions {got}, intent {want}"));
    }
    Ok(())
}

async fn check_trustee(env: &Env, case: &Case, cluster: &str) -> Result<(), String> {
    let name = format!("{cluster}_{}", env.projects[case.project].0);
    let l = env.d.sim_keystone_ledger().await;
    let made = l["users_created"][&name].as_u64().unwrap_or(0);
    if made != 1 {
        return Err(format!("{made} trustee users made for {name}"));
    }
    let users: Vec<&Value> = l["users"]
        .as_array()
        .map(|u| u.iter().filter(|u| u["name"] == name.as_str()).collect())
        .unwrap_or_default();
    match (case.op, users.as_slice()) {
        (Op::Delete, []) => Ok(()),
        (Op::Delete, u) => Err(format!("trustee outlived its cluster: {u:?}")),
        (_, [u]) => {
            let id = u["id"].as_str().unwrap_or_default();
            let made = l["trusts_created"][id].as_u64().unwrap_or(0);
            let live = l["trusts"].as_array().map_or(0, |t| {
                t.iter().filter(|t| t["trustee_user_id"] == id).count()
            });
            if (made, live) == (1, 1) {
                Ok(())
            } else {
                Err(format!("{made} trusts made and {live} live for {name}"))
            }
        }
        (_, u) => Err(format!("expected one trustee named {name}, got {u:?}")),
    }
}

async fn stack_workers(env: &Env, p: usize, stack: &Value) -> Result<u64, String> {
    let url = format!(
        "{}/heat-api/v1/{}/stacks/{}/{}",
        env.d.sim,
        stack["project_id"].as_str().unwrap_or_default(),
        stack["name"].as_str().unwrap_or_default(),
        stack["id"].as_str().unwrap_or_default()
    );
    let v: Value = env
        .d
        .http
        .get(url)
        .header("X-Auth-Token", &env.tokens[p])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let param = &v["stack"]["parameters"]["number_of_minions"];
    param
        .as_u64()
        .or_else(|| param.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| format!("no number_of_minions in {v}"))
}

/// `(kind, "<site>:<when>")` of every site the conductors printed for stacks named `prefix*`,
/// in first-seen order.
fn sites_seen(d: &Deployment, prefix: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for n in 1..=3 {
        for line in d.log(&format!("conductor-{n}")).lines() {
            let Some(rest) = line.split("FAILPOINT-SITE ").nth(1) else {
                continue;
            };
            let mut it = rest.split_whitespace();
            let (Some(point), Some(stack)) = (it.next(), it.next()) else {
                continue;
            };
            if !stack.starts_with(prefix) {
                continue;
            }
            let Some((kind, site)) = point.split_once(':') else {
                continue;
            };
            let entry = (kind.to_string(), site.to_string());
            // Errors are not part of the happy path the matrix walks.
            if !seen.contains(&entry) && !site.starts_with("TransientError") {
                seen.push(entry);
            }
        }
    }
    seen
}
