//! OS-TRUST trusts: create (by the trustor only, roles it holds on the project), list with
//! `trustee_user_id`/`trustor_user_id` filters, show, delete. Trust-scoped tokens are issued in
//! `tokens::authenticate` and die with their trust.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::directory::DIRECTORY;
use super::state::{expand_implied, TrustRecord};
use super::{collection_links_q, forbidden, invalid_input, require_token, AuthContext};
use crate::error::{json_response, SimError};
use crate::util::{lock, parse_query, query_get};
use crate::Sim;

pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/identity/v3/OS-TRUST/trusts",
            get(list_trusts).post(create_trust),
        )
        .route(
            "/identity/v3/OS-TRUST/trusts/{id}",
            get(show_trust).delete(delete_trust),
        )
}

fn trust_not_found(id: &str) -> SimError {
    SimError::keystone(404, format!("Could not find trust: {id}."))
}

/// A trust as Keystone renders it; `full` (show, create) adds the roles.
fn trust_json(sim: &Sim, t: &TrustRecord, full: bool) -> Value {
    let base = &sim.base_url;
    let mut v = json!({
        "id": t.id, "trustor_user_id": t.trustor_user_id, "trustee_user_id": t.trustee_user_id,
        "project_id": t.project_id, "impersonation": t.impersonation, "expires_at": null,
        "remaining_uses": null, "deleted_at": null, "redelegated_trust_id": null,
        "redelegation_count": 0,
        "links": {"self": format!("{base}/identity/v3/OS-TRUST/trusts/{}", t.id)}
    });
    if full {
        let roles: Vec<Value> = t
            .roles
            .iter()
            .map(|n| {
                let id = DIRECTORY.role_id(n);
                json!({"id": id, "name": n, "domain_id": null, "description": null,
                    "options": {"immutable": true},
                    "links": {"self": format!("{base}/identity/v3/roles/{id}")}})
            })
            .collect();
        v["roles"] = Value::Array(roles);
        // Keystone 30's odd roles_links (no OS-TRUST/trusts segment), kept as it answers.
        v["roles_links"] = json!({"self": format!("{base}/identity/v3/{}/roles", t.id),
            "next": null, "previous": null});
    }
    v
}

fn str_field<'a>(t: &'a serde_json::Map<String, Value>, k: &str) -> Result<&'a str, SimError> {
    t.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_input(k))
}

/// Role names of a create request (`{"name"}` or `{"id"}` each), checked against the roles
/// the trustor holds on the project; Keystone answers 404 for both kinds of miss.
fn requested_roles(roles: &[Value], held: &[String]) -> Result<Vec<String>, SimError> {
    let mut out = Vec::new();
    for r in roles {
        let role = if let Some(name) = r.get("name").and_then(Value::as_str) {
            DIRECTORY
                .role_by_name(name)
                .ok_or_else(|| SimError::keystone(404, format!("Role {name} is not defined")))?
        } else if let Some(id) = r.get("id").and_then(Value::as_str) {
            DIRECTORY
                .role_by_id(id)
                .ok_or_else(|| SimError::keystone(404, format!("Could not find role: {id}.")))?
        } else {
            return Err(invalid_input("roles"));
        };
        if !held.iter().any(|h| h == role.name) {
            return Err(SimError::keystone(
                404,
                format!("Could not find role: {}.", role.id),
            ));
        }
        if !out.iter().any(|o| o == role.name) {
            out.push(role.name.to_string());
        }
    }
    Ok(out)
}

#[tracing::instrument(skip_all)]
async fn create_trust(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| SimError::keystone(400, format!("Malformed request body: {e}")))?;
    let t = v
        .get("trust")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid_input("trust"))?;
    let trustor = str_field(t, "trustor_user_id")?;
    let trustee = str_field(t, "trustee_user_id")?;
    let impersonation = t
        .get("impersonation")
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid_input("impersonation"))?;
    let project = match t.get("project_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(invalid_input("project_id")),
    };
    let roles: &[Value] = match t.get("roles") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid_input("roles")),
    };
    // Only the trustor may delegate its own roles (identity:create_trust).
    if caller.user_id != trustor || caller.trust_id.is_some() {
        return Err(forbidden("identity:create_trust"));
    }
    let record = {
        let mut store = lock(&sim.keystone);
        if store.ident.principal(trustee).is_none() {
            return Err(SimError::keystone(
                404,
                format!("Could not find user: {trustee}."),
            ));
        }
        let held = match &project {
            Some(p) => {
                DIRECTORY.project_by_id(p).ok_or_else(|| {
                    SimError::keystone(404, format!("Could not find project: {p}."))
                })?;
                let trustor = store.ident.principal(trustor).ok_or_else(|| {
                    SimError::keystone(404, format!("Could not find user: {trustor}."))
                })?;
                expand_implied(&store.ident.roles_on(&trustor, p))
            }
            None if roles.is_empty() => Vec::new(),
            None => return Err(invalid_input("project_id")),
        };
        let roles = requested_roles(roles, &held)?;
        let record = TrustRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            trustor_user_id: trustor.to_string(),
            trustee_user_id: trustee.to_string(),
            project_id: project,
            impersonation,
            roles,
        };
        store.ident.trusts.insert(record.id.clone(), record.clone());
        *store
            .ident
            .trusts_created
            .entry(trustee.to_string())
            .or_default() += 1;
        record
    };
    sim.changed();
    tracing::info!(trust = %record.id, trustor, trustee, "trust created");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"trust": trust_json(&sim, &record, true)}),
    ))
}

/// identity:list_trusts* : admin sees all; others only their own, by the matching filter.
fn may_list(
    caller: &AuthContext,
    trustor: Option<&str>,
    trustee: Option<&str>,
) -> Result<(), SimError> {
    if caller.is_admin() {
        return Ok(());
    }
    match (trustor, trustee) {
        (Some(t), _) if t != caller.user_id => Err(forbidden("identity:list_trusts_for_trustor")),
        (_, Some(t)) if t != caller.user_id => Err(forbidden("identity:list_trusts_for_trustee")),
        (None, None) => Err(forbidden("identity:list_trusts")),
        _ => Ok(()),
    }
}

async fn list_trusts(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let q = parse_query(raw.as_deref());
    let trustor = query_get(&q, "trustor_user_id");
    let trustee = query_get(&q, "trustee_user_id");
    may_list(&caller, trustor, trustee)?;
    let trusts: Vec<Value> = lock(&sim.keystone)
        .ident
        .trusts
        .values()
        .filter(|t| trustor.is_none_or(|u| u == t.trustor_user_id))
        .filter(|t| trustee.is_none_or(|u| u == t.trustee_user_id))
        .map(|t| trust_json(&sim, t, false))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"trusts": trusts,
            "links": collection_links_q(&sim, "/identity/v3/OS-TRUST/trusts", raw.as_deref())}),
    ))
}

async fn show_trust(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let t = lock(&sim.keystone)
        .ident
        .trusts
        .get(&id)
        .cloned()
        .ok_or_else(|| trust_not_found(&id))?;
    if !caller.is_admin()
        && caller.user_id != t.trustor_user_id
        && caller.user_id != t.trustee_user_id
    {
        return Err(forbidden("identity:get_trust"));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"trust": trust_json(&sim, &t, true)}),
    ))
}

#[tracing::instrument(skip_all, fields(trust = %id))]
async fn delete_trust(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    {
        let mut store = lock(&sim.keystone);
        let t = store
            .ident
            .trusts
            .get(&id)
            .ok_or_else(|| trust_not_found(&id))?;
        if !caller.is_admin() && caller.user_id != t.trustor_user_id {
            return Err(forbidden("identity:delete_trust"));
        }
        // Its trust-scoped tokens stop validating with it (TokenStore::get_valid).
        store.ident.trusts.remove(&id);
    }
    sim.changed();
    tracing::info!("trust deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
