//! The mixed-version test (issue 15): a deployment of the previous release (built from git
//! history, `deploy/upgrade/previous-release`) is upgraded to HEAD one process at a time, as an
//! operator does it with `local-cluster.sh` (edit the binary in `DIR/<name>.cmd`, stop, start),
//! under a continuous client workload through both API nodes: one API node, then each conductor,
//! then the other API node, so that every old/new pairing of API node and conductor serves. Seeded (`MAGNUM_UPGRADE_SEED`):
//! the conductor order, which conductor is SIGKILLed in the middle of its upgrade and which one
//! is rolled back to the old binary before finalize.
//!
//! Must hold: zero failed client requests; while versions are mixed, a request of a kind the
//! active cluster version does not allow is refused (409, nothing logged) and `version finalize`
//! is refused naming the laggards; after finalize the kind works and the old binary refuses the
//! data dir; every cluster terminal, one Heat stack create per stack name, `manage verify` clean.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::template_body;
use magnum_chaos_tests::upgrade::{previous_release, Release};
use magnum_chaos_tests::{magnum_bin, tail, Deployment, Options};
use magnum_net::Mode;
use magnum_proto::{
    shard_of, ClientError, ClusterId, OpId, OperationRequest, QueryResult, ShardCommand,
    ShardQuery, ShardRequest, Timestamp,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 3;
/// How long one state of the workload may take (create, resize, ...).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// What the clients saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: Mutex<Vec<String>>,
    /// Cycles (template → cluster → ... → deletes) finished.
    cycles: AtomicU64,
}

/// The API nodes a client may use; the operator takes one out while it restarts, as a load
/// balancer's health check would.
struct Apis {
    urls: Vec<String>,
    up: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl Apis {
    fn pick(&self) -> &str {
        for _ in 0..self.urls.len() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len();
            if self.up[i].load(Ordering::Acquire) {
                return &self.urls[i];
            }
        }
        &self.urls[0]
    }
}

struct Client {
    http: reqwest::Client,
    apis: Arc<Apis>,
    token: String,
    tally: Arc<Tally>,
}

impl Client {
    /// One API call; a status outside `expect` is a failed request. A connection the API node
    /// refused never reached it, so it goes to the other node.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        expect: &[u16],
    ) -> Option<Value> {
        let mut refused = 0;
        loop {
            let url = format!("{}{path}", self.apis.pick());
            let mut rq = self
                .http
                .request(method.clone(), &url)
                .header("X-Auth-Token", &self.token)
                .header("OpenStack-API-Version", "container-infra latest");
            if let Some(b) = body {
                rq = rq.json(b);
            }
            match rq.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    if expect.contains(&status) {
                        self.tally.ok.fetch_add(1, Ordering::Relaxed);
                        return Some(serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    self.fail(format!("{method} {url}: {status} {text}"));
                    return None;
                }
                Err(e) if e.is_connect() && refused < 50 => {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    self.fail(format!("{method} {url}: {e}"));
                    return None;
                }
            }
        }
    }

    fn fail(&self, what: String) {
        eprintln!("FAILED REQUEST {what}");
        self.tally.failed.lock().unwrap().push(what);
    }

    /// Polls `path` until its JSON `status` is `want` (or a 404 when `want` is `None`).
    async fn wait(&self, path: &str, want: Option<&str>) -> bool {
        let start = Instant::now();
        loop {
            let Some(v) = self.call(Method::GET, path, None, &[200, 404]).await else {
                return false;
            };
            let status = v["status"].as_str();
            match want {
                None if v.is_null() || v.get("errors").is_some() => return true,
                Some(w) if status == Some(w) => return true,
                Some(_) if status.is_some_and(|s| s.ends_with("_FAILED")) => {
                    self.fail(format!("{path} ended {status:?}: {v}"));
                    return false;
                }
                _ => {}
            }
            if start.elapsed() > STEP_TIMEOUT {
                self.fail(format!("{path} not {want:?} after {STEP_TIMEOUT:?}: {v}"));
                return false;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// One cycle of every kind of request the issue lists; `false` at the first failure.
    async fn cycle(&self, name: &str, csr: &str) -> bool {
        use Method as M;
        let Some(t) = self
            .call(
                M::POST,
                "/clustertemplates",
                Some(&template_body(name)),
                &[201],
            )
            .await
        else {
            return false;
        };
        let tid = t["uuid"].as_str().unwrap_or_default().to_string();
        let tpath = format!("/clustertemplates/{tid}");
        let body =
            json!({"name": name, "cluster_template_id": tid, "master_count": 1, "node_count": 1});
        let ok = self.call(M::GET, &tpath, None, &[200]).await.is_some();
        let Some(c) = (if ok {
            self.call(M::POST, "/clusters", Some(&body), &[202]).await
        } else {
            None
        }) else {
            return false;
        };
        let cid = c["uuid"].as_str().unwrap_or_default().to_string();
        let cpath = format!("/clusters/{cid}");
        let ngpath = format!("{cpath}/nodegroups/ng");
        let resize = json!({"node_count": 2});
        let ng = json!({"name": "ng", "node_count": 1});
        let sign = json!({"cluster_uuid": cid, "csr": csr});
        self.wait(&cpath, Some("CREATE_COMPLETE")).await
            && self
                .call(
                    M::POST,
                    &format!("{cpath}/actions/resize"),
                    Some(&resize),
                    &[202],
                )
                .await
                .is_some()
            && self.wait(&cpath, Some("UPDATE_COMPLETE")).await
            && self
                .call(M::POST, &format!("{cpath}/nodegroups"), Some(&ng), &[202])
                .await
                .is_some()
            && self.wait(&ngpath, Some("CREATE_COMPLETE")).await
            && self.wait(&cpath, Some("UPDATE_COMPLETE")).await
            && self
                .call(M::POST, "/certificates", Some(&sign), &[201])
                .await
                .is_some()
            && self.call(M::DELETE, &ngpath, None, &[204]).await.is_some()
            && self.wait(&ngpath, None).await
            && self.wait(&cpath, Some("UPDATE_COMPLETE")).await
            && self.call(M::DELETE, &cpath, None, &[204]).await.is_some()
            && self.wait(&cpath, None).await
            && self.call(M::DELETE, &tpath, None, &[204]).await.is_some()
    }
}

/// Exactly one accepted stack create per stack name, and no live stack but the probe's.
fn one_stack_per_name_and_only_the_probe_left(stacks: &Value) {
    let creates = stacks["creates_by_name"].as_object().unwrap();
    let many: Vec<(&String, &Value)> = creates
        .iter()
        .filter(|(_, n)| n.as_u64() != Some(1))
        .collect();
    assert!(
        many.is_empty(),
        "stack names created more than once: {many:?}"
    );
    let live: Vec<&str> = stacks["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["deleted"] != true && s["parent"].is_null())
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(
        live.len() == 1 && live[0].starts_with("probe-"),
        "live stacks besides the probe's: {live:?}"
    );
}

/// A CSR the CA will sign (a client certificate request, as `openstack coe ca sign` sends).
fn csr() -> String {
    let kp = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "upgrade-client");
    p.serialize_request(&kp).unwrap().pem().unwrap()
}

/// The workload: `WORKERS` clients cycling until `stop`.
fn start_workload(client: Arc<Client>, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    let csr = Arc::new(csr());
    (0..WORKERS)
        .map(|w| {
            let (client, stop, csr) = (client.clone(), stop.clone(), csr.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Acquire) {
                    if client.cycle(&format!("u{w}i{i}"), &csr).await {
                        client.tally.cycles.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect()
}

/// The operator's side: drain, stop, restart on another binary, wait, undrain.
struct Operator<'a> {
    d: &'a Deployment,
    old: PathBuf,
    new: PathBuf,
    apis: Arc<Apis>,
    /// `(what, seconds)` per step, for the report.
    timings: Vec<(String, f64)>,
}

impl Operator<'_> {
    fn manage(&self, args: &[&str]) -> String {
        tokio::task::block_in_place(|| self.d.manage(args))
    }

    fn manage_output(&self, args: &[&str]) -> std::process::Output {
        tokio::task::block_in_place(|| self.d.manage_output(args))
    }

    fn script(&self, args: &[&str]) {
        tokio::task::block_in_place(|| self.d.script(args))
    }

    /// Every group settled with a leader, and conductor `id` caught up on each it votes in.
    async fn wait_healthy(&self, id: u64) {
        let start = Instant::now();
        loop {
            let out = self.manage_output(&["status", "--json"]);
            if out.status.success() {
                let st: Value = serde_json::from_slice(&out.stdout).unwrap();
                if caught_up(&st, id) {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "conductor {id} not healthy; log:\n{}",
                tail(&self.d.log(&format!("conductor-{id}")), 40)
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Moves conductor `id` to `to`; with `kill_after`, SIGKILLs it that long after the new
    /// binary started (in the middle of its upgrade) and starts it again.
    async fn move_conductor(&mut self, id: u64, to: &Path, kill_after: Option<Duration>) {
        let name = format!("conductor-{id}");
        let from = self.d.binary_of(&name);
        let what = format!(
            "conductor {id} → {}{}",
            if to == self.new { "HEAD" } else { "previous" },
            if kill_after.is_some() {
                " (SIGKILLed mid-upgrade)"
            } else {
                ""
            }
        );
        let swap = |cmd: &str| cmd.replace(from.to_str().unwrap(), to.to_str().unwrap());
        self.restart_conductor(id, what, swap, kill_after).await;
    }

    /// Drains conductor `id`, restarts it with its command line edited by `edit`, waits until
    /// it is caught up, undrains it.
    async fn restart_conductor(
        &mut self,
        id: u64,
        what: String,
        edit: impl FnOnce(&str) -> String,
        kill_after: Option<Duration>,
    ) {
        let start = Instant::now();
        let n = id.to_string();
        self.manage(&["conductor", "drain", &n, "--timeout-secs", "60"]);
        self.script(&["stop", "conductor", &n]);
        self.d.edit_cmd(&format!("conductor-{id}"), edit);
        self.script(&["start", "conductor", &n]);
        if let Some(after) = kill_after {
            tokio::time::sleep(after).await;
            self.d.signal("conductor", Some(id), "KILL");
            self.script(&["start", "conductor", &n]);
        }
        self.d.wait_conductor_up(id, Duration::from_secs(30)).await;
        self.wait_healthy(id).await;
        self.manage(&["conductor", "undrain", &n, "--timeout-secs", "60"]);
        self.timings.push((what, start.elapsed().as_secs_f64()));
    }

    /// Moves API node `i` (0: `api`, 1: `api-2`) to `to`, out of the clients' rotation meanwhile.
    async fn move_api(&mut self, i: usize, to: &Path) {
        let name = if i == 0 { "api" } else { "api-2" };
        let from = self.d.binary_of(name);
        let swap = |cmd: &str| cmd.replace(from.to_str().unwrap(), to.to_str().unwrap());
        self.restart_api(i, format!("{name} → HEAD"), swap).await;
    }

    /// Restarts API node `i` with its command line edited by `edit`, out of the clients'
    /// rotation meanwhile.
    async fn restart_api(&mut self, i: usize, what: String, edit: impl FnOnce(&str) -> String) {
        let start = Instant::now();
        let (name, id) = if i == 0 {
            ("api", None)
        } else {
            ("api-2", Some("2"))
        };
        self.apis.up[i].store(false, Ordering::Release);
        // Requests already sent to it finish before it stops (SIGTERM drains them too).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut args = vec!["stop", "api"];
        args.extend(id);
        self.script(&args);
        self.d.edit_cmd(name, edit);
        args[0] = "start";
        self.script(&args);
        self.d.wait_api(&self.apis.urls[i], name).await;
        self.apis.up[i].store(true, Ordering::Release);
        self.timings.push((what, start.elapsed().as_secs_f64()));
    }

    /// Turns mutual TLS on in the running deployment, the documented way: certificates for
    /// every process, then every process restarted `permissive` (accepts both, speaks TLS with
    /// a fallback), then every process restarted `strict`.
    async fn turn_tls_on(&mut self, order: &[u64]) {
        let ca = self.d.dir.join("tls-rollout/ca");
        let dir_of = |name: &str| self.d.dir.join("tls-rollout").join(name);
        let issue = |role: &str, name: &str, sub: &str| {
            tokio::task::block_in_place(|| self.d.issue_cert(&ca, role, name, &dir_of(sub)))
        };
        self.manage(&["certs", "init", "--ca-dir", ca.to_str().unwrap()]);
        for id in order {
            issue("conductor", &id.to_string(), &format!("conductor-{id}"));
        }
        issue("api", "1", "api");
        issue("api", "2", "api-2");
        issue("operator", "upgrade-test", "operator");
        // Operator calls follow the conductors: permissive first, strict at the end.
        self.d
            .set_operator_tls(dir_of("operator"), Mode::Permissive);
        for mode in [Mode::Permissive, Mode::Strict] {
            for &id in order {
                let tls = format!(
                    " --tls-dir {}",
                    dir_of(&format!("conductor-{id}")).display()
                );
                let set = |cmd: &str| with_tls_mode(cmd, &tls, mode);
                self.restart_conductor(id, format!("conductor {id} → {mode}"), set, None)
                    .await;
            }
            for (i, name) in [(1, "api-2"), (0, "api")] {
                let tls = format!(" --tls-dir {}", dir_of(name).display());
                let set = |cmd: &str| with_tls_mode(cmd, &tls, mode);
                self.restart_api(i, format!("{name} → {mode}"), set).await;
            }
        }
        self.d.set_operator_tls(dir_of("operator"), Mode::Strict);
    }

    /// Finalizes as soon as it is allowed: old API nodes drop out of the conductors' lists
    /// within their window.
    async fn finalize(&mut self) {
        let start = Instant::now();
        loop {
            let out = self.manage_output(&["version", "finalize"]);
            if out.status.success() {
                eprintln!("{}", String::from_utf8_lossy(&out.stdout));
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "finalize still refused: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        self.timings
            .push(("finalize".into(), start.elapsed().as_secs_f64()));
    }

    /// After finalize the previous release refuses conductor `id`'s data dir, clearly; then the
    /// conductor goes back to HEAD.
    async fn old_binary_refuses(&self, id: u64) {
        let name = format!("conductor-{id}");
        self.script(&["stop", "conductor", &id.to_string()]);
        let cmd = std::fs::read_to_string(self.d.dir.join(format!("{name}.cmd"))).unwrap();
        let cmd = cmd.replace(self.new.to_str().unwrap(), self.old.to_str().unwrap());
        // The previous release knows no TLS flags; the data version is checked before them.
        let cmd = cmd.split(" --tls-dir ").next().unwrap_or_default();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let out = tokio::task::block_in_place(|| {
            std::process::Command::new(words[0])
                .args(&words[1..])
                .output()
                .unwrap()
        });
        let log = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success(),
            "the previous release started on finalized data"
        );
        assert!(
            log.contains("on-disk data version 3 is newer than this build supports"),
            "{}",
            tail(&log, 20)
        );
        self.script(&["start", "conductor", &id.to_string()]);
        self.wait_healthy(id).await;
    }

    /// `version finalize` must be refused, and soon name `laggard` (the registry learns of a
    /// node with its next heartbeat).
    async fn finalize_refused(&self, laggard: &str) {
        let start = Instant::now();
        loop {
            let out = self.manage_output(&["version", "finalize"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "finalize passed with {laggard} behind"
            );
            if err.contains(laggard) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "refusal does not name {laggard}: {err}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// `cmd` with `--tls-dir` and `--internal-tls MODE` (replacing an earlier mode).
fn with_tls_mode(cmd: &str, tls_dir_flag: &str, mode: Mode) -> String {
    let base = match cmd.find(" --tls-dir ") {
        Some(i) => cmd[..i].to_string(),
        None => cmd.trim_end().to_string(),
    };
    format!("{base}{tls_dir_flag} --internal-tls {mode}\n")
}

/// Settled, and `id` is a voter caught up (apply lag ≤ 5, not halted) in every group.
fn caught_up(st: &Value, id: u64) -> bool {
    if st["settled"] != true {
        return false;
    }
    let key = id.to_string();
    st["groups"].as_array().into_iter().flatten().all(|g| {
        let votes = g["voters"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x.as_u64() == Some(id)));
        let r = &g["replicas"][&key];
        !votes || (r["apply_lag"].as_u64().is_some_and(|l| l <= 5) && r.get("halted").is_none())
    })
}

/// A CA rotation sent the way a release that no longer carries version 1 fields would send it;
/// the shard leader decides by the active cluster version.
async fn compact_rotate(d: &Deployment, cluster: &str) -> Result<(), ClientError> {
    let cl = d.conductor_client();
    let id = ClusterId(cluster.parse().unwrap());
    let (view, shard) = find_cluster(&cl, id).await;
    let q = ShardQuery::Templates {
        project: Some(view.cluster.project_id.clone()),
        include_public: false,
    };
    let QueryResult::Templates(ts) = cl.query(shard, &q).await.unwrap() else {
        panic!("templates")
    };
    let template = ts
        .into_iter()
        .find(|t| t.uuid == Some(view.cluster.cluster_template_id))
        .unwrap();
    let now = Timestamp::now();
    let operation = OperationRequest {
        id: OpId::new_v4(),
        started_at: now,
        deadline: now.plus_secs(600),
        template,
        trustor: None,
        legacy: None,
    };
    let cmd = ShardCommand::RotateCa {
        id,
        operation,
        at: now,
    };
    cl.command(shard, &ShardRequest::from(cmd))
        .await
        .map(|r| assert!(r.is_ok(), "{r:?}"))
}

/// The cluster's view and the shard that holds it.
async fn find_cluster(
    cl: &magnum_proto::ConductorClient,
    id: ClusterId,
) -> (magnum_proto::ClusterView, magnum_proto::ShardId) {
    let shards = cl.shards().await.unwrap();
    for s in 0..shards {
        let shard = magnum_proto::ShardId(s);
        if let Ok(QueryResult::Cluster(Some(v))) =
            cl.query(shard, &ShardQuery::Cluster { id }).await
        {
            assert_eq!(shard_of(&v.cluster.project_id, shards), shard);
            return (*v, shard);
        }
    }
    panic!("cluster {id:?} in no shard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_upgrade_from_the_previous_release_under_load() {
    let seed: u64 = std::env::var("MAGNUM_UPGRADE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("MAGNUM_UPGRADE_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let prev: Release = tokio::task::block_in_place(previous_release);
    let new = magnum_bin();
    eprintln!("previous release {} ({})", prev.commit, prev.bin.display());

    let d = Deployment::up_with(
        "upgrade",
        Options::default(),
        prev.script(),
        prev.bin.clone(),
    );
    let api2 = d.start_second_api().await;
    let apis = Arc::new(Apis {
        urls: vec![d.api.clone(), api2],
        up: vec![AtomicBool::new(true), AtomicBool::new(true)],
        next: AtomicUsize::new(0),
    });
    let token = d.token("admin", "admin").await;
    let tally = Arc::new(Tally::default());
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        apis: apis.clone(),
        token: token.clone(),
        tally: tally.clone(),
    });

    // A cluster the gated request acts on, made on the previous release.
    let t = client
        .call(
            Method::POST,
            "/clustertemplates",
            Some(&template_body("probe")),
            &[201],
        )
        .await
        .unwrap();
    let body = json!({"name": "probe", "cluster_template_id": t["uuid"], "master_count": 1, "node_count": 1});
    let probe = client
        .call(Method::POST, "/clusters", Some(&body), &[202])
        .await
        .unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        client
            .wait(&format!("/clusters/{probe}"), Some("CREATE_COMPLETE"))
            .await
    );

    let stop = Arc::new(AtomicBool::new(false));
    let workers = start_workload(client.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut op = Operator {
        d: &d,
        old: prev.bin.clone(),
        new: new.clone(),
        apis: apis.clone(),
        timings: Vec::new(),
    };
    let mut order = vec![1u64, 2, 3];
    order.shuffle(&mut rng);
    let killed = order[rng.gen_range(0..3)];
    let kill_after = Duration::from_millis(rng.gen_range(200..1500));
    let rolled_back = order[rng.gen_range(0..3)];
    eprintln!("order {order:?}, SIGKILL {killed} after {kill_after:?}, roll back {rolled_back}");

    // One API node goes first, so that a new API node meets old conductors too.
    op.move_api(1, &new).await;
    for &id in &order {
        let kill = (id == killed).then_some(kill_after);
        op.move_conductor(id, &new, kill).await;
        if id != *order.last().unwrap() {
            op.finalize_refused("conductor").await;
        }
    }
    // Every conductor is new, the API nodes are not: the version is still 1.
    let refused = compact_rotate(&d, &probe).await;
    match &refused {
        Err(ClientError::NotYetActive(m)) => {
            assert!(m.contains("RotateCa") && m.contains('2'), "{m}")
        }
        other => panic!("a version 2 request while the cluster version is 1: {other:?}"),
    }
    op.finalize_refused("an API node before cluster versions")
        .await;

    // Roll one conductor back to the previous release, then forward again.
    let old = op.old.clone();
    op.move_conductor(rolled_back, &old, None).await;
    op.finalize_refused(&format!("conductor {rolled_back}"))
        .await;
    op.move_conductor(rolled_back, &new, None).await;

    op.move_api(0, &new).await;

    op.finalize().await;
    let shown = op.manage(&["version", "show"]);
    eprintln!("{shown}");
    let want = format!(
        "active cluster version: {}",
        magnum_proto::version::FEATURE_VERSION
    );
    assert!(shown.contains(&want), "{shown}");

    // The gated kind works now.
    compact_rotate(&d, &probe).await.unwrap();
    assert!(
        client
            .wait(&format!("/clusters/{probe}"), Some("UPDATE_COMPLETE"))
            .await
    );

    // The second rolling step: mutual TLS on, under the same load.
    op.turn_tls_on(&order).await;
    let plain = magnum_net::InternalClient::new(&magnum_net::Tls::plain(), |b| b).unwrap();
    for id in 1..=3 {
        let r = plain
            .send(&d.conductor_service(id), "/internal/v1/topology", |h, u| {
                h.get(u)
            })
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "conductor {id} still serves plain HTTP");
    }

    stop.store(true, Ordering::Release);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(300), w)
            .await
            .expect("a worker did not finish its cycle")
            .unwrap();
    }

    op.old_binary_refuses(order[0]).await;

    // Every conductor reports itself again (meta rows rewritten by HEAD), then compare replicas.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let verify = op.manage_output(&["verify"]);
    assert!(
        verify.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    one_stack_per_name_and_only_the_probe_left(&d.sim_stacks().await);

    let failed = tally.failed.lock().unwrap().clone();
    eprintln!(
        "upgrade report (seed {seed}): requests ok {}, refused 1 (gated RotateCa) + {} finalize \
         refusals, failed {}; cycles {}; steps: {:?}",
        tally.ok.load(Ordering::Relaxed),
        order.len() + 1,
        failed.len(),
        tally.cycles.load(Ordering::Relaxed),
        op.timings
    );
    assert!(failed.is_empty(), "failed requests: {failed:#?}");
    assert!(tally.cycles.load(Ordering::Relaxed) >= WORKERS as u64);
}
