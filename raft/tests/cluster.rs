//! Multi-node tests: 3 `RaftNode`s in one process, each serving its router on 127.0.0.1 with
//! mutual TLS (certificates of one test CA, as a deployment has).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use magnum_raft::{
    Group, GroupId, GroupStatus, NodeAddr, NodeId, RaftConfig, RaftError, RaftNode,
    StateMachineLogic, StoredRows, WriteError, WriteSet,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(15);

/// Awaits `fut`, failing the test instead of hanging when it takes longer than `WAIT`.
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// What the test logic saw, shared with the test.
#[derive(Default)]
struct Probe {
    applied: Mutex<Vec<u64>>,
    loads: AtomicUsize,
    /// Test hook: this replica's apply fails on exactly this payload.
    refuse: Mutex<Option<Vec<u8>>>,
}

/// `k=v` key/value store.
struct Kv {
    map: BTreeMap<String, String>,
    probe: Arc<Probe>,
}

impl StateMachineLogic for Kv {
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        self.map = kv
            .map(|(k, v)| {
                Ok((
                    String::from_utf8(k).map_err(|e| e.to_string())?,
                    String::from_utf8(v).map_err(|e| e.to_string())?,
                ))
            })
            .collect::<Result<_, String>>()?;
        self.probe.loads.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn apply(
        &mut self,
        index: u64,
        payload: &[u8],
        writes: &mut WriteSet,
        _stored: &dyn StoredRows,
    ) -> Result<Vec<u8>, String> {
        if self.probe.refuse.lock().unwrap().as_deref() == Some(payload) {
            return Err(format!(
                "test hook refuses {}",
                String::from_utf8_lossy(payload)
            ));
        }
        self.probe.applied.lock().unwrap().push(index);
        let s = String::from_utf8_lossy(payload);
        if let Some((k, v)) = s.split_once('=') {
            self.map.insert(k.to_string(), v.to_string());
            writes.put(k, v);
        }
        Ok(index.to_be_bytes().to_vec())
    }
}

fn cfg() -> RaftConfig {
    RaftConfig {
        heartbeat_ms: 100,
        election_min_ms: 500,
        election_max_ms: 1000,
        snapshot_logs_since_last: 5000,
        vote_audit: true,
        ..RaftConfig::default()
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn bind(addr: SocketAddr) -> TcpListener {
    // A restarted node reuses its port; the old listener may take a moment to go away.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(%e, "bind retry");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

struct TestNode {
    node: Arc<RaftNode>,
    server: JoinHandle<()>,
    stop: CancellationToken,
    groups: BTreeMap<GroupId, Group<Kv>>,
    probes: BTreeMap<GroupId, Arc<Probe>>,
}

/// A conductor certificate for node `id` in `node_dir/tls`, from the test CA beside it (made
/// on first use).
fn tls_of(node_dir: &std::path::Path, id: NodeId) -> magnum_net::Tls {
    let ca = node_dir.parent().unwrap().join("ca");
    if !ca.join(magnum_net::certs::CA_KEY).exists() {
        magnum_net::certs::init_ca(&ca).unwrap();
    }
    let dir = node_dir.join("tls");
    if !dir.join(magnum_net::certs::NODE_CERT).exists() {
        let identity =
            magnum_net::Identity::new(magnum_net::Role::Conductor, id.to_string()).unwrap();
        magnum_net::certs::issue(&ca, &dir, &identity, &[], 1).unwrap();
    }
    magnum_net::Tls::load(&dir, magnum_net::Mode::Strict, magnum_net::Role::Conductor).unwrap()
}

struct Cluster {
    _tmp: tempfile::TempDir,
    dirs: BTreeMap<NodeId, PathBuf>,
    members: BTreeMap<NodeId, NodeAddr>,
    gids: Vec<GroupId>,
    cfg: RaftConfig,
    nodes: BTreeMap<NodeId, TestNode>,
}

impl Cluster {
    /// Starts `n` nodes hosting every group in `gids`; every node initializes every group.
    async fn start(n: u64, gids: &[GroupId], cfg: RaftConfig) -> Cluster {
        let c = Self::start_seeded(n, gids, cfg, |_, _, _| {}).await;
        for node in c.nodes.values() {
            for g in node.groups.values() {
                within("initialize", g.initialize(c.members.clone()))
                    .await
                    .unwrap();
            }
        }
        c
    }

    /// Starts `n` nodes hosting every group in `gids`, each data dir first given to `seed`
    /// (node id, dir, members); nothing is initialized.
    async fn start_seeded(
        n: u64,
        gids: &[GroupId],
        cfg: RaftConfig,
        seed: impl Fn(NodeId, &std::path::Path, &BTreeMap<NodeId, NodeAddr>),
    ) -> Cluster {
        init_tracing();
        let tmp = tempfile::tempdir().unwrap();
        let mut listeners = BTreeMap::new();
        let mut members = BTreeMap::new();
        let mut dirs = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            members.insert(
                id,
                NodeAddr {
                    raft: addr.to_string(),
                    service: format!("svc-{id}"),
                },
            );
            dirs.insert(id, tmp.path().join(format!("n{id}")));
            listeners.insert(id, l);
        }
        let mut c = Cluster {
            _tmp: tmp,
            dirs,
            members,
            gids: gids.to_vec(),
            cfg,
            nodes: BTreeMap::new(),
        };
        for (id, l) in listeners {
            seed(id, &c.dirs[&id], &c.members);
            c.launch(id, l).await;
        }
        c
    }

    async fn launch(&mut self, id: NodeId, listener: TcpListener) {
        let mut cfg = self.cfg.clone();
        cfg.tls = tls_of(&self.dirs[&id], id);
        let node = RaftNode::open(id, &self.dirs[&id], cfg).unwrap();
        let stop = CancellationToken::new();
        let server = node.serve(listener, stop.clone()).unwrap().task;
        let mut groups = BTreeMap::new();
        let mut probes = BTreeMap::new();
        for &gid in &self.gids {
            let probe = Arc::new(Probe::default());
            let kv = Kv {
                map: BTreeMap::new(),
                probe: probe.clone(),
            };
            let g = within(
                &format!("open group {gid} on {id}"),
                node.open_group(gid, kv),
            )
            .await
            .unwrap();
            groups.insert(gid, g);
            probes.insert(gid, probe);
        }
        self.nodes.insert(
            id,
            TestNode {
                node,
                server,
                stop,
                groups,
                probes,
            },
        );
    }

    /// Shuts a node down (its data dir stays).
    async fn stop(&mut self, id: NodeId) {
        let n = self.nodes.remove(&id).unwrap();
        within(&format!("shutdown node {id}"), n.node.shutdown()).await;
        n.stop.cancel();
        let mut server = n.server;
        if tokio::time::timeout(Duration::from_secs(2), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }

    /// Starts a new node that is not a member of any group yet.
    async fn add_node(&mut self, id: NodeId) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        self.members.insert(
            id,
            NodeAddr {
                raft: addr.to_string(),
                service: format!("svc-{id}"),
            },
        );
        self.dirs
            .insert(id, self._tmp.path().join(format!("n{id}")));
        self.launch(id, l).await;
    }

    async fn restart(&mut self, id: NodeId) {
        let addr: SocketAddr = self.members[&id].raft.parse().unwrap();
        let l = bind(addr).await;
        self.launch(id, l).await;
    }

    fn group(&self, id: NodeId, gid: GroupId) -> &Group<Kv> {
        &self.nodes[&id].groups[&gid]
    }

    /// Waits until one live replica leads `gid` and every live replica knows it.
    async fn wait_leader(&self, gid: GroupId) -> NodeId {
        let deadline = Instant::now() + WAIT;
        loop {
            let st: Vec<GroupStatus> = self
                .nodes
                .values()
                .map(|n| n.groups[&gid].status())
                .collect();
            if let Some(l) = st.iter().find(|s| s.is_leader) {
                if st.iter().all(|s| s.leader == Some(l.node)) {
                    return l.node;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader for group {gid}: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every live replica of `gid` applied at least `index`.
    async fn wait_applied(&self, gid: GroupId, index: u64) {
        for n in self.nodes.values() {
            let mut rx = n.groups[&gid].watch();
            let res =
                tokio::time::timeout(WAIT, rx.wait_for(|s| s.last_applied >= Some(index))).await;
            assert!(
                res.is_ok(),
                "group {gid} not applied to {index}: {:?}",
                n.groups[&gid].status()
            );
        }
    }

    /// Stops every node, then checks their vote audits (no node voted twice in a term).
    async fn shutdown(mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
        for (id, dir) in &self.dirs {
            let text = std::fs::read_to_string(dir.join(magnum_raft::vote_audit::AUDIT_FILE))
                .unwrap_or_default();
            let sum = magnum_raft::vote_audit::check(&text)
                .unwrap_or_else(|v| panic!("node {id} vote audit: {v:?}"));
            assert!(sum.saved > 0, "node {id} recorded no vote");
        }
    }
}

fn index_of(resp: &[u8]) -> u64 {
    u64::from_be_bytes(resp.try_into().unwrap())
}

fn other_than(c: &Cluster, id: NodeId) -> NodeId {
    *c.nodes.keys().find(|&&n| n != id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_groups_elect_write_and_read() {
    let gids = [0, 1, 2];
    let c = Cluster::start(3, &gids, cfg()).await;
    for gid in gids {
        let leader = c.wait_leader(gid).await;
        let g = c.group(leader, gid);
        assert_eq!(g.id(), gid);
        let idx = index_of(
            &within("write", g.write(format!("k=v{gid}").into_bytes()))
                .await
                .unwrap(),
        );
        let v = within("read", g.read(|kv| kv.map.get("k").cloned()))
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some(format!("v{gid}").as_str()));

        let follower = other_than(&c, leader);
        let fg = c.group(follower, gid);
        match within("write", fg.write(b"x=1".to_vec())).await {
            Err(WriteError::NotLeader {
                leader: Some((id, addr)),
            }) => {
                assert_eq!(id, leader);
                assert_eq!(addr, c.members[&leader]);
            }
            other => panic!("follower write: {other:?}"),
        }
        match within("read", fg.read(|kv| kv.map.len())).await {
            Err(WriteError::NotLeader {
                leader: Some((id, _)),
            }) => assert_eq!(id, leader),
            other => panic!("follower read: {other:?}"),
        }
        c.wait_applied(gid, idx).await;
        assert_eq!(
            fg.read_local(|kv| kv.map.get("k").cloned()),
            Some(format!("v{gid}"))
        );
        let st = fg.status();
        assert_eq!(
            (st.group, st.node, st.is_leader, st.leader),
            (gid, follower, false, Some(leader))
        );
        assert_eq!(st.members, c.members);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_keeps_writing() {
    let gid = 7;
    let mut c = Cluster::start(3, &[gid], cfg()).await;
    let old = c.wait_leader(gid).await;
    within("write", c.group(old, gid).write(b"a=1".to_vec()))
        .await
        .unwrap();

    let survivor = other_than(&c, old);
    let mut watch = c.group(survivor, gid).watch();
    let started = Instant::now();
    c.stop(old).await;
    let res = tokio::time::timeout(
        WAIT,
        watch.wait_for(|s| s.leader.is_some() && s.leader != Some(old)),
    )
    .await;
    assert!(res.is_ok(), "no new leader elected");
    let new = c.wait_leader(gid).await;
    assert_ne!(new, old);
    tracing::info!(elapsed = ?started.elapsed(), "failover");

    let g = c.group(new, gid);
    within("write", g.write(b"b=2".to_vec())).await.unwrap();
    let (a, b) = within(
        "read",
        g.read(|kv| (kv.map.get("a").cloned(), kv.map.get("b").cloned())),
    )
    .await
    .unwrap();
    assert_eq!((a.as_deref(), b.as_deref()), (Some("1"), Some("2")));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_recovers_state_without_replaying() {
    let gids = [1, 2];
    let mut c = Cluster::start(3, &gids, cfg()).await;
    let mut last = BTreeMap::new();
    for gid in gids {
        let leader = c.wait_leader(gid).await;
        let mut idx = 0;
        for i in 0..10 {
            idx = index_of(
                &within(
                    "write",
                    c.group(leader, gid)
                        .write(format!("k{i}={gid}-{i}").into_bytes()),
                )
                .await
                .unwrap(),
            );
        }
        c.wait_applied(gid, idx).await;
        last.insert(gid, idx);
    }
    let before: BTreeMap<(NodeId, GroupId), BTreeMap<String, String>> = c
        .nodes
        .iter()
        .flat_map(|(id, n)| {
            n.groups
                .iter()
                .map(move |(gid, g)| ((*id, *gid), g.read_local(|kv| kv.map.clone())))
        })
        .collect();

    let ids: Vec<NodeId> = c.nodes.keys().copied().collect();
    for &id in &ids {
        c.stop(id).await;
    }
    for &id in &ids {
        c.restart(id).await;
    }

    // Straight from disk, before any election: state and last_applied are back, nothing applied.
    for (id, n) in &c.nodes {
        for (gid, g) in &n.groups {
            assert_eq!(g.read_local(|kv| kv.map.clone()), before[&(*id, *gid)]);
            assert_eq!(
                g.status().last_applied,
                Some(last[gid]),
                "node {id} group {gid}"
            );
            assert_eq!(n.probes[gid].loads.load(Ordering::SeqCst), 1);
            assert!(
                n.probes[gid].applied.lock().unwrap().is_empty(),
                "node {id} group {gid} re-applied"
            );
        }
    }
    // Initialize again is a no-op; the groups re-elect and accept writes.
    for (id, n) in &c.nodes {
        for g in n.groups.values() {
            within("re-initialize", g.initialize(c.members.clone()))
                .await
                .unwrap_or_else(|e| panic!("node {id}: {e}"));
        }
    }
    for gid in gids {
        let leader = c.wait_leader(gid).await;
        let idx = index_of(
            &within(
                "write",
                c.group(leader, gid).write(b"after=restart".to_vec()),
            )
            .await
            .unwrap(),
        );
        c.wait_applied(gid, idx).await;
        for n in c.nodes.values() {
            assert_eq!(
                *n.probes[&gid].applied.lock().unwrap(),
                vec![idx],
                "only the new entry is applied"
            );
        }
    }
    c.shutdown().await;
}

/// A leader restarted before its followers campaigned does not resume its old term: it may
/// have lost entries it had sent but not flushed, and would write others under the same
/// (term, index) (`RaftConfig::to_openraft`, `enable_leader_restore`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_wins_a_new_term_instead_of_resuming_its_old_one() {
    let gid = 1;
    let mut c = Cluster::start(3, &[gid], cfg()).await;
    let leader = c.wait_leader(gid).await;
    let resp = within("write", c.group(leader, gid).write(b"a=1".to_vec()))
        .await
        .unwrap();
    c.wait_applied(gid, index_of(&resp)).await;
    let term = c.group(leader, gid).status().term;
    c.stop(leader).await;
    c.restart(leader).await;
    let back = c.group(leader, gid).status();
    assert!(
        !(back.is_leader && back.term == term),
        "node {leader} resumed leading term {term} at restart: {back:?}"
    );
    let now = c.wait_leader(gid).await;
    let st = c.group(now, gid).status();
    assert!(
        st.term > term,
        "led in term {} after a restart of the term-{term} leader",
        st.term
    );
    let resp = within("write", c.group(now, gid).write(b"b=2".to_vec()))
        .await
        .unwrap();
    c.wait_applied(gid, index_of(&resp)).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_by_snapshot() {
    let gid = 5;
    let cfg = RaftConfig {
        snapshot_logs_since_last: 20,
        ..cfg()
    };
    let mut c = Cluster::start(3, &[gid], cfg).await;
    let leader = c.wait_leader(gid).await;
    let idx = index_of(
        &within("write", c.group(leader, gid).write(b"first=1".to_vec()))
            .await
            .unwrap(),
    );
    c.wait_applied(gid, idx).await;

    let lagging = other_than(&c, leader);
    c.stop(lagging).await;
    let mut idx = 0;
    for i in 0..100 {
        idx = index_of(
            &within(
                "write",
                c.group(leader, gid).write(format!("k{i}={i}").into_bytes()),
            )
            .await
            .unwrap(),
        );
    }
    // The leader must have compacted past everything the lagging node has.
    let deadline = Instant::now() + WAIT;
    while c.group(leader, gid).log_stats().purged < Some(50) {
        assert!(
            Instant::now() < deadline,
            "no purge: {:?}",
            c.group(leader, gid).log_stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    c.restart(lagging).await;
    c.wait_applied(gid, idx).await;
    let g = c.group(lagging, gid);
    let probe = &c.nodes[&lagging].probes[&gid];
    // Loaded once at startup and once when the snapshot was installed.
    assert_eq!(probe.loads.load(Ordering::SeqCst), 2);
    let snap = g.log_stats().snapshot.expect("snapshot installed");
    assert!(snap >= 50, "snapshot index {snap}");
    assert!(
        probe.applied.lock().unwrap().iter().all(|&i| i > snap),
        "entries covered by the snapshot must not be applied one by one"
    );
    let want = within("read", c.group(leader, gid).read(|kv| kv.map.clone()))
        .await
        .unwrap();
    assert_eq!(want.len(), 101);
    assert_eq!(g.read_local(|kv| kv.map.clone()), want);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_joins_then_leadership_is_transferred() {
    let gid = 9;
    let mut c = Cluster::start(3, &[gid], cfg()).await;
    let leader = c.wait_leader(gid).await;
    within("write", c.group(leader, gid).write(b"a=1".to_vec()))
        .await
        .unwrap();

    c.add_node(4).await;
    let g = c.group(leader, gid).clone();
    within("add learner", g.add_learner(4, c.members[&4].clone(), true))
        .await
        .unwrap();
    within("promote", g.change_membership([1, 2, 3, 4].into(), false))
        .await
        .unwrap();
    // The change is committed once 3 of the 4 have it: the new node may still be catching up.
    let applied = g.status().last_applied.unwrap();
    c.wait_applied(gid, applied).await;
    let st = c.group(4, gid).status();
    assert_eq!(st.members, c.members);
    assert_eq!(
        c.group(4, gid)
            .read_local(|kv| kv.map.get("a").cloned())
            .as_deref(),
        Some("1")
    );

    // Drain: hand leadership to the new node.
    within("transfer", g.transfer_leader(4)).await.unwrap();
    let mut rx = c.group(4, gid).watch();
    within("new leader", rx.wait_for(|s| s.is_leader))
        .await
        .unwrap();
    assert_eq!(c.wait_leader(gid).await, 4);
    within(
        "write on new leader",
        c.group(4, gid).write(b"b=2".to_vec()),
    )
    .await
    .unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_apply_fails_halts_while_the_others_go_on() {
    let gid = 9;
    let c = Cluster::start(3, &[gid], cfg()).await;
    let leader = c.wait_leader(gid).await;
    let g = c.group(leader, gid).clone();
    within("write", g.write(b"a=1".to_vec())).await.unwrap();

    let bad = other_than(&c, leader);
    *c.nodes[&bad].probes[&gid].refuse.lock().unwrap() = Some(b"new=kind".to_vec());
    let resp = within("poisoned write", g.write(b"new=kind".to_vec()))
        .await
        .unwrap();
    let poisoned = index_of(&resp);

    // The refusing replica stops at that entry and says why.
    let mut rx = c.group(bad, gid).watch();
    let halted = within("halt", rx.wait_for(|s| s.halted.is_some())).await;
    let halt = halted.unwrap().halted.clone().unwrap();
    assert_eq!(halt.index, Some(poisoned), "{halt}");
    assert!(halt.reason.contains("test hook refuses new=kind"), "{halt}");
    let st = c.group(bad, gid).status();
    assert_eq!(st.halted, Some(halt));
    assert!(st.last_applied < Some(poisoned), "{st:?}");
    let text = c.nodes[&bad].node.metrics_text().unwrap();
    let gauge = format!("magnum_raft_group_halted{{group=\"{gid}\"}} 1");
    assert!(text.contains(&gauge), "{text}");
    let healthy = c.nodes[&leader].node.metrics_text().unwrap();
    assert!(
        healthy.contains(&format!("magnum_raft_group_halted{{group=\"{gid}\"}} 0")),
        "{healthy}"
    );
    assert!(c.group(leader, gid).status().halted.is_none());

    // The other two keep a quorum: writes commit and reads see them.
    let resp = within("write after halt", g.write(b"b=2".to_vec()))
        .await
        .unwrap();
    let ok = other_than(&c, bad);
    let third = *c.nodes.keys().find(|&&n| n != bad && n != ok).unwrap();
    for n in [ok, third] {
        let mut rx = c.group(n, gid).watch();
        within(
            "applied on a healthy replica",
            rx.wait_for(|s| s.last_applied >= Some(index_of(&resp))),
        )
        .await
        .unwrap();
        let v = c
            .group(n, gid)
            .read_local(|kv| (kv.map.get("new").cloned(), kv.map.get("b").cloned()));
        assert_eq!(v, (Some("kind".into()), Some("2".into())));
    }
    let read = within("read", g.read(|kv| kv.map.get("b").cloned()))
        .await
        .unwrap();
    assert_eq!(read.as_deref(), Some("2"));
    assert_eq!(
        c.group(bad, gid).read_local(|kv| kv.map.get("b").cloned()),
        None
    );
    c.shutdown().await;
}

/// A follower whose leader went silent asks for a pre-vote as soon as the leader's lease is
/// over, in its turn (`failover.rs`), rather than after openraft's random election timeout on
/// top of the lease. With a lease of 2.5 s and timeouts of 2–2.5 s, openraft alone elects no
/// earlier than 4.5 s after the last contact; in turn, 2.5 s plus a tick. Off, the same run
/// takes openraft's time, which shows the measurement can tell the two apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivors_campaign_in_turn_as_soon_as_the_silent_leaders_lease_is_over() {
    let gids = [0, 1, 2, 3];
    let bound = Duration::from_millis(4000);
    for prompt in [true, false] {
        let cfg = RaftConfig {
            heartbeat_ms: 100,
            election_min_ms: 2000,
            election_max_ms: 2500,
            prompt_elections: prompt,
            ..cfg()
        };
        let mut c = Cluster::start(3, &gids, cfg).await;
        let mut leaders = BTreeMap::new();
        for gid in gids {
            leaders.insert(gid, c.wait_leader(gid).await);
        }
        let old = leaders[&0];
        let led: Vec<GroupId> = gids.into_iter().filter(|g| leaders[g] == old).collect();
        let terms: BTreeMap<GroupId, u64> = led
            .iter()
            .map(|&g| (g, c.group(other_than(&c, old), g).status().term))
            .collect();
        let started = Instant::now();
        c.stop(old).await;
        let mut took = BTreeMap::new();
        for &gid in &led {
            let new = c.wait_leader(gid).await;
            took.insert(gid, started.elapsed());
            assert_ne!(new, old);
            // One campaign won it: no split vote, no second round.
            let term = c.group(new, gid).status().term;
            if prompt {
                assert_eq!(term, terms[&gid] + 1, "group {gid}");
            }
        }
        let asked: u64 = c
            .nodes
            .values()
            .map(|n| {
                let text = n.node.metrics_text().unwrap();
                text.lines()
                    .filter(|l| l.starts_with("magnum_raft_prompt_elections_total"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum();
        tracing::info!(prompt, ?took, asked, "failover");
        for (gid, t) in &took {
            if prompt {
                assert!(*t < bound, "group {gid}: new leader after {t:?}");
            } else {
                assert!(*t >= bound, "group {gid}: openraft alone elected in {t:?}");
            }
        }
        assert_eq!(asked > 0, prompt, "prompt elections asked: {asked}");
        c.shutdown().await;
    }
}

/// Under a steady stream of writes, a leadership transfer lands on its target (and not on
/// whoever an election picks after it), every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfers_under_writes_land_on_their_target() {
    let gid = 5;
    let c = Cluster::start(3, &[gid], cfg()).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let groups: Vec<Group<Kv>> = c.nodes.values().map(|n| n.groups[&gid].clone()).collect();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Whichever replica leads takes it; the others refuse at once.
                for g in &groups {
                    if g.status().is_leader
                        && g.write(format!("w{w}={i}").into_bytes()).await.is_ok()
                    {
                        i += 1;
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            i
        }));
    }
    for round in 0..6 {
        let leader = c.wait_leader(gid).await;
        let target = other_than(&c, leader);
        tokio::time::sleep(Duration::from_millis(200)).await;
        within("transfer", c.group(leader, gid).transfer_leader(target))
            .await
            .unwrap();
        let deadline = Instant::now() + WAIT;
        let new = loop {
            let l = c.wait_leader(gid).await;
            if l != leader {
                break l;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: stayed on {leader}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(new, target, "round {round}: leadership went to {new}");
    }
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    assert!(written > 50, "only {written} writes went through");
    c.shutdown().await;
}

/// Waits until every live replica of every group in `gids` is quiet.
async fn wait_quiet(c: &Cluster, gids: &[GroupId]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let loud: Vec<(NodeId, GroupId)> = c
            .nodes
            .iter()
            .flat_map(|(id, n)| gids.iter().map(move |g| (*id, *g, &n.groups[g])))
            .filter(|(_, _, g)| !g.is_quiet())
            .map(|(id, g, _)| (id, g))
            .collect();
        if loud.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still awake: {loud:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Idle groups go quiet on every replica (no heartbeats, no election timers), stay led through
/// many election timeouts, serve linearizable reads, and wake on a write without an election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_groups_go_quiet_and_wake_on_a_write_without_an_election() {
    let gids = [0, 1, 2, 3];
    let c = Cluster::start(3, &gids, cfg()).await;
    let mut leaders = BTreeMap::new();
    for gid in gids {
        let l = c.wait_leader(gid).await;
        within(
            "write",
            c.group(l, gid).write(format!("g{gid}=1").into_bytes()),
        )
        .await
        .unwrap();
        leaders.insert(gid, l);
    }
    wait_quiet(&c, &gids).await;
    let terms: Vec<u64> = gids
        .iter()
        .map(|g| c.group(leaders[g], *g).status().term)
        .collect();
    // Three election timeouts (500–1000 ms) with no heartbeat: nobody campaigns.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    wait_quiet(&c, &gids).await;
    for (i, gid) in gids.iter().enumerate() {
        let l = leaders[gid];
        assert_eq!(c.group(l, *gid).status().term, terms[i], "group {gid}");
        assert!(c.group(l, *gid).status().is_leader, "group {gid}");
        let v = within(
            "read",
            c.group(l, *gid)
                .read(|kv| kv.map.get(&format!("g{gid}")).cloned()),
        )
        .await
        .unwrap();
        assert_eq!(v.as_deref(), Some("1"));
        let v = within(
            "leased read",
            c.group(l, *gid)
                .read_leased(|kv| kv.map.get(&format!("g{gid}")).cloned()),
        )
        .await
        .unwrap();
        assert_eq!(v.as_deref(), Some("1"));
        within(
            "write",
            c.group(l, *gid).write(format!("g{gid}=2").into_bytes()),
        )
        .await
        .unwrap();
        assert!(
            !c.group(l, *gid).is_quiet(),
            "group {gid} woke for the write"
        );
        assert_eq!(
            c.group(l, *gid).status().term,
            terms[i],
            "group {gid}: no election"
        );
    }
    c.shutdown().await;
}

/// `gids` on three nodes with a 2.5-s lease (so that prompt failover stands out from
/// openraft's own timers), once every replica rests; with each group's leader.
async fn quiet_groups(gids: &[GroupId]) -> (Cluster, BTreeMap<GroupId, NodeId>) {
    let cfg = RaftConfig {
        heartbeat_ms: 100,
        election_min_ms: 2000,
        election_max_ms: 2500,
        ..cfg()
    };
    let c = Cluster::start(3, gids, cfg).await;
    let mut leaders = BTreeMap::new();
    for &gid in gids {
        leaders.insert(gid, c.wait_leader(gid).await);
    }
    wait_quiet(&c, gids).await;
    (c, leaders)
}

/// Membership changes on a quiet group land: its leader's lease has lapsed, so openraft refuses
/// them until the group is woken (a conductor added to an idle deployment waited forever on the
/// first quiet group). A learner joins one quiet group, which goes quiet again with it, and
/// then becomes a voter in place of node 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_group_takes_a_learner_and_a_new_voter() {
    let gid = 0;
    let (mut c, leaders) = quiet_groups(&[gid]).await;
    let leader = leaders[&gid];
    // Until its lease (2.5 s) runs out, a quiet leader still takes proposals.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    c.add_node(4).await;
    let g = c.group(leader, gid).clone();
    within("add learner", g.add_learner(4, c.members[&4].clone(), true))
        .await
        .unwrap();
    // Quiet again (the learner is no voter: the leader does not wait on it).
    let deadline = Instant::now() + WAIT;
    while !g.is_quiet() {
        assert!(
            Instant::now() < deadline,
            "the group did not go quiet again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let victim = [1, 2, 3].into_iter().find(|n| *n != leader).unwrap();
    let voters: BTreeSet<NodeId> = [1, 2, 3, 4].into_iter().filter(|n| *n != victim).collect();
    within("new voters", g.change_membership(voters.clone(), false))
        .await
        .unwrap();
    assert_eq!(g.status().voters, voters);
    within("write", g.write(b"after=1".to_vec())).await.unwrap();
    c.shutdown().await;
}

/// A dead leader of quiet groups is replaced about as fast as one of busy groups: its pings
/// stop, the survivors orphan its groups after one lease and campaign in turn (lease 2.5 s
/// here; openraft's timers alone would take ≥ 4.5 s, and quiet ones never fire).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_of_quiet_groups_is_replaced_promptly() {
    let gids = [0, 1, 2, 3];
    let (mut c, leaders) = quiet_groups(&gids).await;
    let old = leaders[&0];
    let led: Vec<GroupId> = gids.into_iter().filter(|g| leaders[g] == old).collect();
    let started = Instant::now();
    c.stop(old).await;
    for &gid in &led {
        let deadline = Instant::now() + WAIT;
        let new = loop {
            let l = c.wait_leader(gid).await;
            if l != old {
                break l;
            }
            assert!(Instant::now() < deadline, "group {gid}: no new leader");
        };
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(4000),
            "group {gid}: new leader after {took:?}"
        );
        within("write", c.group(new, gid).write(b"after=1".to_vec()))
            .await
            .unwrap();
    }
    c.shutdown().await;
}

/// A leader of quiet groups that restarts (stopped and back before its followers orphaned its
/// groups: its pings hardly paused) leads none of them any more, and each gets a new leader in
/// a new term at about failover speed: its followers wake when its pings stop listing the group
/// instead of waiting for pings that never stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_of_quiet_groups_is_replaced_in_a_new_term() {
    let gids = [0, 1, 2, 3];
    let (mut c, leaders) = quiet_groups(&gids).await;
    let old = leaders[&0];
    let led: Vec<GroupId> = gids.into_iter().filter(|g| leaders[g] == old).collect();
    let terms: BTreeMap<GroupId, u64> = led
        .iter()
        .map(|g| (*g, c.group(old, *g).status().term))
        .collect();
    c.stop(old).await;
    c.restart(old).await;
    let started = Instant::now();
    for &gid in &led {
        let now = c.wait_leader(gid).await;
        let st = c.group(now, gid).status();
        assert!(
            st.term > terms[&gid],
            "group {gid}: led in term {} by {now} after the term-{} leader restarted",
            st.term,
            terms[&gid]
        );
        within("write", c.group(now, gid).write(b"after=1".to_vec()))
            .await
            .unwrap();
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "new leaders after {took:?}");
    c.shutdown().await;
}

/// Leadership handed back to a leader that restarted (what the placement controller does once
/// a crashed conductor is back) lands, in quiet and busy groups alike, even when asked for the
/// moment the restarted node is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfers_back_to_a_restarted_leader() {
    let gids = [0, 1, 2, 3];
    let mut c = Cluster::start(3, &gids, cfg()).await;
    for round in 0..4 {
        let gid = gids[round % gids.len()];
        let old = c.wait_leader(gid).await;
        within(
            "write",
            c.group(old, gid).write(format!("r{round}=1").into_bytes()),
        )
        .await
        .unwrap();
        if round % 2 == 0 {
            wait_quiet(&c, &gids).await;
        }
        c.stop(old).await;
        let deadline = Instant::now() + WAIT;
        let new = loop {
            let live: Vec<GroupStatus> =
                c.nodes.values().map(|n| n.groups[&gid].status()).collect();
            if let Some(l) = live.iter().find(|s| s.is_leader) {
                break l.node;
            }
            assert!(Instant::now() < deadline, "round {round}: no new leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Down since before the election, it holds no entry of the new term: refused at once,
        // and the leader keeps taking writes (openraft's leader, once it asked, would stop
        // heartbeating and refuse writes until an election).
        match c.group(new, gid).transfer_leader(old).await {
            Err(RaftError::NotReady(_)) => {}
            other => panic!("round {round}: transfer to a node that is down: {other:?}"),
        }
        within(
            "write",
            c.group(new, gid).write(format!("r{round}=2").into_bytes()),
        )
        .await
        .unwrap();
        c.restart(old).await;
        // As the placement controller does: ask the leader to hand back, again until it has.
        // A target that has not yet taken an entry of the new term is refused at once.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let l = c.wait_leader(gid).await;
            if l == old {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: group {gid} stayed on {l}, not handed back to {old}"
            );
            match c.group(l, gid).transfer_leader(old).await {
                Ok(()) | Err(RaftError::NotReady(_)) => {}
                Err(e) => panic!("round {round}: transfer: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    c.shutdown().await;
}

/// A transfer to the leader itself (a caller's stale view) changes nothing: the leader keeps
/// taking writes in the same term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_the_leader_itself_is_a_no_op() {
    let gid = 6;
    let c = Cluster::start(3, &[gid], cfg()).await;
    let leader = c.wait_leader(gid).await;
    let g = c.group(leader, gid);
    let term = g.status().term;
    within("transfer", g.transfer_leader(leader)).await.unwrap();
    within("write", g.write(b"a=1".to_vec())).await.unwrap();
    assert_eq!(c.wait_leader(gid).await, leader);
    assert_eq!(g.status().term, term);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_seeded_from_exports_starts_where_the_backup_ends() {
    use magnum_raft::backup::{self, Seed};
    let gids = [1, 2];
    let c = Cluster::start(3, &gids, cfg()).await;
    let out = tempfile::tempdir().unwrap();
    let mut exported = BTreeMap::new();
    for gid in gids {
        let leader = c.wait_leader(gid).await;
        for i in 0..10 {
            within(
                "write",
                c.group(leader, gid)
                    .write(format!("k{i}={gid}-{i}").into_bytes()),
            )
            .await
            .unwrap();
        }
        within("barrier", c.group(leader, gid).read(|_| ()))
            .await
            .unwrap();
        let file = out.path().join(format!("g{gid}.pairs"));
        let e = c.group(leader, gid).export(&file).await.unwrap();
        assert_eq!(e.pairs, 10);
        let map = c.group(leader, gid).read_local(|kv| kv.map.clone());
        exported.insert(gid, (e.applied_index, file, map));
    }
    c.shutdown().await;

    // The reader checks the trailer: a truncated copy fails.
    let (_, file, _) = &exported[&1];
    let bytes = std::fs::read(file).unwrap();
    let cut = out.path().join("cut");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let read: Result<Vec<_>, _> = backup::read_pairs(&cut).unwrap().collect();
    assert!(read.is_err(), "a truncated file must not read");

    let seeds = |members: &BTreeMap<NodeId, NodeAddr>| -> Vec<Seed> {
        exported
            .iter()
            .map(|(gid, (applied, file, _))| Seed {
                group: *gid,
                members: members.clone(),
                applied_index: *applied,
                file: file.clone(),
            })
            .collect()
    };
    let mut c = Cluster::start_seeded(3, &gids, cfg(), |id, dir, members| {
        backup::seed_data_dir(dir, id, magnum_raft::Engine::default(), &seeds(members)).unwrap();
        // A second restore into the same dir is refused.
        assert!(
            backup::seed_data_dir(dir, id, magnum_raft::Engine::default(), &seeds(members))
                .is_err()
        );
    })
    .await;
    // Straight from disk: the exported state at the exported index, nothing applied.
    for (id, n) in &c.nodes {
        for (gid, g) in &n.groups {
            let (applied, _, map) = &exported[gid];
            assert_eq!(&g.read_local(|kv| kv.map.clone()), map, "node {id}");
            assert_eq!(g.status().last_applied, Some(*applied), "node {id}");
            assert!(n.probes[gid].applied.lock().unwrap().is_empty());
        }
    }
    for gid in gids {
        let leader = c.wait_leader(gid).await;
        let idx = index_of(
            &within(
                "write",
                c.group(leader, gid).write(b"after=restore".to_vec()),
            )
            .await
            .unwrap(),
        );
        assert!(idx > exported[&gid].0, "the log goes on after the backup");
        c.wait_applied(gid, idx).await;
    }
    // A seeded node restarts from what it has (the install is finished, not redone).
    let id = other_than(&c, c.wait_leader(1).await);
    c.stop(id).await;
    c.restart(id).await;
    assert_eq!(
        c.group(id, 1).read_local(|kv| kv.map.get("after").cloned()),
        Some("restore".to_string())
    );
    c.shutdown().await;
}
