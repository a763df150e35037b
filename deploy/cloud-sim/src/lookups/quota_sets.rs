//! Nova's quota sets (`/compute/v2.1/os-quota-sets/{project_id}`, API 2.57+ keys): show,
//! detail (with `in_use`), defaults, update (admin; below what is in use only with `force`)
//! and delete (back to the defaults). Only `instances` and `cores` are enforced.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::error::{json_response, SimError};
use crate::heat::HeatState;
use crate::keystone::{authenticate, AuthContext};
use crate::quota::{self, Usage, KEYS};
use crate::util::lock;
use crate::Sim;

pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/compute/v2.1/os-quota-sets/{project}",
            get(show).put(update).delete(revert),
        )
        .route("/compute/v2.1/os-quota-sets/{project}/detail", get(detail))
        .route(
            "/compute/v2.1/os-quota-sets/{project}/defaults",
            get(defaults),
        )
}

fn nova(status: StatusCode, message: impl Into<String>) -> SimError {
    SimError::Nova {
        status,
        message: message.into(),
    }
}

/// Nova's policy refusal.
fn policy(rule: &str) -> SimError {
    nova(
        StatusCode::FORBIDDEN,
        format!("Policy doesn't allow os_compute_api:os-quota-sets:{rule} to be performed."),
    )
}

/// `show`/`detail`: an admin, or a member of the project itself.
fn may_read(caller: &AuthContext, project: &str) -> Result<(), SimError> {
    if caller.is_admin() || caller.project_id.as_deref() == Some(project) {
        Ok(())
    } else {
        Err(policy("show"))
    }
}

fn limits_json(sim: &Sim, st: &HeatState, project: &str) -> Map<String, Value> {
    KEYS.iter()
        .map(|(k, _)| {
            (
                k.to_string(),
                json!(quota::limit_of(st, &sim.nova_defaults, project, k)),
            )
        })
        .collect()
}

async fn show(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Response, SimError> {
    let caller = authenticate(&sim, &headers).await?;
    may_read(&caller, &project)?;
    let mut set = limits_json(&sim, &lock(&sim.heat), &project);
    set.insert("id".into(), json!(project));
    Ok(json_response(StatusCode::OK, &json!({"quota_set": set})))
}

async fn detail(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Response, SimError> {
    let caller = authenticate(&sim, &headers).await?;
    may_read(&caller, &project)?;
    let st = lock(&sim.heat);
    let used = quota::in_use(&st, &project, None);
    let mut set: Map<String, Value> = KEYS
        .iter()
        .map(|(k, _)| {
            let in_use = match *k {
                "instances" => used.instances,
                "cores" => used.cores,
                _ => 0,
            };
            let limit = quota::limit_of(&st, &sim.nova_defaults, &project, k);
            (
                k.to_string(),
                json!({"in_use": in_use, "limit": limit, "reserved": 0}),
            )
        })
        .collect();
    set.insert("id".into(), json!(project));
    Ok(json_response(StatusCode::OK, &json!({"quota_set": set})))
}

async fn defaults(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Response, SimError> {
    authenticate(&sim, &headers).await?;
    let mut set: Map<String, Value> = KEYS
        .iter()
        .map(|(k, _)| {
            let v = quota::default_of(&sim.nova_defaults, k).unwrap_or(-1);
            (k.to_string(), json!(v))
        })
        .collect();
    set.insert("id".into(), json!(project));
    Ok(json_response(StatusCode::OK, &json!({"quota_set": set})))
}

/// Nova's schema error text.
fn invalid(field: &str, value: &Value, reason: &str) -> SimError {
    nova(
        StatusCode::BAD_REQUEST,
        format!("Invalid input for field/attribute {field}. Value: {value}. {reason}"),
    )
}

/// A limit: an integer (or a string of one) of at least -1.
fn parse_limit(key: &str, v: &Value) -> Result<i64, SimError> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid(key, v, &format!("{v} is not of type 'integer', 'string'")))?;
    if n < -1 {
        return Err(invalid(
            key,
            v,
            &format!("{n} is less than the minimum of -1"),
        ));
    }
    Ok(n)
}

fn parse_force(v: &Value) -> Result<bool, SimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(invalid("force", other, "is not a valid boolean")),
    }
}

/// The limits of a `{"quota_set": {...}}` body, and its `force`.
fn parse_update(body: &Bytes) -> Result<(BTreeMap<String, i64>, bool), SimError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| nova(StatusCode::BAD_REQUEST, "Malformed request body"))?;
    let set = v
        .get("quota_set")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("quota_set", &v, "'quota_set' is a required property"))?;
    let mut limits = BTreeMap::new();
    let mut force = false;
    for (k, val) in set {
        if k == "force" {
            force = parse_force(val)?;
        } else if KEYS.iter().any(|(n, _)| n == k) {
            limits.insert(k.clone(), parse_limit(k, val)?);
        } else {
            return Err(invalid(
                "quota_set",
                &Value::Object(set.clone()),
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
    }
    Ok((limits, force))
}

async fn update(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    let caller = authenticate(&sim, &headers).await?;
    if !caller.is_admin() {
        return Err(policy("update"));
    }
    let (limits, force) = parse_update(&body)?;
    let set = {
        let mut st = lock(&sim.heat);
        if !force {
            let used = quota::in_use(&st, &project, None);
            check_not_below(&limits, used)?;
        }
        let own = st.nova_quotas.entry(project.clone()).or_default();
        own.extend(limits.iter().map(|(k, v)| (k.clone(), *v)));
        limits_json(&sim, &st, &project)
    };
    sim.changed();
    tracing::info!(%project, ?limits, force, "nova quota set");
    Ok(json_response(StatusCode::OK, &json!({"quota_set": set})))
}

/// Nova refuses a limit below what is in use unless forced.
fn check_not_below(limits: &BTreeMap<String, i64>, used: Usage) -> Result<(), SimError> {
    for (k, in_use) in [("instances", used.instances), ("cores", used.cores)] {
        let Some(&limit) = limits.get(k) else {
            continue;
        };
        if limit >= 0 && quota::exceeds(limit, in_use, 0) {
            return Err(nova(
                StatusCode::BAD_REQUEST,
                format!(
                    "Quota limit {limit} for {k} must be greater than or equal to already used and reserved {in_use}."
                ),
            ));
        }
    }
    Ok(())
}

async fn revert(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Response, SimError> {
    let caller = authenticate(&sim, &headers).await?;
    if !caller.is_admin() {
        return Err(policy("delete"));
    }
    lock(&sim.heat).nova_quotas.remove(&project);
    sim.changed();
    Ok(StatusCode::ACCEPTED.into_response())
}
