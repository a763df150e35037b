//! The checkers, run once faults have stopped and the deployment healed: the system settles
//! (nothing left in progress), a last read of every cluster joins the history, then each check
//! adds what it saw to the summary and every breach to the violations.
use super::history::{Call, Kind, Outcome, Seen};
use super::linear::{self, Verdict};
use super::workload::{split_nodegroup, Workload};
use crate::Deployment;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long clusters may stay `*_IN_PROGRESS` once faults stop (operations retry Heat with
/// backoff, and a cluster's create at time scale 0.05 takes a few seconds).
const SETTLE: Duration = Duration::from_secs(180);
/// How long the reaper has to remove orphan stacks (grace 3 s, then looks at doubling ages).
const REAP_WAIT: Duration = Duration::from_secs(100);
/// How long a stale count PATCHed into a finished cluster's stack may stand once the checks
/// begin: status sync puts the rows' count back within about two rounds (10 s each) of seeing
/// it, and a leader paused until the heal may land its PATCH just before.
const DRIFT_WAIT: Duration = Duration::from_secs(60);
/// How long a replica may take to catch up (a conductor restarted at the end by its supervisor).
const REPLICA_WAIT: Duration = Duration::from_secs(60);

pub struct Ctx<'a> {
    pub d: &'a Deployment,
    pub wl: &'a Workload,
    pub sink: &'a Path,
}

/// What one comparison of counts found.
#[derive(Clone, Default)]
struct Counts {
    compared: usize,
    /// name → (status, node_count shown, the stack's number_of_minions).
    mismatched: BTreeMap<String, (String, u64, u64)>,
    unreadable: Vec<String>,
}

/// A cluster as the final listing shows it.
#[derive(Clone, Debug)]
struct Final {
    project: usize,
    status: String,
    node_count: u64,
    stack_id: String,
}

impl Ctx<'_> {
    pub async fn run_all(
        &self,
        checks: &mut BTreeMap<String, Value>,
        violations: &mut Vec<String>,
    ) {
        let (clusters, stuck) = self.settle().await;
        checks.insert(
            "settled".into(),
            json!({"clusters": clusters.len(), "in_progress_after_s": SETTLE.as_secs(), "stuck": stuck}),
        );
        for (name, status) in &stuck {
            violations.push(format!(
                "{name} still {status} {}s after faults stopped",
                SETTLE.as_secs()
            ));
        }
        self.wl.read_all(usize::MAX).await;
        self.linearizable(checks, violations);
        self.stacks(&clusters, checks, violations).await;
        self.notifications(checks, violations);
        self.replicas(checks, violations).await;
    }

    /// Lists our clusters per project until none is in progress (or `SETTLE` passes).
    async fn settle(&self) -> (BTreeMap<String, Final>, Vec<(String, String)>) {
        let start = Instant::now();
        loop {
            let clusters = match self.list().await {
                Ok(c) => c,
                Err(e) if start.elapsed() > SETTLE => {
                    return (BTreeMap::new(), vec![("(the listing)".into(), e)]);
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let stuck: Vec<(String, String)> = clusters
                .iter()
                .filter(|(_, c)| c.status.ends_with("_IN_PROGRESS"))
                .map(|(n, c)| (n.clone(), c.status.clone()))
                .collect();
            if stuck.is_empty() || start.elapsed() > SETTLE {
                return (clusters, stuck);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Every project's clusters of this run; an error if one listing failed (an empty answer
    /// would pass every cluster off as gone).
    async fn list(&self) -> Result<BTreeMap<String, Final>, String> {
        let mut out = BTreeMap::new();
        for (p, project) in self.wl.projects().iter().enumerate() {
            let r = self
                .d
                .http
                .get(format!("{}/clusters/detail?limit=1000", self.d.api))
                .header("X-Auth-Token", project.token())
                .send()
                .await
                .map_err(|e| format!("{}: {e}", project.name))?;
            if !r.status().is_success() {
                return Err(format!("{}: listing answered {}", project.name, r.status()));
            }
            let v: Value = r.json().await.map_err(|e| e.to_string())?;
            for c in v["clusters"].as_array().into_iter().flatten() {
                let Some(name) = c["name"].as_str() else {
                    continue;
                };
                // This project's only (an admin's listing shows every project's).
                if !name.starts_with(&format!("{}-p{p}-", self.wl.prefix)) {
                    continue;
                }
                out.insert(
                    name.to_string(),
                    Final {
                        project: p,
                        status: c["status"].as_str().unwrap_or_default().into(),
                        node_count: c["node_count"].as_u64().unwrap_or(0),
                        stack_id: c["stack_id"].as_str().unwrap_or_default().into(),
                    },
                );
            }
        }
        Ok(out)
    }

    fn linearizable(&self, checks: &mut BTreeMap<String, Value>, violations: &mut Vec<String>) {
        let ops = self.wl.rec.ops();
        let mut by_object: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for op in &ops {
            by_object
                .entry(op.object.as_str())
                .or_default()
                .push(op.clone());
        }
        let (mut ok, mut unchecked) = (0, Vec::new());
        for (object, h) in &by_object {
            match linear::check(h) {
                Verdict::Linearizable => ok += 1,
                Verdict::Unchecked => unchecked.push(object.to_string()),
                Verdict::NotLinearizable(v) => violations.push(format!(
                    "{object}: not linearizable; {} calls placed, then stuck at {:?}",
                    v.placed, v.stuck_at
                )),
            }
        }
        let writes = ops
            .iter()
            .filter(|o| {
                !o.call.is_read() && o.call != Call::ClusterDelete && o.outcome == Outcome::Ok
            })
            .count();
        checks.insert(
            "linearizable".into(),
            json!({"objects": by_object.len(), "linearizable": ok, "unchecked": unchecked,
                   "calls": ops.len(), "acknowledged_writes": writes}),
        );
        for o in unchecked {
            violations.push(format!(
                "{o}: linearizability search gave up (too many states)"
            ));
        }
    }

    /// One stack create per cluster and per nodegroup (a second only after the object's delete:
    /// a stale create the reaper must then remove), no live stack of a deleted cluster or
    /// nodegroup once the reaper had its time, and every finished cluster's stack carrying its
    /// acknowledged worker count.
    async fn stacks(
        &self,
        clusters: &BTreeMap<String, Final>,
        checks: &mut BTreeMap<String, Value>,
        violations: &mut Vec<String>,
    ) {
        let prefix = format!("{}-", self.wl.prefix);
        // `<cluster>-<suffix>`, or `<cluster>-ng<n>-<suffix>` for a nodegroup's own stack: the
        // cluster, and the nodegroup's object name if it is one's.
        let owner = |stack: &str| -> Option<(String, Option<String>)> {
            let (base, _) = stack.rsplit_once('-')?;
            let (cluster, ng) = split_nodegroup(base);
            Some((
                cluster.to_string(),
                (!ng.is_empty()).then(|| base.to_string()),
            ))
        };
        let ops = self.wl.rec.ops();
        // Objects a delete may have reached (their own, or their cluster's).
        let deleted: BTreeSet<&str> = ops
            .iter()
            .filter(|o| matches!(o.call, Call::Delete | Call::ClusterDelete))
            .filter(|o| o.outcome != Outcome::Fail)
            .map(|o| o.object.as_str())
            .collect();
        // Nodegroups the last read found gone (the reads after the faults come last).
        let mut last_read: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
        for o in ops.iter().filter(|o| o.kind == Kind::NodeGroup) {
            if o.call == Call::Read && o.outcome == Outcome::Ok {
                let gone = o.seen == Some(Seen::Absent);
                let e = last_read.entry(o.object.as_str()).or_insert((0, gone));
                if o.complete_us >= e.0 {
                    *e = (o.complete_us, gone);
                }
            }
        }
        let ng_gone = |ng: &str| last_read.get(ng).is_some_and(|(_, gone)| *gone);
        let mut recreated = Vec::new();
        let all = self.sim_stacks().await;
        let mut per_cluster: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (stack, n) in all["creates_by_name"].as_object().into_iter().flatten() {
            if !stack.starts_with(&prefix) {
                continue;
            }
            let Some((cluster, ng)) = owner(stack) else {
                continue;
            };
            if n.as_u64().unwrap_or(0) > 1 {
                // Heat refuses a live name, so the first was gone by then: a stale create
                // after a delete is for the reaper; before any delete it is a duplicate.
                let after_delete = deleted.contains(cluster.as_str())
                    || ng.as_deref().is_some_and(|ng| deleted.contains(ng));
                if after_delete {
                    recreated.push((stack.clone(), n.clone(), cluster.clone(), ng.clone()));
                } else {
                    violations.push(format!("stack {stack} created {n} times"));
                }
            }
            if ng.is_none() {
                per_cluster
                    .entry(cluster)
                    .or_default()
                    .insert(stack.clone());
            }
        }
        for (c, stacks) in &per_cluster {
            if stacks.len() > 1 {
                violations.push(format!(
                    "cluster {c} has {} stacks: {stacks:?}",
                    stacks.len()
                ));
            }
        }
        // Orphans: live stacks of ours whose cluster or nodegroup is gone; the reaper must
        // remove them.
        let start = Instant::now();
        let (orphans, live) = loop {
            let all = self.sim_stacks().await;
            let live = match self.list().await {
                Ok(live) => live,
                Err(e) if start.elapsed() > REAP_WAIT => {
                    break (vec![format!("(the listing: {e})")], None);
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            };
            let orphans: Vec<String> = all["stacks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["deleted"] != true && s["status"] != "DELETE_COMPLETE")
                .filter_map(|s| s["name"].as_str())
                .filter(|n| n.starts_with(&prefix))
                .filter(|n| {
                    owner(n).is_none_or(|(c, ng)| {
                        !live.contains_key(&c) || ng.as_deref().is_some_and(ng_gone)
                    })
                })
                .map(str::to_string)
                .collect();
            if orphans.is_empty() || start.elapsed() > REAP_WAIT {
                break (orphans, Some(live));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        for o in &orphans {
            violations.push(format!(
                "orphan stack {o}: its cluster or nodegroup is gone and it still lives {}s later",
                REAP_WAIT.as_secs()
            ));
        }
        let orphan_wait_s = start.elapsed().as_secs();
        // A re-created stack whose cluster and nodegroup live on was no stale create.
        let mut reaped = Vec::new();
        for (stack, n, cluster, ng) in recreated {
            let lives = live.as_ref().is_some_and(|l| l.contains_key(&cluster))
                && ng.as_deref().is_none_or(|ng| !ng_gone(ng));
            if lives {
                violations.push(format!(
                    "stack {stack} created {n} times and its owner lives"
                ));
            } else {
                reaped.push(stack);
            }
        }
        // Stale parameters: a finished cluster's stack has the count the API shows. A stale
        // PATCH from a leader paused until the heal may land just before the check; status
        // sync PATCHes the count back within a few rounds, so a mismatch counts once it has
        // outlived `DRIFT_WAIT`.
        let final_reads: BTreeMap<&str, u64> = ops
            .iter()
            .filter(|o| o.call == Call::Read && o.outcome == Outcome::Ok)
            .filter_map(|o| match &o.seen {
                Some(Seen::Present { node_count, .. }) => {
                    Some((o.object.as_str(), u64::from(*node_count)))
                }
                _ => None,
            })
            .collect();
        let start = Instant::now();
        let first = self.compare_counts(clusters, &final_reads).await;
        let mut last = first.clone();
        while !last.mismatched.is_empty() && start.elapsed() < DRIFT_WAIT {
            tokio::time::sleep(Duration::from_secs(2)).await;
            last = self.compare_counts(clusters, &final_reads).await;
        }
        let repaired_late: Vec<&String> = first
            .mismatched
            .keys()
            .filter(|n| !last.mismatched.contains_key(*n))
            .collect();
        let compared = last.compared;
        violations.extend(last.unreadable.iter().cloned());
        for (name, (status, shown, has)) in &last.mismatched {
            violations.push(format!(
                "{name} ({status}) shows node_count {shown} but its stack has number_of_minions \
                 {has}, still {}s into the checks",
                DRIFT_WAIT.as_secs()
            ));
        }
        checks.insert(
            "stacks".into(),
            json!({"clusters_with_stacks": per_cluster.len(), "orphans": orphans,
                   "recreated_after_delete": reaped,
                   "orphan_wait_s": orphan_wait_s, "parameters_compared": compared,
                   "parameters_repaired_during_checks": repaired_late,
                   "parameters_wait_s": start.elapsed().as_secs()}),
        );
    }

    /// One comparison of every finished cluster's count with its stack's.
    async fn compare_counts(
        &self,
        clusters: &BTreeMap<String, Final>,
        final_reads: &BTreeMap<&str, u64>,
    ) -> Counts {
        let all = self.sim_stacks().await;
        let mut out = Counts::default();
        for (name, c) in clusters {
            if !matches!(c.status.as_str(), "CREATE_COMPLETE" | "UPDATE_COMPLETE") {
                continue;
            }
            // A nodegroup host's node_count sums its workers: its default worker's is the one,
            // as the final read (through the default worker) saw it.
            let want = match self.wl.is_host(c.project, name) {
                true => final_reads.get(name.as_str()).copied(),
                false => Some(c.node_count),
            };
            match (self.stack_minions(&all, c).await, want) {
                (Some(n), Some(w)) if n == w => out.compared += 1,
                (Some(n), Some(w)) => {
                    out.mismatched
                        .insert(name.clone(), (c.status.clone(), w, n));
                }
                (Some(_), None) => out.unreadable.push(format!(
                    "{name} ({}): its default worker was never read",
                    c.status
                )),
                (None, _) => out
                    .unreadable
                    .push(format!("{name} ({}) has no readable stack", c.status)),
            }
        }
        out
    }

    async fn sim_stacks(&self) -> Value {
        match self
            .d
            .http
            .get(format!("{}/sim/heat/stacks", self.d.sim))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// The stack's `number_of_minions`, through cloud-sim's Heat API as the project.
    /// `all` is cloud-sim's stack listing (`sim_stacks`).
    async fn stack_minions(&self, all: &Value, c: &Final) -> Option<u64> {
        let project = &self.wl.projects()[c.project];
        let stack = all["stacks"]
            .as_array()?
            .iter()
            .find(|s| s["id"] == c.stack_id.as_str())?
            .clone();
        let url = format!(
            "{}/heat-api/v1/{}/stacks/{}/{}",
            self.d.sim,
            stack["project_id"].as_str()?,
            stack["name"].as_str()?,
            c.stack_id
        );
        let v: Value = self
            .d
            .http
            .get(url)
            .header("X-Auth-Token", project.token())
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let p = &v["stack"]["parameters"]["number_of_minions"];
        p.as_u64().or_else(|| p.as_str()?.parse().ok())
    }

    /// CADF notifications: a key never names two transitions, and each cluster's create and
    /// delete start and end are notified at most once (its create start exactly once).
    fn notifications(&self, checks: &mut BTreeMap<String, Value>, violations: &mut Vec<String>) {
        let text = std::fs::read_to_string(self.sink).unwrap_or_default();
        let mut by_key: BTreeMap<String, BTreeSet<(String, String, String)>> = BTreeMap::new();
        let mut lines = 0usize;
        for line in text.lines() {
            let Ok(m) = serde_json::from_str::<Value>(line) else {
                violations.push(format!("notification sink: unreadable line {line:?}"));
                continue;
            };
            lines += 1;
            let t = (
                m["payload"]["target"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                m["event_type"].as_str().unwrap_or_default().to_string(),
                m["payload"]["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            by_key
                .entry(m["message_id"].as_str().unwrap_or_default().to_string())
                .or_default()
                .insert(t);
        }
        let mut per_transition: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        for (key, ts) in &by_key {
            if ts.len() > 1 {
                violations.push(format!("notification key {key} names {ts:?}"));
            }
            for t in ts {
                *per_transition.entry(t.clone()).or_default() += 1;
            }
        }
        let targets: BTreeSet<&String> = per_transition.keys().map(|(id, _, _)| id).collect();
        let once = |id: &String, event: &str, outcome: &str| {
            per_transition
                .get(&(id.clone(), event.to_string(), outcome.to_string()))
                .copied()
                .unwrap_or(0)
        };
        for id in &targets {
            if once(id, "magnum.cluster.create", "pending") != 1 {
                violations.push(format!(
                    "cluster {id}: create start notified {} times",
                    once(id, "magnum.cluster.create", "pending")
                ));
            }
            for (event, outcome) in [
                ("magnum.cluster.create", "success"),
                ("magnum.cluster.create", "failure"),
                ("magnum.cluster.delete", "success"),
            ] {
                if once(id, event, outcome) > 1 {
                    violations.push(format!(
                        "cluster {id}: {event} {outcome} notified {} times",
                        once(id, event, outcome)
                    ));
                }
            }
        }
        checks.insert(
            "notifications".into(),
            json!({"lines": lines, "keys": by_key.len(), "clusters": targets.len(),
                   "redelivered": lines.saturating_sub(by_key.len())}),
        );
    }

    /// Every replica of every group digests the same state at the same applied index. A replica
    /// behind (restarted late, catching up) gets `REPLICA_WAIT` to get there.
    async fn replicas(&self, checks: &mut BTreeMap<String, Value>, violations: &mut Vec<String>) {
        // Stricter than `manage verify`'s own pass (two agree, none differs): with every
        // conductor up and no write in flight, every replica answers, at one index, alike.
        let empty = |g: &Value, k: &str| match &g[k] {
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => true,
        };
        let passes = |g: &Value| {
            g["equal"].as_array().is_some_and(|e| e.len() >= 2)
                && ["differ", "other_index", "unreachable", "halted"]
                    .iter()
                    .all(|k| empty(g, k))
        };
        let start = Instant::now();
        let (list, stderr) = loop {
            let out = tokio::task::block_in_place(|| self.d.manage_output(&["verify", "--json"]));
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let list = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default();
            // A divergence is final; anything else may be a replica still catching up.
            let diverged = list.iter().any(|g| !empty(g, "differ"));
            let done = !list.is_empty() && list.iter().all(passes);
            if done || diverged || start.elapsed() > REPLICA_WAIT {
                break (
                    list,
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        let bad: Vec<&Value> = list.iter().filter(|g| !passes(g)).collect();
        if list.is_empty() {
            violations.push(format!("manage verify gave nothing: {stderr}"));
        }
        for g in &bad {
            violations.push(format!("replicas differ or unreachable: {g}"));
        }
        checks.insert(
            "replicas".into(),
            json!({"groups": list.len(), "ok": list.len() - bad.len()}),
        );
    }
}
