//! Simulated Kubernetes API of each created cluster, keyed by its root stack id:
//! `GET /sim/k8s/{stack_id}/healthz` and `GET /sim/k8s/{stack_id}/api/v1/nodes` (one node per
//! member of the stack's ResourceGroups, `<stack>-<group>-<member>`), for the conductor's health
//! polling. `POST /sim/k8s/{stack_id}` `{"healthz": "...", "not_ready": ["node"], "reachable":
//! false}` overrides what they answer; `GET` shows the current view.
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{json_response, SimError};
use crate::heat::{HeatState, ResKind, Status};
use crate::util::lock;
use crate::Sim;

/// Admin overrides of one cluster's endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Overrides {
    /// Body of `/healthz` (default `ok`).
    pub healthz: Option<String>,
    /// Nodes reported `Ready: False`.
    pub not_ready: Vec<String>,
    /// `false`: every call answers 503, as an unreachable API would fail.
    pub reachable: Option<bool>,
}

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/sim/k8s/{stack_id}", get(show).post(set))
        .route("/sim/k8s/{stack_id}/healthz", get(healthz))
        .route("/sim/k8s/{stack_id}/api/v1/nodes", get(nodes))
}

fn stack_id(raw: &str) -> Result<Uuid, SimError> {
    raw.parse()
        .map_err(|_| SimError::admin(404, format!("no cluster endpoint for stack {raw}")))
}

/// Node names of a live root stack, or `None` if there is no such stack.
fn node_names(st: &HeatState, id: Uuid) -> Option<Vec<String>> {
    let s = st.stacks.get(&id).filter(|s| !s.is_deleted())?;
    let mut names = Vec::new();
    for r in s.resources.values().filter(|r| r.kind == ResKind::Group) {
        let Some(members) = r.nested.and_then(|n| st.stacks.get(&n)) else {
            continue;
        };
        for m in members
            .resources
            .values()
            .filter(|m| m.status == Status::Complete && !m.physical_id.is_empty())
        {
            names.push(format!("{}-{}-{}", s.name, r.name, m.name));
        }
    }
    Some(names)
}

struct View {
    healthz: String,
    nodes: Vec<(String, bool)>,
}

fn view(sim: &Sim, raw: &str) -> Result<View, SimError> {
    let id = stack_id(raw)?;
    let names = node_names(&lock(&sim.heat), id)
        .ok_or_else(|| SimError::admin(404, format!("no cluster endpoint for stack {raw}")))?;
    let o = lock(&sim.k8s).get(&id).cloned().unwrap_or_default();
    if o.reachable == Some(false) {
        return Err(SimError::admin(503, "cluster API unreachable"));
    }
    Ok(View {
        healthz: o.healthz.unwrap_or_else(|| "ok".into()),
        nodes: names
            .into_iter()
            .map(|n| {
                let ready = !o.not_ready.contains(&n);
                (n, ready)
            })
            .collect(),
    })
}

async fn healthz(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let v = view(&sim, &id)?;
    // Kubernetes answers 200 "ok", or 500 with the failing checks.
    let status = if v.healthz == "ok" {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    Ok((status, v.healthz).into_response())
}

async fn nodes(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Result<Response, SimError> {
    let v = view(&sim, &id)?;
    let items: Vec<Value> = v
        .nodes
        .iter()
        .map(|(n, ready)| {
            json!({"metadata": {"name": n}, "status": {"conditions": [
                {"type": "Ready", "status": if *ready { "True" } else { "False" }}
            ]}})
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "NodeList", "apiVersion": "v1", "items": items}),
    ))
}

async fn show(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Result<Response, SimError> {
    let sid = stack_id(&id)?;
    let o = lock(&sim.k8s).get(&sid).cloned().unwrap_or_default();
    let names = node_names(&lock(&sim.heat), sid).unwrap_or_default();
    Ok(json_response(
        StatusCode::OK,
        &json!({"overrides": o, "nodes": names}),
    ))
}

async fn set(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    let sid = stack_id(&id)?;
    let o: Overrides = serde_json::from_slice(&body)
        .map_err(|e| SimError::admin(400, format!("invalid body: {e}")))?;
    lock(&sim.k8s).insert(sid, o.clone());
    tracing::info!(stack = %sid, overrides = ?o, "cluster endpoint overridden");
    Ok(json_response(StatusCode::OK, &json!({"overrides": o})))
}

/// Per-stack overrides (in memory only).
pub(crate) type K8sState = BTreeMap<Uuid, Overrides>;
