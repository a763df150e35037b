//! Peak memory of one shard's snapshot: built by its leader, sent to a new replica, received and
//! installed there. The shard holds N clusters (each with its template's project, two default
//! nodegroups and its create operation, rows from `magnum_proto::fixtures`). Every phase runs in
//! its own process, so each peak (VmHWM, reset with /proc/self/clear_refs once the state is
//! loaded) is that phase's alone.
//!
//! cargo run --release -p magnum-benches --bin snapshot_memory -- [CLUSTERS]   (default 100000)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use magnum_conductor::shard::logic::ShardLogic;
use magnum_proto::*;
use magnum_raft::{Group, NodeAddr, RaftConfig, RaftNode};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clusters per project: the default cluster quota.
const PER_PROJECT: usize = DEFAULT_CLUSTER_QUOTA as usize;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).cloned().unwrap_or_default();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match a(0).as_str() {
        "prepare" => rt.block_on(prepare(Path::new(&a(1)), a(2).parse().unwrap(), &a(3))),
        "build" => rt.block_on(build(Path::new(&a(1)), &a(2))),
        "leader" => rt.block_on(leader(Path::new(&a(1)), &a(2), &a(3))),
        "learner" => rt.block_on(learner(Path::new(&a(1)), &a(2))),
        n => orchestrate(n.parse().unwrap_or(100_000)),
    }
}

fn cfg() -> RaftConfig {
    RaftConfig {
        // Snapshots only when this bench asks for one.
        snapshot_logs_since_last: 100_000_000,
        ..RaftConfig::default()
    }
}

fn addr(raft: &str) -> NodeAddr {
    NodeAddr {
        raft: raft.to_string(),
        service: String::new(),
    }
}

/// A kB field of /proc/self/status, in bytes.
fn proc_status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Resets VmHWM to the current RSS.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn result(fields: serde_json::Value) {
    println!("RESULT {fields}");
}

async fn open(dir: &Path, id: u64) -> (Arc<RaftNode>, Group<ShardLogic>) {
    let node = RaftNode::open(id, dir, cfg()).unwrap();
    let g = node
        .open_group(1, ShardLogic::new(ShardId(0), 1))
        .await
        .unwrap();
    (node, g)
}

async fn serve(node: &Arc<RaftNode>, listen: &str) {
    let l = tokio::net::TcpListener::bind(listen).await.unwrap();
    node.serve(l, tokio_util::sync::CancellationToken::new())
        .unwrap();
}

async fn wait_leader(g: &Group<ShardLogic>) {
    let mut rx = g.watch();
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| s.is_leader))
        .await
        .unwrap()
        .unwrap();
}

async fn propose(g: &Group<ShardLogic>, cmds: Vec<ShardCommand>) {
    futures::stream::iter(cmds)
        .map(|command| {
            let g = g.clone();
            async move {
                let req = ShardRequest {
                    request_id: None,
                    command,
                };
                let r = g.write(serde_json::to_vec(&req).unwrap()).await.unwrap();
                let resp = magnum_conductor::node::decode_response(&r);
                assert!(resp.is_ok(), "{resp:?}");
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
}

/// Writes `n` clusters through Raft into a fresh single-voter group.
async fn prepare(dir: &Path, n: usize, leader_addr: &str) {
    let (node, g) = open(dir, 1).await;
    g.initialize(BTreeMap::from([(1, addr(leader_addr))]))
        .await
        .unwrap();
    wait_leader(&g).await;
    let start = Instant::now();
    let projects = n.div_ceil(PER_PROJECT);
    let templates: Vec<ClusterTemplate> = (0..projects)
        .map(|p| fixtures::template(&ProjectId(format!("project-{p:06}"))))
        .collect();
    let cmds = templates
        .iter()
        .map(|t| ShardCommand::CreateTemplate {
            template: t.clone(),
            max_per_project: None,
        })
        .collect();
    propose(&g, cmds).await;
    let cmds = (0..n)
        .map(|i| {
            let t = &templates[i / PER_PROJECT];
            let (cluster, nodegroups, operation) =
                fixtures::cluster_rows(t, &format!("cluster-{i}"), 1, 2);
            ShardCommand::CreateCluster {
                cluster,
                nodegroups,
                operation,
            }
        })
        .collect();
    propose(&g, cmds).await;
    let st = g.status();
    result(serde_json::json!({
        "phase": "prepare", "ms": start.elapsed().as_millis() as u64,
        "last_applied": st.last_applied, "rss": proc_status("VmRSS:"),
    }));
    drop(g);
    node.shutdown().await;
}

fn snapshot_bytes(node: &RaftNode) -> u64 {
    let text = node.metrics_text().unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("magnum_raft_snapshot_bytes{group=\"1\"}"))
        .unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn build(dir: &Path, leader_addr: &str) {
    let (node, g) = open(dir, 1).await;
    let _ = leader_addr;
    wait_leader(&g).await;
    let before = proc_status("VmRSS:");
    reset_peak();
    let start = Instant::now();
    g.trigger_snapshot().await.unwrap();
    let target = g.status().last_applied;
    while g.log_stats().snapshot < target {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ms = start.elapsed().as_millis() as u64;
    let peak_built = proc_status("VmHWM:");
    // The log is purged right after the build: wait, so a new replica needs the snapshot.
    while g.log_stats().purged.is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    result(serde_json::json!({
        "phase": "build", "ms": ms, "peak_built": peak_built,
        "rss_before": before, "peak": proc_status("VmHWM:"), "rss_after": proc_status("VmRSS:"),
        "snapshot_bytes": snapshot_bytes(&node),
    }));
    drop(g);
    node.shutdown().await;
}

/// Adds the learner and serves it the snapshot; reports once the orchestrator says (on stdin)
/// that the learner installed it. (openraft may retry a send that timed out, so the leader's
/// own view of "sent" is not the end.)
async fn leader(dir: &Path, listen: &str, learner: &str) {
    let (node, g) = open(dir, 1).await;
    serve(&node, listen).await;
    wait_leader(&g).await;
    let before = proc_status("VmRSS:");
    reset_peak();
    let start = Instant::now();
    g.add_learner(2, addr(learner), false).await.unwrap();
    let done = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    let _ = done.await;
    result(serde_json::json!({
        "phase": "send", "ms": start.elapsed().as_millis() as u64,
        "rss_before": before, "peak": proc_status("VmHWM:"), "rss_after": proc_status("VmRSS:"),
        "sent": g.snapshot_counts().sent,
    }));
    drop(g);
    node.shutdown().await;
}

async fn learner(dir: &Path, listen: &str) {
    let (node, g) = open(dir, 2).await;
    serve(&node, listen).await;
    let before = proc_status("VmRSS:");
    reset_peak();
    println!("READY");
    let start = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(300);
    while g.snapshot_counts().installed == 0 {
        assert!(Instant::now() < deadline, "no snapshot installed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (ms, peak, after) = (
        start.elapsed().as_millis() as u64,
        proc_status("VmHWM:"),
        proc_status("VmRSS:"),
    );
    let clusters = g.read_local(|l| l.state.clusters().len());
    result(serde_json::json!({
        "phase": "install", "ms": ms, "rss_before": before, "peak": peak, "rss_after": after,
        "clusters": clusters,
    }));
    drop(g);
    node.shutdown().await;
}

/// A phase running as a child process of this binary.
struct Child {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Child {
    fn spawn(args: &[&str]) -> Child {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Child { child, lines }
    }

    /// Reads stdout until `want` (a line, or the RESULT when `None`).
    fn until(&mut self, want: Option<&str>) -> serde_json::Value {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if Some(line.as_str()) == want {
                return serde_json::Value::Null;
            }
            if let Some(j) = line.strip_prefix("RESULT ") {
                eprintln!("{j}");
                return serde_json::from_str(j).unwrap();
            }
        }
        panic!("phase ended without {want:?}");
    }

    fn signal(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"done\n").unwrap();
        stdin.flush().unwrap();
    }

    fn wait(mut self) {
        assert!(self.child.wait().unwrap().success(), "phase failed");
    }
}

fn phase(args: &[&str]) -> serde_json::Value {
    let mut c = Child::spawn(args);
    let r = c.until(None);
    c.wait();
    r
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn mib(v: &serde_json::Value) -> String {
    format!("{:.0}", v.as_f64().unwrap_or(f64::NAN) / (1024.0 * 1024.0))
}

fn orchestrate(n: usize) {
    // Fewer entries than openraft keeps after a snapshot (1000): nothing purged, no snapshot sent.
    assert!(n >= 1000, "use at least 1000 clusters");
    let tmp = std::env::temp_dir().join(format!("magnum-snapmem-{}", std::process::id()));
    let (d1, d2): (PathBuf, PathBuf) = (tmp.join("n1"), tmp.join("n2"));
    let (a1, a2) = (free_addr(), free_addr());
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let prep = phase(&["prepare", &s(&d1), &n.to_string(), &a1]);
    let build = phase(&["build", &s(&d1), &a1]);
    // The learner must listen before the leader adds it; the leader reports once the learner
    // installed the snapshot.
    let mut learner = Child::spawn(&["learner", &s(&d2), &a2]);
    learner.until(Some("READY"));
    let mut leader = Child::spawn(&["leader", &s(&d1), &a1, &a2]);
    let install = learner.until(None);
    learner.wait();
    leader.signal();
    let send = leader.until(None);
    leader.wait();
    assert_eq!(install["clusters"].as_u64(), Some(n as u64), "{install}");
    let _ = std::fs::remove_dir_all(&tmp);

    let bytes = &build["snapshot_bytes"];
    println!(
        "snapshot_memory: one shard holding {n} clusters; snapshot {} MiB ({bytes} bytes); \
              state written in {} s",
        mib(bytes),
        prep["ms"].as_u64().unwrap_or(0) / 1000
    );
    println!("| phase | RSS before (MiB) | peak RSS (MiB) | peak - before (MiB) | RSS after (MiB) | time (ms) |");
    println!("|---|---|---|---|---|---|");
    for (name, r) in [
        ("build (leader)", &build),
        ("send (leader)", &send),
        ("receive + install (new replica)", &install),
    ] {
        let delta = r["peak"].as_f64().unwrap_or(0.0) - r["rss_before"].as_f64().unwrap_or(0.0);
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            mib(&r["rss_before"]),
            mib(&r["peak"]),
            mib(&serde_json::json!(delta)),
            mib(&r["rss_after"]),
            r["ms"]
        );
    }
    println!("reproduce: cargo run --release -p magnum-benches --bin snapshot_memory -- {n}");
}
