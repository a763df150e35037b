//! The internal plane as an attacker on the network sees it, against a real `local-cluster.sh`
//! deployment with mutual TLS (issue 12): every attack of the security review is refused (an API
//! node's certificate reaches only the projects of the users whose tokens it holds), the
//! certificates rotate under load without a restart, and a burst of 5,000 concurrent creates is
//! shed with clean 503s while every Raft group keeps its leader and term.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::template_body;
use magnum_chaos_tests::burst::terms;
use magnum_chaos_tests::load::Load;
use magnum_chaos_tests::{Deployment, Options};
use magnum_net::{InternalClient, Mode, Role, Tls};
use magnum_proto::{
    shard_of, wire, ClientError, ClusterId, ClusterStatus, ConductorClient, MetaRequest, NodeId,
    NodeState, ProjectId, QueryResult, ShardCommand, ShardId, ShardQuery, ShardRequest, TemplateId,
    Timestamp,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn status(r: reqwest::Result<reqwest::Response>) -> u16 {
    match r {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("{e:?}"),
    }
}

fn raft_addr(d: &Deployment, id: u64) -> String {
    format!("127.0.0.1:{}", d.port_base + 100 + id as u16)
}

/// A certificate of the deployment's CA, issued the way an operator would.
fn issue(d: &Deployment, role: &str, name: &str) -> Tls {
    let out = d.dir.join("tls").join(format!("extra-{role}-{name}"));
    d.issue_cert(&d.tls_dir("ca"), role, name, &out);
    Tls::load(&out, Mode::Strict, role.parse().unwrap()).unwrap()
}

fn client_of(tls: &Tls) -> InternalClient {
    InternalClient::new(tls, |b| b.timeout(Duration::from_secs(10))).unwrap()
}

/// Closed by the server within `within` after sending half a request line.
async fn slow_header_is_cut(addr: &str, within: Duration) -> Duration {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /v1/clusters HT").await.unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(within, s.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "{addr}: a partial request line held the connection for {within:?}"
    );
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_internal_plane_refuses_attacks_rotates_and_sheds() {
    let d = Deployment::up("security", Options::default());
    let svc = d.conductor_service(1);
    let raft = raft_addr(&d, 1);
    let api_port = format!("127.0.0.1:{}", d.port_base + 11);
    // Slow headers run meanwhile (each waits for the server's 10 s header-read timeout).
    let slow = {
        let (svc, api) = (svc.clone(), api_port.clone());
        tokio::spawn(async move {
            let within = Duration::from_secs(15);
            let (a, b) = tokio::join!(
                slow_header_is_cut(&svc, within),
                slow_header_is_cut(&api, within)
            );
            (a, b)
        })
    };

    // 1. No certificate: metrics only; the rest is 401, Raft included.
    let plain = client_of(&Tls::plain());
    let get = |h: &reqwest::Client, u| h.get(u);
    assert_eq!(status(plain.send(&svc, "/metrics", get).await), 200);
    assert_eq!(
        status(plain.send(&svc, wire::TOPOLOGY_PATH, get).await),
        401
    );
    let query = |h: &reqwest::Client, u| h.post(u).json(&serde_json::json!({}));
    assert_eq!(
        status(plain.send(&svc, "/internal/v1/shards/0/query", query).await),
        401
    );
    assert_eq!(
        status(plain.send(&svc, "/internal/v1/shards/0/sign", query).await),
        401
    );
    let nine = |h: &reqwest::Client, u| h.post(u).body(vec![1u8; 9]);
    assert_eq!(
        status(plain.send(&raft, "/raft/v1/1/append", nine).await),
        401
    );

    // 2. A certificate of another CA: no handshake.
    let other = d.dir.join("another-deployment");
    magnum_net::certs::init_ca(&other.join("ca")).unwrap();
    let id = magnum_net::Identity::new(Role::Conductor, "1").unwrap();
    let out = other.join("c");
    magnum_net::certs::issue(&other.join("ca"), &out, &id, &[], 1).unwrap();
    let stranger = client_of(&Tls::load(&out, Mode::Strict, Role::Conductor).unwrap());
    assert!(stranger
        .send(&svc, wire::TOPOLOGY_PATH, get)
        .await
        .unwrap_err()
        .is_connect());
    assert!(stranger
        .send(&raft, "/raft/v1/1/append", nine)
        .await
        .is_err());

    // 3. An API node's certificate: no membership changes, no Raft, no reconciler commands.
    let api_tls = issue(&d, "api", "attacker");
    let api = client_of(&api_tls);
    let drain = wire::Envelope::new(MetaRequest::SetNodeState {
        id: NodeId(2),
        state: NodeState::Draining,
    });
    let meta = |h: &reqwest::Client, u| h.post(u).json(&drain);
    assert_eq!(
        status(api.send(&svc, wire::META_COMMAND_PATH, meta).await),
        403
    );
    let one_voter = |h: &reqwest::Client, u| h.post(u).json(&serde_json::json!({"voters": [1]}));
    assert_eq!(
        status(
            api.send(&svc, "/internal/v1/groups/1/members", one_voter)
                .await
        ),
        403
    );
    assert_eq!(
        status(api.send(&raft, "/raft/v1/1/append", nine).await),
        403
    );
    let seeds: Vec<String> = (1..=3).map(|i| d.conductor_service(i)).collect();
    let as_api = ConductorClient::new(seeds, Duration::from_secs(10), &api_tls).unwrap();
    let forged = ShardCommand::SyncStatus {
        epoch: 1,
        cluster: ClusterId::new_v4(),
        status: ClusterStatus::CREATE_FAILED,
        reason: Some("forged".into()),
        outputs: None,
        at: Timestamp::now(),
    };
    match as_api
        .command(ShardId(0), &ShardRequest::from(forged))
        .await
    {
        Err(ClientError::Rejected(m)) => assert!(m.contains("shard leader's own loops"), "{m}"),
        other => panic!("a forged SyncStatus: {other:?}"),
    }

    // 3b. An API node's certificate and one user's token reach that user's project only: the
    // conductor validates the token with Keystone itself. Another project's template is out of
    // reach, by query or by command; a made-up token or none is refused.
    let (alt, alt_project) = d.login("alt_demo", "alt_demo").await;
    let demo = wire::UserToken(d.token("demo", "demo").await);
    let (code, body) = d
        .call(
            reqwest::Method::POST,
            "/clustertemplates",
            Some(&alt),
            Some(template_body("alt-only")),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let theirs: TemplateId = serde_json::from_value(body["uuid"].clone()).unwrap();
    let alt_project = ProjectId(alt_project);
    let alt_shard = shard_of(&alt_project, as_api.shards().await.unwrap());
    let ask = ShardQuery::Templates {
        project: Some(alt_project),
        include_public: false,
    };
    match as_api
        .query_all_for(Some(&demo), &ask)
        .await
        .unwrap()
        .as_slice()
    {
        answers if answers.iter().all(|r| r == &QueryResult::Templates(vec![])) => {}
        other => panic!("demo read alt_demo's templates: {other:?}"),
    }
    let delete = ShardRequest::from(ShardCommand::DeleteTemplate { id: theirs });
    for token in [
        Some(demo.clone()),
        Some(wire::UserToken("made-up".into())),
        None,
    ] {
        let r = as_api.command_for(token.as_ref(), alt_shard, &delete).await;
        assert!(matches!(r, Err(ClientError::UserRefused(_))), "{r:?}");
    }
    let path = format!("/clustertemplates/{}", theirs.0);
    let (code, _) = d.call(reqwest::Method::GET, &path, Some(&alt), None).await;
    assert_eq!(code, 200, "the template is still there");

    // 4. A conductor's certificate, but Raft bodies over their kind's bound: 413 unread.
    let peer = client_of(&issue(&d, "conductor", "2"));
    let big_vote = |h: &reqwest::Client, u| h.post(u).body(vec![0u8; 1 << 20]);
    // Answered 413 unread, then the connection closes: the client sees the 413 or its write
    // cut off, never a decoded vote.
    match peer.send(&raft, "/raft/v1/1/vote", big_vote).await {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }

    let (svc_cut, api_cut) = slow.await.unwrap();
    eprintln!("MEASURE slow header closed after: conductor {svc_cut:?}, API {api_cut:?}");
    // Nothing above moved membership.
    let st = d.status();
    assert!(
        st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "active"),
        "{st}"
    );

    // 5. Rotation under load: a new CA, every conductor and the operator reissued in place;
    // the processes reload (no restart) and not one write fails.
    let cl = d.conductor_client();
    let shards = cl.shards().await.unwrap();
    let writes = Load::start(&cl, shards, 4, "rotate", Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ca = d.tls_dir("ca");
    let ca = ca.to_str().unwrap();
    let names = [
        "conductor-1",
        "conductor-2",
        "conductor-3",
        "api",
        "operator",
    ];
    d.manage(&["certs", "rotate-ca", "--ca-dir", ca]);
    // Everyone trusts the new CA first (SIGHUP: reload now; the test's own clients poll)...
    for name in names {
        let dir = d.tls_dir(name);
        d.manage(&[
            "certs",
            "trust",
            "--ca-dir",
            ca,
            "--node-dir",
            dir.to_str().unwrap(),
        ]);
    }
    for id in 1..=3 {
        d.signal("conductor", Some(id), "HUP");
    }
    d.signal("api", None, "HUP");
    tokio::time::sleep(Duration::from_millis(5500)).await;
    // ... then every certificate is reissued by it, picked up by polling.
    for name in names {
        let dir = d.tls_dir(name);
        d.manage(&[
            "certs",
            "rotate",
            "--ca-dir",
            ca,
            "--node-dir",
            dir.to_str().unwrap(),
        ]);
    }
    // A client that trusts the new CA only gets through once every conductor presents a
    // certificate of it: they reloaded their own files (≤ 5 s poll), with no restart.
    issue(&d, "operator", "after-rotation");
    let fresh_dir = d.dir.join("tls").join("extra-operator-after-rotation");
    let bundle = std::fs::read_to_string(fresh_dir.join("ca.crt")).unwrap();
    let end = "-----END CERTIFICATE-----\n";
    let newest = &bundle[..bundle.find(end).unwrap() + end.len()];
    std::fs::write(fresh_dir.join("ca.crt"), newest).unwrap();
    let fresh = client_of(&Tls::load(&fresh_dir, Mode::Strict, Role::Operator).unwrap());
    let start = Instant::now();
    loop {
        let ok = futures_all_ok(&fresh, &d).await;
        if ok {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the conductors did not reload"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "MEASURE every conductor presents a certificate of the new CA {:?} after its rotate",
        start.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = writes.stop().await;
    let failed: Vec<_> = samples.iter().filter(|s| s.error.is_some()).collect();
    assert!(
        failed.is_empty(),
        "writes failed during rotation: {:?}",
        &failed[..failed.len().min(5)]
    );
    for id in 1..=3 {
        assert!(
            d.log(&format!("conductor-{id}"))
                .contains("internal TLS certificates reloaded"),
            "conductor {id} did not reload"
        );
    }
    eprintln!("MEASURE rotation: {} writes, 0 failed", samples.len());

    // 6. A burst of 5,000 concurrent creates through the API: 201 or a clean 503 with
    // Retry-After, no term change, and the service answers at once afterwards.
    burst(&d, 5000).await;
}

/// Every conductor answers this client's topology request.
async fn futures_all_ok(c: &InternalClient, d: &Deployment) -> bool {
    for id in 1..=3 {
        let r = c
            .send(&d.conductor_service(id), wire::TOPOLOGY_PATH, |h, u| {
                h.get(u)
            })
            .await;
        if !matches!(r, Ok(r) if r.status().is_success()) {
            return false;
        }
    }
    true
}

/// Peak open fds and RSS (KiB) of a process.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

async fn burst(d: &Deployment, n: usize) {
    let token = d.token("admin", "admin").await;
    let before = terms(d);
    let pids: Vec<(String, u32)> = ["api", "conductor-1", "conductor-2", "conductor-3"]
        .iter()
        .map(|p| (p.to_string(), d.pid(p).unwrap()))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pids, stop) = (pids.clone(), stop.clone());
        tokio::spawn(async move {
            let mut peak: BTreeMap<String, (usize, u64)> = BTreeMap::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (name, pid) in &pids {
                    let (f, r) = fds_and_rss(*pid);
                    let e = peak.entry(name.clone()).or_default();
                    *e = (e.0.max(f), e.1.max(r));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(n)
        .build()
        .unwrap();
    let url = format!("{}/clustertemplates", d.api);
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let r = http
                    .post(&url)
                    .header("X-Auth-Token", token)
                    .json(&template_body(&format!("burst-{i}")))
                    .send()
                    .await;
                match r {
                    Ok(r) => {
                        let retry_after = r.headers().contains_key("retry-after");
                        let s = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        (s, retry_after, body)
                    }
                    Err(e) => (0, false, Value::String(format!("{e:?}"))),
                }
            })
        })
        .collect();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for t in tasks {
        let (s, retry_after, body) = t.await.unwrap();
        *by_status.entry(s).or_default() += 1;
        match s {
            201 => {}
            // Past the project's template quota (200): the burst got that far, and the
            // refusal is Magnum's.
            403 => assert!(
                body["errors"][0]["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("maximum cluster templates per project")),
                "burst: HTTP 403: {body}"
            ),
            503 => {
                assert!(retry_after, "a 503 without Retry-After");
                assert!(
                    body["errors"][0]["detail"].is_string(),
                    "not Magnum's envelope: {body}"
                );
            }
            _ => panic!("burst: HTTP {s}: {body}"),
        }
    }
    let took = start.elapsed();
    // Recovery: the next request is answered at once.
    let t0 = Instant::now();
    let (s, _) = d
        .call(
            reqwest::Method::GET,
            "/clustertemplates?limit=1",
            Some(&token),
            None,
        )
        .await;
    let recovery = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    assert_eq!(s, 200);
    let after = terms(d);
    eprintln!(
        "MEASURE burst of {n} concurrent template creates in {took:?}: {by_status:?}; next request {recovery:?}; terms before {before:?} after {after:?}; peak (fds, RSS KiB) {peak:?}"
    );
    assert_eq!(before, after, "a Raft term changed during the burst");
    assert!(recovery < Duration::from_secs(2), "{recovery:?}");
    assert!(by_status.get(&201).copied().unwrap_or(0) > 0);
}
