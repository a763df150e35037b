//! `magnum manage`: operator commands that talk to any conductor's service listener.
use crate::DeployError;
use magnum_proto::wire::{Topology, TOPOLOGY_PATH};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

#[derive(Serialize)]
struct GroupView {
    group: u64,
    /// `meta` or `shard N`.
    role: String,
    leader: Option<u64>,
    term: u64,
    /// Last applied log index per node, as each node reports it.
    applied: BTreeMap<u64, Option<u64>>,
}

#[derive(Serialize)]
struct Status {
    shards: u32,
    hash: String,
    nodes: Vec<NodeView>,
    groups: Vec<GroupView>,
}

#[derive(Serialize)]
struct NodeView {
    id: u64,
    service: String,
    reachable: bool,
    leads: usize,
}

async fn fetch(http: &reqwest::Client, addr: &str) -> Option<Topology> {
    http.get(format!("http://{addr}{TOPOLOGY_PATH}"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Every node's own view, so lag and split views are visible.
pub async fn status(conductors: &[String], json: bool) -> Result<(), DeployError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| DeployError::Args(e.to_string()))?;
    let mut first = None;
    for c in conductors {
        if let Some(t) = fetch(&http, c).await {
            first = Some(t);
            break;
        }
    }
    let Some(seed) = first else {
        return Err(DeployError::Args(format!(
            "no conductor answered at {}",
            conductors.join(", ")
        )));
    };
    let mut views = BTreeMap::new();
    for n in &seed.nodes {
        views.insert(n.id.0, fetch(&http, &n.service).await);
    }
    let mut groups: Vec<GroupView> = seed
        .groups
        .iter()
        .map(|g| GroupView {
            group: g.group,
            role: if g.group == 0 {
                "meta".into()
            } else {
                format!("shard {}", g.group - 1)
            },
            leader: None,
            term: 0,
            applied: BTreeMap::new(),
        })
        .collect();
    for (node, view) in &views {
        for g in groups.iter_mut() {
            let mine = view
                .as_ref()
                .and_then(|t| t.groups.iter().find(|x| x.group == g.group));
            g.applied.insert(*node, mine.and_then(|m| m.last_applied));
            if let Some(m) = mine {
                // The highest term's opinion of the leader wins.
                if m.term >= g.term {
                    g.term = m.term;
                    g.leader = m.leader.map(|l| l.0);
                }
            }
        }
    }
    let nodes = seed
        .nodes
        .iter()
        .map(|n| NodeView {
            id: n.id.0,
            service: n.service.clone(),
            reachable: views.get(&n.id.0).is_some_and(Option::is_some),
            leads: groups.iter().filter(|g| g.leader == Some(n.id.0)).count(),
        })
        .collect();
    let status = Status {
        shards: seed.shards,
        hash: seed.hash,
        nodes,
        groups,
    };
    let text = if json {
        serde_json::to_string_pretty(&status).map_err(|e| DeployError::Args(e.to_string()))?
    } else {
        table(&status)
    };
    // A closed pipe (`| head`) is not worth a panic.
    let _ = writeln!(std::io::stdout(), "{text}");
    Ok(())
}

fn table(status: &Status) -> String {
    let dash = || "-".to_string();
    let mut out = format!("shards: {}  hash: {}\n", status.shards, status.hash);
    for n in &status.nodes {
        let state = if n.reachable { "up" } else { "DOWN" };
        out += &format!(
            "node {:>3}  {:<22} {:<5} leads {}\n",
            n.id, n.service, state, n.leads
        );
    }
    out += &format!(
        "{:<10} {:>6} {:>6}  applied per node",
        "group", "leader", "term"
    );
    for g in &status.groups {
        let leader = g.leader.map(|l| l.to_string()).unwrap_or_else(dash);
        let applied: Vec<String> = g
            .applied
            .iter()
            .map(|(n, a)| format!("{n}:{}", a.map(|a| a.to_string()).unwrap_or_else(dash)))
            .collect();
        out += &format!(
            "\n{:<10} {:>6} {:>6}  {}",
            g.role,
            leader,
            g.term,
            applied.join(" ")
        );
    }
    out
}
