//! The workload: concurrent clients creating, updating, deleting and reading clusters through
//! the REST API, every call recorded. Each client works in one project and picks its next call
//! from its own seeded generator; a cluster name is created at most once per run, and any client
//! of the project may update, delete or read it, so calls on one cluster overlap.
use super::history::{Call, Op, Outcome, Recorder, Seen};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Live clusters a project keeps at most (deleting ones count until gone: quota is 20).
const LIVE_PER_PROJECT: usize = 5;
/// A call that has not answered by then is recorded as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Writes a cluster takes before its next write is a delete: the linearizability search grows
/// with the unknown calls of one history, and a soak's clusters would otherwise live for hours
/// (five of 393 went past the search's budget in the first 60-minute soak).
const WRITES_PER_CLUSTER: u32 = 120;

/// Names of one project: those that may exist (created, or a create with no answer) and all
/// ever used (reads pick from these, so reads of deleted clusters happen too).
#[derive(Default)]
struct Names {
    live: Vec<String>,
    all: Vec<String>,
    next: u64,
    /// Writes sent to each live name.
    writes: std::collections::HashMap<String, u32>,
}

#[derive(Clone)]
pub struct Project {
    pub name: String,
    pub user: String,
    /// Re-issued every `TOKEN_REFRESH` (`mod.rs`): a token lives an hour, a soak longer.
    pub token: Arc<Mutex<String>>,
    pub template: String,
}

impl Project {
    pub fn token(&self) -> String {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Clone)]
pub struct Workload {
    pub api: String,
    pub http: reqwest::Client,
    pub rec: Recorder,
    pub prefix: String,
    projects: Vec<Project>,
    names: Arc<Vec<Mutex<Names>>>,
}

impl Workload {
    pub fn new(api: String, rec: Recorder, prefix: String, projects: Vec<Project>) -> Self {
        let names = Arc::new(projects.iter().map(|_| Mutex::default()).collect());
        Self {
            api,
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .unwrap_or_default(),
            rec,
            prefix,
            projects,
            names,
        }
    }

    pub fn projects(&self) -> &[Project] {
        &self.projects
    }

    /// Every name used, by project index.
    pub fn all_names(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (p, n) in self.names.iter().enumerate() {
            let n = n.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(n.all.iter().map(|x| (p, x.clone())));
        }
        out
    }

    /// Runs client `client` until `stop`.
    pub async fn client(self, client: usize, seed: u64, stop: Arc<AtomicBool>) {
        let mut rng = StdRng::seed_from_u64(seed ^ (client as u64).wrapping_mul(0x9e37_79b9));
        let p = client % self.projects.len();
        while !stop.load(Ordering::SeqCst) {
            let roll: f64 = rng.gen();
            let (live, all) = {
                let n = self.names[p].lock().unwrap_or_else(|e| e.into_inner());
                (n.live.clone(), n.all.clone())
            };
            let pick = |rng: &mut StdRng, v: &[String]| v[rng.gen_range(0..v.len())].clone();
            if live.len() < LIVE_PER_PROJECT && (roll < 0.2 || live.is_empty()) {
                let name = {
                    let mut n = self.names[p].lock().unwrap_or_else(|e| e.into_inner());
                    n.next += 1;
                    let name = format!("{}-p{p}-{}", self.prefix, n.next);
                    n.live.push(name.clone());
                    n.all.push(name.clone());
                    name
                };
                let count = rng.gen_range(1..=3);
                self.create(client, p, &name, count).await;
            } else if roll < 0.41 && !live.is_empty() {
                let name = pick(&mut rng, &live);
                let worn = {
                    let mut n = self.names[p].lock().unwrap_or_else(|e| e.into_inner());
                    let w = n.writes.entry(name.clone()).or_default();
                    *w += 1;
                    *w > WRITES_PER_CLUSTER
                };
                if roll < 0.32 && !worn {
                    self.update(client, p, &name, rng.gen_range(1..=4)).await;
                } else if roll < 0.4 && !worn {
                    self.resize(client, p, &name, rng.gen_range(1..=4)).await;
                } else {
                    self.delete(client, p, &name).await;
                }
            } else if !all.is_empty() {
                let name = pick(&mut rng, &all);
                self.read(client, p, &name).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(20..150))).await;
        }
    }

    async fn send(
        &self,
        p: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut rq = self
            .http
            .request(method, format!("{}{path}", self.api))
            .header("X-Auth-Token", self.projects[p].token())
            .header("OpenStack-API-Version", "container-infra latest");
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Sends one call and records it; `ok` is the success status, any other 4xx is a refusal.
    async fn recorded(
        &self,
        client: usize,
        p: usize,
        name: &str,
        call: Call,
        (method, path, body): (reqwest::Method, String, Option<Value>),
        ok: u16,
    ) -> Outcome {
        let invoke_us = self.rec.now();
        let res = self.send(p, method, &path, body).await;
        let complete_us = self.rec.now();
        let (outcome, status, detail) = match res {
            Ok((s, _)) if s == ok => (Outcome::Ok, s, String::new()),
            Ok((s, v)) if (400..500).contains(&s) => (Outcome::Fail, s, error_text(&v)),
            Ok((s, v)) => (Outcome::Unknown, s, error_text(&v)),
            Err(e) => (Outcome::Unknown, 0, e),
        };
        self.rec.record(Op {
            client,
            object: name.to_string(),
            call,
            invoke_us,
            complete_us,
            outcome,
            status,
            seen: None,
            detail,
        });
        outcome
    }

    async fn create(&self, client: usize, p: usize, name: &str, count: u32) {
        let body = json!({"name": name, "cluster_template_id": self.projects[p].template,
            "master_count": 1, "node_count": count});
        let out = self
            .recorded(
                client,
                p,
                name,
                Call::Create { node_count: count },
                (reqwest::Method::POST, "/clusters".into(), Some(body)),
                202,
            )
            .await;
        if out == Outcome::Fail {
            self.forget_live(p, name);
        }
    }

    async fn update(&self, client: usize, p: usize, name: &str, count: u32) {
        let body = json!([{"op": "replace", "path": "/node_count", "value": count}]);
        self.recorded(
            client,
            p,
            name,
            Call::Update { node_count: count },
            (
                reqwest::Method::PATCH,
                format!("/clusters/{name}"),
                Some(body),
            ),
            202,
        )
        .await;
    }

    async fn resize(&self, client: usize, p: usize, name: &str, count: u32) {
        self.recorded(
            client,
            p,
            name,
            Call::Resize { node_count: count },
            (
                reqwest::Method::POST,
                format!("/clusters/{name}/actions/resize"),
                Some(json!({ "node_count": count })),
            ),
            202,
        )
        .await;
    }

    async fn delete(&self, client: usize, p: usize, name: &str) {
        let out = self
            .recorded(
                client,
                p,
                name,
                Call::Delete,
                (reqwest::Method::DELETE, format!("/clusters/{name}"), None),
                204,
            )
            .await;
        // A delete that may have happened makes the name unusable for writes; reads go on.
        if out != Outcome::Fail {
            self.forget_live(p, name);
        }
    }

    async fn read(&self, client: usize, p: usize, name: &str) {
        let invoke_us = self.rec.now();
        let res = self
            .send(p, reqwest::Method::GET, &format!("/clusters/{name}"), None)
            .await;
        let complete_us = self.rec.now();
        let (outcome, status, seen, detail) = match res {
            Ok((200, v)) => match seen_of(&v) {
                Some(seen) => (Outcome::Ok, 200, Some(seen), String::new()),
                None => (Outcome::Fail, 200, None, format!("unreadable cluster: {v}")),
            },
            Ok((404, _)) => (Outcome::Ok, 404, Some(Seen::Absent), String::new()),
            // A read that failed saw nothing: it takes no part in the check.
            Ok((s, v)) => (Outcome::Fail, s, None, error_text(&v)),
            Err(e) => (Outcome::Fail, 0, None, e),
        };
        self.rec.record(Op {
            client,
            object: name.to_string(),
            call: Call::Read,
            invoke_us,
            complete_us,
            outcome,
            status,
            seen,
            detail,
        });
    }

    fn forget_live(&self, p: usize, name: &str) {
        let mut n = self.names[p].lock().unwrap_or_else(|e| e.into_inner());
        n.live.retain(|x| x != name);
        n.writes.remove(name);
    }

    /// The final read of every name, once faults have stopped (the check's last word).
    pub async fn read_all(&self, client: usize) {
        for (p, name) in self.all_names() {
            self.read(client, p, &name).await;
        }
    }
}

/// What a `GET /v1/clusters/{name}` body shows.
pub fn seen_of(v: &Value) -> Option<Seen> {
    let node_count = u32::try_from(v["node_count"].as_u64()?).ok()?;
    Some(Seen::present(node_count, v["status"].as_str()?))
}

/// The `errors[0].detail` of Magnum's envelope, else the body.
fn error_text(v: &Value) -> String {
    v["errors"][0]["detail"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// Counts of recorded calls: call kind → outcome → n.
pub fn tally(ops: &[Op]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for op in ops {
        let kind = match op.call {
            Call::Create { .. } => "create",
            Call::Update { .. } => "update",
            Call::Resize { .. } => "resize",
            Call::Delete => "delete",
            Call::Read => "read",
        };
        let outcome = match op.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        };
        *out.entry(kind.into())
            .or_default()
            .entry(outcome.into())
            .or_default() += 1;
    }
    out
}
