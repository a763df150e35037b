//! The harness the in-process conductor tests share: three conductors on free loopback ports
//! with a test cloud, a client, and the commands and waits the tests use.
#![allow(dead_code)]

use magnum_conductor::cloud::Cloud;
use magnum_conductor::leader::LeaderConfig;
use magnum_conductor::node::{Conductor, ConductorConfig};
use magnum_proto::*;
use magnum_raft::{NodeAddr, RaftConfig};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A free port below the kernel's ephemeral range (32768+), so that neither a parallel test nor
/// an outgoing connection can take it between this check and the conductor's bind.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 10_000) as u16,
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

pub struct Cluster3 {
    pub nodes: BTreeMap<u64, Option<Conductor>>,
    pub cfgs: BTreeMap<u64, ConductorConfig>,
    pub _dirs: Vec<tempfile::TempDir>,
    /// The deployment CA (`ca/`) and the certificates issued so far.
    pub pki: tempfile::TempDir,
}

impl Cluster3 {
    /// A strict-mode certificate of this deployment's CA for `role`/`name` (issued once).
    pub fn tls(&self, role: magnum_net::Role, name: &str) -> magnum_net::Tls {
        tls_in(self.pki.path(), role, name)
    }
}

/// Like [`Cluster3::tls`], for a deployment's PKI dir.
pub fn tls_in(pki: &std::path::Path, role: magnum_net::Role, name: &str) -> magnum_net::Tls {
    use magnum_net::certs;
    let ca = pki.join("ca");
    if !ca.join(certs::CA_KEY).exists() {
        certs::init_ca(&ca).unwrap();
    }
    let dir = pki.join(format!("{}-{name}", role.as_str()));
    if !dir.join(certs::NODE_CERT).exists() {
        let id = magnum_net::Identity::new(role, name).unwrap();
        certs::issue(&ca, &dir, &id, &[], 1).unwrap();
    }
    magnum_net::Tls::load(&dir, magnum_net::Mode::Strict, role).unwrap()
}

pub async fn start3<C: Cloud>(cloud: Arc<C>, shards: u32) -> Cluster3 {
    start3_beating(cloud, shards, Duration::from_millis(200)).await
}

/// [`start3`] with this heartbeat interval (the first beat goes out at start).
pub async fn start3_beating<C: Cloud>(
    cloud: Arc<C>,
    shards: u32,
    heartbeat_interval: Duration,
) -> Cluster3 {
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let peers: BTreeMap<u64, NodeAddr> = ports
        .iter()
        .enumerate()
        .map(|(i, (r, s))| {
            (
                i as u64 + 1,
                NodeAddr {
                    raft: format!("127.0.0.1:{r}"),
                    service: format!("127.0.0.1:{s}"),
                },
            )
        })
        .collect();
    let mut c = Cluster3 {
        nodes: BTreeMap::new(),
        cfgs: BTreeMap::new(),
        _dirs: vec![],
        pki: tempfile::tempdir().unwrap(),
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
            raft: RaftConfig {
                heartbeat_ms: 50,
                election_min_ms: 300,
                election_max_ms: 600,
                tls: c.tls(magnum_net::Role::Conductor, &id.to_string()),
                ..RaftConfig::default()
            },
            reconciler: LeaderConfig {
                poll: Duration::from_millis(50),
                scan: Duration::from_millis(50),
                ..Default::default()
            },
            cloud: cloud.clone(),
            heartbeat_interval,
            max_in_flight: magnum_conductor::node::DEFAULT_MAX_IN_FLIGHT,
        };
        c._dirs.push(dir);
        c.nodes
            .insert(*id, Some(Conductor::start(cfg.clone()).await.unwrap()));
        c.cfgs.insert(*id, cfg);
    }
    c
}

/// One in-process deployment at a time within a test binary: several at once on a 2-core
/// machine starve each other's elections and connection accepts past the clients' deadlines
/// (CI saw `query_all_matches_per_shard_reads_across_a_leader_shutdown` time out so).
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

pub fn client(c: &Cluster3) -> ConductorClient {
    let seeds = c
        .cfgs
        .values()
        .map(|cfg| cfg.service_listen.to_string())
        .collect();
    let tls = c.tls(magnum_net::Role::Operator, "tests");
    ConductorClient::new(seeds, Duration::from_secs(20), &tls).unwrap()
}

pub fn rows(project: &ProjectId) -> (ClusterTemplate, Cluster, Vec<NodeGroup>, OperationRequest) {
    let t = magnum_proto::fixtures::template(project);
    let (c, ngs, op) = magnum_proto::fixtures::cluster_rows(&t, "k8s", 1, 3);
    (t, c, ngs, op)
}

/// A template and a cluster using it, as the API would submit them; returns the cluster id.
pub async fn create_cluster(
    cl: &ConductorClient,
    shard: ShardId,
    project: &ProjectId,
) -> ClusterId {
    let (t, cluster, nodegroups, operation) = rows(project);
    let id = cluster.uuid;
    send(
        cl,
        shard,
        ShardCommand::CreateTemplate {
            template: t,
            max_per_project: None,
        },
    )
    .await
    .unwrap();
    send(
        cl,
        shard,
        ShardCommand::CreateCluster {
            cluster,
            nodegroups,
            operation,
        },
    )
    .await
    .unwrap();
    id
}

/// Starts a stopped node again from its data dir (it rejoins; no bootstrap).
pub async fn restart(c: &mut Cluster3, id: NodeId) {
    let cfg = ConductorConfig {
        bootstrap: false,
        ..c.cfgs[&id.0].clone()
    };
    c.nodes
        .insert(id.0, Some(Conductor::start(cfg).await.unwrap()));
}

pub async fn stop_all(c: &mut Cluster3) {
    for n in c.nodes.values_mut() {
        if let Some(n) = n.take() {
            n.shutdown().await;
        }
    }
}

pub async fn send(cl: &ConductorClient, shard: ShardId, command: ShardCommand) -> ShardResponse {
    cl.command(
        shard,
        &ShardRequest {
            request_id: Some(RequestId::new_v4()),
            command,
        },
    )
    .await
    .unwrap()
}

pub async fn wait_status(
    cl: &ConductorClient,
    shard: ShardId,
    id: ClusterId,
    want: Option<ClusterStatus>,
) -> Option<ClusterView> {
    // Generous: every create makes four RSA-2048 keys, slow on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let v = match cl.query(shard, &ShardQuery::Cluster { id }).await.unwrap() {
            QueryResult::Cluster(v) => v.map(|b| *b),
            other => panic!("{other:?}"),
        };
        if v.as_ref().map(|v| v.cluster.status) == want {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "cluster never reached {want:?}: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client certificate request (PEM) with a fresh key, as `openstack coe ca sign` sends.
pub fn client_csr() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, "me");
    p.serialize_request(&key).unwrap().pem().unwrap()
}
