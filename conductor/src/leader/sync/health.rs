//! Health polling (reference §7.4), run only by the shard leader: for each cluster in a polled
//! status, `GET <api>/healthz` and `GET <api>/api/v1/nodes`; HEALTHY iff healthz is `ok` and every
//! node is Ready, else UNHEALTHY, with reason `{"api": <healthz body>, "<node>.Ready": "True" |
//! "False"}`; an API that cannot be reached gives UNKNOWN `{"api": "The cluster <name> is not
//! accessible."}`. Only changes are written (`ShardCommand::ObserveHealth`, epoch-fenced).
//!
//! `<api>` is the cluster's `api_address`, or `LeaderConfig::cluster_api_url` with
//! `{stack_id}` / `{cluster_uuid}` substituted (cloud-sim's simulated endpoints in tests).
use crate::leader::sync::{pause, propose};
use crate::leader::LeaderConfig;
use crate::propose::ShardLeader;
use magnum_proto::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub const HEALTHY: &str = "HEALTHY";
pub const UNHEALTHY: &str = "UNHEALTHY";
pub const UNKNOWN: &str = "UNKNOWN";

/// Statuses Magnum's `sync_cluster_health_status` polls.
fn polled(status: ClusterStatus) -> bool {
    use ClusterStatus::*;
    matches!(
        status,
        CREATE_IN_PROGRESS
            | CREATE_FAILED
            | CREATE_COMPLETE
            | UPDATE_IN_PROGRESS
            | UPDATE_FAILED
            | UPDATE_COMPLETE
            | DELETE_IN_PROGRESS
            | DELETE_FAILED
            | ROLLBACK_IN_PROGRESS
    )
}

/// The endpoint to poll, if the cluster has one.
pub fn api_base(cfg: &LeaderConfig, c: &Cluster) -> Option<String> {
    match &cfg.cluster_api_url {
        Some(t) => {
            let stack = c.stack_id.as_deref()?;
            Some(
                t.replace("{stack_id}", stack)
                    .replace("{cluster_uuid}", &c.uuid.to_string()),
            )
        }
        None => c.api_address.clone().filter(|a| !a.is_empty()),
    }
}

/// Health from the two answers (`None` = the API could not be reached).
pub fn assess(
    name: &str,
    healthz: Option<&str>,
    nodes: Option<&serde_json::Value>,
) -> (String, BTreeMap<String, String>) {
    let (Some(h), Some(nodes)) = (healthz, nodes) else {
        let reason = BTreeMap::from([(
            "api".to_string(),
            format!("The cluster {name} is not accessible."),
        )]);
        return (UNKNOWN.into(), reason);
    };
    let mut reason = BTreeMap::from([("api".to_string(), h.to_string())]);
    let mut healthy = h == "ok";
    for item in nodes["items"].as_array().into_iter().flatten() {
        let Some(n) = item["metadata"]["name"].as_str() else {
            continue;
        };
        let ready = item["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .and_then(|c| c["status"].as_str())
            .unwrap_or("False");
        healthy &= ready == "True";
        reason.insert(format!("{n}.Ready"), ready.to_string());
    }
    let status = if healthy { HEALTHY } else { UNHEALTHY };
    (status.into(), reason)
}

async fn probe(http: &reqwest::Client, base: &str) -> (Option<String>, Option<serde_json::Value>) {
    let base = base.trim_end_matches('/');
    let healthz = match http.get(format!("{base}/healthz")).send().await {
        // A failing healthz answers 500 with the failed checks as its body.
        Ok(r) if r.status().is_success() || r.status().is_server_error() && r.status() != 503 => {
            r.text().await.ok()
        }
        _ => None,
    };
    let nodes = match http.get(format!("{base}/api/v1/nodes")).send().await {
        Ok(r) if r.status().is_success() => r.json().await.ok(),
        _ => None,
    };
    (healthz, nodes)
}

/// Runs until `cancel` fires (leadership lost).
pub async fn run(leader: ShardLeader, epoch: u64, cfg: LeaderConfig, cancel: CancellationToken) {
    if cfg.health.is_zero() {
        return;
    }
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            warn!(error = %e, "health polling disabled: no HTTP client");
            return;
        }
    };
    let group = leader.group();
    while pause(&cancel, cfg.health).await {
        let clusters: Vec<Cluster> = group.read_local(|l| {
            l.state
                .clusters()
                .values()
                .filter(|c| polled(c.status))
                .cloned()
                .collect()
        });
        for c in clusters {
            if cancel.is_cancelled() {
                return;
            }
            let (status, reason) = match api_base(&cfg, &c) {
                Some(base) => {
                    let (h, n) = probe(&http, &base).await;
                    assess(&c.name, h.as_deref(), n.as_ref())
                }
                None => assess(&c.name, None, None),
            };
            if c.health_status.as_deref() == Some(status.as_str())
                && c.health_status_reason.as_ref() == Some(&reason)
            {
                continue;
            }
            info!(cluster = %c.uuid, health = %status, "health changed");
            let cmd = ShardCommand::ObserveHealth {
                epoch,
                cluster: c.uuid,
                health_status: Some(status),
                health_status_reason: Some(reason),
                at: Timestamp::now(),
            };
            match propose(&leader, cmd).await {
                Ok(()) => {}
                Err(e) if e == "stale" => return,
                Err(e) => warn!(error = %e, "health write failed, next round retries"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nodes(ready: &[(&str, &str)]) -> serde_json::Value {
        let items: Vec<_> = ready
            .iter()
            .map(|(n, r)| json!({"metadata": {"name": n}, "status": {"conditions": [{"type": "Ready", "status": r}]}}))
            .collect();
        json!({"items": items})
    }

    #[test]
    fn healthy_needs_ok_and_every_node_ready() {
        let (s, r) = assess(
            "c",
            Some("ok"),
            Some(&nodes(&[("a", "True"), ("b", "True")])),
        );
        assert_eq!(s, HEALTHY);
        assert_eq!(r["api"], "ok");
        assert_eq!(r["a.Ready"], "True");
        let (s, r) = assess(
            "c",
            Some("ok"),
            Some(&nodes(&[("a", "True"), ("b", "False")])),
        );
        assert_eq!(s, UNHEALTHY);
        assert_eq!(r["b.Ready"], "False");
        let (s, _) = assess("c", Some("[-]etcd failed"), Some(&nodes(&[("a", "True")])));
        assert_eq!(s, UNHEALTHY);
    }

    #[test]
    fn unreachable_is_unknown() {
        let (s, r) = assess("k8s", None, None);
        assert_eq!(s, UNKNOWN);
        assert_eq!(r["api"], "The cluster k8s is not accessible.");
    }
}
