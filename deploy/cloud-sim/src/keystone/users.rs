//! Domains (the two seeded ones) and users: the seeded directory plus users created through
//! `POST /v3/users`, which may change their password (PATCH) and be deleted, taking their
//! trusts and tokens with them. Policies are Keystone's defaults: writes and lists need admin.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::directory::{domain_by_id, Domain, DIRECTORY, DOMAIN_ID};
use super::state::{password_hash, DynUser, Principal};
use super::{collection_links_q, forbidden, invalid_input, project_id, require_token};
use crate::error::{json_response, SimError};
use crate::util::{lock, parse_query, query_get};
use crate::Sim;

pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/identity/v3/domains", get(list_domains))
        .route("/identity/v3/domains/{id}", get(show_domain))
        .route("/identity/v3/users", get(list_users).post(create_user))
        .route(
            "/identity/v3/users/{id}",
            get(show_user).patch(update_user).delete(delete_user),
        )
}

fn domain_json(sim: &Sim, d: &Domain) -> Value {
    json!({
        "id": d.id, "name": d.name, "description": d.description,
        "enabled": true, "tags": [], "options": {},
        "links": {"self": format!("{}/identity/v3/domains/{}", sim.base_url, d.id)}
    })
}

fn user_not_found(id: &str) -> SimError {
    SimError::keystone(404, format!("Could not find user: {id}."))
}

pub(super) fn user_json(sim: &Sim, p: &Principal, options: Option<&Map<String, Value>>) -> Value {
    let mut v = json!({
        "id": p.id, "name": p.name, "domain_id": p.domain_id, "enabled": true,
        "password_expires_at": null, "options": options.cloned().unwrap_or_default(),
        "links": {"self": format!("{}/identity/v3/users/{}", sim.base_url, p.id)}
    });
    if let (Some(u), Some(obj)) = (p.seeded, v.as_object_mut()) {
        let default_project = u.assignments.first().map(|(p, _)| project_id(p));
        obj.insert("default_project_id".into(), json!(default_project));
    }
    v
}

fn options_of(sim: &Sim, p: &Principal) -> Option<Map<String, Value>> {
    lock(&sim.keystone)
        .ident
        .users
        .get(&p.id)
        .map(|u| u.options.clone())
}

async fn list_domains(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    if !caller.is_admin() {
        return Err(forbidden("identity:list_domains"));
    }
    let q = parse_query(raw.as_deref());
    let name = query_get(&q, "name");
    let domains: Vec<Value> = super::directory::DOMAINS
        .iter()
        .filter(|d| name.is_none_or(|n| n == d.name))
        .map(|d| domain_json(&sim, d))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"domains": domains,
            "links": collection_links_q(&sim, "/identity/v3/domains", raw.as_deref())}),
    ))
}

async fn show_domain(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let d = domain_by_id(&id)
        .ok_or_else(|| SimError::keystone(404, format!("Could not find domain: {id}.")))?;
    // identity:get_domain: admin, or a token of the domain (every seeded project is in default).
    let own = caller.domain_id == d.id || (caller.project_id.is_some() && d.id == DOMAIN_ID);
    if !caller.is_admin() && !own {
        return Err(forbidden("identity:get_domain"));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"domain": domain_json(&sim, d)}),
    ))
}

async fn list_users(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    if !caller.is_admin() {
        return Err(forbidden("identity:list_users"));
    }
    let q = parse_query(raw.as_deref());
    let name = query_get(&q, "name");
    let domain = query_get(&q, "domain_id");
    let users: Vec<Value> = {
        let store = lock(&sim.keystone);
        store
            .ident
            .users_matching(name, domain)
            .iter()
            .map(|u| {
                let options = store.ident.users.get(&u.id).map(|d| &d.options);
                user_json(&sim, u, options)
            })
            .collect()
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"users": users,
            "links": collection_links_q(&sim, "/identity/v3/users", raw.as_deref())}),
    ))
}

async fn show_user(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let u = lock(&sim.keystone)
        .ident
        .principal(&id)
        .ok_or_else(|| user_not_found(&id))?;
    if !caller.is_admin() && caller.user_id != u.id {
        return Err(forbidden("identity:get_user"));
    }
    let options = options_of(&sim, &u);
    Ok(json_response(
        StatusCode::OK,
        &json!({"user": user_json(&sim, &u, options.as_ref())}),
    ))
}

/// The `{"user": {...}}` object of a create or update body.
fn user_object(body: &Bytes) -> Result<Map<String, Value>, SimError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| SimError::keystone(400, format!("Malformed request body: {e}")))?;
    match v.get("user") {
        Some(Value::Object(u)) => Ok(u.clone()),
        _ => Err(invalid_input("user")),
    }
}

#[tracing::instrument(skip_all)]
async fn create_user(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    if !caller.is_admin() {
        return Err(forbidden("identity:create_user"));
    }
    let u = user_object(&body)?;
    let name = u
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| invalid_input("name"))?;
    let domain_id = match u.get("domain_id") {
        None | Some(Value::Null) => DOMAIN_ID,
        Some(Value::String(d)) => d.as_str(),
        Some(_) => return Err(invalid_input("domain_id")),
    };
    let password = match u.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.as_str()),
        Some(_) => return Err(invalid_input("password")),
    };
    let options = match u.get("options") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return Err(invalid_input("options")),
    };
    let domain = domain_by_id(domain_id)
        .ok_or_else(|| SimError::keystone(404, format!("Could not find domain: {domain_id}.")))?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let user = DynUser {
        id: id.clone(),
        name: name.to_string(),
        domain_id: domain.id.clone(),
        // No password: nothing can match the hash of a random secret.
        password_hash: password_hash(&id, password.unwrap_or(&uuid::Uuid::new_v4().to_string())),
        options,
    };
    let principal = {
        let mut store = lock(&sim.keystone);
        if store.ident.principal_by_name(&domain.id, name).is_some() {
            return Err(SimError::keystone(
                409,
                format!("Conflict occurred attempting to store user - Duplicate entry found with name {name} at domain ID {}.", domain.id),
            ));
        }
        *store
            .ident
            .users_created
            .entry(name.to_string())
            .or_default() += 1;
        store.ident.users.insert(id.clone(), user.clone());
        store.ident.principal(&id)
    };
    sim.changed();
    tracing::info!(user = %id, name, domain = %domain.id, "user created");
    let p = principal.ok_or_else(|| user_not_found(&id))?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"user": user_json(&sim, &p, Some(&user.options))}),
    ))
}

#[tracing::instrument(skip_all, fields(user = %id))]
async fn update_user(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    if !caller.is_admin() {
        return Err(forbidden("identity:update_user"));
    }
    let u = user_object(&body)?;
    let password = match u.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(invalid_input("password")),
    };
    let (principal, options) = {
        let mut store = lock(&sim.keystone);
        let p = store
            .ident
            .principal(&id)
            .ok_or_else(|| user_not_found(&id))?;
        // Only the password is modelled; other attributes keep their values.
        if let Some(pw) = password {
            let hash = password_hash(&id, &pw);
            match store.ident.users.get_mut(&id) {
                Some(d) => d.password_hash = hash,
                None => {
                    store.ident.seeded_passwords.insert(id.clone(), hash);
                }
            }
            *store.ident.password_sets.entry(id.clone()).or_default() += 1;
            store.revoke_user(&id);
        }
        let options = store.ident.users.get(&id).map(|d| d.options.clone());
        (p, options)
    };
    sim.changed();
    let mut v = user_json(&sim, &principal, options.as_ref());
    v["extra"] = json!({});
    Ok(json_response(StatusCode::OK, &json!({ "user": v })))
}

#[tracing::instrument(skip_all, fields(user = %id))]
async fn delete_user(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    if !caller.is_admin() {
        return Err(forbidden("identity:delete_user"));
    }
    {
        let mut store = lock(&sim.keystone);
        if DIRECTORY.user_by_id(&id).is_some() {
            return Err(SimError::keystone(
                403,
                "cloud-sim: the seeded users cannot be deleted.",
            ));
        }
        if !store.ident.users.contains_key(&id) {
            return Err(user_not_found(&id));
        }
        store.revoke_user(&id);
        store.ident.users.remove(&id);
        // Keystone deletes the trusts the user is trustee or trustor of.
        store
            .ident
            .trusts
            .retain(|_, t| t.trustee_user_id != id && t.trustor_user_id != id);
    }
    sim.changed();
    tracing::info!("user deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
