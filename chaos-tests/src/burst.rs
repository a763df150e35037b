//! A burst of cluster creates through the API, as a large cloud's automation would send it:
//! `clients` concurrent clients POST `n` clusters into one project (its quotas raised), a reader
//! lists and shows clusters all along, and the run ends when every accepted cluster has left
//! `CREATE_IN_PROGRESS`. What it reports is what issue 14's step 0 asks of the consensus path:
//! did any Raft term move, did reads keep their latency, did every cluster complete with one
//! stack each.
use crate::Deployment;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Burst {
    pub creates: usize,
    pub clients: usize,
    /// Give up waiting for the clusters to finish after this long.
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Report {
    /// Creates answered 202 (each client retries a shed 503 after its Retry-After).
    pub accepted: usize,
    /// 503s with Retry-After, retried.
    pub shed: usize,
    /// Any other answer: status → count.
    pub errors: BTreeMap<u16, usize>,
    /// POST → 202, milliseconds, sorted.
    pub accept_ms: Vec<f64>,
    /// Read latencies, milliseconds, sorted: before the burst (one cluster), during it, and
    /// after it with every cluster in place (the data the reads during the burst saw at the
    /// end, without the burst).
    pub reads: BTreeMap<(Phase, Read), Vec<f64>>,
    /// Reads that did not answer 200 during the burst.
    pub failed_reads: usize,
    /// Start of the burst → last POST answered.
    pub submit: Duration,
    /// Start of the burst → every cluster out of CREATE_IN_PROGRESS.
    pub complete: Duration,
    /// Final status → count over the accepted clusters.
    pub statuses: BTreeMap<String, usize>,
    /// Clusters whose stack name was created more than once in Heat.
    pub duplicate_stacks: usize,
    /// Stacks created for the burst's clusters.
    pub stacks: usize,
    /// Term of every Raft group (by role) before and after.
    pub terms_before: BTreeMap<String, u64>,
    pub terms_after: BTreeMap<String, u64>,
    /// Raft RPCs that failed during the burst (all conductors), by reason (e.g. a heartbeat
    /// that timed out).
    pub rpc_errors: BTreeMap<String, u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Before,
    During,
    After,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Read {
    /// `GET /v1/clusters?limit=50`
    List,
    /// `GET /v1/clusters/{id}`
    Show,
}

/// The `q` quantile of sorted samples (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl Report {
    pub fn summary(&self) -> String {
        let q = |v: &[f64]| {
            format!(
                "p50 {:.1} / p99 {:.1} / max {:.1} ms",
                quantile(v, 0.5),
                quantile(v, 0.99),
                quantile(v, 1.0)
            )
        };
        let reads: Vec<String> = self
            .reads
            .iter()
            .map(|((p, r), v)| format!("{r:?} {p:?} {} ({} samples)", q(v), v.len()))
            .collect();
        format!(
            "{} creates accepted ({} shed and retried, errors {:?}) in {:.1} s, all finished after {:.1} s: {:?}; \
             stacks {} (duplicates {}); accept {}; reads: {}; {} failed; \
             terms changed: {:?}; Raft RPC errors {:?}",
            self.accepted,
            self.shed,
            self.errors,
            self.submit.as_secs_f64(),
            self.complete.as_secs_f64(),
            self.statuses,
            self.stacks,
            self.duplicate_stacks,
            q(&self.accept_ms),
            reads.join(", "),
            self.failed_reads,
            self.moved_terms(),
            self.rpc_errors
        )
    }

    /// Groups whose term moved: role → (before, after).
    pub fn moved_terms(&self) -> BTreeMap<String, (u64, u64)> {
        self.terms_after
            .iter()
            .filter_map(|(g, after)| {
                let before = self.terms_before.get(g).copied().unwrap_or(0);
                (before != *after).then(|| (g.clone(), (before, *after)))
            })
            .collect()
    }
}

/// Term of every group, from `magnum manage status`.
pub fn terms(d: &Deployment) -> BTreeMap<String, u64> {
    d.status()["groups"]
        .as_array()
        .map(|gs| {
            gs.iter()
                .map(|g| {
                    (
                        g["role"].as_str().unwrap_or_default().to_string(),
                        g["term"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `magnum_raft_rpc_errors_total` of every conductor, summed by reason.
async fn rpc_errors(d: &Deployment) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for id in 1..=3 {
        let url = format!("http://{}/metrics", d.conductor_service(id));
        let Ok(r) = d.http.get(&url).send().await else {
            continue;
        };
        let text = r.text().await.unwrap_or_default();
        for line in text
            .lines()
            .filter(|l| l.starts_with("magnum_raft_rpc_errors_total{"))
        {
            let reason = line
                .split("reason=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?");
            let n = line
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0);
            *out.entry(reason.to_string()).or_insert(0) += n as u64;
        }
    }
    out
}

/// Raises the project's Magnum cluster quota and Nova quotas so the burst fits.
async fn raise_quotas(d: &Deployment, token: &str, project: &str, n: usize) {
    let (s, v) = d
        .call(
            Method::POST,
            "/quotas",
            Some(token),
            Some(json!({"project_id": project, "resource": "Cluster", "hard_limit": n + 10})),
        )
        .await;
    assert!(s == 201 || s == 200, "quota: {s} {v}");
    let r = d
        .http
        .put(format!("{}/compute/v2.1/os-quota-sets/{project}", d.sim))
        .header("X-Auth-Token", token)
        .json(&json!({"quota_set": {"instances": -1, "cores": -1}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "nova quota: {}", r.status());
}

/// Every cluster of the project, paged by marker.
async fn all_clusters(d: &Deployment, token: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let marker = out
            .last()
            .and_then(|c| c["uuid"].as_str())
            .map(|m| format!("&marker={m}"))
            .unwrap_or_default();
        let (s, v) = d
            .call(
                Method::GET,
                &format!("/clusters?limit=1000{marker}"),
                Some(token),
                None,
            )
            .await;
        if s != 200 {
            // A transient answer (e.g. shed): the caller polls again.
            return out;
        }
        let page = v["clusters"].as_array().cloned().unwrap_or_default();
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// What the spawned clients need of the deployment: the HTTP client and the API's URL.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    api: String,
}

impl Api {
    fn of(d: &Deployment) -> Api {
        Api {
            http: d.http.clone(),
            api: d.api.clone(),
        }
    }

    async fn call(&self, method: Method, path: &str, token: &str) -> (u16, Value) {
        match self
            .http
            .request(method, format!("{}{path}", self.api))
            .header("X-Auth-Token", token)
            .send()
            .await
        {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }
}

/// Reads in turn (a list page, a show of `cluster`) every 100 ms until `stop` or `count`
/// reads; the latencies of those that answered 200, and how many did not.
async fn read_loop(
    d: Api,
    token: String,
    cluster: String,
    stop: Arc<AtomicBool>,
    count: usize,
) -> (BTreeMap<Read, Vec<f64>>, usize) {
    let (mut ok, mut failed) = (BTreeMap::<Read, Vec<f64>>::new(), 0);
    for i in 0..count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (read, path) = match i % 2 {
            0 => (Read::List, "/clusters?limit=50".to_string()),
            _ => (Read::Show, format!("/clusters/{cluster}")),
        };
        let t = Instant::now();
        match d.call(Method::GET, &path, &token).await {
            (200, _) => ok
                .entry(read)
                .or_default()
                .push(t.elapsed().as_secs_f64() * 1e3),
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (ok, failed)
}

pub async fn run(d: &Deployment, b: &Burst) -> Report {
    let (token, project) = d.login("admin", "admin").await;
    raise_quotas(d, &token, &project, b.creates).await;
    let tpl = {
        let body = json!({"name": "burst", "coe": "kubernetes", "image_id": "fedora-coreos-40",
            "external_network_id": "public", "flavor_id": "m1.small", "master_flavor_id": "m1.small",
            "keypair_id": "default", "network_driver": "flannel"});
        let (s, v) = d
            .call(Method::POST, "/clustertemplates", Some(&token), Some(body))
            .await;
        assert_eq!(s, 201, "template: {v}");
        v["uuid"].as_str().unwrap().to_string()
    };
    // One cluster to read before the burst, so "before" and "during" time the same reads.
    let probe = {
        let body = json!({"name": "burst-probe", "cluster_template_id": tpl, "master_count": 1, "node_count": 1});
        let (s, v) = d
            .call(Method::POST, "/clusters", Some(&token), Some(body))
            .await;
        assert_eq!(s, 202, "probe: {v}");
        v["uuid"].as_str().unwrap().to_string()
    };
    d.wait_cluster(&token, &probe, Duration::from_secs(300), |_, c| {
        c["status"] != "CREATE_IN_PROGRESS"
    })
    .await;
    let reader = |count| {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(read_loop(
            Api::of(d),
            token.clone(),
            probe.clone(),
            stop.clone(),
            count,
        ));
        (stop, task)
    };
    let mut reads = BTreeMap::new();
    let mut failed_reads = 0;
    let mut record = |phase, (ok, failed): (BTreeMap<Read, Vec<f64>>, usize)| {
        for (read, v) in ok {
            reads.insert((phase, read), v);
        }
        failed_reads += failed;
    };
    record(Phase::Before, reader(60).1.await.unwrap());
    let terms_before = terms(d);
    let rpc_errors_before = rpc_errors(d).await;

    // The reader during the burst: a list or a show every 100 ms until told to stop.
    let (stop, during) = reader(usize::MAX);

    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let outcome = Arc::new(Mutex::new((Vec::new(), 0usize, BTreeMap::new())));
    let clients: Vec<_> = (0..b.clients)
        .map(|_| {
            let (d, next, outcome) = (Api::of(d), next.clone(), outcome.clone());
            let (token, tpl, n) = (token.clone(), tpl.clone(), b.creates);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let body = json!({"name": format!("burst-{i}"), "cluster_template_id": tpl,
                        "master_count": 1, "node_count": 1});
                    let t = Instant::now();
                    loop {
                        let r = d
                            .http
                            .post(format!("{}/clusters", d.api))
                            .header("X-Auth-Token", &token)
                            .json(&body)
                            .send()
                            .await;
                        let (status, retry) = match r {
                            Ok(r) => (
                                r.status().as_u16(),
                                r.headers()
                                    .get("retry-after")
                                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok()),
                            ),
                            Err(_) => (0, None),
                        };
                        if let (503, Some(secs)) = (status, retry) {
                            // Shed before anything was written: the same create again.
                            outcome.lock().unwrap().1 += 1;
                            tokio::time::sleep(Duration::from_secs(secs.min(2))).await;
                            continue;
                        }
                        let mut o = outcome.lock().unwrap();
                        if status == 202 {
                            o.0.push(t.elapsed().as_secs_f64() * 1e3);
                        } else {
                            *o.2.entry(status).or_insert(0) += 1;
                        }
                        break;
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let submit = start.elapsed();
    let (mut accept_ms, shed, errors) = std::mem::take(&mut *outcome.lock().unwrap());
    let accepted = accept_ms.len();

    // Wait for every burst cluster to leave CREATE_IN_PROGRESS.
    let statuses = loop {
        let all = all_clusters(d, &token).await;
        let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
        let mut burst = 0;
        for c in all
            .iter()
            .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with("burst-")))
            .filter(|c| c["uuid"] != probe.as_str())
        {
            burst += 1;
            *statuses
                .entry(c["status"].as_str().unwrap_or("?").to_string())
                .or_insert(0) += 1;
        }
        let busy = statuses.get("CREATE_IN_PROGRESS").copied().unwrap_or(0);
        if burst >= accepted && busy == 0 {
            break statuses;
        }
        if start.elapsed() > b.timeout {
            eprintln!("burst: gave up after {:?}: {statuses:?}", b.timeout);
            break statuses;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let complete = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    record(Phase::During, during.await.unwrap());
    let terms_after = terms(d);
    let rpc_errors = rpc_errors(d)
        .await
        .into_iter()
        .map(|(k, n)| {
            let was = rpc_errors_before.get(&k).copied().unwrap_or(0);
            (k, n.saturating_sub(was))
        })
        .collect();
    record(Phase::After, reader(60).1.await.unwrap());

    let sim = d.sim_stacks().await;
    let creates = sim["creates_by_name"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let burst_stacks: Vec<u64> = creates
        .iter()
        .filter(|(name, _)| name.starts_with("burst-") && !name.starts_with("burst-probe"))
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .collect();
    accept_ms.sort_by(f64::total_cmp);
    for v in reads.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    Report {
        accepted,
        shed,
        errors,
        accept_ms,
        reads,
        failed_reads,
        submit,
        complete,
        statuses,
        duplicate_stacks: burst_stacks.iter().filter(|n| **n > 1).count(),
        stacks: burst_stacks.len(),
        terms_before,
        terms_after,
        rpc_errors,
    }
}
