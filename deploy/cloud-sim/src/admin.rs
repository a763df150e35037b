//! The simulator's own admin API under `/sim` (not OpenStack; no token needed). See the crate
//! documentation for the list of endpoints.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{json_response, SimError};
use crate::faults::FaultSpec;
use crate::heat::{engine, status_str, Action, HeatState};
use crate::keystone::state::IdentityState;
use crate::keystone::tokens::DEFAULT_TTL_SECS;
use crate::util::{lock, parse_query, query_flag};
use crate::Sim;

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/sim/health", get(health))
        .route("/sim/heat/stacks", get(stacks))
        .route("/sim/heat/latency", get(get_latency).post(set_latency))
        .route(
            "/sim/heat/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/sim/heat/engine", get(get_engine).post(set_engine))
        .route("/sim/keystone/token_ttl", get(get_ttl).post(set_ttl))
        .route("/sim/keystone/ledger", get(ledger))
        .route("/sim/reset", post(reset))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| SimError::admin(400, format!("invalid body: {e}")))
}

async fn health(State(sim): State<Arc<Sim>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"status": "ok", "base_url": sim.base_url, "time_scale": sim.time_scale}),
    )
}

async fn stacks(State(sim): State<Arc<Sim>>, RawQuery(raw): RawQuery) -> Response {
    let q = parse_query(raw.as_deref());
    let nested = query_flag(&q, "show_nested").unwrap_or(false);
    let st = lock(&sim.heat);
    json_response(StatusCode::OK, &stacks_json(&st, nested))
}

fn stacks_json(st: &HeatState, nested: bool) -> Value {
    let mut list: Vec<_> = st
        .stacks
        .values()
        .filter(|s| nested || s.parent.is_none())
        .collect();
    list.sort_by_key(|s| s.seq);
    let stacks: Vec<Value> = list
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "name": s.name,
                "project_id": s.project_id,
                "status": status_str(s.action, s.status),
                "status_reason": s.reason,
                "action": s.action.as_str(),
                "parent": s.parent,
                "deleted": s.is_deleted(),
                "creation_time": s.created.iso(),
                "updated_time": s.updated.map(|t| t.iso()),
                "deletion_time": s.deleted.map(|t| t.iso()),
                "creates_by_name": st.creates_by_name.get(&s.name).copied().unwrap_or(0),
            })
        })
        .collect();
    json!({"stacks": stacks, "creates_by_name": st.creates_by_name})
}

#[derive(Deserialize)]
struct LatencyReq {
    resource_type: String,
    #[serde(default)]
    action: Option<String>,
    seconds: f64,
}

fn latencies_json(sim: &Sim) -> Value {
    let rt = lock(&sim.runtime);
    let mut v: Vec<Value> = rt
        .latencies
        .iter()
        .map(|((t, a), s)| json!({"resource_type": t, "action": a, "seconds": s}))
        .collect();
    v.sort_by_key(|x| x.to_string());
    json!({"latencies": v})
}

async fn get_latency(State(sim): State<Arc<Sim>>) -> Response {
    json_response(StatusCode::OK, &latencies_json(&sim))
}

async fn set_latency(State(sim): State<Arc<Sim>>, body: Bytes) -> Result<Response, SimError> {
    let req: LatencyReq = parse(&body)?;
    if !req.seconds.is_finite() || req.seconds < 0.0 {
        return Err(SimError::admin(
            400,
            "seconds must be a non-negative number",
        ));
    }
    let action = match req.action.as_deref() {
        None | Some("*") => "*".to_string(),
        Some(a) => Action::parse(a)
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| SimError::admin(400, format!("unknown action {a}")))?,
    };
    lock(&sim.runtime)
        .latencies
        .insert((req.resource_type, action), req.seconds);
    Ok(json_response(StatusCode::OK, &latencies_json(&sim)))
}

async fn list_faults(State(sim): State<Arc<Sim>>) -> Response {
    let faults = lock(&sim.faults).faults.clone();
    json_response(StatusCode::OK, &json!({"faults": faults}))
}

async fn add_fault(State(sim): State<Arc<Sim>>, body: Bytes) -> Result<Response, SimError> {
    let spec: FaultSpec = parse(&body)?;
    spec.validate().map_err(|m| SimError::admin(400, m))?;
    let f = lock(&sim.faults).add(spec);
    tracing::info!(fault = ?f, "fault installed");
    Ok(json_response(StatusCode::CREATED, &json!({"fault": f})))
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> Response {
    lock(&sim.faults).clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct EngineReq {
    legacy_locking: bool,
}

async fn get_engine(State(sim): State<Arc<Sim>>) -> Response {
    let legacy = lock(&sim.runtime).legacy_locking;
    json_response(StatusCode::OK, &json!({"legacy_locking": legacy}))
}

async fn set_engine(State(sim): State<Arc<Sim>>, body: Bytes) -> Result<Response, SimError> {
    let req: EngineReq = parse(&body)?;
    lock(&sim.runtime).legacy_locking = req.legacy_locking;
    Ok(json_response(
        StatusCode::OK,
        &json!({"legacy_locking": req.legacy_locking}),
    ))
}

#[derive(Deserialize)]
struct TtlReq {
    seconds: f64,
}

async fn get_ttl(State(sim): State<Arc<Sim>>) -> Response {
    let ttl = lock(&sim.keystone).ttl_secs;
    json_response(StatusCode::OK, &json!({"seconds": ttl}))
}

async fn set_ttl(State(sim): State<Arc<Sim>>, body: Bytes) -> Result<Response, SimError> {
    let req: TtlReq = parse(&body)?;
    if !req.seconds.is_finite() || req.seconds < 0.0 {
        return Err(SimError::admin(
            400,
            "seconds must be a non-negative number",
        ));
    }
    lock(&sim.keystone).ttl_secs = req.seconds;
    Ok(json_response(
        StatusCode::OK,
        &json!({"seconds": req.seconds}),
    ))
}

/// Created users and trusts and the counters, so tests can check "one trustee and one trust
/// per cluster".
async fn ledger(State(sim): State<Arc<Sim>>) -> Response {
    let ks = lock(&sim.keystone);
    let i = &ks.ident;
    let users: Vec<Value> = i
        .users
        .values()
        .map(|u| json!({"id": u.id, "name": u.name, "domain_id": u.domain_id}))
        .collect();
    let trusts: Vec<Value> = i
        .trusts
        .values()
        .map(|t| {
            json!({"id": t.id, "trustor_user_id": t.trustor_user_id,
                "trustee_user_id": t.trustee_user_id, "project_id": t.project_id})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"users": users, "trusts": trusts, "users_created": i.users_created,
            "trusts_created": i.trusts_created, "password_sets": i.password_sets}),
    )
}

async fn reset(State(sim): State<Arc<Sim>>) -> Response {
    let ids: Vec<_> = lock(&sim.heat).stacks.keys().copied().collect();
    for id in ids {
        engine::stop(&sim, id);
    }
    {
        let mut rt = lock(&sim.runtime);
        rt.latencies.clear();
        rt.legacy_locking = false;
    }
    *lock(&sim.heat) = HeatState {
        networks: sim.networks.clone(),
        ..HeatState::default()
    };
    {
        let mut ks = lock(&sim.keystone);
        ks.tokens.clear();
        ks.ttl_secs = DEFAULT_TTL_SECS;
        ks.ident = IdentityState::default();
    }
    lock(&sim.faults).clear();
    lock(&sim.requests).clear();
    sim.changed();
    tracing::info!("simulator reset");
    StatusCode::NO_CONTENT.into_response()
}
