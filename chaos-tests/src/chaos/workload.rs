//! The workload: concurrent clients creating, updating, deleting, reading and listing clusters,
//! and doing the same to cluster templates, through the REST API, every call recorded. Each
//! client works in one project and picks its next call from its own seeded generator; a name is
//! created at most once per run, and any client of the project may update, delete or read it,
//! so calls on one object overlap. The templates are scratch ones no cluster uses: a register
//! each (`docker_volume_size`), written and read in the project's shard like the clusters.
//! Nodegroups with stacks of their own are added to live clusters, resized, deleted and read.
use super::history::{Call, Kind, Op, Outcome, Recorder, Seen};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Live clusters a project keeps at most (deleting ones count until gone: quota is 20).
const LIVE_PER_PROJECT: usize = 5;
/// Live scratch templates a project keeps at most.
const LIVE_TEMPLATES: usize = 3;
/// Live non-default nodegroups a project keeps at most (over its clusters).
const LIVE_NODEGROUPS: usize = 4;
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
    /// Clusters that take nodegroups, chosen at their creation. A cluster's `node_count` is the
    /// sum of its workers, so these are read through their default worker instead
    /// (`/nodegroups/default-worker`, which has the cluster stack's status) and left out of the
    /// listings' entries.
    hosts: std::collections::HashSet<String>,
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
    templates: Arc<Vec<Mutex<Names>>>,
    nodegroups: Arc<Vec<Mutex<Names>>>,
}

impl Workload {
    pub fn new(api: String, rec: Recorder, prefix: String, projects: Vec<Project>) -> Self {
        let names = Arc::new(projects.iter().map(|_| Mutex::default()).collect());
        let templates = Arc::new(projects.iter().map(|_| Mutex::default()).collect());
        let nodegroups = Arc::new(projects.iter().map(|_| Mutex::default()).collect());
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
            templates,
            nodegroups,
        }
    }

    fn names_of(&self, kind: Kind) -> &[Mutex<Names>] {
        match kind {
            Kind::Cluster => &self.names,
            Kind::Template => &self.templates,
            Kind::NodeGroup => &self.nodegroups,
        }
    }

    fn lock(&self, kind: Kind, p: usize) -> std::sync::MutexGuard<'_, Names> {
        self.names_of(kind)[p]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// (live, all) names of a project.
    fn snapshot(&self, kind: Kind, p: usize) -> (Vec<String>, Vec<String>) {
        let n = self.lock(kind, p);
        (n.live.clone(), n.all.clone())
    }

    /// Whether the cluster takes nodegroups (its `node_count` is then not its default worker's).
    pub fn is_host(&self, p: usize, cluster: &str) -> bool {
        self.lock(Kind::Cluster, p).hosts.contains(cluster)
    }

    /// A new name, live from now on (a nodegroup's is `<cluster>-ng<n>`, and `cluster` is
    /// only used for those).
    fn new_name(&self, kind: Kind, p: usize, cluster: &str) -> String {
        let mut n = self.lock(kind, p);
        n.next += 1;
        let name = match kind {
            Kind::Cluster => format!("{}-p{p}-{}", self.prefix, n.next),
            Kind::Template => format!("{}-p{p}-t{}", self.prefix, n.next),
            Kind::NodeGroup => format!("{cluster}-ng{}", n.next),
        };
        n.live.push(name.clone());
        n.all.push(name.clone());
        name
    }

    pub fn projects(&self) -> &[Project] {
        &self.projects
    }

    /// Every name of `kind` used, by project index.
    pub fn all_names(&self, kind: Kind) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (p, n) in self.names_of(kind).iter().enumerate() {
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
            let what: f64 = rng.gen();
            if what < 0.12 {
                self.template_call(client, p, &mut rng).await;
            } else if what < 0.24 {
                self.nodegroup_call(client, p, &mut rng).await;
            } else if what < 0.3 {
                self.list(client, p).await;
            } else {
                self.cluster_call(client, p, &mut rng).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(20..150))).await;
        }
    }

    async fn cluster_call(&self, client: usize, p: usize, rng: &mut StdRng) {
        let roll: f64 = rng.gen();
        let (live, all) = self.snapshot(Kind::Cluster, p);
        if live.len() < LIVE_PER_PROJECT && (roll < 0.2 || live.is_empty()) {
            let name = self.new_name(Kind::Cluster, p, "");
            if rng.gen_bool(0.4) {
                self.lock(Kind::Cluster, p).hosts.insert(name.clone());
            }
            let count = rng.gen_range(1..=3);
            self.create(Kind::Cluster, client, p, &name, count).await;
        } else if roll < 0.41 && !live.is_empty() {
            let name = pick(rng, &live);
            let worn = {
                let mut n = self.lock(Kind::Cluster, p);
                let w = n.writes.entry(name.clone()).or_default();
                *w += 1;
                *w > WRITES_PER_CLUSTER
            };
            // A host's PATCH compares with the sum of its workers (a no-op when equal) and then
            // sets the default worker's count: not a register the model can follow. Hosts are
            // resized instead.
            if roll < 0.32 && !worn && !self.is_host(p, &name) {
                let count = rng.gen_range(1..=4);
                self.update(Kind::Cluster, client, p, &name, count).await;
            } else if roll < 0.4 && !worn {
                let count = rng.gen_range(1..=4);
                self.resize(Kind::Cluster, client, p, &name, count).await;
            } else {
                self.delete(Kind::Cluster, client, p, &name).await;
            }
        } else if !all.is_empty() {
            let name = pick(rng, &all);
            self.read(Kind::Cluster, client, p, &name).await;
        }
    }

    async fn nodegroup_call(&self, client: usize, p: usize, rng: &mut StdRng) {
        let roll: f64 = rng.gen();
        let clusters: Vec<String> = {
            let n = self.lock(Kind::Cluster, p);
            n.live
                .iter()
                .filter(|c| n.hosts.contains(*c))
                .cloned()
                .collect()
        };
        let (live, all) = self.snapshot(Kind::NodeGroup, p);
        let count = rng.gen_range(1..=3);
        if live.len() < LIVE_NODEGROUPS && (roll < 0.3 || live.is_empty()) {
            if clusters.is_empty() {
                return;
            }
            let cluster = pick(rng, &clusters);
            let name = self.new_name(Kind::NodeGroup, p, &cluster);
            self.create(Kind::NodeGroup, client, p, &name, count).await;
        } else if roll < 0.85 && !live.is_empty() {
            let name = pick(rng, &live);
            if roll < 0.75 {
                self.resize(Kind::NodeGroup, client, p, &name, count).await;
            } else {
                self.delete(Kind::NodeGroup, client, p, &name).await;
            }
        } else if !all.is_empty() {
            let name = pick(rng, &all);
            self.read(Kind::NodeGroup, client, p, &name).await;
        }
    }

    async fn template_call(&self, client: usize, p: usize, rng: &mut StdRng) {
        let roll: f64 = rng.gen();
        let (live, all) = self.snapshot(Kind::Template, p);
        let size = rng.gen_range(1..=50);
        if live.len() < LIVE_TEMPLATES && (roll < 0.25 || live.is_empty()) {
            let name = self.new_name(Kind::Template, p, "");
            self.create(Kind::Template, client, p, &name, size).await;
        } else if roll < 0.6 && !live.is_empty() {
            let name = pick(rng, &live);
            if roll < 0.52 {
                self.update(Kind::Template, client, p, &name, size).await;
            } else {
                self.delete(Kind::Template, client, p, &name).await;
            }
        } else if !all.is_empty() {
            let name = pick(rng, &all);
            self.read(Kind::Template, client, p, &name).await;
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
    #[allow(clippy::too_many_arguments)]
    async fn recorded(
        &self,
        kind: Kind,
        client: usize,
        p: usize,
        name: &str,
        call: Call,
        (method, path, body): (reqwest::Method, String, Option<Value>),
        ok: u16,
    ) -> Op {
        let invoke_us = self.rec.now();
        let res = self.send(p, method, &path, body).await;
        let complete_us = self.rec.now();
        let (outcome, status, detail) = match res {
            Ok((s, _)) if s == ok => (Outcome::Ok, s, String::new()),
            Ok((s, v)) if (400..500).contains(&s) => (Outcome::Fail, s, error_text(&v)),
            Ok((s, v)) => (Outcome::Unknown, s, error_text(&v)),
            Err(e) => (Outcome::Unknown, 0, e),
        };
        let op = Op {
            client,
            object: name.to_string(),
            kind,
            call,
            invoke_us,
            complete_us,
            outcome,
            status,
            seen: None,
            detail,
        };
        self.rec.record(op.clone());
        op
    }

    async fn create(&self, kind: Kind, client: usize, p: usize, name: &str, n: u32) {
        let (path, body, ok) = match kind {
            Kind::Cluster => (
                "/clusters".to_string(),
                json!({"name": name, "cluster_template_id": self.projects[p].template,
                    "master_count": 1, "node_count": n}),
                202,
            ),
            Kind::Template => {
                let mut body = super::template_body(name);
                body["docker_volume_size"] = json!(n);
                ("/clustertemplates".to_string(), body, 201)
            }
            Kind::NodeGroup => {
                let (cluster, ng) = split_nodegroup(name);
                let body = json!({"name": ng, "node_count": n});
                (format!("/clusters/{cluster}/nodegroups"), body, 202)
            }
        };
        let call = Call::Create { node_count: n };
        let rq = (reqwest::Method::POST, path, Some(body));
        if self
            .recorded(kind, client, p, name, call, rq, ok)
            .await
            .outcome
            == Outcome::Fail
        {
            self.forget_live(kind, p, name);
        }
    }

    async fn update(&self, kind: Kind, client: usize, p: usize, name: &str, n: u32) {
        // Clusters and templates: a nodegroup's count changes by a resize only.
        let (field, ok) = match kind {
            Kind::Template => ("/docker_volume_size", 200),
            Kind::Cluster | Kind::NodeGroup => ("/node_count", 202),
        };
        let body = json!([{"op": "replace", "path": field, "value": n}]);
        let path = path_of(kind, name);
        let rq = (reqwest::Method::PATCH, path, Some(body));
        let call = Call::Update { node_count: n };
        self.recorded(kind, client, p, name, call, rq, ok).await;
    }

    /// `POST /v1/clusters/{cluster}/actions/resize`, naming the nodegroup for one (a PATCH of
    /// a nodegroup changes only its bounds).
    async fn resize(&self, kind: Kind, client: usize, p: usize, name: &str, count: u32) {
        let (cluster, body) = match kind {
            Kind::NodeGroup => {
                let (cluster, ng) = split_nodegroup(name);
                (cluster, json!({ "node_count": count, "nodegroup": ng }))
            }
            Kind::Cluster | Kind::Template => (name, json!({ "node_count": count })),
        };
        let path = format!("/clusters/{cluster}/actions/resize");
        let rq = (reqwest::Method::POST, path, Some(body));
        let call = Call::Resize { node_count: count };
        self.recorded(kind, client, p, name, call, rq, 202).await;
    }

    async fn delete(&self, kind: Kind, client: usize, p: usize, name: &str) {
        let rq = (reqwest::Method::DELETE, path_of(kind, name), None);
        let op = self
            .recorded(kind, client, p, name, Call::Delete, rq, 204)
            .await;
        // A delete that may have happened makes the name unusable for writes; reads go on.
        if op.outcome == Outcome::Fail {
            return;
        }
        self.forget_live(kind, p, name);
        if kind == Kind::Cluster {
            self.record_cluster_delete(p, name, &op);
        }
    }

    /// A cluster's delete in the history of each of its nodegroups (created or maybe created),
    /// which are no longer written to.
    fn record_cluster_delete(&self, p: usize, cluster: &str, op: &Op) {
        let mut n = self.lock(Kind::NodeGroup, p);
        let ours: Vec<String> = n
            .all
            .iter()
            .filter(|o| split_nodegroup(o).0 == cluster)
            .cloned()
            .collect();
        n.live.retain(|o| !ours.contains(o));
        drop(n);
        for object in ours {
            self.rec.record(Op {
                object,
                kind: Kind::NodeGroup,
                call: Call::ClusterDelete,
                ..op.clone()
            });
        }
    }

    async fn read(&self, kind: Kind, client: usize, p: usize, name: &str) {
        let invoke_us = self.rec.now();
        let path = match kind {
            Kind::Cluster if self.is_host(p, name) => {
                format!("/clusters/{name}/nodegroups/default-worker")
            }
            _ => path_of(kind, name),
        };
        let res = self.send(p, reqwest::Method::GET, &path, None).await;
        let complete_us = self.rec.now();
        let (outcome, status, seen, detail) = match res {
            Ok((200, v)) => match seen_of(kind, &v) {
                Some(seen) => (Outcome::Ok, 200, Some(seen), String::new()),
                None => (Outcome::Fail, 200, None, format!("unreadable object: {v}")),
            },
            Ok((404, _)) => (Outcome::Ok, 404, Some(Seen::Absent), String::new()),
            // A read that failed saw nothing: it takes no part in the check.
            Ok((s, v)) => (Outcome::Fail, s, None, error_text(&v)),
            Err(e) => (Outcome::Fail, 0, None, e),
        };
        self.rec.record(Op {
            client,
            object: name.to_string(),
            kind,
            call: Call::Read,
            invoke_us,
            complete_us,
            outcome,
            status,
            seen,
            detail,
        });
    }

    /// `GET /v1/clusters` of the project, recorded as a read of each cluster it lists and of
    /// each live name it does not (absent); nodegroup hosts are left out (their count is a
    /// sum). Names deleted before are left out unless listed: each would add a read to its
    /// history at every listing.
    async fn list(&self, client: usize, p: usize) {
        let (live, _) = self.snapshot(Kind::Cluster, p);
        let live: Vec<String> = live.into_iter().filter(|c| !self.is_host(p, c)).collect();
        let invoke_us = self.rec.now();
        let res = self
            .send(p, reqwest::Method::GET, "/clusters?limit=1000", None)
            .await;
        let complete_us = self.rec.now();
        // A failed listing saw nothing.
        let Ok((200, v)) = res else { return };
        let ours = format!("{}-p{p}-", self.prefix);
        let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
        for c in v["clusters"].as_array().into_iter().flatten() {
            let Some(name) = c["name"].as_str() else {
                continue;
            };
            if !name.starts_with(&ours) || self.is_host(p, name) {
                continue;
            }
            match seen_of(Kind::Cluster, c) {
                Some(s) => seen.insert(name.to_string(), s),
                None => return,
            };
        }
        for name in live {
            seen.entry(name).or_insert(Seen::Absent);
        }
        for (name, s) in seen {
            self.rec.record(Op {
                client,
                object: name,
                kind: Kind::Cluster,
                call: Call::List,
                invoke_us,
                complete_us,
                outcome: Outcome::Ok,
                status: 200,
                seen: Some(s),
                detail: String::new(),
            });
        }
    }

    fn forget_live(&self, kind: Kind, p: usize, name: &str) {
        let mut n = self.lock(kind, p);
        n.live.retain(|x| x != name);
        n.writes.remove(name);
    }

    /// The final read of every name, once faults have stopped (the check's last word).
    pub async fn read_all(&self, client: usize) {
        for kind in [Kind::Cluster, Kind::Template, Kind::NodeGroup] {
            for (p, name) in self.all_names(kind) {
                self.read(kind, client, p, &name).await;
            }
        }
    }
}

/// One name of `v`, drawn by `rng` (`v` is not empty).
fn pick(rng: &mut StdRng, v: &[String]) -> String {
    v[rng.gen_range(0..v.len())].clone()
}

/// The API path of one object.
fn path_of(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Cluster => format!("/clusters/{name}"),
        Kind::Template => format!("/clustertemplates/{name}"),
        Kind::NodeGroup => {
            let (cluster, ng) = split_nodegroup(name);
            format!("/clusters/{cluster}/nodegroups/{ng}")
        }
    }
}

/// `<cluster>-ng<n>` → (cluster, `ng<n>`).
pub fn split_nodegroup(object: &str) -> (&str, &str) {
    match object.rfind("-ng") {
        Some(i) => (&object[..i], &object[i + 1..]),
        None => (object, ""),
    }
}

/// What a cluster (its worker count and status) or a template (its `docker_volume_size`, no
/// status) shows.
pub fn seen_of(kind: Kind, v: &Value) -> Option<Seen> {
    match kind {
        Kind::Cluster | Kind::NodeGroup => {
            let node_count = u32::try_from(v["node_count"].as_u64()?).ok()?;
            Some(Seen::present(node_count, v["status"].as_str()?))
        }
        Kind::Template => {
            let size = u32::try_from(v["docker_volume_size"].as_u64()?).ok()?;
            Some(Seen::present(size, ""))
        }
    }
}

/// The `errors[0].detail` of Magnum's envelope, else the body.
fn error_text(v: &Value) -> String {
    v["errors"][0]["detail"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// Counts of recorded calls: call kind → outcome → n (`listed`: one per cluster a listing
/// showed or left out).
pub fn tally(ops: &[Op]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for op in ops {
        let call = match op.call {
            Call::Create { .. } => "create",
            Call::Update { .. } => "update",
            Call::Resize { .. } => "resize",
            Call::Delete => "delete",
            Call::Read => "read",
            Call::List => "listed",
            Call::ClusterDelete => "cluster_delete",
        };
        let kind = match op.kind {
            Kind::Cluster => call.to_string(),
            Kind::Template => format!("template_{call}"),
            Kind::NodeGroup => format!("nodegroup_{call}"),
        };
        let outcome = match op.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        };
        *out.entry(kind)
            .or_default()
            .entry(outcome.into())
            .or_default() += 1;
    }
    out
}
