//! What a large cloud needs of the multi-process topology (3 conductors, 16 shards, one API node,
//! cloud-sim): `--clusters` clusters seeded through the public API (`POST /v1/clusters` from
//! `--clients` concurrent clients, each cluster with its template, default nodegroups and a live
//! cloud-sim stack) until every one is `CREATE_COMPLETE`; then read latencies at that size
//! (a project's first page, an admin listing of everything page by page, shows, stats), each
//! conductor's memory and data dir, Heat requests per minute while the clusters sit idle (and,
//! with `--in-progress K`, while K creates are in progress), and a cold restart of all
//! conductors to the first answered list.
//!
//! Usage: `benches/scale.sh [OUT_DIR] [flags]` builds `magnum` and this bench in release, runs it
//! and writes `OUT_DIR/results.md` and `results.json` (default `target/bench/scale`), e.g.
//! `nice -n 19 benches/scale.sh /tmp/scale-small --clusters 300 --projects 10 --idle-window-s 60`.
//! By hand: `cargo build --release -p magnum-deploy -p magnum-benches && MAGNUM_BIN=target/release/magnum
//! target/release/scale --clusters 1000 --out /tmp/scale`. `MAGNUM_RAFT_ARGS` reaches the
//! conductors after the bench's own `--idle-sync-interval-secs`.
//!
//! Projects: cloud-sim's Keystone has a fixed directory (projects `demo`, `alt_demo`, `admin`,
//! `service`, no project create); with `--projects` N > 4 the bench starts it with
//! `--bench-projects N-4`, which seeds `bench-00000` .. on each of which the `admin` user holds
//! admin, member and reader, so the four plus those hold clusters. Any further project the
//! `admin` user holds a role on (`GET /v3/auth/projects`) is used, up to `--projects` in all;
//! the report says how many were used and on which shards they live.
//!
//! Idle Heat load: conductors look at an idle cluster's stack once per
//! `--idle-sync-interval-secs` (900 by default) once its row is older than that. The bench
//! passes a shorter interval (default 60), waits until the seeded rows are that old, counts the
//! requests cloud-sim receives over `--idle-window-s` (`GET /sim/requests`), and reports the
//! rates as measured and scaled to 900 s.
//!
//! Size: cloud-sim keeps every stack in memory and rewrites its state file after changes; a
//! fedora-coreos cluster's stack costs it about 0.7 MiB, a `heat-test` one about 0.05 MiB (300
//! clusters: 249 against 45 MiB RSS), so seed 100,000 with `--image heat-test`. Seeding is
//! bound by the conductors' CPU (about 0.3 CPU s per create, mostly the four RSA keys of
//! each cluster): 100,000 creates take some 5 to 7 hours on 2 cores.
//!
//! Certificate keys: with `--reuse-cert-keys N` (e.g. 16) the bench generates N RSA-2048 keys
//! once, into a file in the output dir (removed at exit), and starts the conductors with
//! `--insecure-bench-key-pool FILE`: every cluster's CA and client keys are then taken from
//! those N in turn instead of generated. INSECURE (clusters share CA keys), for benchmarks
//! only; the report says so ("cluster certificates: keys reused from a pool of N"), and its
//! creates per second and CPU per create then leave out key generation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use futures::FutureExt;
use magnum_chaos_tests::burst::quantile;
use magnum_chaos_tests::chaos::template_body;
use magnum_chaos_tests::{try_login, Deployment, Options};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Clone, Debug)]
struct Args {
    /// Clusters to seed.
    #[arg(long, default_value_t = 100_000)]
    clusters: usize,
    /// Projects to spread them over (cloud-sim's 4, then `bench-NNNNN` ones, see above).
    #[arg(long, default_value_t = 5000)]
    projects: usize,
    /// Image of the seeded clusters' template: `fedora-coreos-40` (driver k8s_fedora_coreos_v1,
    /// its full nested stacks) or `heat-test` (driver heat_test_v1, a few `OS::Heat::*`
    /// resources a stack: far less memory in cloud-sim, the way to seed very many).
    #[arg(long, default_value = "fedora-coreos-40")]
    image: String,
    /// Concurrent API clients seeding.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Clients wait while this many accepted clusters are unfinished (0: never). The API
    /// accepts far faster than the conductors finish, and a create queued longer than its
    /// `create_timeout` (60 min) fails: unbounded, a large run would time most of them out.
    #[arg(long, default_value_t = 1000)]
    max_in_flight: usize,
    #[arg(long, default_value_t = 16)]
    shards: u32,
    /// cloud-sim's latency multiplier (stack timeouts too).
    #[arg(long, default_value_t = 0.01)]
    time_scale: f64,
    /// Give up seeding (submitting and waiting for CREATE_COMPLETE) after this long.
    #[arg(long, default_value_t = 86_400)]
    timeout_secs: u64,
    /// The idle window over which Heat requests are counted.
    #[arg(long, default_value_t = 120)]
    idle_window_s: u64,
    /// Passed to the conductors; 0 leaves their default (900 s).
    #[arg(long, default_value_t = 60)]
    idle_sync_interval_secs: u64,
    /// Clusters kept in progress for a second window (0: skip).
    #[arg(long, default_value_t = 0)]
    in_progress: usize,
    /// The conductors' Heat poll of operations in progress (their default).
    #[arg(long, default_value_t = 2000)]
    poll_ms: u64,
    /// Page size of the admin listing of everything.
    #[arg(long, default_value_t = 50)]
    page_size: usize,
    #[arg(long, default_value_t = 200)]
    list_samples: usize,
    #[arg(long, default_value_t = 500)]
    show_samples: usize,
    #[arg(long, default_value_t = 200)]
    stats_samples: usize,
    /// How the cold restart stops the conductors: `one-by-one` (SIGTERM, each stop's drain and
    /// hand-off done before the next), `together` (SIGTERM to all at once) or `kill` (SIGKILL).
    #[arg(long, value_enum, default_value_t = Stop::OneByOne)]
    restart_stop: Stop,
    /// Cluster certificate keys from a pool of this many pre-generated ones (0: off, every
    /// create generates its four). INSECURE, benchmarks only: clusters share CA keys.
    #[arg(long, default_value_t = 0)]
    reuse_cert_keys: usize,
    /// Write results.md, results.json and logs/ here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The command line to print (the wrapper's); default: this process's.
    #[arg(long)]
    command: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    OneByOne,
    /// Seen to leave every conductor draining: started again, no group elects a leader.
    Together,
    Kill,
}

/// The conductors' idle-sync default, for scaling the idle window's rates.
const DEFAULT_IDLE_SYNC_SECS: u64 = 900;
/// Health polls write a cluster's row (UNKNOWN → HEALTHY) up to this long after its create,
/// which makes it recent again for idle sync.
const HEALTH_INTERVAL_S: u64 = 60;
/// The conductors' status sync round.
const SYNC_ROUND_S: u64 = 10;
/// The API's `[api] max_limit`: the completion tracker's page.
const TRACK_PAGE: usize = 1000;
/// (user, project) pairs of cloud-sim's seeded directory that may create clusters, the
/// non-admin ones first (the per-project list is read as `demo`, as its users would).
const SEEDED: &[(&str, &str)] = &[
    ("demo", "demo"),
    ("alt_demo", "alt_demo"),
    ("admin", "admin"),
    ("magnum", "service"),
];
const PROCS: &[&str] = &[
    "conductor-1",
    "conductor-2",
    "conductor-3",
    "api",
    "cloud-sim",
];

/// A user logged in to one project. Runs outlive tokens (an hour, as Keystone's default), so
/// the token is renewed once older than [`TOKEN_RENEW_AFTER`], as keystoneauth renews one near
/// its expiry, and again on a 401. A create carries its token to the conductor, which makes
/// the cluster's trust with it when the create's turn comes: a token accepted minutes before
/// it expired fails that create ("the requesting user's token is no longer valid").
struct Tenant {
    user: String,
    project: String,
    project_id: String,
    /// The token and when it was issued, replaced together.
    token: Mutex<(String, Instant)>,
}

impl Tenant {
    fn token(&self) -> String {
        self.token.lock().unwrap().0.clone()
    }

    fn token_is_old(&self) -> bool {
        self.token.lock().unwrap().1.elapsed() > TOKEN_RENEW_AFTER
    }
}

/// Well inside the hour a token lives, so that a create queued behind a thousand others still
/// holds a valid one when its trust is made.
const TOKEN_RENEW_AFTER: Duration = Duration::from_secs(40 * 60);

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    api: String,
    sim: String,
    auth_url: String,
}

struct Answer {
    status: u16,
    body: Value,
    ms: f64,
    retry_after: Option<u64>,
}

impl Api {
    async fn tenant(&self, user: &str, project: &str) -> Option<Tenant> {
        let (token, project_id) = try_login(&self.http, &self.auth_url, user, project).await?;
        Some(Tenant {
            user: user.into(),
            project: project.into(),
            project_id,
            token: Mutex::new((token, Instant::now())),
        })
    }

    /// Logs `t` in again; false (the old token kept) when Keystone did not answer.
    async fn renew(&self, t: &Tenant) -> bool {
        let Some((fresh, _)) = try_login(&self.http, &self.auth_url, &t.user, &t.project).await
        else {
            return false;
        };
        *t.token.lock().unwrap() = (fresh, Instant::now());
        true
    }

    /// One API call as `t` (`path` below `/v1`), with the latest microversion when `latest`.
    async fn call_as(
        &self,
        t: &Tenant,
        method: Method,
        path: &str,
        body: Option<&Value>,
        latest: bool,
    ) -> Answer {
        if t.token_is_old() {
            self.renew(t).await;
        }
        for attempt in 0..2 {
            let token = t.token();
            let mut rq = self
                .http
                .request(method.clone(), format!("{}{path}", self.api))
                .header("X-Auth-Token", &token);
            if latest {
                rq = rq.header("OpenStack-API-Version", "container-infra latest");
            }
            if let Some(b) = body {
                rq = rq.json(b);
            }
            let start = Instant::now();
            let (status, retry_after, text) = match rq.send().await {
                Ok(r) => {
                    let retry = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                    let s = r.status().as_u16();
                    (s, retry, r.text().await.unwrap_or_default())
                }
                Err(_) => (0, None, String::new()),
            };
            let ms = start.elapsed().as_secs_f64() * 1e3;
            if status == 401 && attempt == 0 && self.renew(t).await {
                continue;
            }
            return Answer {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
                ms,
                retry_after,
            };
        }
        unreachable!("the second attempt returns")
    }

    async fn call(&self, t: &Tenant, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.call_as(t, method, path, body, false).await
    }

    async fn sim_get(&self, path: &str) -> Value {
        match self.http.get(format!("{}{path}", self.sim)).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// cloud-sim's request counts (`GET /sim/requests`).
    async fn sim_requests(&self) -> BTreeMap<String, u64> {
        let v = self.sim_get("/sim/requests").await;
        v["requests"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Latencies (ms, sorted) of the answers that were 200, and how many were not.
#[derive(Default)]
struct Lat {
    ms: Vec<f64>,
    failed: usize,
}

impl Lat {
    fn push(&mut self, a: &Answer) {
        if a.status == 200 {
            self.ms.push(a.ms);
        } else {
            self.failed += 1;
        }
    }
    fn done(mut self) -> Self {
        self.ms.sort_by(f64::total_cmp);
        self
    }
    fn p(&self, q: f64) -> f64 {
        quantile(&self.ms, q)
    }
    fn json(&self) -> Value {
        json!({"samples": self.ms.len(), "failed": self.failed, "p50_ms": self.p(0.5),
            "p99_ms": self.p(0.99), "max_ms": self.p(1.0)})
    }
}

/// xorshift64: random picks without another dependency.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        Rng(uuid::Uuid::new_v4().as_u64_pair().0 | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

// ---------------------------------------------------------------- /proc

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32, tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / tck)
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
    };
    Some((kb("VmRSS:")? / 1024.0, kb("VmHWM:")? / 1024.0))
}

/// Disk usage of a tree (as `du`: allocated blocks), in MiB.
fn du_mib(dir: &Path) -> f64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total as f64 / (1024.0 * 1024.0)
}

fn cpu_all(d: &Deployment, tck: f64) -> BTreeMap<&'static str, f64> {
    PROCS
        .iter()
        .filter_map(|p| Some((*p, cpu_secs(d.pid(p)?, tck)?)))
        .collect()
}

// ---------------------------------------------------------------- counters

/// How cloud-sim's request keys group: Heat stack GETs, Heat stack listings, other Heat calls,
/// and everything else by service.
fn kind(key: &str) -> String {
    let mut parts = key.splitn(3, ' ');
    let (method, service, path) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    if service != "heat-api" {
        return format!("not Heat: {service}");
    }
    let route = path.split('?').next().unwrap_or("");
    let tail = route.split_once("/stacks").map(|(_, t)| t);
    match (method, tail) {
        ("GET", Some("" | "/detail")) => "Heat stack listings".into(),
        ("GET", Some("/{}" | "/{}/{}")) => "Heat stack GETs".into(),
        _ => "Heat, other".into(),
    }
}

fn diff(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| {
            (
                k.clone(),
                n.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn by_kind(d: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (k, n) in d {
        *out.entry(kind(k)).or_insert(0) += n;
    }
    out
}

/// `magnum_heat_stack_*` counters of the three conductors, summed per series.
async fn feed_metrics(api: &Api, d: &Deployment) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for id in 1..=3 {
        let url = format!("http://{}/metrics", d.conductor_service(id));
        let Ok(r) = api.http.get(&url).send().await else {
            continue;
        };
        for line in r.text().await.unwrap_or_default().lines() {
            if let Some((series, n)) = line
                .strip_prefix("magnum_heat_stack_")
                .and_then(|l| l.rsplit_once(' '))
            {
                *out.entry(series.to_string()).or_insert(0) +=
                    n.parse::<f64>().unwrap_or(0.0) as u64;
            }
        }
    }
    out
}

/// Heat load over a window: cloud-sim's counts by kind and by key, the conductors' looks.
struct Window {
    secs: f64,
    by_kind: BTreeMap<String, u64>,
    by_key: BTreeMap<String, u64>,
    feed: BTreeMap<String, u64>,
}

impl Window {
    async fn measure(api: &Api, d: &Deployment, secs: u64) -> Window {
        let (req0, feed0) = (api.sim_requests().await, feed_metrics(api, d).await);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (req1, feed1) = (api.sim_requests().await, feed_metrics(api, d).await);
        let secs = start.elapsed().as_secs_f64();
        let by_key = diff(&req1, &req0);
        Window {
            secs,
            by_kind: by_kind(&by_key),
            by_key,
            feed: diff(&feed1, &feed0),
        }
    }
    fn per_min(&self, n: u64) -> f64 {
        n as f64 * 60.0 / self.secs
    }
    fn kind_per_min(&self, k: &str) -> f64 {
        self.per_min(self.by_kind.get(k).copied().unwrap_or(0))
    }
    fn heat_per_min(&self) -> f64 {
        self.per_min(
            self.by_kind
                .iter()
                .filter(|(k, _)| k.starts_with("Heat"))
                .map(|(_, n)| n)
                .sum(),
        )
    }
    fn looks_per_min(&self) -> f64 {
        self.per_min(
            self.feed
                .iter()
                .filter(|(k, _)| k.starts_with("looks_total"))
                .map(|(_, n)| n)
                .sum(),
        )
    }
    /// Heat listing requests per listing the conductors sent (> 1: pages followed) and looks
    /// per listing (how well the feed batched).
    fn batching(&self) -> String {
        let sum = |pre: &str| -> u64 {
            self.feed
                .iter()
                .filter(|(k, _)| k.starts_with(pre))
                .map(|(_, n)| n)
                .sum()
        };
        let lists = sum("lists_total").max(1) as f64;
        format!(
            "{:.2} Heat requests and {:.1} looks per conductor listing",
            self.by_kind
                .get("Heat stack listings")
                .copied()
                .unwrap_or(0) as f64
                / lists,
            sum("looks_total{result=\"listed\"}") as f64 / lists
        )
    }
    fn json(&self) -> Value {
        let rates = |m: &BTreeMap<String, u64>| -> Value {
            m.iter()
                .map(|(k, n)| (k.clone(), json!(self.per_min(*n))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json!({"window_s": self.secs, "per_min_by_kind": rates(&self.by_kind), "per_min_by_request": rates(&self.by_key),
            "conductor_feed_per_min": rates(&self.feed)})
    }
}

// ---------------------------------------------------------------- seeding

struct Seeded {
    accepted: usize,
    shed: usize,
    errors: BTreeMap<u16, usize>,
    accept: Lat,
    submit_s: f64,
    complete_s: Option<f64>,
    statuses: BTreeMap<String, usize>,
    /// (seconds since the start, clusters finished), one per tracker poll.
    progress: Vec<(f64, usize)>,
    tracker_restarts: usize,
}

/// Creates `n` clusters round-robin over the tenants from `clients` clients, and follows the
/// admin listing in creation order until all of them finished.
async fn seed(
    api: &Api,
    tenants: &Arc<Vec<Tenant>>,
    admin: &Arc<Tenant>,
    templates: &[String],
    a: &Args,
) -> Seeded {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.timeout_secs);
    let next = Arc::new(AtomicUsize::new(0));
    let counts = Arc::new(Counts::default());
    let outcome = Arc::new(Mutex::new((
        Lat::default(),
        0usize,
        BTreeMap::<u16, usize>::new(),
    )));
    let templates = Arc::new(templates.to_vec());
    let clients: Vec<_> = (0..a.clients)
        .map(|_| {
            let (api, tenants, next, counts, outcome, templates) =
                (api.clone(), tenants.clone(), next.clone(), counts.clone(), outcome.clone(), templates.clone());
            let (n, max_in_flight) = (a.clusters, a.max_in_flight);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || Instant::now() > deadline {
                        return;
                    }
                    while max_in_flight > 0 && counts.in_flight() >= max_in_flight && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    let p = i % tenants.len();
                    let body = json!({"name": format!("scale-p{p}-{i}"), "cluster_template_id": templates[p],
                        "master_count": 1, "node_count": 1});
                    loop {
                        let r = api.call(&tenants[p], Method::POST, "/clusters", Some(&body)).await;
                        if let (503, Some(secs)) = (r.status, r.retry_after) {
                            // Shed before anything was written: the same create again.
                            outcome.lock().unwrap().1 += 1;
                            tokio::time::sleep(Duration::from_secs(secs.min(2))).await;
                            continue;
                        }
                        let mut o = outcome.lock().unwrap();
                        if r.status == 202 {
                            o.0.ms.push(r.ms);
                            counts.accepted.fetch_add(1, Ordering::Relaxed);
                        } else {
                            *o.2.entry(r.status).or_insert(0) += 1;
                        }
                        break;
                    }
                }
            })
        })
        .collect();
    let tracker = {
        let (api, admin, counts) = (api.clone(), admin.clone(), counts.clone());
        tokio::spawn(async move { track(&api, &admin, &counts, start, deadline).await })
    };
    for c in clients {
        c.await.unwrap();
    }
    let submit_s = start.elapsed().as_secs_f64();
    counts.submitted.store(true, Ordering::Relaxed);
    let (statuses, progress, restarts, complete) = tracker.await.unwrap();
    let (accept, shed, errors) = std::mem::take(&mut *outcome.lock().unwrap());
    Seeded {
        accepted: counts.accepted.load(Ordering::Relaxed),
        shed,
        errors,
        accept: accept.done(),
        submit_s,
        complete_s: complete.map(|c| c.duration_since(start).as_secs_f64()),
        statuses,
        progress,
        tracker_restarts: restarts,
    }
}

/// What the seeding clients and the completion tracker share.
#[derive(Default)]
struct Counts {
    /// Creates answered 202.
    accepted: AtomicUsize,
    /// Clusters the tracker saw finish (a lower bound: it stops at the first unfinished one).
    finished: AtomicUsize,
    /// Every client is done submitting.
    submitted: AtomicBool,
}

impl Counts {
    fn in_flight(&self) -> usize {
        let accepted = self.accepted.load(Ordering::Relaxed);
        accepted.saturating_sub(self.finished.load(Ordering::Relaxed))
    }
}

type Tracked = (
    BTreeMap<String, usize>,
    Vec<(f64, usize)>,
    usize,
    Option<Instant>,
);

/// Counts finished clusters as a prefix of the admin listing in creation order (`marker` =
/// the last finished one), so a poll reads only what finished since the last one. A create
/// committed behind the marker (its `created_at` older than a finished cluster's) would be
/// missed: when the listing ends short of the accepted count, it starts over.
async fn track(
    api: &Api,
    admin: &Tenant,
    counts: &Counts,
    start: Instant,
    deadline: Instant,
) -> Tracked {
    let (mut marker, mut done, mut statuses) =
        (None::<String>, 0usize, BTreeMap::<String, usize>::new());
    let (mut progress, mut restarts) = (Vec::new(), 0);
    loop {
        let mut at_end = false;
        loop {
            let m = marker
                .as_ref()
                .map(|m| format!("&marker={m}"))
                .unwrap_or_default();
            let r = api
                .call(
                    admin,
                    Method::GET,
                    &format!("/clusters?limit={TRACK_PAGE}{m}"),
                    None,
                )
                .await;
            if r.status != 200 {
                break;
            }
            let page = r.body["clusters"].as_array().cloned().unwrap_or_default();
            let mut busy = false;
            for c in &page {
                let s = c["status"].as_str().unwrap_or("?");
                if s.ends_with("IN_PROGRESS") {
                    busy = true;
                    break;
                }
                *statuses.entry(s.to_string()).or_insert(0) += 1;
                done += 1;
                marker = c["uuid"].as_str().map(str::to_string);
            }
            if busy {
                break;
            }
            if page.len() < TRACK_PAGE {
                at_end = true;
                break;
            }
        }
        progress.push((start.elapsed().as_secs_f64(), done));
        counts.finished.store(done, Ordering::Relaxed);
        let all_in = counts.submitted.load(Ordering::Relaxed);
        let want = counts.accepted.load(Ordering::Relaxed);
        if all_in && done >= want {
            return (statuses, progress, restarts, Some(Instant::now()));
        }
        if Instant::now() > deadline {
            eprintln!("scale: seeding timed out with {done} of {want} finished: {statuses:?}");
            return (statuses, progress, restarts, None);
        }
        if all_in && at_end {
            // Twice short of the count from the start: the listing misses clusters.
            if restarts == 2 {
                eprintln!("scale: the admin listing shows {done} of {want} accepted clusters");
                return (statuses, progress, restarts, None);
            }
            (marker, done, restarts) = (None, 0, restarts + 1);
            statuses.clear();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Creates/s between 10% and 90% of the completions (the steady part of the run).
fn sustained(progress: &[(f64, usize)], total: usize) -> Option<f64> {
    let at = |frac: f64| {
        progress
            .iter()
            .find(|(_, n)| *n as f64 >= frac * total as f64)
            .copied()
    };
    let ((t0, n0), (t1, n1)) = (at(0.1)?, at(0.9)?);
    (t1 > t0).then(|| (n1 - n0) as f64 / (t1 - t0))
}

// ---------------------------------------------------------------- report

struct Report {
    rows: Vec<(String, String, String)>,
    json: serde_json::Map<String, Value>,
}

impl Report {
    fn row(
        &mut self,
        what: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
    ) {
        self.rows.push((what.into(), value.into(), target.into()));
    }
    fn lat(&mut self, key: &str, what: &str, l: &Lat, target_p99: Option<f64>) {
        let target = target_p99
            .map(|t| {
                format!(
                    "p99 < {t} ms: {}",
                    if l.p(0.99) < t { "met" } else { "missed" }
                )
            })
            .unwrap_or_default();
        self.row(
            what,
            format!(
                "p50 {:.2} / p99 {:.2} / max {:.2} ms ({} samples, {} failed)",
                l.p(0.5),
                l.p(0.99),
                l.p(1.0),
                l.ms.len(),
                l.failed
            ),
            target,
        );
        self.json.insert(key.into(), l.json());
    }
    fn markdown(&self, header: &str) -> String {
        let mut s = format!("{header}\n\n| measure | value | target |\n|---|---|---|\n");
        for (w, v, t) in &self.rows {
            let _ = writeln!(s, "| {w} | {v} | {t} |");
        }
        s
    }
}

fn mib(x: f64) -> String {
    format!("{x:.0} MiB")
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let command = a
        .command
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let mut raft_args = String::new();
    if a.idle_sync_interval_secs > 0 {
        raft_args = format!("--idle-sync-interval-secs {}", a.idle_sync_interval_secs);
    }
    let key_file = (a.reuse_cert_keys > 0).then(|| bench_key_file(&a));
    if let Some(f) = &key_file {
        raft_args = format!("{raft_args} --insecure-bench-key-pool {}", f.display())
            .trim()
            .to_string();
    }
    if let Ok(extra) = std::env::var("MAGNUM_RAFT_ARGS") {
        raft_args = format!("{raft_args} {extra}").trim().to_string();
    }
    // cloud-sim seeds the projects past its own four (all the admin's, found by `setup`).
    let bench_projects = a.projects.saturating_sub(SEEDED.len());
    let per_project = a.clusters.div_ceil(a.projects.max(1)) + a.in_progress;
    let mut sim_args = format!("--max-stacks-per-tenant {}", per_project + 100);
    if bench_projects > 0 {
        sim_args = format!("{sim_args} --bench-projects {bench_projects}");
    }
    let d = Deployment::up(
        "bench-scale",
        Options {
            shards: a.shards,
            poll_ms: a.poll_ms,
            time_scale: a.time_scale,
            raft_args: raft_args.clone(),
            sim_args,
            ..Options::default()
        },
    );
    let outcome = std::panic::AssertUnwindSafe(run(&d, &a, &command, &raft_args))
        .catch_unwind()
        .await;
    if let Some(out) = &a.out {
        let logs = out.join("logs");
        let _ = std::fs::create_dir_all(&logs);
        for e in std::fs::read_dir(d.dir.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::copy(e.path(), logs.join(e.file_name()));
        }
    }
    // Thrown away (Deployment's drop: `local-cluster.sh down`, SIGKILL).
    drop(d);
    // Private keys have no place among results that may be committed.
    if let Some(f) = &key_file {
        let _ = std::fs::remove_file(f);
    }
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

/// `--reuse-cert-keys N`: N keys generated once, in `--out` (else the temp dir), for the
/// conductors' `--insecure-bench-key-pool`; an absolute path without spaces, as
/// MAGNUM_RAFT_ARGS is split on whitespace and the conductors run elsewhere.
fn bench_key_file(a: &Args) -> PathBuf {
    let dir = a.out.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::path::absolute(dir.join(format!("bench-cert-keys-{}.pem", std::process::id())))
        .unwrap();
    assert!(
        !file.to_string_lossy().contains(char::is_whitespace),
        "--reuse-cert-keys: the key file's path {} has whitespace",
        file.display()
    );
    let t = Instant::now();
    magnum_conductor::pki::certs::write_bench_key_file(&file, a.reuse_cert_keys).unwrap();
    println!(
        "scale: {} cluster certificate keys in {} ({:.1} s); INSECURE, clusters share them",
        a.reuse_cert_keys,
        file.display(),
        t.elapsed().as_secs_f64()
    );
    file
}

/// How the report names where cluster certificate keys came from.
fn cert_keys(a: &Args) -> String {
    match a.reuse_cert_keys {
        0 => "generated, four RSA-2048 keys per create".into(),
        n => format!("keys reused from a pool of {n} (benchmark only)"),
    }
}

/// What every phase shares.
struct Bench<'a> {
    d: &'a Deployment,
    a: &'a Args,
    api: Api,
    admin: Arc<Tenant>,
    tenants: Arc<Vec<Tenant>>,
    /// Shard → projects on it.
    shards: BTreeMap<u32, usize>,
    rep: Report,
}

async fn run(d: &Deployment, a: &Args, command: &str, raft_args: &str) {
    let mut b = Bench::setup(d, a).await;
    let templates = b.quotas_and_templates().await;
    let (seeded, seeded_at) = b.seed(&templates).await;
    b.reads(seeded).await;
    b.verify_stacks(seeded).await;
    b.memory();
    let idle = b.idle(seeded, seeded_at).await;
    b.settled_listing(seeded).await;
    if a.in_progress > 0 {
        b.in_progress(&idle).await;
    }
    b.restart().await;
    b.replace(seeded).await;
    b.write(command, raft_args, &idle);
}

impl<'a> Bench<'a> {
    /// Logs in to the projects: cloud-sim's seeded ones, then any other the admin holds a role on.
    async fn setup(d: &'a Deployment, a: &'a Args) -> Bench<'a> {
        let api = Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .pool_max_idle_per_host(a.clients + 8)
                .build()
                .unwrap(),
            api: d.api.clone(),
            sim: d.sim.clone(),
            auth_url: d.auth_url(),
        };
        let admin = Arc::new(api.tenant("admin", "admin").await.expect("admin login"));
        let mut pairs: Vec<(String, String)> = SEEDED
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect();
        let token = admin.token();
        let mine = api
            .http
            .get(format!("{}/auth/projects", api.auth_url))
            .header("X-Auth-Token", token)
            .send()
            .await
            .expect("auth/projects")
            .json::<Value>()
            .await
            .unwrap_or(Value::Null);
        // A set: with bench projects the admin holds thousands.
        let mut seen: HashSet<String> = pairs.iter().map(|(_, p)| p.clone()).collect();
        for p in mine["projects"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            if seen.insert(name.clone()) {
                pairs.push(("admin".into(), name));
            }
        }
        let mut tenants = Vec::new();
        for (u, p) in pairs.iter().take(a.projects.max(1)) {
            if let Some(t) = api.tenant(u, p).await {
                tenants.push(t);
            }
        }
        let mut shards = BTreeMap::new();
        for t in &tenants {
            let p = magnum_proto::ProjectId(t.project_id.clone());
            *shards
                .entry(magnum_proto::shard_of(&p, a.shards).0)
                .or_insert(0) += 1;
        }
        println!(
            "scale: {} projects (asked {}), on shards {shards:?}",
            tenants.len(),
            a.projects
        );
        Bench {
            d,
            a,
            api,
            admin,
            tenants: Arc::new(tenants),
            shards,
            rep: Report {
                rows: Vec::new(),
                json: serde_json::Map::new(),
            },
        }
    }

    fn per_project(&self) -> usize {
        self.a.clusters.div_ceil(self.tenants.len())
    }

    /// Quotas (Magnum's clusters, Nova's servers) and one template per project; the templates.
    async fn quotas_and_templates(&self) -> Vec<String> {
        let (api, admin) = (&self.api, &self.admin);
        let mut templates = Vec::new();
        for (i, t) in self.tenants.iter().enumerate() {
            // The first project also holds the clusters kept in progress.
            let extra = if i == 0 { self.a.in_progress } else { 0 };
            let limit = self.per_project() + extra + 10;
            let body =
                json!({"project_id": t.project_id, "resource": "Cluster", "hard_limit": limit});
            let r = api.call(admin, Method::POST, "/quotas", Some(&body)).await;
            assert!(
                r.status == 201 || r.status == 200,
                "quota for {}: {} {}",
                t.project,
                r.status,
                r.body
            );
            let token = admin.token();
            let r = api
                .http
                .put(format!(
                    "{}/compute/v2.1/os-quota-sets/{}",
                    api.sim, t.project_id
                ))
                .header("X-Auth-Token", token)
                .json(&json!({"quota_set": {"instances": -1, "cores": -1}}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "nova quota: {}", r.status());
            let body = template(&self.a.image, &format!("scale-{i}"), json!({}));
            let r = api
                .call(t, Method::POST, "/clustertemplates", Some(&body))
                .await;
            assert_eq!(r.status, 201, "template: {}", r.body);
            templates.push(r.body["uuid"].as_str().unwrap().to_string());
        }
        templates
    }

    /// Seeds the clusters; how many were accepted, and when the last one finished.
    async fn seed(&mut self, templates: &[String]) -> (usize, Instant) {
        let (a, d, api) = (self.a, self.d, &self.api);
        let tck = clk_tck();
        let (cpu0, req0) = (cpu_all(d, tck), api.sim_requests().await);
        let self0 = cpu_secs(std::process::id(), tck).unwrap_or(0.0);
        let s = seed(api, &self.tenants, &self.admin, templates, a).await;
        let (cpu1, req1) = (cpu_all(d, tck), api.sim_requests().await);
        let self_cpu = cpu_secs(std::process::id(), tck).unwrap_or(0.0) - self0;
        let seeded_at = Instant::now();
        let n = s.accepted.max(1) as f64;
        let cpu: BTreeMap<&str, f64> = cpu1
            .iter()
            .map(|(p, c)| (*p, c - cpu0.get(p).copied().unwrap_or(0.0)))
            .collect();
        let conductors: f64 = cpu
            .iter()
            .filter(|(p, _)| p.starts_with("conductor"))
            .map(|(_, c)| c)
            .sum();
        let requests_by_key = diff(&req1, &req0);
        let requests = by_kind(&requests_by_key);
        let complete = s.statuses.get("CREATE_COMPLETE").copied().unwrap_or(0);
        let sus = sustained(&s.progress, s.accepted);
        let shards = self
            .shards
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rep = &mut self.rep;
        rep.row(
            "clusters created (202) / asked",
            format!("{} / {}", s.accepted, a.clusters),
            "",
        );
        rep.row(
            "projects used / asked (shard: projects)",
            format!("{} / {} ({shards})", self.tenants.len(), a.projects),
            "",
        );
        let all_complete = complete == s.accepted && complete > 0;
        rep.row(
            "final statuses",
            format!("{:?}", s.statuses),
            format!("all CREATE_COMPLETE: {}", yes(all_complete)),
        );
        rep.row(
            "create errors (status: n) / shed 503s retried",
            format!("{:?} / {}", s.errors, s.shed),
            "",
        );
        rep.lat("accept", "POST /v1/clusters → 202", &s.accept, None);
        rep.row(
            format!(
                "creates accepted per s (until all were submitted; at most {} unfinished)",
                a.max_in_flight
            ),
            format!(
                "{:.2} ({:.1} s)",
                s.accepted as f64 / s.submit_s,
                s.submit_s
            ),
            "",
        );
        rep.row(
            "creates completed per s (until all were CREATE_COMPLETE)",
            match s.complete_s {
                Some(c) => format!("{:.2} ({c:.1} s)", s.accepted as f64 / c),
                None => format!("timed out after {} s", a.timeout_secs),
            },
            "",
        );
        rep.row(
            "creates completed per s, from 10% to 90% done",
            sus.map_or("-".into(), |r| format!("{r:.2}")),
            "",
        );
        rep.row("cluster certificates", cert_keys(a), "");
        rep.row(
            "CPU s per create, 3 conductors",
            format!("{:.3} ({conductors:.1} s in all)", conductors / n),
            "",
        );
        for p in ["api", "cloud-sim"] {
            let c = cpu.get(p).copied().unwrap_or(f64::NAN);
            rep.row(
                format!("CPU s per create, {p}"),
                format!("{:.3} ({c:.1} s in all)", c / n),
                "",
            );
        }
        rep.row(
            "CPU s per create, this bench (clients, tracker)",
            format!("{:.3}", self_cpu / n),
            "",
        );
        rep.row(
            "cloud-sim requests per create while seeding",
            requests
                .iter()
                .map(|(k, c)| format!("{k} {:.1}", *c as f64 / n))
                .collect::<Vec<_>>()
                .join("; "),
            "",
        );
        if s.tracker_restarts > 0 {
            rep.row(
                "completion tracker restarts (a commit landed behind its marker)",
                s.tracker_restarts.to_string(),
                "",
            );
        }
        let per_create = |m: &BTreeMap<String, u64>| -> serde_json::Map<_, _> {
            m.iter()
                .map(|(k, c)| (k.clone(), json!(*c as f64 / n)))
                .collect()
        };
        rep.json.insert(
            "seeding".into(),
            json!({"accepted": s.accepted, "asked": a.clusters, "projects": self.tenants.len(),
                "shards_used": self.shards, "statuses": s.statuses, "errors": s.errors, "shed": s.shed,
                "submit_s": s.submit_s, "complete_s": s.complete_s,
                "accepted_per_s": s.accepted as f64 / s.submit_s,
                "completed_per_s": s.complete_s.map(|c| s.accepted as f64 / c), "sustained_per_s": sus,
                "cpu_s": cpu, "cpu_s_per_create_conductors": conductors / n, "cpu_s_bench": self_cpu,
                "requests_per_create": per_create(&requests),
                "requests_per_create_by_key": per_create(&requests_by_key), "tracker_restarts": s.tracker_restarts,
                "progress": s.progress}),
        );
        (s.accepted, seeded_at)
    }

    /// Read latencies at this size.
    /// The admin's listing of everything, page by page: each page's latency and the count
    /// checked against `seeded`, reported under `key` (`what` tells the rows apart). Returns
    /// every listed (uuid, name).
    async fn admin_listing(
        &mut self,
        seeded: usize,
        key: &str,
        what: &str,
    ) -> Vec<(String, String)> {
        let (a, api, admin) = (self.a, &self.api, &self.admin);
        let (mut pages, mut all, mut seen) = (Lat::default(), Vec::new(), HashSet::new());
        let listing = Instant::now();
        let mut listing_ok = true;
        loop {
            let m = all
                .last()
                .map(|(u, _): &(String, String)| format!("&marker={u}"))
                .unwrap_or_default();
            let path = format!("/clusters?limit={}{m}", a.page_size);
            let r = api.call(admin, Method::GET, &path, None).await;
            pages.push(&r);
            if r.status != 200 {
                listing_ok = false;
                break;
            }
            let page = r.body["clusters"].as_array().cloned().unwrap_or_default();
            for c in &page {
                let u = c["uuid"].as_str().unwrap_or_default().to_string();
                seen.insert(u.clone());
                all.push((u, c["name"].as_str().unwrap_or_default().to_string()));
            }
            if page.len() < a.page_size || listing.elapsed() > Duration::from_secs(a.timeout_secs) {
                break;
            }
        }
        let listing_s = listing.elapsed().as_secs_f64();
        let pages = pages.done();
        let row = format!(
            "admin listing{what}, GET /v1/clusters?limit={}&marker=… per page",
            a.page_size
        );
        self.rep
            .lat(&format!("{key}_page"), &row, &pages, Some(20.0));
        let count_ok = listing_ok && all.len() == seeded && seen.len() == all.len();
        self.rep.row(
            format!("admin listing{what} of everything: pages, time, clusters (distinct)"),
            format!(
                "{} pages, {listing_s:.1} s, {} ({})",
                pages.ms.len() + pages.failed,
                all.len(),
                seen.len()
            ),
            format!("count = {seeded}: {}", yes(count_ok)),
        );
        self.rep.json.insert(
            format!("{key}_all"),
            json!({"pages": pages.ms.len(), "seconds": listing_s, "clusters": all.len(),
                "distinct": seen.len(), "expected": seeded, "ok": count_ok}),
        );
        all
    }

    /// The admin's listing again once the deployment has settled (after the idle window: no
    /// create finishing, no first health polls writing), apart from the one right after the
    /// seeding.
    async fn settled_listing(&mut self, seeded: usize) {
        self.admin_listing(seeded, "list_admin_settled", " after the idle window")
            .await;
    }

    async fn reads(&mut self, seeded: usize) {
        let (a, api) = (self.a, &self.api);
        let mut list = Lat::default();
        for _ in 0..a.list_samples {
            let t = &self.tenants[0];
            list.push(&api.call(t, Method::GET, "/clusters?limit=50", None).await);
        }
        let what = format!(
            "GET /v1/clusters?limit=50 as {} (one project, {} clusters)",
            self.tenants[0].user,
            self.per_project()
        );
        self.rep
            .lat("list_project", &what, &list.done(), Some(20.0));

        let all = self.admin_listing(seeded, "list_admin", "").await;
        let (a, api, admin) = (self.a, &self.api, &self.admin);

        // Shows of random clusters, as their project and as the admin; their nodegroups.
        let projects = self.tenants.len();
        let owner = |name: &str| -> usize {
            name.strip_prefix("scale-p")
                .and_then(|r| r.split('-').next()?.parse().ok())
                .filter(|p: &usize| *p < projects)
                .unwrap_or(0)
        };
        let mut rng = Rng::new();
        let (mut show, mut show_admin, mut ngs_ok) = (Lat::default(), Lat::default(), 0usize);
        // A project's first request makes the API validate its token with Keystone (cloud-sim
        // here; cached for 60 s after): timed apart, so the show measures Magnum's read.
        let (mut first_call, mut warm) = (Lat::default(), HashSet::new());
        if !all.is_empty() {
            for _ in 0..a.show_samples {
                let (u, name) = &all[rng.below(all.len())];
                let t = &self.tenants[owner(name)];
                let path = format!("/clusters/{u}");
                if warm.insert(owner(name)) {
                    first_call.push(&api.call(t, Method::GET, &path, None).await);
                }
                show.push(&api.call(t, Method::GET, &path, None).await);
            }
            for _ in 0..a.show_samples {
                let (u, _) = &all[rng.below(all.len())];
                let path = format!("/clusters/{u}");
                show_admin.push(&api.call(admin, Method::GET, &path, None).await);
            }
            for _ in 0..20 {
                let (u, name) = &all[rng.below(all.len())];
                let t = &self.tenants[owner(name)];
                let path = format!("/clusters/{u}/nodegroups");
                let r = api.call_as(t, Method::GET, &path, None, true).await;
                let roles: HashSet<&str> = r.body["nodegroups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g["role"].as_str())
                    .collect();
                ngs_ok += usize::from(
                    r.status == 200 && roles.contains("master") && roles.contains("worker"),
                );
            }
        }
        self.rep.lat(
            "show_owner",
            "GET /v1/clusters/{id}, random clusters, as their project (token validated before)",
            &show.done(),
            Some(10.0),
        );
        self.rep.lat(
            "show_owner_first",
            "the same, a project's first request (its token validated with Keystone)",
            &first_call.done(),
            None,
        );
        self.rep.lat(
            "show_admin",
            "GET /v1/clusters/{id}, random clusters, as admin",
            &show_admin.done(),
            Some(10.0),
        );
        self.rep.row(
            "random clusters with both default nodegroups",
            format!("{ngs_ok} of 20"),
            "",
        );

        // Stats, over every shard (admin) and one project's.
        let (mut stats, mut stats_p, mut body) = (Lat::default(), Lat::default(), Value::Null);
        for _ in 0..a.stats_samples {
            let r = api.call(admin, Method::GET, "/stats", None).await;
            stats.push(&r);
            body = r.body;
        }
        for _ in 0..a.stats_samples {
            let t = &self.tenants[0];
            stats_p.push(&api.call(t, Method::GET, "/stats", None).await);
        }
        self.rep.lat(
            "stats_admin",
            "GET /v1/stats as admin (all shards)",
            &stats.done(),
            None,
        );
        self.rep.lat(
            "stats_project",
            "GET /v1/stats as one project",
            &stats_p.done(),
            None,
        );
        // One master and one worker each.
        let (c, n) = (seeded as u64, 2 * seeded as u64);
        let ok = body["clusters"].as_u64() == Some(c) && body["nodes"].as_u64() == Some(n);
        self.rep.row(
            "stats: clusters / nodes",
            format!("{} / {}", body["clusters"], body["nodes"]),
            format!("{c} / {n}: {}", yes(ok)),
        );
        self.rep.json.insert(
            "stats_body".into(),
            json!({"stats": body, "nodegroups_ok_of_20": ngs_ok}),
        );
    }

    /// Every seeded cluster has one live, finished stack in cloud-sim, created once.
    async fn verify_stacks(&mut self, seeded: usize) {
        let sim = self.api.sim_get("/sim/heat/stacks").await;
        let (mut live, mut dup) = (0usize, 0usize);
        for st in sim["stacks"].as_array().into_iter().flatten() {
            if !st["name"].as_str().is_some_and(|n| n.starts_with("scale-")) {
                continue;
            }
            live += usize::from(st["deleted"] == false && st["status"] == "CREATE_COMPLETE");
            dup += usize::from(st["creates_by_name"].as_u64().unwrap_or(0) > 1);
        }
        self.rep.row(
            "live CREATE_COMPLETE stacks / stack names created twice",
            format!("{live} / {dup}"),
            format!("{seeded} / 0: {}", yes(live == seeded && dup == 0)),
        );
        self.rep.json.insert(
            "stacks".into(),
            json!({"live_complete": live, "duplicates": dup}),
        );
    }

    /// RSS and peak RSS of every process, each conductor's data dir.
    fn memory(&mut self) {
        let mut mem = serde_json::Map::new();
        for p in PROCS {
            let Some((rss, hwm)) = self.d.pid(p).and_then(memory_mib) else {
                continue;
            };
            let disk = match p.strip_prefix("conductor-") {
                Some(id) => Some(du_mib(&self.d.conductor_dir(id.parse().unwrap()))),
                // cloud-sim persists every stack, token, user and trust in one JSON file.
                None if *p == "cloud-sim" => Some(du_mib(&self.d.dir.join("cloud-sim"))),
                None => None,
            };
            let (disk_s, target) = match (disk, *p == "cloud-sim") {
                (Some(x), true) => (format!(", state file {}", mib(x)), String::new()),
                (Some(x), false) => (
                    format!(", data dir {}", mib(x)),
                    format!("< 1024 MiB: {}", met(hwm < 1024.0)),
                ),
                (None, _) => (String::new(), String::new()),
            };
            self.rep.row(
                format!("{p}: VmRSS / VmHWM"),
                format!("{} / {}{disk_s}", mib(rss), mib(hwm)),
                target,
            );
            mem.insert(
                p.to_string(),
                json!({"rss_mib": rss, "hwm_mib": hwm, "data_dir_mib": disk}),
            );
        }
        self.rep.json.insert("memory".into(), mem.into());
    }

    /// Heat requests per minute once every seeded row is older than the idle interval.
    async fn idle(&mut self, seeded: usize, seeded_at: Instant) -> Window {
        let a = self.a;
        let interval = match a.idle_sync_interval_secs {
            0 => DEFAULT_IDLE_SYNC_SECS,
            s => s,
        };
        let settle = Duration::from_secs(HEALTH_INTERVAL_S + interval + 2 * SYNC_ROUND_S);
        let wait = settle.saturating_sub(seeded_at.elapsed());
        println!(
            "scale: waiting {:.0} s for the clusters to go idle, then counting Heat requests for {} s",
            wait.as_secs_f64(),
            a.idle_window_s
        );
        tokio::time::sleep(wait).await;
        let idle = Window::measure(&self.api, self.d, a.idle_window_s).await;
        let scale = interval as f64 / DEFAULT_IDLE_SYNC_SECS as f64;
        for k in HEAT_KINDS {
            let r = idle.kind_per_min(k);
            let upstream = match k {
                "Heat stack GETs" => "upstream's rule polls clusters in progress only: 0",
                _ => "",
            };
            self.rep.row(
                format!("idle: {k} per min ({seeded} clusters)"),
                format!(
                    "{r:.1} at idle sync {interval} s; scaled to {DEFAULT_IDLE_SYNC_SECS} s: {:.2}",
                    r * scale
                ),
                upstream,
            );
        }
        self.rep.row(
            "idle: stack looks per min by the conductors (ids asked of their feeds)",
            format!(
                "{:.1}; scaled to {DEFAULT_IDLE_SYNC_SECS} s: {:.1}",
                idle.looks_per_min(),
                idle.looks_per_min() * scale
            ),
            format!(
                "≈ clusters × 60 / interval = {:.1}",
                seeded as f64 * 60.0 / interval as f64
            ),
        );
        self.rep
            .row("idle: batching of the looks", idle.batching(), "");
        let others: Vec<String> = idle
            .by_kind
            .iter()
            .filter(|(k, _)| !k.starts_with("Heat"))
            .map(|(k, n)| format!("{k} {:.1}", idle.per_min(*n)))
            .collect();
        self.rep.row(
            "idle: other cloud-sim requests per min",
            others.join("; "),
            "",
        );
        let mut j = idle.json();
        j["idle_sync_interval_s"] = json!(interval);
        j["scaled_to_900_factor"] = json!(scale);
        self.rep.json.insert("idle_heat".into(), j);
        idle
    }

    /// K clusters whose stack create outlasts the window (`heat_test_v1`, a slow TestResource),
    /// then the Heat requests per minute while they are in progress.
    async fn in_progress(&mut self, idle: &Window) {
        let (a, api, t) = (self.a, &self.api, &self.tenants[0]);
        let k = a.in_progress;
        // Real seconds the stacks must stay in progress: the wait for all of them, the window.
        let hold = (a.idle_window_s + 900) as f64;
        let scale = a.time_scale.max(1e-6);
        let create_secs = (hold / scale).ceil() as u64;
        // Heat's stack timeout is scaled too (the conductor's deadline is not).
        let timeout_mins = (hold / (60.0 * scale)).ceil() as u64 + 1;
        let labels = json!({"heat_test_create_secs": create_secs.to_string()});
        let body = template("heat-test", "scale-slow", labels);
        let r = api
            .call(t, Method::POST, "/clustertemplates", Some(&body))
            .await;
        assert_eq!(r.status, 201, "heat-test template: {}", r.body);
        let tpl = r.body["uuid"].as_str().unwrap().to_string();
        let creates =
            |m: &BTreeMap<String, u64>| m.get("POST heat-api /v1/{}/stacks").copied().unwrap_or(0);
        let before = creates(&api.sim_requests().await);
        let mut refused = 0;
        for i in 0..k {
            let body = json!({"name": format!("slow-{i}"), "cluster_template_id": tpl,
                "master_count": 1, "node_count": 1, "create_timeout": timeout_mins});
            if api
                .call(t, Method::POST, "/clusters", Some(&body))
                .await
                .status
                != 202
            {
                refused += 1;
            }
        }
        // Until each has its stack (in progress from its create on, for `hold` seconds).
        let start = Instant::now();
        let mut running = 0;
        while start.elapsed() < Duration::from_secs(600) {
            running = creates(&api.sim_requests().await).saturating_sub(before) as usize;
            if running >= k - refused {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        tokio::time::sleep(Duration::from_secs(SYNC_ROUND_S)).await;
        let w = Window::measure(api, self.d, a.idle_window_s).await;
        let upstream = k as f64 * 3.0 * 6.0;
        for kd in HEAT_KINDS {
            self.rep.row(
                format!("{k} in progress: {kd} per min"),
                format!(
                    "{:.1} (idle baseline {:.1})",
                    w.kind_per_min(kd),
                    idle.kind_per_min(kd)
                ),
                "",
            );
        }
        let above = w.heat_per_min() - idle.heat_per_min();
        self.rep.row(
            format!("{k} in progress: Heat requests per min above idle"),
            format!("{above:.1} ({running} stacks created, {refused} creates refused)"),
            format!(
                "upstream: {k} × 3 conductors / 10 s = {upstream:.0} per min; ours ÷ upstream {:.3}",
                above / upstream
            ),
        );
        self.rep.row(
            format!("{k} in progress: stack looks per min by the conductors"),
            format!(
                "{:.1} (idle baseline {:.1})",
                w.looks_per_min(),
                idle.looks_per_min()
            ),
            format!(
                "a poll every {} ms: {:.0}",
                a.poll_ms,
                k as f64 * 60_000.0 / a.poll_ms as f64
            ),
        );
        self.rep
            .row(format!("{k} in progress: batching"), w.batching(), "");
        let mut j = w.json();
        j["clusters"] = json!(k);
        j["stacks_created"] = json!(running);
        j["refused"] = json!(refused);
        j["upstream_per_min"] = json!(upstream);
        j["above_idle_per_min"] = json!(above);
        self.rep.json.insert("in_progress_heat".into(), j);
    }

    /// Stops all three conductors, starts them again, and times the first answered reads.
    async fn restart(&mut self) {
        let d = self.d;
        let stop = Instant::now();
        let ids = ["1", "2", "3"];
        match self.a.restart_stop {
            Stop::OneByOne => {
                for id in ids {
                    d.script(&["stop", "conductor", id]);
                }
            }
            Stop::Together | Stop::Kill => {
                let signal = if self.a.restart_stop == Stop::Kill {
                    "KILL"
                } else {
                    "TERM"
                };
                std::thread::scope(|s| {
                    for id in ids {
                        s.spawn(move || d.script(&["stop", "conductor", id, signal]));
                    }
                });
            }
        }
        let stop_s = stop.elapsed().as_secs_f64();
        let start = Instant::now();
        for id in 1..=3 {
            d.start("conductor", Some(id));
        }
        // Short timeouts, so that a request sent before the shards are back is not waited on.
        let quick = Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            ..self.api.clone()
        };
        let (mut first_list, mut first_stats) = (None, None);
        while start.elapsed() < Duration::from_secs(300)
            && (first_list.is_none() || first_stats.is_none())
        {
            if first_list.is_none() {
                let t = &self.tenants[0];
                let r = quick.call(t, Method::GET, "/clusters?limit=1", None).await;
                if r.status == 200 {
                    first_list = Some(start.elapsed().as_secs_f64());
                }
            }
            if first_stats.is_none()
                && quick
                    .call(&self.admin, Method::GET, "/stats", None)
                    .await
                    .status
                    == 200
            {
                first_stats = Some(start.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let shown = |x: Option<f64>| x.map_or("no answer in 300 s".into(), |s| format!("{s:.2} s"));
        self.rep.row(
            format!(
                "cold restart: stopping all 3 conductors ({})",
                match self.a.restart_stop {
                    Stop::OneByOne => "SIGTERM, one after another",
                    Stop::Together => "SIGTERM to each at once",
                    Stop::Kill => "SIGKILL",
                }
            ),
            format!("{stop_s:.1} s"),
            "",
        );
        self.rep.row(
            "cold restart: start → first GET /v1/clusters?limit=1 answered",
            shown(first_list),
            format!("< 10 s: {}", met(first_list.is_some_and(|s| s < 10.0))),
        );
        self.rep.row(
            "cold restart: start → first GET /v1/stats (every shard) answered",
            shown(first_stats),
            "",
        );
        let mut after = serde_json::Map::new();
        for id in 1..=3 {
            let p = format!("conductor-{id}");
            if let Some((rss, hwm)) = d.pid(&p).and_then(memory_mib) {
                after.insert(p, json!({"rss_mib": rss, "hwm_mib": hwm}));
            }
        }
        self.rep.row(
            "conductors' VmRSS right after the restart",
            after
                .values()
                .map(|v| mib(v["rss_mib"].as_f64().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(", "),
            "",
        );
        self.rep.json.insert(
            "restart".into(),
            json!({"stop_s": stop_s, "first_list_s": first_list, "first_stats_s": first_stats,
                "memory_after": after}),
        );
    }

    /// A conductor replaced by one on an empty disk, in the runbook's order that never leaves a
    /// group with fewer than three replicas: conductor 4 is added and caught up (the deployment
    /// settled: every group has its voters, each within the lag bound), then conductor 3 is
    /// removed (its replicas move, most of them to 4). Conductor 4's VmHWM is its peak while
    /// receiving every snapshot.
    async fn replace(&mut self, seeded: usize) {
        let d = self.d;
        let t = Instant::now();
        tokio::task::block_in_place(|| d.add_conductor(4));
        let add_s = t.elapsed().as_secs_f64();
        let after_add = d.pid("conductor-4").and_then(memory_mib);
        let t = Instant::now();
        tokio::task::block_in_place(|| d.manage(&["conductor", "remove", "3"]));
        let remove_s = t.elapsed().as_secs_f64();
        let after_remove = d.pid("conductor-4").and_then(memory_mib);
        let disk = du_mib(&d.conductor_dir(4));
        // What the replacement holds answers: the admin's count of every cluster.
        let r = self
            .api
            .call(&self.admin, Method::GET, "/stats", None)
            .await;
        let clusters = r.body["clusters"].as_u64();
        let hwm = after_remove.map_or(0.0, |m| m.1);
        let total = seeded + self.a.in_progress;
        self.rep.row(
            "replacement: conductor 4 (empty disk) added → deployment settled",
            format!(
                "{add_s:.1} s; VmHWM {}",
                after_add.map_or("?".into(), |m| mib(m.1))
            ),
            "",
        );
        self.rep.row(
            "replacement: conductor 3 removed → its replicas moved",
            format!(
                "{remove_s:.1} s; conductor 4 VmRSS / VmHWM {} / {}, data dir {}",
                after_remove.map_or("?".into(), |m| mib(m.0)),
                mib(hwm),
                mib(disk)
            ),
            format!("VmHWM < 1024 MiB: {}", met(hwm > 0.0 && hwm < 1024.0)),
        );
        self.rep.row(
            "replacement: stats after it (clusters)",
            clusters.map_or("no answer".into(), |c| c.to_string()),
            // The in-progress window's creates stay.
            format!("= {total}: {}", yes(clusters == Some(total as u64))),
        );
        self.rep.json.insert(
            "replacement".into(),
            json!({"add_s": add_s, "remove_s": remove_s, "after_add": after_add,
                "after_remove": after_remove, "data_dir_mib": disk, "stats_clusters": clusters}),
        );
    }

    /// Prints the table; writes results.md and results.json with `--out`.
    fn write(&self, command: &str, raft_args: &str, idle: &Window) {
        let a = self.a;
        let interval = match a.idle_sync_interval_secs {
            0 => DEFAULT_IDLE_SYNC_SECS,
            s => s,
        };
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let header = format!(
            "# Scale: {} clusters\n\n`{command}`\n\n{cores} cores; {} shards, {} clients (at most {} clusters unfinished), image {}, cloud-sim time \
             scale {}, conductor Heat poll {} ms, conductor flags `{raft_args}`, binary {}.\n\n\
             Cluster certificates: {}.{}\n\n\
             Idle Heat rates were measured with idle sync every {interval} s over {:.0} s; \"scaled\" \
             multiplies them by {interval}/{DEFAULT_IDLE_SYNC_SECS}, the default. The looks scale \
             exactly; a listing carries up to 100 looks, so with fewer due per sync round the \
             listings fall less than that.",
            a.clusters,
            a.shards,
            a.clients,
            a.max_in_flight,
            a.image,
            a.time_scale,
            a.poll_ms,
            self.d.bin.display(),
            cert_keys(a),
            match a.reuse_cert_keys {
                0 => "",
                _ => " Creates per second and CPU per create therefore leave out RSA key \
                      generation (about 0.3 CPU s of a create otherwise).",
            },
            idle.secs
        );
        let md = self.rep.markdown(&header);
        println!("\n{md}");
        let Some(out) = &a.out else { return };
        std::fs::create_dir_all(out).unwrap();
        std::fs::write(out.join("results.md"), &md).unwrap();
        let mut j = self.rep.json.clone();
        j.insert("command".into(), json!(command));
        j.insert("args".into(), json!(format!("{a:?}")));
        j.insert("raft_args".into(), json!(raft_args));
        j.insert(
            "cert_key_pool".into(),
            json!((a.reuse_cert_keys > 0).then_some(a.reuse_cert_keys)),
        );
        j.insert("cluster_certificates".into(), json!(cert_keys(a)));
        j.insert("cores".into(), json!(cores));
        let text = serde_json::to_string_pretty(&Value::Object(j)).unwrap();
        std::fs::write(out.join("results.json"), text).unwrap();
        println!("scale: wrote {}", out.display());
    }
}

/// A template body for `image`: the chaos tests' Kubernetes template, or the `heat_test_v1`
/// one (no network driver: its stack has no network).
fn template(image: &str, name: &str, labels: Value) -> Value {
    let mut body = template_body(name);
    body["image_id"] = json!(image);
    body["labels"] = labels;
    if image == "heat-test" {
        if let Some(o) = body.as_object_mut() {
            o.remove("network_driver");
        }
    }
    body
}

const HEAT_KINDS: [&str; 3] = ["Heat stack GETs", "Heat stack listings", "Heat, other"];

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn met(b: bool) -> &'static str {
    if b {
        "met"
    } else {
        "missed"
    }
}
