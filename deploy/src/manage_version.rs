//! `magnum manage version show|finalize`: every conductor's binary version (from the registry
//! its heartbeats keep) and every API node's (as the conductors heard from them), the active
//! cluster version, and moving it up once every node supports more.
use crate::cli::Conductors;
use crate::DeployError;
use magnum_proto::meta::{recent_api_nodes, ApiNodeSeen};
use magnum_proto::version::{BASE_VERSION, FEATURE_VERSION};
use magnum_proto::{
    ClientError, ConductorClient, MetaQuery, MetaQueryResult, MetaReply, MetaRequest, NodeState,
    PlacementView, ServiceRecord, Timestamp,
};
use serde::Serialize;
use std::io::Write;

/// A conductor silent this long is shown as down (Magnum's `service_down_time`).
const DOWN_AFTER_SECS: i64 = 180;

#[derive(Debug, Serialize)]
struct ConductorVersion {
    id: u64,
    state: Option<NodeState>,
    /// Crate version of its binary, from its last heartbeat (`None`: never reported).
    crate_version: Option<String>,
    feature_version: u32,
    live: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    active: u32,
    /// The highest version any registered conductor (or this `magnum`) knows of.
    target: u32,
    finalize_possible: bool,
    /// Conductors that report an older feature version than `target`.
    laggards: Vec<u64>,
    /// API nodes heard from lately with an older feature version ("" for one before versions).
    api_laggards: Vec<String>,
    reason: String,
    conductors: Vec<ConductorVersion>,
    /// The API nodes the conductors heard from in the last `API_NODE_WINDOW_SECS`.
    api_nodes: Vec<ApiNodeSeen>,
}

fn err(e: impl std::fmt::Display) -> DeployError {
    DeployError::Args(e.to_string())
}

fn report(pv: &PlacementView, services: &[ServiceRecord], active: u32, now: Timestamp) -> Report {
    let rec = |id: u64| services.iter().find(|s| s.id == id);
    let mut ids: Vec<(u64, Option<NodeState>)> =
        pv.nodes.iter().map(|n| (n.id.0, Some(n.state))).collect();
    if ids.is_empty() {
        ids = services.iter().map(|s| (s.id, None)).collect();
    }
    let conductors: Vec<ConductorVersion> = ids
        .into_iter()
        .map(|(id, state)| ConductorVersion {
            id,
            state,
            crate_version: rec(id).map(|s| s.version.clone()),
            feature_version: rec(id).map_or(BASE_VERSION, |s| s.feature_version),
            live: rec(id).is_some_and(|s| now.0 - s.updated_at.0 < DOWN_AFTER_SECS * 1_000_000),
        })
        .collect();
    let target = conductors
        .iter()
        .map(|c| c.feature_version)
        .chain([FEATURE_VERSION])
        .max()
        .unwrap_or(FEATURE_VERSION);
    let laggards: Vec<u64> = conductors
        .iter()
        .filter(|c| c.feature_version < target)
        .map(|c| c.id)
        .collect();
    let api_nodes = recent_api_nodes(services, now);
    let old_api: Vec<&ApiNodeSeen> = api_nodes
        .iter()
        .filter(|a| a.feature_version < target)
        .collect();
    let reason = if !laggards.is_empty() || !old_api.is_empty() {
        let names: Vec<String> = conductors
            .iter()
            .filter(|c| c.feature_version < target)
            .map(|c| {
                let down = if c.live { "" } else { ", down" };
                format!(
                    "conductor {} (feature version {}{down})",
                    c.id, c.feature_version
                )
            })
            .chain(
                old_api
                    .iter()
                    .map(|a| format!("{} (feature version {})", a.name(), a.feature_version)),
            )
            .collect();
        format!(
            "cannot finalize {target}: upgrade {} first",
            names.join(", ")
        )
    } else if active >= target {
        format!("already at {active}")
    } else {
        format!("every conductor supports {target}")
    };
    Report {
        active,
        target,
        finalize_possible: laggards.is_empty() && old_api.is_empty() && active < target,
        api_laggards: old_api.iter().map(|a| a.url.clone()).collect(),
        laggards,
        reason,
        conductors,
        api_nodes,
    }
}

async fn collect(target: &Conductors) -> Result<(ConductorClient, Report), DeployError> {
    let cl = crate::manage::client(target)?;
    let pv = cl.placement().await.map_err(err)?;
    let services = cl.services().await.map_err(err)?;
    let active = match cl.meta_query(&MetaQuery::ClusterVersion).await {
        Ok(MetaQueryResult::ClusterVersion(v)) => v,
        // A meta leader from before versioning does not know the query: version 1.
        Err(ClientError::Rejected(_)) => BASE_VERSION,
        Ok(other) => return Err(err(format!("unexpected answer {other:?}"))),
        Err(e) => return Err(err(e)),
    };
    Ok((cl, report(&pv, &services, active, Timestamp::now())))
}

fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn table(r: &Report) -> String {
    let mut out = format!(
        "active cluster version: {}  (this magnum: {} {})\n",
        r.active,
        magnum_proto::version::CRATE_VERSION,
        FEATURE_VERSION
    );
    for c in &r.conductors {
        let state = c
            .state
            .map_or("-".into(), |s| format!("{s:?}").to_lowercase());
        out += &format!(
            "conductor {:>3}  {:<9} {:<5} crate {:<10} feature {}\n",
            c.id,
            state,
            if c.live { "up" } else { "DOWN" },
            c.crate_version.as_deref().unwrap_or("unknown"),
            c.feature_version
        );
    }
    for a in &r.api_nodes {
        let url = if a.url.is_empty() {
            "(before versions)"
        } else {
            &a.url
        };
        let version = if a.version.is_empty() {
            "unknown"
        } else {
            &a.version
        };
        out += &format!(
            "api node  {url:<28} crate {version:<10} feature {}\n",
            a.feature_version
        );
    }
    if r.api_nodes.is_empty() {
        out += "api nodes: none heard from lately\n";
    }
    let verdict = if r.finalize_possible {
        "possible"
    } else {
        "not possible"
    };
    out += &format!("finalize to {}: {verdict} ({})", r.target, r.reason);
    out
}

pub async fn show(target: &Conductors, json: bool) -> Result<(), DeployError> {
    let (_, r) = collect(target).await?;
    let text = if json {
        serde_json::to_string_pretty(&r).map_err(err)?
    } else {
        table(&r)
    };
    say(&text);
    Ok(())
}

/// 0 when the cluster version is (now) the highest every conductor supports; an error naming
/// the laggards otherwise.
pub async fn finalize(target: &Conductors) -> Result<(), DeployError> {
    let (cl, r) = collect(target).await?;
    if !r.laggards.is_empty() || !r.api_laggards.is_empty() {
        return Err(err(format!("refused: {}", r.reason)));
    }
    if r.active >= r.target {
        say(&format!("cluster version is already {}", r.active));
        return Ok(());
    }
    let req = MetaRequest::SetClusterVersion { version: r.target };
    match cl.meta_command(&req).await.map_err(err)? {
        MetaReply::ClusterVersion(v) => {
            say(&format!("cluster version is now {v} (was {})", r.active));
            Ok(())
        }
        other => Err(err(format!("unexpected answer {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_proto::{NodeEntry, NodeId};

    fn pv(ids: &[u64]) -> PlacementView {
        PlacementView {
            nodes: ids
                .iter()
                .map(|i| NodeEntry {
                    id: NodeId(*i),
                    raft: format!("r{i}"),
                    service: format!("s{i}"),
                    state: NodeState::Active,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn rec(id: u64, feature_version: u32, at: i64) -> ServiceRecord {
        ServiceRecord {
            id,
            host: format!("s{id}"),
            binary: "magnum-conductor".into(),
            report_count: 1,
            created_at: Timestamp(at),
            updated_at: Timestamp(at),
            version: "0.1.0".into(),
            feature_version,
            api_nodes: Vec::new(),
        }
    }

    #[test]
    fn laggards_block_finalize_and_are_named() {
        let now = Timestamp(1_000_000_000);
        let r = report(
            &pv(&[1, 2, 3]),
            &[rec(1, FEATURE_VERSION, now.0), rec(2, 1, now.0)],
            1,
            now,
        );
        assert_eq!(r.target, FEATURE_VERSION);
        assert_eq!(r.laggards, vec![2, 3], "an old report and none at all");
        assert!(!r.finalize_possible);
        assert!(
            r.reason.contains("conductor 3 (feature version 1, down)"),
            "{}",
            r.reason
        );

        let f = FEATURE_VERSION;
        let all = [rec(1, f, now.0), rec(2, f, now.0), rec(3, f, now.0)];
        let r = report(&pv(&[1, 2, 3]), &all, 1, now);
        assert!(r.finalize_possible && r.laggards.is_empty());
        let r = report(&pv(&[1, 2, 3]), &all, f, now);
        assert!(!r.finalize_possible);
        assert_eq!(r.reason, format!("already at {f}"));

        // An API node before versions, heard from by conductor 1, blocks finalize.
        let mut all = all;
        all[0].api_nodes.push(magnum_proto::meta::ApiNodeSeen {
            url: String::new(),
            feature_version: 1,
            version: String::new(),
            last_seen: now,
        });
        let r = report(&pv(&[1, 2, 3]), &all, 1, now);
        assert!(!r.finalize_possible);
        assert_eq!(r.api_laggards, vec![String::new()]);
        assert!(
            r.reason
                .contains("an API node before cluster versions (feature version 1)"),
            "{}",
            r.reason
        );
        assert!(table(&r).contains("(before versions)"));
    }
}
