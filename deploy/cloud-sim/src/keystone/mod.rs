//! Keystone v3 at `/identity`: version discovery, password/token authentication, token
//! validation (trust-scoped too), the service catalog, read-only project look-ups, domains, users
//! (created ones beside the seeded) and OS-TRUST trusts.
//!
//! The directory is seeded like devstack (see `directory`); ids are derived from names with
//! SHA-256 so they are the same on every start.

pub(crate) mod catalog;
mod directory;
pub(crate) mod remote;
pub(crate) mod state;
pub(crate) mod tokens;
mod trusts;
mod users;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

pub(crate) use self::directory::{
    init as init_directory, project_id, user_id, Project, DIRECTORY, DOMAIN_ID, DOMAIN_NAME,
};
use crate::error::{json_response, SimError};
use crate::util::{lock, parse_query, query_flag, query_get};
use crate::Sim;

/// Who a request is from, after its `X-Auth-Token` was validated.
#[derive(Debug, Clone)]
pub(crate) struct AuthContext {
    pub user_id: String,
    pub user_name: String,
    pub project_id: Option<String>,
    pub roles: Vec<String>,
    /// The user's domain.
    pub domain_id: String,
    /// Set for trust-scoped tokens.
    pub trust_id: Option<String>,
}

impl AuthContext {
    pub(crate) fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

/// Keystone's 403 for a policy `rule` (`identity:get_project`) the caller does not pass.
pub(crate) fn forbidden(rule: &str) -> SimError {
    SimError::keystone(
        403,
        format!("You are not authorized to perform the requested action: {rule}."),
    )
}

fn token_not_found(token: &str) -> SimError {
    SimError::keystone(404, format!("Could not find token: {token}."))
}

/// The `links` of a Keystone collection at `path` (one page: no previous, no next).
pub(crate) fn collection_links(sim: &Sim, path: &str) -> Value {
    json!({"self": format!("{}{path}", sim.base_url), "previous": null, "next": null})
}

/// The `links` of a collection at `path` with the request's query string, as Keystone echoes it.
pub(crate) fn collection_links_q(sim: &Sim, path: &str, raw: Option<&str>) -> Value {
    match raw.filter(|q| !q.is_empty()) {
        Some(q) => collection_links(sim, &format!("{path}?{q}")),
        None => collection_links(sim, path),
    }
}

/// Keystone's 400 for a request body that does not match the schema.
pub(crate) fn invalid_input(message: impl std::fmt::Display) -> SimError {
    SimError::keystone(
        400,
        format!("Invalid input for field '{message}'. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."),
    )
}

fn unauthorized(sim: &Sim) -> SimError {
    SimError::Unauthorized {
        identity_uri: sim.identity_uri(),
        message: "The request you have made requires authentication.".to_string(),
    }
}

/// Validate the caller's `X-Auth-Token` (what keystonemiddleware does for every service).
pub(crate) fn require_token(sim: &Sim, headers: &HeaderMap) -> Result<AuthContext, SimError> {
    let token = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized(sim))?;
    let store = lock(&sim.keystone);
    let rec = store.get_valid(token).ok_or_else(|| unauthorized(sim))?;
    let user = store
        .ident
        .principal(&rec.user_id)
        .ok_or_else(|| unauthorized(sim))?;
    Ok(AuthContext {
        roles: tokens::token_roles(&store, &rec),
        user_id: user.id,
        user_name: user.name,
        project_id: rec.project_id.clone(),
        domain_id: user.domain_id,
        trust_id: rec.trust_id.clone(),
    })
}

/// Who checks the tokens sent to Heat, Nova, Neutron and Glance: the one seam between
/// cloud-sim's own Keystone and an external one.
pub(crate) enum TokenCheck {
    /// The tokens this simulator's Keystone issued.
    Local,
    /// Tokens of an external Keystone, validated there (`SimConfig::keystone`).
    Remote(Box<remote::RemoteKeystone>),
}

/// The caller of a service (Heat, Nova, Neutron, Glance) from its `X-Auth-Token`, as
/// keystonemiddleware in front of it would: 401 without a valid token, 503 when the external
/// Keystone cannot be asked. cloud-sim's own Keystone API keeps [`require_token`].
pub(crate) async fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<AuthContext, SimError> {
    let remote = match &sim.token_check {
        TokenCheck::Local => return require_token(sim, headers),
        TokenCheck::Remote(r) => r,
    };
    let unauthorized = || SimError::Unauthorized {
        identity_uri: remote.www_authenticate_uri().to_string(),
        message: "The request you have made requires authentication.".to_string(),
    };
    let token = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    remote.validate(token).await.map_err(|e| match e {
        remote::Rejection::Invalid => unauthorized(),
        remote::Rejection::Unavailable(message) => SimError::IdentityUnavailable { message },
    })
}

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/identity", get(versions))
        .route("/identity/", get(versions))
        .route("/identity/v3", get(version_v3))
        .route("/identity/v3/", get(version_v3))
        .route(
            "/identity/v3/auth/tokens",
            get(validate_token).post(issue_token).delete(revoke_token),
        )
        .route("/identity/v3/auth/catalog", get(auth_catalog))
        .route("/identity/v3/auth/projects", get(auth_projects))
        .route("/identity/v3/projects", get(list_projects))
        .route("/identity/v3/projects/{id}", get(show_project))
        .route("/identity/v3/roles", get(list_roles))
        .merge(users::routes())
        .merge(trusts::routes())
}

fn version_object(sim: &Sim) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/identity/v3/", sim.base_url)}],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.identity-v3+json"
        }]
    })
}

async fn versions(State(sim): State<Arc<Sim>>) -> Response {
    json_response(
        StatusCode::MULTIPLE_CHOICES,
        &json!({"versions": {"values": [version_object(&sim)]}}),
    )
}

async fn version_v3(State(sim): State<Arc<Sim>>) -> Response {
    json_response(StatusCode::OK, &json!({"version": version_object(&sim)}))
}

fn with_subject(mut resp: Response, token: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(token) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    resp
}

#[tracing::instrument(skip_all)]
async fn issue_token(
    State(sim): State<Arc<Sim>>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, SimError> {
    let q = parse_query(raw.as_deref());
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| SimError::keystone(400, format!("Malformed request body: {e}")))?;
    let nocatalog = query_flag(&q, "nocatalog").unwrap_or(false);
    let (id, rec, body) = {
        let mut store = lock(&sim.keystone);
        let rec = tokens::authenticate(&body, &store).map_err(|e| match e {
            tokens::AuthFailure::BadRequest(m) => SimError::keystone(400, m),
            tokens::AuthFailure::Unauthorized => unauthorized(&sim),
            tokens::AuthFailure::Forbidden => SimError::keystone(
                403,
                "You are not authorized to perform the requested action.",
            ),
        })?;
        let id = store.insert(rec.clone());
        let body = tokens::render(&sim, &store, &rec, !nocatalog);
        (id, rec, body)
    };
    sim.changed();
    tracing::info!(user = %rec.user_id, project = ?rec.project_id, trust = ?rec.trust_id, "token issued");
    Ok(with_subject(json_response(StatusCode::CREATED, &body), &id))
}

fn subject_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

async fn validate_token(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let q = parse_query(raw.as_deref());
    let subject = subject_token(&headers).unwrap_or_default();
    let store = lock(&sim.keystone);
    let rec = store
        .get_valid(&subject)
        .ok_or_else(|| token_not_found(&subject))?;
    // identity:validate_token = admin or service, or the token's own subject.
    if !caller.is_admin()
        && !caller.roles.iter().any(|r| r == "service")
        && caller.user_id != rec.user_id
    {
        return Err(forbidden("identity:validate_token"));
    }
    let nocatalog = query_flag(&q, "nocatalog").unwrap_or(false);
    let body = tokens::render(&sim, &store, &rec, !nocatalog);
    drop(store);
    Ok(with_subject(json_response(StatusCode::OK, &body), &subject))
}

async fn revoke_token(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let subject = subject_token(&headers).unwrap_or_default();
    {
        let mut store = lock(&sim.keystone);
        let rec = store
            .get_valid(&subject)
            .ok_or_else(|| token_not_found(&subject))?;
        if !caller.is_admin() && caller.user_id != rec.user_id {
            return Err(forbidden("identity:revoke_token"));
        }
        store.tokens.remove(&subject);
    }
    sim.changed();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn auth_catalog(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let Some(project) = caller.project_id.as_deref() else {
        return Err(SimError::keystone(
            403,
            "The service catalog is empty or the token is not scoped.",
        ));
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "catalog": catalog::catalog(&sim, Some(project)),
            "links": collection_links(&sim, "/identity/v3/auth/catalog"),
        }),
    ))
}

pub(crate) fn project_json(sim: &Sim, p: &Project) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "domain_id": DOMAIN_ID,
        "enabled": true,
        "is_domain": false,
        "parent_id": DOMAIN_ID,
        "tags": [],
        "options": {},
        "links": {"self": format!("{}/identity/v3/projects/{}", sim.base_url, p.id)}
    })
}

/// The collection of `projects` at `path`.
fn projects_page<'a>(
    sim: &Sim,
    projects: impl Iterator<Item = &'a Project>,
    path: &str,
) -> Response {
    let projects: Vec<Value> = projects.map(|p| project_json(sim, p)).collect();
    json_response(
        StatusCode::OK,
        &json!({"projects": projects, "links": collection_links(sim, path)}),
    )
}

async fn auth_projects(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let user = DIRECTORY.user_by_id(&caller.user_id);
    // Created users hold no project roles (trustees get theirs through trusts only).
    let projects = DIRECTORY
        .projects
        .iter()
        .filter(|p| user.is_some_and(|u| !DIRECTORY.roles_on(u, &p.id).is_empty()));
    Ok(projects_page(&sim, projects, "/identity/v3/auth/projects"))
}

async fn list_projects(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    if !caller.is_admin() {
        return Err(forbidden("identity:list_projects"));
    }
    let q = parse_query(raw.as_deref());
    let name = query_get(&q, "name");
    let domain = query_get(&q, "domain_id");
    // By name through the index: the directory may hold thousands of bench projects.
    let named: Box<dyn Iterator<Item = &Project>> = match name {
        Some(n) => Box::new(DIRECTORY.project_by_name(n).into_iter()),
        None => Box::new(DIRECTORY.projects.iter()),
    };
    let projects = named.filter(|_| domain.is_none_or(|d| d == DOMAIN_ID));
    Ok(projects_page(&sim, projects, "/identity/v3/projects"))
}

async fn show_project(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let caller = require_token(&sim, &headers)?;
    let not_found = || SimError::keystone(404, format!("Could not find project: {id}."));
    let p = DIRECTORY.project_by_id(&id).ok_or_else(not_found)?;
    if !caller.is_admin() && caller.project_id.as_deref() != Some(p.id.as_str()) {
        return Err(forbidden("identity:get_project"));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"project": project_json(&sim, p)}),
    ))
}

async fn list_roles(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Result<Response, SimError> {
    require_token(&sim, &headers)?;
    let roles: Vec<Value> = DIRECTORY
        .roles
        .iter()
        .map(|r| json!({"id": r.id, "name": r.name, "domain_id": null, "description": null, "options": {},
            "links": {"self": format!("{}/identity/v3/roles/{}", sim.base_url, r.id)}}))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"roles": roles, "links": collection_links(&sim, "/identity/v3/roles")}),
    ))
}
