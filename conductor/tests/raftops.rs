//! Raft operations of three in-process conductors: the `/metrics` page, and a follower that was
//! down while 10,000 commands were applied catching up through a snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use magnum_conductor::cloud::fake::FakeCloud;
use magnum_conductor::leader::LeaderConfig;
use magnum_conductor::node::{Conductor, ConductorConfig};
use magnum_conductor::shard::logic::ShardLogic;
use magnum_proto::*;
use magnum_raft::{Group, NodeAddr, RaftConfig};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A free port below the ephemeral range (see conductors.rs).
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + ((std::process::id() * 7) % 10_000) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let p = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(p < 32_000, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

struct Nodes {
    up: BTreeMap<u64, Conductor>,
    cfgs: BTreeMap<u64, ConductorConfig>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Nodes {
    async fn start(shards: u32) -> Nodes {
        let peers: BTreeMap<u64, NodeAddr> = (1..=3)
            .map(|id| {
                let addr = NodeAddr {
                    raft: format!("127.0.0.1:{}", free_port()),
                    service: format!("127.0.0.1:{}", free_port()),
                };
                (id, addr)
            })
            .collect();
        let mut n = Nodes {
            up: BTreeMap::new(),
            cfgs: BTreeMap::new(),
            _dirs: vec![],
        };
        for (id, addr) in &peers {
            let dir = tempfile::tempdir().unwrap();
            let cfg = ConductorConfig {
                node_id: *id,
                data_dir: dir.path().to_path_buf(),
                raft_listen: addr.raft.parse().unwrap(),
                service_listen: addr.service.parse().unwrap(),
                peers: peers.clone(),
                shards,
                replicas: 3,
                bootstrap: true,
                raft: RaftConfig::default(),
                reconciler: LeaderConfig::default(),
                cloud: Arc::new(FakeCloud::default()),
                heartbeat_interval: Duration::from_secs(1),
                max_in_flight: magnum_conductor::node::DEFAULT_MAX_IN_FLIGHT,
            };
            n._dirs.push(dir);
            n.cfgs.insert(*id, cfg.clone());
            n.up.insert(*id, Conductor::start(cfg).await.unwrap());
        }
        n
    }

    async fn stop(&mut self, id: u64) {
        self.up.remove(&id).unwrap().shutdown().await;
    }

    async fn restart(&mut self, id: u64) {
        let cfg = ConductorConfig {
            bootstrap: false,
            ..self.cfgs[&id].clone()
        };
        let c = Conductor::start(cfg).await.unwrap();
        // A restarted node reopens its replicas from the placement it applied; right after
        // bootstrap that may still be on its way.
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.shard(0).is_none() {
            assert!(Instant::now() < deadline, "node {id} never hosted shard 0");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.up.insert(id, c);
    }

    fn shard(&self, id: u64, shard: usize) -> Group<ShardLogic> {
        self.up[&id]
            .shard(u32::try_from(shard).unwrap())
            .expect("this node hosts the shard")
    }

    /// The node leading `shard`, once every running replica agrees on it.
    async fn leader(&self, shard: usize) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let st: Vec<_> = self
                .up
                .keys()
                .map(|&id| self.shard(id, shard).status())
                .collect();
            if let Some(l) = st.iter().find(|s| s.is_leader) {
                if st.iter().all(|s| s.leader == Some(l.node)) {
                    return l.node;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader for shard {shard}: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn scrape(&self, id: u64) -> BTreeMap<String, f64> {
        let url = format!("http://{}/metrics", self.up[&id].service_addr);
        let r = reqwest::get(url).await.unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        parse(&r.text().await.unwrap())
    }

    async fn shutdown(mut self) {
        let ids: Vec<u64> = self.up.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

/// `series{labels} value` lines of a Prometheus text page.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn canary(key: String) -> Vec<u8> {
    let req = ShardRequest {
        request_id: None,
        command: ShardCommand::Canary {
            value: format!("{key}-{}", "v".repeat(64)),
            key,
        },
    };
    serde_json::to_vec(&req).unwrap()
}

async fn write_canaries(g: &Group<ShardLogic>, prefix: &str, n: usize, parallel: usize) {
    futures::stream::iter(0..n)
        .map(|i| {
            let g = g.clone();
            let payload = canary(format!("{prefix}{i:05}"));
            async move {
                let r = g.write(payload).await.unwrap();
                let resp = magnum_conductor::node::decode_response(&r);
                assert!(resp.is_ok(), "{resp:?}");
            }
        })
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_page_reports_raft_state_and_moves() {
    let mut n = Nodes::start(2).await;
    let leader = n.leader(0).await;
    let g = r#"{group="1"}"#;
    let before = n.scrape(leader).await;
    for fam in [
        "magnum_raft_term",
        "magnum_raft_leader",
        "magnum_raft_is_leader",
        "magnum_raft_commit_index",
        "magnum_raft_applied_index",
        "magnum_raft_apply_lag",
        "magnum_raft_snapshots_built_total",
        "magnum_raft_snapshots_installed_total",
        "magnum_raft_snapshots_sent_total",
        "magnum_raft_append_seconds_count",
        "magnum_raft_flush_seconds_count",
    ] {
        assert!(before.contains_key(&format!("{fam}{g}")), "no {fam}{g}");
    }
    assert_eq!(before[&format!("magnum_raft_leader{g}")], leader as f64);
    // Exactly one node reports itself leader of each group (once elections settled).
    let deadline = Instant::now() + Duration::from_secs(30);
    for gid in 0..=2 {
        let key = format!("magnum_raft_is_leader{{group=\"{gid}\"}}");
        loop {
            let mut leaders = 0.0;
            for id in 1..=3 {
                leaders += n.scrape(id).await[&key];
            }
            if leaders == 1.0 {
                break;
            }
            assert!(Instant::now() < deadline, "group {gid}: {leaders} leaders");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    write_canaries(&n.shard(leader, 0), "m/", 20, 4).await;
    // openraft publishes its metrics after the write returns (on its own runtime), so the page
    // catches up within moments rather than at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = n.scrape(leader).await;
        let moved = |k: &str| after[&format!("{k}{g}")] - before[&format!("{k}{g}")];
        let settled = moved("magnum_raft_commit_index") >= 20.0
            && moved("magnum_raft_applied_index") >= 20.0
            && moved("magnum_raft_append_seconds_count") >= 1.0
            && moved("magnum_raft_flush_seconds_count") >= 1.0;
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics did not move: commit {} applied {} appends {} flushes {}",
            moved("magnum_raft_commit_index"),
            moved("magnum_raft_applied_index"),
            moved("magnum_raft_append_seconds_count"),
            moved("magnum_raft_flush_seconds_count"),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A stopped peer shows up as RPC errors on the others.
    let down = if leader == 1 { 2 } else { 1 };
    n.stop(down).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let prefix = format!("magnum_raft_rpc_errors_total{{peer=\"{down}\"");
    loop {
        let m = n.scrape(leader).await;
        if m.iter().any(|(k, v)| k.starts_with(&prefix) && *v > 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rpc errors towards node {down}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_down_for_10k_commands_catches_up_by_snapshot() {
    const COMMANDS: usize = 10_000;
    let mut n = Nodes::start(1).await;
    let leader = n.leader(0).await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let follower_last = n.shard(follower, 0).status().last_log.unwrap_or(0);
    n.stop(follower).await;

    let started = Instant::now();
    write_canaries(&n.shard(leader, 0), "s/", COMMANDS, 64).await;
    let write_time = started.elapsed();
    let lg = n.shard(leader, 0).clone();
    // Snapshots come every 5000 entries; the log up to the latest one minus 1000 is purged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while lg.log_stats().purged.unwrap_or(0) <= follower_last {
        assert!(
            Instant::now() < deadline,
            "leader never purged: {:?}",
            lg.log_stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let purged = lg.log_stats().purged.unwrap_or(0);
    let target = lg.status().last_applied.unwrap();

    let restarted = Instant::now();
    n.restart(follower).await;
    let fg = n.shard(follower, 0).clone();
    let mut rx = fg.watch();
    tokio::time::timeout(
        Duration::from_secs(60),
        rx.wait_for(|s| s.last_applied >= Some(target)),
    )
    .await
    .expect("follower did not catch up")
    .unwrap();
    let catch_up = restarted.elapsed();

    // It got there through a snapshot: the entries it lacked were no longer in the leader's log.
    assert!(
        purged > follower_last,
        "purged {purged} vs follower {follower_last}"
    );
    // At least one: under load the leader may time out a slow install and send it again.
    assert!(
        fg.snapshot_counts().installed >= 1,
        "{:?}",
        fg.snapshot_counts()
    );
    // Counted by whichever node led when the follower came back (leadership may move under
    // load), once the follower's answer is back: that comes after the install it waited for.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent: u64 = (1..=3)
            .filter(|&id| id != follower)
            .map(|id| n.shard(id, 0).snapshot_counts().sent)
            .sum();
        if sent >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot send to node {follower} completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fg.log_stats().snapshot.unwrap_or(0) > follower_last);
    // And it holds exactly the leader's state.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fg.status().last_applied != lg.status().last_applied {
        assert!(Instant::now() < deadline, "applied indexes differ");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (want, got) = (
        lg.read_local(|l| l.state.clone()),
        fg.read_local(|l| l.state.clone()),
    );
    let rows = lg
        .read(|l| {
            l.state.query(
                &ShardQuery::Canaries {
                    prefix: "s/".into(),
                },
                &magnum_raft::NoStoredRows,
            )
        })
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(&rows, QueryResult::Canaries(m) if m.len() == COMMANDS));
    assert!(want == got, "follower state differs from the leader's");
    println!(
        "MEASURE snapshot catch-up: {COMMANDS} commands written in {} ms; follower (last index \
         {follower_last}, leader purged to {purged}) restarted and caught up to {target} in {} ms",
        write_time.as_millis(),
        catch_up.as_millis()
    );
    n.shutdown().await;
}
