//! The operations of `tests/drivers.rs` on one driver's cluster, what each must change (or
//! leave alone), and the printed matrix.
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnum_chaos_tests::Deployment;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::stacks_named;
use crate::Case;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Patch,
    Resize,
    NgCreate,
    NgUpdate,
    NgDelete,
    Upgrade,
    RotateCa,
    RotateCredential,
    Delete,
}

pub const OPS: [Op; 10] = [
    Op::Create,
    Op::Patch,
    Op::Resize,
    Op::NgCreate,
    Op::NgUpdate,
    Op::NgDelete,
    Op::Upgrade,
    Op::RotateCa,
    Op::RotateCredential,
    Op::Delete,
];

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Patch => "PATCH node_count 1→2",
            Op::Resize => "resize 2→1, nodes_to_remove",
            Op::NgCreate => "nodegroup create",
            Op::NgUpdate => "nodegroup update (max_node_count)",
            Op::NgDelete => "nodegroup delete",
            Op::Upgrade => "upgrade (kube_tag v1.27.3→v1.28.9)",
            Op::RotateCa => "CA rotate",
            Op::RotateCredential => "credential rotate",
            Op::Delete => "delete",
        }
    }
}

/// What a driver must answer.
pub enum Want {
    Ok,
    /// The status, and the start of the error's detail.
    Refused(u16, String),
    /// Nothing to run (a nodegroup delete where its create was refused).
    NotApplicable,
}

pub enum Cell {
    Ok(u128),
    Refused(u16),
    NotApplicable,
    Fail(String),
    NotRun,
}

impl Cell {
    fn short(&self) -> String {
        match self {
            Cell::Ok(ms) => format!("ok {ms}"),
            Cell::Refused(s) => s.to_string(),
            Cell::NotApplicable => "—".into(),
            Cell::Fail(_) => "FAIL".into(),
            Cell::NotRun => "not run".into(),
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Cell::Fail(e) => format!("FAIL {e}"),
            other => other.short(),
        }
    }
}

/// The markdown table: operation rows × driver columns.
pub fn table(drivers: &[&str], columns: &[Vec<Cell>]) -> String {
    let mut out = format!("| operation | {} |\n", drivers.join(" | "));
    out += &format!("|---|{}\n", "---|".repeat(drivers.len()));
    for (i, op) in OPS.iter().enumerate() {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| c.get(i).map_or("not run".into(), Cell::short))
            .collect();
        out += &format!("| {} | {} |\n", op.label(), cells.join(" | "));
    }
    out
}

fn as_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or(i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        Value::Null => return None,
        other => other.to_string(),
    })
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

const NG: &str = "ng1";
const NEW_TAG: &str = "v1.28.9";
const TIMEOUT: Duration = Duration::from_secs(120);

/// Everything a refused operation must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    cluster: Value,
    nodegroups: Vec<Value>,
    ca: (u16, Value),
    stacks: Vec<Value>,
}

/// One driver's cluster and what the steps learnt about it.
pub struct Cluster {
    d: Arc<Deployment>,
    tok: String,
    pub case: Case,
    template: String,
    newer_template: String,
    id: String,
    /// The worker addresses after the PATCH to two, to check which one the resize removed.
    workers: Vec<Value>,
}

impl Cluster {
    /// Creates the driver's two templates (the second with a newer kube_tag).
    pub async fn new(d: Arc<Deployment>, tok: String, case: Case) -> Result<Cluster, String> {
        let mut cl = Cluster {
            d,
            tok,
            case,
            template: String::new(),
            newer_template: String::new(),
            id: String::new(),
            workers: Vec::new(),
        };
        for (suffix, tag) in [("", "v1.27.3"), ("-new", NEW_TAG)] {
            let mut body = cl.case.template.clone();
            body["name"] = json!(format!("{}{suffix}", cl.case.name));
            body["labels"] = json!({ "kube_tag": tag });
            let (s, v) = cl
                .req(Method::POST, "/clustertemplates", Some(body))
                .await?;
            ensure!(s == 201, "template: {s} {v}");
            let uuid = v["uuid"].as_str().unwrap_or_default().to_string();
            if suffix.is_empty() {
                cl.template = uuid;
            } else {
                cl.newer_template = uuid;
            }
        }
        Ok(cl)
    }

    async fn req(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut rq = self
            .d
            .http
            .request(method, format!("{}{path}", self.d.api))
            .header("X-Auth-Token", &self.tok)
            .header("OpenStack-API-Version", "container-infra latest");
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.map_err(|e| format!("{path}: {e}"))?;
        let s = r.status().as_u16();
        let text = r.text().await.map_err(|e| format!("{path}: {e}"))?;
        Ok((s, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    fn path(&self, rest: &str) -> String {
        format!("/clusters/{}{rest}", self.id)
    }

    /// Polls `path` until `pred` holds; a `*_FAILED` status or the timeout is an error.
    async fn wait(&self, path: &str, pred: impl Fn(u16, &Value) -> bool) -> Result<Value, String> {
        let start = Instant::now();
        loop {
            let (s, v) = self.req(Method::GET, path, None).await?;
            if pred(s, &v) {
                return Ok(v);
            }
            let status = v["status"].as_str().unwrap_or_default();
            ensure!(
                !status.ends_with("FAILED"),
                "{path}: {status}: {}",
                v["status_reason"]
            );
            ensure!(start.elapsed() < TIMEOUT, "{path}: timed out; last {s} {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for UPDATE_COMPLETE. Shard reads are linearizable and the operation's
    /// UPDATE_IN_PROGRESS is committed before the 202, so this is the operation's end
    /// (`updated_at` has whole seconds: it cannot tell two updates of one second apart).
    async fn updated(&self, extra: impl Fn(&Value) -> bool) -> Result<Value, String> {
        self.wait(&self.path(""), |_, v| {
            v["status"] == "UPDATE_COMPLETE" && extra(v)
        })
        .await
    }

    /// This cluster's top-level stacks in cloud-sim's ledger (deleted ones too).
    async fn stacks(&self) -> Vec<Value> {
        stacks_named(&self.d, &format!("{}-", self.case.name))
            .await
            .into_iter()
            .filter(|s| s["parent"].is_null())
            .collect()
    }

    async fn cluster_stack(&self) -> Result<Value, String> {
        let ng = format!("{}-{NG}-", self.case.name);
        let st: Vec<Value> = self
            .stacks()
            .await
            .into_iter()
            .filter(|s| !s["name"].as_str().unwrap_or_default().starts_with(&ng))
            .collect();
        ensure!(
            st.len() == 1,
            "expected one cluster stack, ledger has {st:?}"
        );
        Ok(st[0].clone())
    }

    async fn nodegroup_stack(&self) -> Result<Value, String> {
        let ng = format!("{}-{NG}-", self.case.name);
        let st: Vec<Value> = self
            .stacks()
            .await
            .into_iter()
            .filter(|s| s["name"].as_str().unwrap_or_default().starts_with(&ng))
            .collect();
        ensure!(st.len() == 1, "expected one {NG} stack, ledger has {st:?}");
        Ok(st[0].clone())
    }

    /// `GET <stack>{suffix}` of cloud-sim's Heat, as the user.
    async fn heat_get(&self, stack: &Value, suffix: &str) -> Result<Value, String> {
        let url = format!(
            "{}/heat-api/v1/{}/stacks/{}/{}{suffix}",
            self.d.sim,
            stack["project_id"].as_str().unwrap_or_default(),
            stack["name"].as_str().unwrap_or_default(),
            stack["id"].as_str().unwrap_or_default()
        );
        let r = self.d.http.get(url).header("X-Auth-Token", &self.tok);
        let r = r.send().await.map_err(|e| e.to_string())?;
        r.json().await.map_err(|e| e.to_string())
    }

    /// A parameter of a stack as Heat shows it, lists joined with commas (hidden ones masked).
    async fn param(&self, stack: &Value, name: &str) -> Result<String, String> {
        let v = self.heat_get(stack, "").await?;
        as_text(&v["stack"]["parameters"][name]).ok_or(format!("no parameter {name}: {v}"))
    }

    /// A parameter as the stack's environment holds it (hidden ones too), if it was sent.
    async fn env_param(&self, stack: &Value, name: &str) -> Result<Option<String>, String> {
        let v = self.heat_get(stack, "/environment").await?;
        Ok(as_text(&v["parameters"][name]))
    }

    async fn snapshot(&self) -> Result<Snapshot, String> {
        let (_, mut cluster) = self.req(Method::GET, &self.path(""), None).await?;
        // The health poller writes these (updated_at too) on its own schedule.
        if let Some(o) = cluster.as_object_mut() {
            for k in ["health_status", "health_status_reason", "updated_at"] {
                o.remove(k);
            }
        }
        let (_, ngs) = self
            .req(Method::GET, &self.path("/nodegroups"), None)
            .await?;
        let ca = self
            .req(Method::GET, &format!("/certificates/{}", self.id), None)
            .await?;
        Ok(Snapshot {
            cluster,
            nodegroups: ngs["nodegroups"].as_array().cloned().unwrap_or_default(),
            ca,
            stacks: self.stacks().await,
        })
    }

    /// Sends `op`'s request: `(status, body)`.
    async fn start(&self, op: Op) -> Result<(u16, Value), String> {
        let c = &self.case;
        let (m, path, body) = match op {
            Op::Create => (
                Method::POST,
                "/clusters".to_string(),
                Some(json!({"name": c.name, "cluster_template_id": self.template,
                            "master_count": 1, "node_count": 1})),
            ),
            Op::Patch => (
                Method::PATCH,
                self.path(""),
                Some(json!([{"op": "replace", "path": "/node_count", "value": 2}])),
            ),
            Op::Resize => (
                Method::POST,
                self.path("/actions/resize"),
                Some(json!({"node_count": 1, "nodes_to_remove": ["0"]})),
            ),
            Op::NgCreate => (
                Method::POST,
                self.path("/nodegroups"),
                Some(json!({"name": NG, "node_count": 1})),
            ),
            Op::NgUpdate => (
                Method::PATCH,
                self.path(&format!("/nodegroups/{}", self.ng_updated())),
                Some(json!([{"op": "replace", "path": "/max_node_count", "value": 5}])),
            ),
            Op::NgDelete => (
                Method::DELETE,
                self.path(&format!("/nodegroups/{NG}")),
                None,
            ),
            Op::Upgrade => (
                Method::POST,
                self.path("/actions/upgrade"),
                Some(json!({"cluster_template": self.newer_template, "max_batch_size": 1})),
            ),
            Op::RotateCa => (Method::PATCH, format!("/certificates/{}", self.id), None),
            Op::RotateCredential => (Method::PATCH, format!("/credentials/{}", self.id), None),
            Op::Delete => (Method::DELETE, self.path(""), None),
        };
        self.req(m, &path, body).await
    }

    /// The nodegroup the update row changes: the new one, or the default workers' bounds where
    /// the driver has no nodegroup stacks (saved on every driver, as upstream's HeatDriver).
    fn ng_updated(&self) -> &'static str {
        if self.case.fedora_k8s {
            NG
        } else {
            "default-worker"
        }
    }

    /// An unsupported operation: the exact status, a detail starting with `detail`, and
    /// nothing changed.
    pub async fn refused(&mut self, op: Op, status: u16, detail: &str) -> Result<(), String> {
        let before = self.snapshot().await?;
        let (s, v) = self.start(op).await?;
        let got = v["errors"][0]["detail"].as_str().unwrap_or_default();
        ensure!(
            s == status && got.starts_with(detail),
            "answered {s} {v}, want {status} {detail:?}"
        );
        let after = self.snapshot().await?;
        ensure!(
            before == after,
            "changed: before {before:?}\nafter {after:?}"
        );
        Ok(())
    }

    /// A supported operation: accepted, terminal status, and its effect on the stacks.
    pub async fn run(&mut self, op: Op) -> Result<(), String> {
        let before = if op == Op::Create {
            Value::Null
        } else {
            self.req(Method::GET, &self.path(""), None).await?.1
        };
        let stack_before = match op {
            Op::Create => Value::Null,
            _ => self.cluster_stack().await?,
        };
        let ca_before = self.snapshot_ca(op).await?;
        // What each rotation PATCHes onto the stack (cloud-sim shows hidden parameters).
        let rotated = match op {
            Op::RotateCa => Some("kube_service_account_key"),
            Op::RotateCredential => Some("trustee_password"),
            _ => None,
        };
        let rotated_before = match rotated {
            Some(p) => self.env_param(&stack_before, p).await?,
            None => None,
        };
        let (s, v) = self.start(op).await?;
        let accepted = match op {
            Op::Create | Op::Patch | Op::Resize | Op::NgCreate | Op::Upgrade => 202,
            Op::RotateCa | Op::RotateCredential | Op::NgUpdate => 202,
            Op::NgDelete | Op::Delete => 204,
        };
        ensure!(s == accepted, "answered {s} {v}, want {accepted}");
        let (count_param, remove_param, api_shape) =
            (self.case.count_param, self.case.remove_param, self.case.api);
        match op {
            Op::Create => {
                self.id = v["uuid"].as_str().unwrap_or_default().to_string();
                let v = self
                    .wait(&self.path(""), |_, v| v["status"] == "CREATE_COMPLETE")
                    .await?;
                let api = v["api_address"].as_str().unwrap_or_default();
                ensure!(
                    api.starts_with(api_shape.0)
                        && api.ends_with(api_shape.1)
                        && api.contains("172.24.4."),
                    "api_address {api:?}"
                );
                ensure!(v["node_count"] == 1, "node_count {}", v["node_count"]);
                let st = self.cluster_stack().await?;
                ensure!(st["status"] == "CREATE_COMPLETE", "stack {st}");
                ensure!(st["creates_by_name"] == 1, "stack created twice: {st}");
            }
            Op::Patch => {
                let v = self.updated(|v| v["node_count"] == 2).await?;
                let st = self.cluster_stack().await?;
                ensure!(
                    self.param(&st, count_param).await? == "2",
                    "{count_param} not 2"
                );
                self.workers = v["node_addresses"].as_array().cloned().unwrap_or_default();
                ensure!(
                    self.workers.len() == 2,
                    "node_addresses {}",
                    v["node_addresses"]
                );
            }
            Op::Resize => {
                let v = self.updated(|v| v["node_count"] == 1).await?;
                let st = self.cluster_stack().await?;
                ensure!(
                    self.param(&st, count_param).await? == "1",
                    "{count_param} not 1"
                );
                let removed = self.param(&st, remove_param).await?;
                ensure!(removed == "0", "{remove_param} is {removed:?}");
                // Member "0" went: the second worker is the one left.
                ensure!(
                    v["node_addresses"] == json!([self.workers[1]]),
                    "node_addresses {} after removing the first of {:?}",
                    v["node_addresses"],
                    self.workers
                );
            }
            Op::NgCreate => {
                self.wait(&self.path(&format!("/nodegroups/{NG}")), |_, v| {
                    v["status"] == "CREATE_COMPLETE"
                })
                .await?;
                self.updated(|_| true).await?;
                let ng = self.nodegroup_stack().await?;
                ensure!(
                    ng["status"] == "CREATE_COMPLETE" && ng["creates_by_name"] == 1,
                    "{ng}"
                );
                let own = self.param(&ng, "is_cluster_stack").await?;
                ensure!(own.eq_ignore_ascii_case("false"), "is_cluster_stack {own}");
                ensure!(
                    self.cluster_stack().await? == stack_before,
                    "cluster stack touched"
                );
            }
            Op::NgUpdate => {
                ensure!(v["max_node_count"] == 5, "answer {v}");
                let path = self.path(&format!("/nodegroups/{}", self.ng_updated()));
                self.wait(&path, |_, v| v["max_node_count"] == 5).await?;
                let after = self.req(Method::GET, &self.path(""), None).await?.1;
                ensure!(
                    after["status"] == before["status"],
                    "cluster {}",
                    after["status"]
                );
                ensure!(
                    self.cluster_stack().await? == stack_before,
                    "cluster stack touched"
                );
            }
            Op::NgDelete => {
                self.wait(&self.path(&format!("/nodegroups/{NG}")), |s, _| s == 404)
                    .await?;
                self.updated(|_| true).await?;
                let ng = self.nodegroup_stack().await?;
                ensure!(ng["status"] == "DELETE_COMPLETE", "{NG} stack {ng}");
                let st = self.cluster_stack().await?;
                ensure!(st["deleted"] == false, "cluster stack {st}");
            }
            Op::Upgrade => {
                let t = self.newer_template.clone();
                let v = self.updated(|v| v["cluster_template_id"] == t).await?;
                ensure!(v["labels"]["kube_tag"] == NEW_TAG, "labels {}", v["labels"]);
                let st = self.cluster_stack().await?;
                for p in [
                    "kube_tag",
                    "kube_version",
                    "master_kube_tag",
                    "minion_kube_tag",
                ] {
                    let got = self.param(&st, p).await?;
                    ensure!(got == NEW_TAG, "{p} {got}");
                }
                ensure!(
                    self.param(&st, "update_max_batch_size").await? == "1",
                    "batch"
                );
            }
            Op::RotateCa | Op::RotateCredential => {
                self.updated(|_| true).await?;
                let st = self.cluster_stack().await?;
                ensure!(st["status"] == "UPDATE_COMPLETE", "stack {st}");
                let p = rotated.unwrap_or_default();
                let now = self.env_param(&st, p).await?;
                ensure!(now.is_some() && now != rotated_before, "{p} not rotated");
                let ca_after = self.snapshot_ca(op).await?;
                if op == Op::RotateCa {
                    ensure!(ca_after.0 == 200 && ca_after != ca_before, "CA not rotated");
                } else {
                    ensure!(
                        ca_after == ca_before,
                        "a credential rotation changed the CA"
                    );
                }
            }
            Op::Delete => {
                self.wait(&self.path(""), |s, _| s == 404).await?;
                let live: Vec<Value> = self
                    .stacks()
                    .await
                    .into_iter()
                    .filter(|s| s["status"] != "DELETE_COMPLETE")
                    .collect();
                ensure!(live.is_empty(), "stacks left: {live:?}");
            }
        }
        Ok(())
    }

    /// The cluster's CA around the rotations (`GET /v1/certificates/{id}`).
    async fn snapshot_ca(&self, op: Op) -> Result<(u16, Value), String> {
        match op {
            Op::RotateCa | Op::RotateCredential => {
                self.req(Method::GET, &format!("/certificates/{}", self.id), None)
                    .await
            }
            _ => Ok((0, Value::Null)),
        }
    }
}
