//! The internal plane as an attacker with network access sees it: what the conductor's service
//! listener refuses (issue 12), against three in-process conductors. A test binary of its own, so
//! that it does not share the machine with `conductors.rs`' parallel deployments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use magnum_conductor::cloud::fake::FakeCloud;
use magnum_proto::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shard leader's own commands, forged with the current epoch and sent to the service
/// listener as an attacker with network access would, are refused and change nothing; so is an
/// oversized body, at once; the data dirs are owner-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciler_commands_from_the_network_are_refused() {
    let _one = one_at_a_time().await;
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud, 1).await;
    let cl = client(&c);
    let project = ProjectId::from("proj-f");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    let id = create_cluster(&cl, shard, &project).await;
    let before = wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE))
        .await
        .unwrap();
    let epoch = match cl.query(shard, &ShardQuery::Ownership).await.unwrap() {
        QueryResult::Ownership { epoch, .. } => epoch,
        other => panic!("{other:?}"),
    };
    let at = Timestamp::now();
    let forged = [
        ShardCommand::SyncStatus {
            epoch,
            cluster: id,
            status: ClusterStatus::CREATE_FAILED,
            reason: Some("forged".into()),
            outputs: None,
            at,
        },
        ShardCommand::ObserveHealth {
            epoch,
            cluster: id,
            health_status: Some("UNHEALTHY".into()),
            health_status_reason: None,
            at,
        },
        ShardCommand::TakeOwnership {
            node: NodeId(1),
            epoch: epoch + 1,
        },
        ShardCommand::RestoreStackIds {
            epoch,
            stacks: [(id, "forged".to_string())].into(),
        },
    ];
    for cmd in forged {
        let name = format!("{cmd:?}");
        match cl.command(shard, &ShardRequest::from(cmd)).await {
            Err(ClientError::Rejected(m)) => {
                assert!(m.contains("shard leader's own loops"), "{name}: {m}")
            }
            other => panic!("{name} from the network: {other:?}"),
        }
    }
    let after = wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE))
        .await
        .unwrap();
    let key = |v: &ClusterView| {
        let c = &v.cluster;
        let reason = c.status_reason.clone();
        (
            c.status,
            reason,
            c.health_status.clone(),
            c.stack_id.clone(),
        )
    };
    assert_eq!(key(&after), key(&before), "nothing changed");
    // A body over the listener's limit is refused at once (413 is not retried to the deadline).
    let big = ShardCommand::Canary {
        key: "k".into(),
        value: "v".repeat(wire::MAX_INTERNAL_BODY),
    };
    let start = Instant::now();
    match cl.command(shard, &ShardRequest::from(big)).await {
        Err(ClientError::Rejected(m)) => assert!(m.contains("413"), "{m}"),
        other => panic!("an oversized body: {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // At rest: each data dir is the conductor's own.
    #[cfg(unix)]
    for cfg in c.cfgs.values() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cfg.data_dir)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{}", cfg.data_dir.display());
    }
    stop_all(&mut c).await;
}

/// Who may call what, by certificate: no certificate gets the metrics only, an API node's
/// certificate cannot change membership or speak Raft, a certificate of another CA does not get
/// through the handshake, and Raft bodies are bounded per RPC kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identities_decide_what_a_caller_may_do() {
    use magnum_net::{InternalClient, Role};
    let _one = one_at_a_time().await;
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud, 1).await;
    let cl = client(&c);
    cl.refresh_topology().await.unwrap();
    let node = c.nodes[&1].as_ref().unwrap();
    let (svc, raft) = (node.service_addr.to_string(), node.raft_addr.to_string());
    let as_role = |role, name: &str| {
        InternalClient::new(&c.tls(role, name), |b| b.timeout(Duration::from_secs(5))).unwrap()
    };
    let status = |r: reqwest::Result<reqwest::Response>| r.map(|r| r.status().as_u16());
    let drain = wire::Envelope::new(MetaRequest::SetNodeState {
        id: NodeId(2),
        state: NodeState::Draining,
    });
    let meta_cmd = |h: &reqwest::Client, url| h.post(url).json(&drain);
    let topology = |h: &reqwest::Client, url| h.get(url);
    let append = |n: usize| move |h: &reqwest::Client, url| h.post(url).body(vec![0u8; n]);

    // No certificate: the open routes only.
    let plain = InternalClient::new(&magnum_net::Tls::plain(), |b| b).unwrap();
    assert_eq!(
        status(plain.send(&svc, "/metrics", topology).await).unwrap(),
        200
    );
    for probe in [wire::HEALTHCHECK_PATH, wire::READY_PATH] {
        assert_eq!(
            status(plain.send(&svc, probe, topology).await).unwrap(),
            200,
            "{probe}"
        );
    }
    assert_eq!(
        status(plain.send(&svc, wire::TOPOLOGY_PATH, topology).await).unwrap(),
        401
    );
    assert_eq!(
        status(plain.send(&svc, wire::META_COMMAND_PATH, meta_cmd).await).unwrap(),
        401
    );
    assert_eq!(
        status(plain.send(&raft, "/raft/v1/0/append", append(9)).await).unwrap(),
        401
    );

    // An API node: users' requests yes, membership and Raft no.
    let api = as_role(Role::Api, "a");
    assert_eq!(
        status(api.send(&svc, wire::TOPOLOGY_PATH, topology).await).unwrap(),
        200
    );
    assert_eq!(
        status(api.send(&svc, wire::META_COMMAND_PATH, meta_cmd).await).unwrap(),
        403
    );
    let members = |h: &reqwest::Client, url| h.post(url).json(&serde_json::json!({}));
    assert_eq!(
        status(
            api.send(&svc, "/internal/v1/groups/1/members", members)
                .await
        )
        .unwrap(),
        403
    );
    assert_eq!(
        status(
            api.send(&svc, "/internal/v1/groups/1/transfer", members)
                .await
        )
        .unwrap(),
        403
    );
    assert_eq!(
        status(api.send(&raft, "/raft/v1/0/append", append(9)).await).unwrap(),
        403
    );
    // A backup export holds every project's rows: not for API nodes.
    let export = wire::group_export_path(0);
    assert_eq!(
        status(api.send(&svc, &export, topology).await).unwrap(),
        403
    );
    assert_eq!(
        status(plain.send(&svc, &export, topology).await).unwrap(),
        401
    );
    // An operator may change membership and export a group, but not speak Raft.
    let op = as_role(Role::Operator, "o");
    let exported = op.send(&svc, &export, topology).await.unwrap();
    assert!(
        [200, 421].contains(&exported.status().as_u16()),
        "{}",
        exported.status()
    );
    assert_eq!(
        status(op.send(&raft, "/raft/v1/0/vote", append(9)).await).unwrap(),
        403
    );

    // A conductor certificate of another CA: refused in the handshake.
    let other = tempfile::tempdir().unwrap();
    let stranger = InternalClient::new(&tls_in(other.path(), Role::Conductor, "2"), |b| b).unwrap();
    let err = stranger
        .send(&svc, wire::TOPOLOGY_PATH, topology)
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert!(stranger
        .send(&raft, "/raft/v1/0/append", append(9))
        .await
        .is_err());

    // A real conductor's certificate: a vote of 1 MiB is refused before it is decoded, and a
    // hand-built 9-byte append is refused as undecodable; the group keeps its leader and term.
    let before = cl.refresh_topology().await.unwrap();
    // The server answers 413 without reading the rest and closes the connection, so the
    // client sees either the 413 or its write cut off; a fresh client for what follows.
    let big = as_role(Role::Conductor, "2")
        .send(&raft, "/raft/v1/0/vote", append(1 << 20))
        .await;
    assert!(
        matches!(&big, Ok(r) if r.status() == 413) || big.is_err(),
        "{big:?}"
    );
    let peer = as_role(Role::Conductor, "2");
    assert_eq!(
        status(peer.send(&raft, "/raft/v1/0/append", append(9)).await).unwrap(),
        400
    );
    let after = cl.refresh_topology().await.unwrap();
    let terms = |t: &wire::Topology| {
        t.groups
            .iter()
            .map(|g| (g.group, g.term))
            .collect::<Vec<_>>()
    };
    assert_eq!(terms(&before), terms(&after));

    // Nothing was drained.
    let pv = cl.placement().await.unwrap();
    assert!(
        pv.nodes.iter().all(|n| n.state == NodeState::Active),
        "{pv:?}"
    );
    stop_all(&mut c).await;
}

/// Sealing-key rotation online: conductors restarted with a new key and the old one as
/// previous re-seal every private key under the new one (the leader's `reseal` loop, counted
/// on `/metrics`), after which the old key can go: a CSR is signed with the new key alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_sealing_key_reseals_every_private_key() {
    use magnum_conductor::pki::sealing::CertKey;
    let _one = one_at_a_time().await;
    let cloud = Arc::new(FakeCloud::default());
    let mut c = start3(cloud, 1).await;
    let cl = client(&c);
    let project = ProjectId::from("proj-k");
    let shard = shard_of(&project, cl.shards().await.unwrap());
    let id = create_cluster(&cl, shard, &project).await;
    wait_status(&cl, shard, id, Some(ClusterStatus::CREATE_COMPLETE)).await;
    let old = c.cfgs[&1].reconciler.cert_key.clone();
    let new = CertKey::from_bytes(&std::array::from_fn(|i| i as u8 * 7 + 1));

    let restart_all = |c: &mut Cluster3, key: CertKey| {
        for cfg in c.cfgs.values_mut() {
            cfg.reconciler.cert_key = key.clone();
        }
    };
    stop_all(&mut c).await;
    restart_all(&mut c, new.clone().with_previous([old]));
    for n in 1..=3 {
        restart(&mut c, NodeId(n)).await;
    }
    let cl = client(&c);
    // The leader publishes what it found, then what is left after its proposals: 0.
    let group = u64::from(shard.0) + 1;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let passes: Vec<_> = c
            .cfgs
            .values()
            .filter_map(|cfg| cfg.reconciler.reseal.get().get(&group).copied())
            .collect();
        if passes.iter().any(|p| p.previous == 0 && p.unopenable == 0) {
            break;
        }
        assert!(Instant::now() < deadline, "never re-sealed: {passes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader = cl.leader_of(shard).await.unwrap().unwrap();
    let plain = magnum_net::InternalClient::new(&magnum_net::Tls::plain(), |b| b).unwrap();
    let svc = c.cfgs[&leader.0].service_listen.to_string();
    let page = plain
        .send(&svc, "/metrics", |h, url| h.get(url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!(
            "magnum_sealed_under_previous_key{{group=\"{group}\"}} 0"
        )),
        "{page}"
    );

    // The old key is gone from every conductor; the CA key still opens.
    stop_all(&mut c).await;
    restart_all(&mut c, new);
    for n in 1..=3 {
        restart(&mut c, NodeId(n)).await;
    }
    let cl = client(&c);
    let req = wire::SignCsr {
        cluster: id,
        csr: client_csr(),
        ca: CaKind::Kubernetes,
    };
    let signed = cl.sign(shard, &req).await.unwrap();
    assert!(matches!(signed, wire::SignResult::Signed(_)), "{signed:?}");
    stop_all(&mut c).await;
}

/// An API node acts for the user whose token it forwards, as Keystone (here the fake cloud)
/// answers for it, and the conductor checks that user itself: a member reads and changes its
/// own project's rows only, whatever the API node asks; a CSR is signed for the cluster's
/// project or an admin; no token, a made-up one, or a user's try at an operator's read is
/// refused. Conductors and operators are trusted without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarded_requests_are_served_for_the_user_only() {
    use magnum_conductor::cloud::TokenUser;
    let _one = one_at_a_time().await;
    let cloud = Arc::new(FakeCloud::default());
    let user = |project: Option<&str>, role: &str| TokenUser {
        user_id: format!("u-{project:?}-{role}"),
        project_id: project.map(str::to_string),
        roles: vec![role.to_string()],
    };
    {
        let mut tokens = cloud.tokens.lock().unwrap();
        tokens.insert("owner".into(), user(Some("proj-s"), "member"));
        tokens.insert("other".into(), user(Some("proj-t"), "member"));
        tokens.insert("admin".into(), user(Some("proj-t"), "admin"));
        tokens.insert("unscoped".into(), user(None, "member"));
    }
    let mut c = start3(cloud, 1).await;
    let operator = client(&c);
    let (mine, theirs) = (ProjectId::from("proj-s"), ProjectId::from("proj-t"));
    let shard = shard_of(&mine, operator.shards().await.unwrap());
    let id = create_cluster(&operator, shard, &mine).await;
    let their_id = create_cluster(&operator, shard, &theirs).await;
    wait_status(&operator, shard, id, Some(ClusterStatus::CREATE_COMPLETE)).await;
    let seeds = c
        .cfgs
        .values()
        .map(|cfg| cfg.service_listen.to_string())
        .collect();
    let api = ConductorClient::new(
        seeds,
        Duration::from_secs(20),
        &c.tls(magnum_net::Role::Api, "api-1"),
    )
    .unwrap();
    let token = |t: &str| wire::UserToken(t.into());
    let refused = |r: Result<QueryResult, ClientError>, what: &str| match r {
        Err(ClientError::UserRefused(_)) => {}
        other => panic!("{what}: {other:?}"),
    };

    // Reads: a member's are narrowed to its project, whatever the API node asks.
    let all = ShardQuery::Clusters { project: None };
    let ids = |r: Vec<QueryResult>| -> Vec<ClusterId> {
        r.into_iter()
            .flat_map(|r| match r {
                QueryResult::Clusters(v) => {
                    v.into_iter().map(|v| v.cluster.uuid).collect::<Vec<_>>()
                }
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let seen = ids(api
        .query_all_for(Some(&token("other")), &all)
        .await
        .unwrap());
    assert_eq!(seen, vec![their_id], "a member sees its own project only");
    let seen = ids(api
        .query_all_for(Some(&token("admin")), &all)
        .await
        .unwrap());
    assert_eq!(seen.len(), 2, "an admin sees every project");
    let by_id = ShardQuery::Cluster { id };
    for (who, visible) in [("other", false), ("owner", true), ("admin", true)] {
        let r = api.query_for(Some(&token(who)), shard, &by_id).await;
        assert_eq!(
            matches!(r, Ok(QueryResult::Cluster(Some(_)))),
            visible,
            "{who}: {r:?}"
        );
        let ca = ShardQuery::CaCert {
            id,
            kind: CaKind::Kubernetes,
        };
        let r = api.query_for(Some(&token(who)), shard, &ca).await;
        assert_eq!(
            matches!(r, Ok(QueryResult::CaCert(Some(_)))),
            visible,
            "{who}: {r:?}"
        );
    }
    refused(api.query_for(None, shard, &all).await, "no token");
    refused(
        api.query_for(Some(&token("made-up")), shard, &all).await,
        "made-up token",
    );
    refused(
        api.query_for(Some(&token("unscoped")), shard, &all).await,
        "unscoped token",
    );
    let ops = ShardQuery::Operations;
    refused(
        api.query_for(Some(&token("admin")), shard, &ops).await,
        "operator read",
    );

    // Commands: only on the member's own rows; quotas are the admin's.
    let at = Timestamp::now();
    let health = |id| {
        ShardRequest::from(ShardCommand::SetHealth {
            id,
            health_status: Some("HEALTHY".into()),
            health_status_reason: None,
            at,
        })
    };
    let quota = ShardRequest::from(ShardCommand::CreateQuota {
        quota: Quota {
            id: 0,
            project_id: mine.clone(),
            resource: "Cluster".into(),
            hard_limit: 0,
            created_at: at,
            updated_at: None,
        },
    });
    let cases = [
        (None, health(id), false),
        (Some("other"), health(id), false),
        (Some("owner"), health(their_id), false),
        (Some("owner"), quota.clone(), false),
        (Some("owner"), health(id), true),
        (Some("admin"), health(id), true),
        (Some("admin"), quota, true),
    ];
    for (who, req, ok) in cases {
        let r = api.command_for(who.map(token).as_ref(), shard, &req).await;
        match (&r, ok) {
            (Ok(Ok(_)), true) | (Err(ClientError::UserRefused(_)), false) => {}
            _ => panic!("{who:?} {:?}: {r:?}", req.command),
        }
    }

    // CSR signing: the cluster's project or an admin.
    let csr = client_csr();
    let req = wire::SignCsr {
        cluster: id,
        csr: csr.clone(),
        ca: CaKind::Kubernetes,
    };
    let cases = [
        (None, false),
        (Some("made-up"), false),
        (Some("other"), false),
        (Some("owner"), true),
        (Some("admin"), true),
    ];
    for (who, signs) in cases {
        let r = api
            .sign_for(who.map(token).as_ref(), shard, &req)
            .await
            .unwrap();
        match (&r, signs) {
            (wire::SignResult::Signed(_), true) | (wire::SignResult::Forbidden(_), false) => {}
            _ => panic!("token {who:?}: {r:?}"),
        }
    }
    // An operator is trusted with every shard.
    let r = operator.sign(shard, &req).await.unwrap();
    assert!(matches!(r, wire::SignResult::Signed(_)), "{r:?}");
    stop_all(&mut c).await;
}
