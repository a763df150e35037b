//! `magnum manage`: operator commands that talk to any conductor's service listener.
use crate::cli::{ConductorCommand, Conductors, Wait};
use crate::DeployError;
use magnum_conductor::membership::placement::{self, Placement};
use magnum_proto::wire::{Topology, TOPOLOGY_PATH};
use magnum_proto::{
    ConductorClient, MetaReply, MetaRequest, NodeEntry, NodeId, NodeState, PlacementView,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

/// One replica of a group, as its node reports it.
#[derive(Serialize)]
struct ReplicaView {
    applied: Option<u64>,
    committed: Option<u64>,
    /// Entries committed (as the leader knows) but not yet applied here.
    apply_lag: Option<u64>,
    /// Why this replica stopped applying the group (fail-stop); absent while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    halted: Option<String>,
}

#[derive(Serialize)]
struct GroupView {
    group: u64,
    /// `meta` or `shard N`.
    role: String,
    leader: Option<u64>,
    term: u64,
    /// Nodes the placement gives a replica (all nodes for meta).
    placement: Vec<u64>,
    voters: Vec<u64>,
    learners: Vec<u64>,
    replicas: BTreeMap<u64, ReplicaView>,
}

#[derive(Serialize)]
struct NodeView {
    id: u64,
    raft: String,
    service: String,
    state: NodeState,
    reachable: bool,
    leads: usize,
    replicas: usize,
}

#[derive(Serialize)]
struct Status {
    shards: u32,
    hash: String,
    replicas: u32,
    /// Every replica is where the placement wants it and every group's voters match it.
    settled: bool,
    nodes: Vec<NodeView>,
    groups: Vec<GroupView>,
}

fn err(e: impl std::fmt::Display) -> DeployError {
    DeployError::Args(e.to_string())
}

/// A client of the deployment, with the operator's certificate if one is given.
pub(crate) fn client(target: &Conductors) -> Result<ConductorClient, DeployError> {
    let tls = target
        .tls
        .load(magnum_net::Role::Operator, crate::certs::Legacy::Allowed)?;
    ConductorClient::new(target.conductors.clone(), Duration::from_secs(15), &tls).map_err(err)
}

async fn fetch(http: &magnum_net::InternalClient, addr: &str) -> Option<Topology> {
    let get = |h: &reqwest::Client, url| h.get(url).timeout(Duration::from_secs(3));
    http.send(addr, TOPOLOGY_PATH, get)
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Every node's own view, merged: the highest term's opinion of each leader wins.
async fn collect(target: &Conductors) -> Result<Status, DeployError> {
    let cl = client(target)?;
    let pv = cl.placement().await.map_err(err)?;
    let mut views: BTreeMap<u64, Option<Topology>> = BTreeMap::new();
    for n in &pv.nodes {
        views.insert(n.id.0, fetch(cl.http(), &n.service).await);
    }
    let all: Vec<u64> = pv.nodes.iter().map(|n| n.id.0).collect();
    let mut groups: Vec<GroupView> = std::iter::once(0)
        .chain(1..=u64::from(pv.shards))
        .map(|g| GroupView {
            group: g,
            role: if g == 0 {
                "meta".into()
            } else {
                format!("shard {}", g - 1)
            },
            leader: None,
            term: 0,
            placement: match pv.groups.get(&g) {
                Some(p) => p.iter().map(|n| n.0).collect(),
                None => all.clone(),
            },
            voters: Vec::new(),
            learners: Vec::new(),
            replicas: BTreeMap::new(),
        })
        .collect();
    for g in groups.iter_mut() {
        let mut leader_commit = None;
        for (node, view) in &views {
            let Some(m) = view
                .as_ref()
                .and_then(|t| t.groups.iter().find(|x| x.group == g.group))
            else {
                continue;
            };
            if m.term >= g.term {
                g.term = m.term;
                g.leader = m.leader.map(|l| l.0);
            }
            if m.leader.map(|l| l.0) == Some(*node) {
                leader_commit = m.committed;
                g.voters = m.voters.iter().map(|n| n.0).collect();
                g.learners = m.learners.iter().map(|n| n.0).collect();
            }
            g.replicas.insert(
                *node,
                ReplicaView {
                    applied: m.last_applied,
                    committed: m.committed,
                    apply_lag: None,
                    halted: m.halted.clone(),
                },
            );
        }
        for r in g.replicas.values_mut() {
            r.apply_lag = leader_commit.map(|c| c.saturating_sub(r.applied.unwrap_or(0)));
        }
    }
    let settled = is_settled(&pv, &groups);
    let hash = views
        .values()
        .flatten()
        .next()
        .map(|t| t.hash.clone())
        .ok_or_else(|| err(format!("no conductor answered at {:?}", target.conductors)))?;
    let nodes = pv
        .nodes
        .iter()
        .map(|n| NodeView {
            id: n.id.0,
            raft: n.raft.clone(),
            service: n.service.clone(),
            state: n.state,
            reachable: views.get(&n.id.0).is_some_and(Option::is_some),
            leads: groups.iter().filter(|g| g.leader == Some(n.id.0)).count(),
            replicas: pv.groups.values().filter(|s| s.contains(&n.id)).count(),
        })
        .collect();
    Ok(Status {
        shards: pv.shards,
        hash,
        replicas: pv.replicas,
        settled,
        nodes,
        groups,
    })
}

fn is_settled(pv: &PlacementView, groups: &[GroupView]) -> bool {
    let nodes: BTreeMap<NodeId, NodeEntry> = pv.nodes.iter().map(|n| (n.id, n.clone())).collect();
    let current: Placement = pv
        .groups
        .iter()
        .map(|(g, s)| (*g, s.iter().copied().collect()))
        .collect();
    let ids: Vec<u64> = (1..=u64::from(pv.shards)).collect();
    let want = placement::desired(&nodes, &current, &ids, pv.replicas as usize);
    if want != current {
        return false;
    }
    let meta_voters: BTreeSet<NodeId> = groups
        .first()
        .map(|g| g.voters.iter().copied().map(NodeId).collect())
        .unwrap_or_default();
    if placement::meta_voters(&nodes, &meta_voters) != meta_voters {
        return false;
    }
    groups.iter().skip(1).all(|g| {
        let voters: BTreeSet<NodeId> = g.voters.iter().copied().map(NodeId).collect();
        g.leader.is_some() && current.get(&g.group) == Some(&voters)
    })
}

pub async fn status(target: &Conductors, json: bool) -> Result<(), DeployError> {
    let status = collect(target).await?;
    let text = if json {
        serde_json::to_string_pretty(&status).map_err(err)?
    } else {
        table(&status)
    };
    // A closed pipe (`| head`) is not worth a panic.
    let _ = writeln!(std::io::stdout(), "{text}");
    Ok(())
}

/// `magnum manage verify`: one line per group (or JSON), non-zero exit on any failure.
pub async fn verify(target: &Conductors, json: bool) -> Result<(), DeployError> {
    let checks = magnum_conductor::verify::verify(&client(target)?)
        .await
        .map_err(err)?;
    let text = if json {
        serde_json::to_string_pretty(&checks).map_err(err)?
    } else {
        checks
            .iter()
            .map(|c| {
                let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                let mut line = format!(
                    "group {:>3}  {:<11} index {:<8} equal [{}]",
                    c.group,
                    format!("{:?}", c.verdict).to_lowercase(),
                    c.applied_index.map_or("-".into(), |i| i.to_string()),
                    ids(&c.equal)
                );
                for (what, v) in [
                    ("DIFFER", &c.differ),
                    ("other index", &c.other_index),
                    ("unreachable", &c.unreachable),
                ] {
                    if !v.is_empty() {
                        line += &format!("  {what} [{}]", ids(v));
                    }
                }
                for (n, why) in &c.halted {
                    line += &format!("  HALTED node {n} {why}");
                }
                for k in &c.differing_keys {
                    line += &format!("\n    key {k}");
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let _ = writeln!(std::io::stdout(), "{text}");
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passes())
        .map(|c| format!("group {} ({:?}, differ {:?})", c.group, c.verdict, c.differ))
        .collect();
    match failed.is_empty() {
        true => Ok(()),
        false => Err(err(format!("verify failed: {}", failed.join("; ")))),
    }
}

pub async fn conductor(cmd: ConductorCommand) -> Result<(), DeployError> {
    let (req, target, wait) = match cmd {
        ConductorCommand::Add {
            id,
            raft,
            service,
            target,
            wait,
        } => (
            MetaRequest::AddNode {
                id: NodeId(id),
                raft,
                service,
            },
            target,
            wait,
        ),
        ConductorCommand::Remove { id, target, wait } => (
            MetaRequest::SetNodeState {
                id: NodeId(id),
                state: NodeState::Leaving,
            },
            target,
            wait,
        ),
        ConductorCommand::Drain { id, target, wait } => (
            MetaRequest::SetNodeState {
                id: NodeId(id),
                state: NodeState::Draining,
            },
            target,
            wait,
        ),
        ConductorCommand::Undrain { id, target, wait } => (
            MetaRequest::SetNodeState {
                id: NodeId(id),
                state: NodeState::Active,
            },
            target,
            wait,
        ),
    };
    let reply = client(&target)?.meta_command(&req).await.map_err(err)?;
    let MetaReply::Node(node) = reply else {
        return Err(err(format!("unexpected answer {reply:?}")));
    };
    say(&format!("conductor {}: {:?}", node.id.0, node.state));
    if wait.no_wait {
        return Ok(());
    }
    wait_until(&target, wait, node.id.0, node.state).await
}

/// Polls the deployment until the change took effect everywhere.
async fn wait_until(
    target: &Conductors,
    wait: Wait,
    id: u64,
    state: NodeState,
) -> Result<(), DeployError> {
    let start = Instant::now();
    let deadline = Duration::from_secs(wait.timeout_secs);
    let mut last = String::new();
    // A condition must hold on two polls in a row (leadership can bounce once).
    let mut streak = 0;
    while start.elapsed() < deadline {
        let done = match collect(target).await {
            Ok(s) => {
                let node = s.nodes.iter().find(|n| n.id == id);
                last = format!(
                    "settled={} node: {}",
                    s.settled,
                    node.map_or("gone".into(), |n| format!(
                        "replicas {} leads {}",
                        n.replicas, n.leads
                    ))
                );
                match state {
                    NodeState::Leaving => node.is_none(),
                    NodeState::Draining => s.settled && node.is_some_and(|n| n.leads == 0),
                    NodeState::Active => s.settled,
                }
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        };
        streak = if done { streak + 1 } else { 0 };
        if streak >= 2 {
            say(&format!("done in {:.1} s", start.elapsed().as_secs_f64()));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(err(format!(
        "not done after {} s (the change goes on): {last}",
        wait.timeout_secs
    )))
}

fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn table(status: &Status) -> String {
    let dash = || "-".to_string();
    let mut out = format!(
        "shards: {}  replicas: {}  hash: {}  settled: {}\n",
        status.shards, status.replicas, status.hash, status.settled
    );
    for n in &status.nodes {
        let up = if n.reachable { "up" } else { "DOWN" };
        out += &format!(
            "node {:>3}  {:<22} {:<22} {:<5} {:<9} replicas {:>3}  leads {}\n",
            n.id,
            n.service,
            n.raft,
            up,
            format!("{:?}", n.state).to_lowercase(),
            n.replicas,
            n.leads
        );
    }
    out += &format!(
        "{:<10} {:>6} {:>6}  {:<12} applied(lag) per node",
        "group", "leader", "term", "voters"
    );
    for g in &status.groups {
        let leader = g.leader.map(|l| l.to_string()).unwrap_or_else(dash);
        let voters: Vec<String> = g.voters.iter().map(u64::to_string).collect();
        let replicas: Vec<String> = g
            .replicas
            .iter()
            .map(|(n, r)| {
                format!(
                    "{n}:{}({}){}",
                    r.applied.map(|a| a.to_string()).unwrap_or_else(dash),
                    r.apply_lag.map(|a| a.to_string()).unwrap_or_else(dash),
                    if r.halted.is_some() { "HALTED" } else { "" }
                )
            })
            .collect();
        out += &format!(
            "\n{:<10} {:>6} {:>6}  {:<12} {}",
            g.role,
            leader,
            g.term,
            voters.join(","),
            replicas.join(" ")
        );
    }
    // Halts last, one per line: the reason is long and the operator must not miss it.
    for g in &status.groups {
        for (n, r) in &g.replicas {
            if let Some(why) = &r.halted {
                out += &format!("\nHALTED: {} on node {n} {why}", g.role);
            }
        }
    }
    out
}
