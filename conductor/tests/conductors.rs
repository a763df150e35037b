//! Three conductors in one process with an in-memory cloud: the create/delete operations run
//! through Raft, the ownership epoch and the reconciler, and survive the leader's shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use magnum_conductor::cloud::fake::FakeCloud;
use magnum_proto::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_and_delete_across_a_leader_shutdown() {
    let _serial = one_at_a_time().await;
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud.clone(), 2).await;
    let cl = client(&c);
    let project = ProjectId::from("proj-a");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    let id = create_cluster(&cl, shard, &project).await;

    // Stop the shard's leader while the operation runs; another node must finish it.
    let leader = cl.leader_of(shard).await.unwrap().unwrap();
    if let Some(node) = c.nodes.get_mut(&leader.0).and_then(Option::take) {
        node.shutdown().await;
    }
    let v = wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE))
        .await
        .unwrap();
    assert_eq!(v.node_addresses().len(), 3);
    assert_eq!(
        *cloud.creates.lock().unwrap(),
        1,
        "exactly one stack create reached the cloud"
    );
    let owner = match cl.query(shard, &ShardQuery::Ownership).await.unwrap() {
        QueryResult::Ownership { owner, epoch } => {
            assert!(epoch >= 2, "ownership moved with a new epoch");
            owner
        }
        other => panic!("{other:?}"),
    };
    assert_ne!(owner, Some(leader));

    let del = ShardCommand::DeleteCluster {
        id,
        op: OpId::new_v4(),
        at: Timestamp::now(),
        deadline: Timestamp::now().plus_secs(600),
    };
    send(&cl, shard, del).await.unwrap();
    assert!(wait_status(&cl, shard, id, None).await.is_none());

    // The stopped node restarts from its data dir and rejoins.
    restart(&mut c, leader).await;
    stop_all(&mut c).await;
}

/// SIGTERM's path: the stopping conductor drains itself and hands each leadership to another
/// voter before it goes (it leads nothing when it stops), the survivors lead every group, the
/// operation in flight completes under the new owner with one stack, and the node lifts its
/// own drain when it starts again (not one the operator asked for).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_hands_off_every_leadership() {
    let _serial = one_at_a_time().await;
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud.clone(), 2).await;
    let cl = client(&c);
    let project = ProjectId::from("proj-g");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    let id = create_cluster(&cl, shard, &project).await;
    let leader = cl.leader_of(shard).await.unwrap().unwrap();
    let node = c.nodes.get_mut(&leader.0).and_then(Option::take).unwrap();
    let kept = node.stop_gracefully().await;
    assert!(kept.is_empty(), "still led {kept:?} when it stopped");
    // The survivors lead every group (they may learn who a moment after the step-down).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = cl.refresh_topology().await.unwrap();
        let unled: Vec<_> = t
            .groups
            .iter()
            .filter(|g| g.leader.is_none_or(|l| l == leader))
            .map(|g| (g.group, g.leader))
            .collect();
        if unled.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not led by a survivor: {unled:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE)).await;
    assert_eq!(*cloud.creates.lock().unwrap(), 1, "one stack create");
    // It stopped drained, so the controller gave it nothing back; started again, it lifts its
    // own drain.
    assert_eq!(state_of(&cl, leader).await, NodeState::Draining);
    restart(&mut c, leader).await;
    wait_state(&cl, leader, NodeState::Active).await;
    // A drain the operator asked for outlives a graceful stop and a start.
    let drain = MetaRequest::SetNodeState {
        id: leader,
        state: NodeState::Draining,
    };
    cl.meta_command(&drain).await.unwrap();
    let node = c.nodes.get_mut(&leader.0).and_then(Option::take).unwrap();
    node.stop_gracefully().await;
    restart(&mut c, leader).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(state_of(&cl, leader).await, NodeState::Draining);
    stop_all(&mut c).await;
}

async fn state_of(cl: &ConductorClient, node: NodeId) -> NodeState {
    let p = cl.placement().await.unwrap();
    p.nodes.iter().find(|n| n.id == node).unwrap().state
}

async fn wait_state(cl: &ConductorClient, node: NodeId, want: NodeState) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while state_of(cl, node).await != want {
        assert!(Instant::now() < deadline, "node {node:?} never {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_count_update_patches_the_stack_and_completes() {
    let _serial = one_at_a_time().await;
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud.clone(), 2).await;
    let cl = client(&c);
    let project = ProjectId::from("proj-u");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    let id = create_cluster(&cl, shard, &project).await;
    // While the create runs, an update is refused by the status gate.
    let update = |n: u32| ShardCommand::UpdateCluster {
        id,
        node_count: n,
        rollback: false,
        operation: magnum_proto::fixtures::cluster_rows(
            &magnum_proto::fixtures::template(&project),
            "x",
            1,
            1,
        )
        .2,
        at: Timestamp::now(),
    };
    let early = send(&cl, shard, update(5)).await;
    assert!(
        matches!(&early, Err(CommandError::BadRequest(m)) if m.contains("CREATE_IN_PROGRESS")),
        "{early:?}"
    );
    wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE)).await;
    send(&cl, shard, update(5)).await.unwrap();
    let v = wait_status(&cl, shard, id, Some(ClusterStatus::UPDATE_COMPLETE))
        .await
        .unwrap();
    assert_eq!(v.node_count(), 5);
    assert_eq!(v.node_addresses().len(), 5);
    assert_eq!(*cloud.updates.lock().unwrap(), vec![5]);
    // The same count again changes nothing and sends nothing.
    send(&cl, shard, update(5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cloud.updates.lock().unwrap().len(), 1);
    stop_all(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_while_the_stack_create_is_in_flight_leaves_no_orphan() {
    let _serial = one_at_a_time().await;
    let cloud = Arc::new(FakeCloud::with_create_delay(Duration::from_millis(800)));
    let mut c = start3(cloud.clone(), 1).await;
    let cl = client(&c);
    let project = ProjectId::from("proj-b");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    let id = create_cluster(&cl, shard, &project).await;
    // The create call is on its way (after the certificates); the stack does not exist yet.
    let deadline = Instant::now() + Duration::from_secs(60);
    while *cloud.create_calls.lock().unwrap() == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let del = ShardCommand::DeleteCluster {
        id,
        op: OpId::new_v4(),
        at: Timestamp::now(),
        deadline: Timestamp::now().plus_secs(600),
    };
    send(&cl, shard, del).await.unwrap();
    assert!(wait_status(&cl, shard, id, None).await.is_none());
    // Give a create that escaped the delete time to land.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let live = cloud.live_stacks();
    assert!(live.is_empty(), "orphan stacks: {live:?}");
    stop_all(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_conductor_heartbeats_into_the_meta_registry() {
    let _serial = one_at_a_time().await;
    let mut c = start3(Arc::new(FakeCloud::default()), 2).await;
    let cl = client(&c);
    let deadline = Instant::now() + Duration::from_secs(30);
    let services = loop {
        let s = cl.services().await.unwrap();
        if s.len() == 3 && s.iter().all(|r| r.report_count >= 2) {
            break s;
        }
        assert!(Instant::now() < deadline, "registry never filled: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (r, (id, cfg)) in services.iter().zip(&c.cfgs) {
        assert_eq!(r.id, *id);
        assert_eq!(r.host, cfg.peers[id].service);
        assert_eq!(r.binary, "magnum-conductor");
        assert_eq!(r.version, env!("CARGO_PKG_VERSION"));
        assert!(r.created_at <= r.updated_at);
    }
    // Only Heartbeat is accepted from outside: a Bootstrap body does not decode.
    let addr = c.cfgs[&1].service_listen.to_string();
    let body = serde_json::json!({"proto": 1, "body": {"Bootstrap": {"shards": 9, "hash": "x"}}});
    let r = cl
        .http()
        .send(&addr, wire::META_COMMAND_PATH, |h, url| {
            h.post(url).json(&body)
        })
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    stop_all(&mut c).await;
}

async fn ca_pem(cl: &ConductorClient, shard: ShardId, id: ClusterId, kind: CaKind) -> String {
    match cl
        .query(shard, &ShardQuery::CaCert { id, kind })
        .await
        .unwrap()
    {
        QueryResult::CaCert(Some(p)) => p,
        other => panic!("{other:?}"),
    }
}

async fn sign(cl: &ConductorClient, shard: ShardId, id: ClusterId) -> String {
    let csr = client_csr();
    let req = wire::SignCsr {
        cluster: id,
        csr,
        ca: CaKind::Kubernetes,
    };
    match cl.sign(shard, &req).await.unwrap() {
        wire::SignResult::Signed(pem) => pem,
        other => panic!("{other:?}"),
    }
}

fn openssl_verifies(ca: &str, cert: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("ca.pem"), dir.path().join("c.pem"));
    std::fs::write(&a, ca).unwrap();
    std::fs::write(&b, format!("{cert}\n")).unwrap();
    std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&a)
        .arg(&b)
        .output()
        .expect("openssl CLI")
        .status
        .success()
}

/// Whether any file under `dir` contains `needle`.
fn dir_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            dir_contains(&p, needle)
        } else {
            std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ca_rotation_survives_a_leader_restart_and_revokes_old_certificates() {
    let _serial = one_at_a_time().await;
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud.clone(), 1).await;
    let cl = client(&c);
    let project = ProjectId::from("proj-r");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    let id = create_cluster(&cl, shard, &project).await;
    wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE)).await;
    let old_ca = ca_pem(&cl, shard, id, CaKind::Kubernetes).await;
    let old_etcd = ca_pem(&cl, shard, id, CaKind::Etcd).await;
    let old_signed = sign(&cl, shard, id).await;
    assert!(openssl_verifies(&old_ca, &old_signed));

    let op = magnum_proto::fixtures::cluster_rows(
        &magnum_proto::fixtures::template(&project),
        "x",
        1,
        1,
    )
    .2;
    send(
        &cl,
        shard,
        ShardCommand::RotateCa {
            id,
            operation: op,
            at: Timestamp::now(),
        },
    )
    .await
    .unwrap();
    // The leader goes away right after the rotation was accepted, and comes back later.
    let leader = cl.leader_of(shard).await.unwrap().unwrap();
    if let Some(node) = c.nodes.get_mut(&leader.0).and_then(Option::take) {
        node.shutdown().await;
    }
    wait_status(&cl, shard, id, Some(ClusterStatus::UPDATE_COMPLETE)).await;
    restart(&mut c, leader).await;

    let new_ca = ca_pem(&cl, shard, id, CaKind::Kubernetes).await;
    assert_ne!(new_ca, old_ca);
    assert_ne!(ca_pem(&cl, shard, id, CaKind::Etcd).await, old_etcd);
    // Certificates signed by the old CA no longer verify; new ones do.
    assert!(!openssl_verifies(&new_ca, &old_signed));
    let new_signed = sign(&cl, shard, id).await;
    assert!(openssl_verifies(&new_ca, &new_signed));
    assert!(!openssl_verifies(&old_ca, &new_signed));
    // The stack got a new service-account key pair.
    let patches = cloud.param_patches.lock().unwrap().clone();
    let last = patches
        .last()
        .expect("a parameter update reached the cloud");
    assert!(last["kube_service_account_key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(last["kube_service_account_private_key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    // Another rotation is accepted once the first finished.
    let op = magnum_proto::fixtures::cluster_rows(
        &magnum_proto::fixtures::template(&project),
        "x",
        1,
        1,
    )
    .2;
    send(
        &cl,
        shard,
        ShardCommand::RotateCa {
            id,
            operation: op,
            at: Timestamp::now(),
        },
    )
    .await
    .unwrap();
    wait_status(&cl, shard, id, Some(ClusterStatus::UPDATE_COMPLETE)).await;
    stop_all(&mut c).await;

    // At rest (Raft log, state machine, snapshots) only sealed private keys: certificates are
    // there in clear, private keys are not.
    for d in &c._dirs {
        assert!(
            dir_contains(d.path(), b"BEGIN CERTIFICATE"),
            "the data is there"
        );
        assert!(dir_contains(d.path(), b"sealed:v1:"));
        assert!(
            !dir_contains(d.path(), b"PRIVATE KEY"),
            "a clear private key at rest"
        );
    }
}

/// `query_all` answers every shard in shard order, through one multi-shard request per leader,
/// before and after a leader stops (its shards then go through the single-shard path and the
/// leader hints). A single-cluster query carries its same-shard template's labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn query_all_matches_per_shard_reads_across_a_leader_shutdown() {
    let _serial = one_at_a_time().await;
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud.clone(), 4).await;
    let cl = client(&c);
    let shards = cl.shards().await.unwrap();
    let mut made = Vec::new();
    for p in ["qa-1", "qa-2", "qa-3", "qa-4", "qa-5", "qa-6"] {
        let project = ProjectId::from(p);
        let shard = shard_of(&project, shards);
        made.push((shard, create_cluster(&cl, shard, &project).await));
    }
    let per_shard = |cl: ConductorClient| async move {
        let mut out = Vec::new();
        for s in 0..shards {
            out.push(
                cl.query(ShardId(s), &ShardQuery::Clusters { project: None })
                    .await
                    .unwrap(),
            );
        }
        out
    };
    let ids = |rs: &[QueryResult]| {
        let mut v: Vec<(u32, ClusterId)> = Vec::new();
        for (s, r) in rs.iter().enumerate() {
            match r {
                QueryResult::Clusters(cs) => {
                    v.extend(cs.iter().map(|c| (s as u32, c.cluster.uuid)))
                }
                other => panic!("{other:?}"),
            }
        }
        v.sort();
        v
    };
    let mut want: Vec<(u32, ClusterId)> = made.iter().map(|(s, id)| (s.0, *id)).collect();
    want.sort();
    let all = cl
        .query_all(&ShardQuery::Clusters { project: None })
        .await
        .unwrap();
    assert_eq!(all.len(), shards as usize);
    assert_eq!(ids(&all), want);
    assert_eq!(ids(&per_shard(cl.clone()).await), want);

    // The batch path itself: every shard is answered by exactly one node (its leader).
    let mut answered = vec![0; shards as usize];
    for cfg in c.cfgs.values() {
        let body = wire::Envelope::new(wire::MultiQuery {
            shards: (0..shards).map(ShardId).collect(),
            query: ShardQuery::Clusters { project: None },
        });
        let addr = cfg.service_listen.to_string();
        let r: wire::MultiQueryResult = cl
            .http()
            .send(&addr, wire::MULTI_QUERY_PATH, |h, url| {
                h.post(url).json(&body)
            })
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for (s, a) in r.answers.iter().enumerate() {
            answered[s] += usize::from(a.is_some());
        }
    }
    assert_eq!(answered, vec![1; shards as usize]);

    let (shard, id) = made[0];
    match cl.query(shard, &ShardQuery::Cluster { id }).await.unwrap() {
        QueryResult::Cluster(Some(v)) => {
            let (t, ..) = rows(&v.cluster.project_id);
            assert_eq!(v.template_labels, Some(t.labels));
        }
        other => panic!("{other:?}"),
    }

    let leader = cl.leader_of(shard).await.unwrap().unwrap();
    if let Some(node) = c.nodes.get_mut(&leader.0).and_then(Option::take) {
        node.shutdown().await;
    }
    let all = cl
        .query_all(&ShardQuery::Clusters { project: None })
        .await
        .unwrap();
    assert_eq!(
        ids(&all),
        want,
        "every shard answered after the leader stopped"
    );
    restart(&mut c, leader).await;
    stop_all(&mut c).await;
}
