//! Token issue (password and token methods), storage and rendering.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::catalog;
use super::directory::{domain_by_id, domain_by_name, DIRECTORY, DOMAIN_ID};
use super::state::{expand_implied, IdentityState, Principal};
use crate::util::{random_urlsafe, Ts};
use crate::Sim;

/// Default token lifetime (Keystone's `[token] expiration`).
pub(crate) const DEFAULT_TTL_SECS: f64 = 3600.0;

/// One issued token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub user_id: String,
    pub project_id: Option<String>,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub domain_roles: Vec<String>,
    pub methods: Vec<String>,
    pub issued_at: Ts,
    pub expires_at: Ts,
    pub audit_ids: Vec<String>,
    /// Set for trust-scoped tokens; the token dies with the trust.
    #[serde(default)]
    pub trust_id: Option<String>,
}

/// All tokens, the lifetime given to new ones, and the users and trusts created through the API
/// (one lock: authentication reads all three).
pub(crate) struct TokenStore {
    pub tokens: HashMap<String, TokenRecord>,
    pub ttl_secs: f64,
    pub ident: IdentityState,
}

impl Default for TokenStore {
    fn default() -> Self {
        TokenStore {
            tokens: HashMap::new(),
            ttl_secs: DEFAULT_TTL_SECS,
            ident: IdentityState::default(),
        }
    }
}

impl TokenStore {
    /// Store a token under a new random fernet-looking id; drops expired tokens.
    pub(crate) fn insert(&mut self, rec: TokenRecord) -> String {
        let now = Ts::now();
        self.tokens.retain(|_, t| t.expires_at > now);
        let id = format!("gAAAAAB{}", random_urlsafe(177));
        self.tokens.insert(id.clone(), rec);
        id
    }

    /// The token if it exists, has not expired, and its trust (if any) still exists.
    pub(crate) fn get_valid(&self, id: &str) -> Option<TokenRecord> {
        self.tokens
            .get(id)
            .filter(|t| t.expires_at > Ts::now())
            .filter(|t| {
                t.trust_id
                    .as_ref()
                    .is_none_or(|tr| self.ident.trusts.contains_key(tr))
            })
            .cloned()
    }

    /// Keystone revokes a user's tokens (its own and those of trusts it is trustee of) when the
    /// user is deleted or its password changes.
    pub(crate) fn revoke_user(&mut self, user_id: &str) {
        let trusts = &self.ident.trusts;
        self.tokens.retain(|_, t| {
            let trustee = t
                .trust_id
                .as_ref()
                .and_then(|id| trusts.get(id))
                .map(|tr| tr.trustee_user_id.as_str());
            t.user_id != user_id && trustee != Some(user_id)
        });
    }
}

/// Why an authentication request was refused.
#[derive(Debug)]
pub(crate) enum AuthFailure {
    BadRequest(String),
    Unauthorized,
    /// 403 "You are not authorized to perform the requested action." (e.g. not the trustee).
    Forbidden,
}

fn expecting(attr: &str, target: &str) -> AuthFailure {
    AuthFailure::BadRequest(format!(
        "Expecting to find {attr} in {target}. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."
    ))
}

fn obj<'a>(
    v: Option<&'a Value>,
    attr: &str,
    target: &str,
) -> Result<&'a Map<String, Value>, AuthFailure> {
    v.and_then(Value::as_object)
        .ok_or_else(|| expecting(attr, target))
}

/// The seeded domain a `{"id"|"name"}` reference names (`Ok(None)`: no such domain). `Err`
/// when it names neither.
fn domain_ref(d: &Map<String, Value>) -> Result<Option<&'static str>, AuthFailure> {
    let found = match (
        d.get("id").and_then(Value::as_str),
        d.get("name").and_then(Value::as_str),
    ) {
        (Some(id), _) => domain_by_id(id),
        (None, Some(name)) => domain_by_name(name),
        _ => return Err(expecting("id or name", "domain")),
    };
    Ok(found.map(|d| d.id.as_str()))
}

/// The `{"name","domain"}` part of a user or project reference: (domain id, name).
fn name_in_domain<'a>(
    r: &'a Map<String, Value>,
    what: &str,
) -> Result<Option<(&'static str, &'a str)>, AuthFailure> {
    let Some(name) = r.get("name").and_then(Value::as_str) else {
        return Err(expecting("id or name", what));
    };
    let domain = obj(r.get("domain"), "domain", what)?;
    Ok(domain_ref(domain)?.map(|d| (d, name)))
}

fn password_user(
    identity: &Map<String, Value>,
    ident: &IdentityState,
) -> Result<Principal, AuthFailure> {
    let pw = obj(identity.get("password"), "password", "identity")?;
    let user = obj(pw.get("user"), "user", "password")?;
    let found = if let Some(id) = user.get("id").and_then(Value::as_str) {
        ident.principal(id)
    } else {
        name_in_domain(user, "user")?.and_then(|(d, name)| ident.principal_by_name(d, name))
    };
    let password = user
        .get("password")
        .and_then(Value::as_str)
        .ok_or_else(|| expecting("password", "user"))?;
    match found {
        Some(u) if ident.check_password(&u, password) => Ok(u),
        _ => Err(AuthFailure::Unauthorized),
    }
}

/// Check an auth request body (`{"auth":{"identity":…,"scope":…}}`) and build the token.
pub(crate) fn authenticate(body: &Value, store: &TokenStore) -> Result<TokenRecord, AuthFailure> {
    let auth = obj(body.get("auth"), "auth", "request body")?;
    let identity = obj(auth.get("identity"), "identity", "auth")?;
    let methods: Vec<String> = identity
        .get("methods")
        .and_then(Value::as_array)
        .ok_or_else(|| expecting("methods", "identity"))?
        .iter()
        .map(|m| m.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| expecting("methods", "identity"))?;
    if methods.is_empty() {
        return Err(expecting("methods", "identity"));
    }
    let now = Ts::now();
    let (user, out_methods, expires_at, mut audit_ids) = if methods.iter().any(|m| m == "password")
    {
        let u = password_user(identity, &store.ident)?;
        (
            u,
            vec!["password".to_string()],
            now.plus_secs(store.ttl_secs),
            Vec::new(),
        )
    } else if methods.iter().any(|m| m == "token") {
        let tok = obj(identity.get("token"), "token", "identity")?;
        let id = tok
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| expecting("id", "token"))?;
        let orig = store.get_valid(id).ok_or(AuthFailure::Unauthorized)?;
        // Keystone does not re-scope trust-scoped tokens.
        if orig.trust_id.is_some() {
            return Err(AuthFailure::Forbidden);
        }
        let u = store
            .ident
            .principal(&orig.user_id)
            .ok_or(AuthFailure::Unauthorized)?;
        let mut m = vec!["token".to_string()];
        m.extend(orig.methods.iter().filter(|x| *x != "token").cloned());
        let chain = orig.audit_ids.first().cloned().into_iter().collect();
        (u, m, orig.expires_at, chain)
    } else {
        return Err(AuthFailure::Unauthorized);
    };
    audit_ids.insert(0, random_urlsafe(22));

    let mut rec = TokenRecord {
        user_id: user.id.clone(),
        project_id: None,
        domain_id: None,
        domain_roles: Vec::new(),
        methods: out_methods,
        issued_at: now,
        expires_at,
        audit_ids,
        trust_id: None,
    };
    match auth.get("scope") {
        None | Some(Value::Null) => {}
        Some(Value::Object(scope)) => {
            if let Some(p) = scope.get("project") {
                let p = p.as_object().ok_or_else(|| expecting("project", "scope"))?;
                let project = if let Some(id) = p.get("id").and_then(Value::as_str) {
                    DIRECTORY.project_by_id(id)
                } else {
                    // Seeded projects all live in the default domain.
                    name_in_domain(p, "project")?
                        .filter(|(d, _)| *d == DOMAIN_ID)
                        .and_then(|(_, name)| DIRECTORY.project_by_name(name))
                }
                .ok_or(AuthFailure::Unauthorized)?;
                if store.ident.roles_on(&user, &project.id).is_empty() {
                    return Err(AuthFailure::Unauthorized);
                }
                rec.project_id = Some(project.id.clone());
            } else if let Some(d) = scope.get("domain") {
                let d = d.as_object().ok_or_else(|| expecting("domain", "scope"))?;
                if domain_ref(d)? != Some(DOMAIN_ID) {
                    return Err(AuthFailure::Unauthorized);
                }
                // Like devstack's bootstrap: only the cloud admin holds a role on the domain.
                let admin_project = super::project_id("admin");
                if !store
                    .ident
                    .roles_on(&user, &admin_project)
                    .iter()
                    .any(|r| r == "admin")
                {
                    return Err(AuthFailure::Unauthorized);
                }
                rec.domain_id = Some(DOMAIN_ID.to_string());
                rec.domain_roles = vec!["admin".to_string()];
            } else if let Some(t) = scope.get("OS-TRUST:trust") {
                let t = t
                    .as_object()
                    .ok_or_else(|| expecting("OS-TRUST:trust", "scope"))?;
                let id = t
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| expecting("id", "OS-TRUST:trust"))?;
                // Unknown or deleted trust: 401; a user other than the trustee: 403 (Keystone).
                let trust = store
                    .ident
                    .trusts
                    .get(id)
                    .ok_or(AuthFailure::Unauthorized)?;
                if trust.trustee_user_id != user.id {
                    return Err(AuthFailure::Forbidden);
                }
                rec.user_id = if trust.impersonation {
                    trust.trustor_user_id.clone()
                } else {
                    trust.trustee_user_id.clone()
                };
                rec.project_id = trust.project_id.clone();
                rec.trust_id = Some(trust.id.clone());
            } else if scope.contains_key("system") {
                return Err(AuthFailure::Unauthorized);
            } else {
                return Err(expecting("project or domain", "scope"));
            }
        }
        Some(_) => return Err(expecting("project or domain", "scope")),
    }
    Ok(rec)
}

/// Effective roles of a token: a trust's delegated roles with the roles they imply, else the
/// user's roles on the project.
pub(crate) fn token_roles(store: &TokenStore, rec: &TokenRecord) -> Vec<String> {
    if let Some(trust) = rec
        .trust_id
        .as_ref()
        .and_then(|t| store.ident.trusts.get(t))
    {
        return expand_implied(&trust.roles);
    }
    match (&rec.project_id, store.ident.principal(&rec.user_id)) {
        (Some(pid), Some(u)) => store.ident.roles_on(&u, pid),
        (None, _) => rec.domain_roles.clone(),
        _ => Vec::new(),
    }
}

/// The `{"token": {...}}` body for a token.
pub(crate) fn render(
    sim: &Sim,
    store: &TokenStore,
    rec: &TokenRecord,
    with_catalog: bool,
) -> Value {
    let user = store.ident.principal(&rec.user_id);
    let default_domain = json!({"id": DOMAIN_ID, "name": super::DOMAIN_NAME});
    let user_domain = match &user {
        Some(u) => json!({"id": u.domain_id, "name": u.domain_name()}),
        None => default_domain.clone(),
    };
    let mut token = json!({
        "methods": rec.methods,
        "user": {
            "id": rec.user_id,
            "name": user.as_ref().map(|u| u.name.as_str()).unwrap_or(""),
            "domain": user_domain,
            "password_expires_at": null,
        },
        "audit_ids": rec.audit_ids,
        "expires_at": rec.expires_at.iso_micro(),
        "issued_at": rec.issued_at.iso_micro(),
    });
    let trust = rec
        .trust_id
        .as_ref()
        .and_then(|t| store.ident.trusts.get(t));
    // Trust-scoped tokens render full role objects, as Keystone does.
    let role_list = |names: Vec<String>| -> Value {
        Value::Array(
            names
                .iter()
                .map(|n| {
                    let id = DIRECTORY.role_id(n);
                    if trust.is_some() {
                        json!({"id": id, "name": n, "domain_id": null, "description": null,
                            "options": {"immutable": true}})
                    } else {
                        json!({"id": id, "name": n})
                    }
                })
                .collect(),
        )
    };
    let roles = token_roles(store, rec);
    let Some(obj) = token.as_object_mut() else {
        return json!({ "token": token });
    };
    if let Some(t) = trust {
        obj.insert(
            "OS-TRUST:trust".into(),
            json!({"id": t.id, "trustor_user": {"id": t.trustor_user_id},
                "trustee_user": {"id": t.trustee_user_id}, "impersonation": t.impersonation}),
        );
    }
    if let Some(pid) = &rec.project_id {
        let pname = DIRECTORY.project_by_id(pid).map(|p| p.name).unwrap_or("");
        obj.insert(
            "project".into(),
            json!({"id": pid, "name": pname, "domain": default_domain}),
        );
        obj.insert("roles".into(), role_list(roles));
        if trust.is_none() {
            obj.insert("is_domain".into(), Value::Bool(false));
        }
        if with_catalog {
            obj.insert(
                "catalog".into(),
                Value::Array(catalog::catalog(sim, Some(pid))),
            );
        }
    } else if rec.domain_id.is_some() {
        obj.insert("domain".into(), default_domain.clone());
        obj.insert("roles".into(), role_list(roles));
        if with_catalog {
            obj.insert("catalog".into(), Value::Array(catalog::catalog(sim, None)));
        }
    }
    json!({ "token": token })
}
