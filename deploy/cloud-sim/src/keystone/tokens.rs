//! Token issue (password and token methods), storage and rendering.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{catalog, User, DIRECTORY, DOMAIN_ID, DOMAIN_NAME};
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
}

/// All tokens plus the lifetime given to new ones.
pub(crate) struct TokenStore {
    pub tokens: HashMap<String, TokenRecord>,
    pub ttl_secs: f64,
}

impl Default for TokenStore {
    fn default() -> Self {
        TokenStore {
            tokens: HashMap::new(),
            ttl_secs: DEFAULT_TTL_SECS,
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

    /// The token if it exists and has not expired.
    pub(crate) fn get_valid(&self, id: &str) -> Option<TokenRecord> {
        self.tokens
            .get(id)
            .filter(|t| t.expires_at > Ts::now())
            .cloned()
    }
}

/// Why an authentication request was refused.
#[derive(Debug)]
pub(crate) enum AuthFailure {
    BadRequest(String),
    Unauthorized,
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

/// Is the `{"id"|"name"}` domain reference the default domain? `Err` when it names neither.
fn domain_ok(d: &Map<String, Value>) -> Result<bool, AuthFailure> {
    match (
        d.get("id").and_then(Value::as_str),
        d.get("name").and_then(Value::as_str),
    ) {
        (Some(id), _) => Ok(id == DOMAIN_ID),
        (None, Some(name)) => Ok(name == DOMAIN_NAME),
        _ => Err(expecting("id or name", "domain")),
    }
}

/// Look up the user or project (`what`) that `r` names by `{"id"}` or by `{"name","domain"}`;
/// `Ok(None)` when there is none. A name in another domain than the default one is refused.
fn by_id_or_name<T>(
    r: &Map<String, Value>,
    what: &str,
    by_id: impl FnOnce(&str) -> Option<T>,
    by_name: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, AuthFailure> {
    if let Some(id) = r.get("id").and_then(Value::as_str) {
        Ok(by_id(id))
    } else if let Some(name) = r.get("name").and_then(Value::as_str) {
        let domain = obj(r.get("domain"), "domain", what)?;
        if !domain_ok(domain)? {
            return Err(AuthFailure::Unauthorized);
        }
        Ok(by_name(name))
    } else {
        Err(expecting("id or name", what))
    }
}

fn password_user(identity: &Map<String, Value>) -> Result<&'static User, AuthFailure> {
    let pw = obj(identity.get("password"), "password", "identity")?;
    let user = obj(pw.get("user"), "user", "password")?;
    let found = by_id_or_name(
        user,
        "user",
        |id| DIRECTORY.user_by_id(id),
        |name| DIRECTORY.user_by_name(name),
    )?;
    let password = user
        .get("password")
        .and_then(Value::as_str)
        .ok_or_else(|| expecting("password", "user"))?;
    match found {
        Some(u) if u.password == password => Ok(u),
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
        let u = password_user(identity)?;
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
        let u = DIRECTORY
            .user_by_id(&orig.user_id)
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
    };
    match auth.get("scope") {
        None | Some(Value::Null) => {}
        Some(Value::Object(scope)) => {
            if let Some(p) = scope.get("project") {
                let p = p.as_object().ok_or_else(|| expecting("project", "scope"))?;
                let project = by_id_or_name(
                    p,
                    "project",
                    |id| DIRECTORY.project_by_id(id),
                    |name| DIRECTORY.project_by_name(name),
                )?
                .ok_or(AuthFailure::Unauthorized)?;
                if DIRECTORY.roles_on(user, &project.id).is_empty() {
                    return Err(AuthFailure::Unauthorized);
                }
                rec.project_id = Some(project.id.clone());
            } else if let Some(d) = scope.get("domain") {
                let d = d.as_object().ok_or_else(|| expecting("domain", "scope"))?;
                if !domain_ok(d)? {
                    return Err(AuthFailure::Unauthorized);
                }
                // Like devstack's bootstrap: only the cloud admin holds a role on the domain.
                let admin_project = super::project_id("admin");
                if !DIRECTORY.roles_on(user, &admin_project).contains(&"admin") {
                    return Err(AuthFailure::Unauthorized);
                }
                rec.domain_id = Some(DOMAIN_ID.to_string());
                rec.domain_roles = vec!["admin".to_string()];
            } else if scope.contains_key("OS-TRUST:trust") || scope.contains_key("system") {
                return Err(AuthFailure::Unauthorized);
            } else {
                return Err(expecting("project or domain", "scope"));
            }
        }
        Some(_) => return Err(expecting("project or domain", "scope")),
    }
    Ok(rec)
}

/// The `{"token": {...}}` body for a token.
pub(crate) fn render(sim: &Sim, rec: &TokenRecord, with_catalog: bool) -> Value {
    let user = DIRECTORY.user_by_id(&rec.user_id);
    let domain = json!({"id": DOMAIN_ID, "name": DOMAIN_NAME});
    let mut token = json!({
        "methods": rec.methods,
        "user": {
            "id": rec.user_id,
            "name": user.map(|u| u.name).unwrap_or(""),
            "domain": domain,
            "password_expires_at": null,
        },
        "audit_ids": rec.audit_ids,
        "expires_at": rec.expires_at.iso_micro(),
        "issued_at": rec.issued_at.iso_micro(),
    });
    let role_list = |names: Vec<&str>| -> Value {
        Value::Array(
            names
                .into_iter()
                .map(|n| json!({"id": DIRECTORY.role_id(n), "name": n}))
                .collect(),
        )
    };
    if let (Some(pid), Some(obj)) = (&rec.project_id, token.as_object_mut()) {
        let pname = DIRECTORY.project_by_id(pid).map(|p| p.name).unwrap_or("");
        let roles = user.map(|u| DIRECTORY.roles_on(u, pid)).unwrap_or_default();
        obj.insert(
            "project".into(),
            json!({"id": pid, "name": pname, "domain": domain}),
        );
        obj.insert("roles".into(), role_list(roles));
        obj.insert("is_domain".into(), Value::Bool(false));
        if with_catalog {
            obj.insert(
                "catalog".into(),
                Value::Array(catalog::catalog(sim, Some(pid))),
            );
        }
    } else if let (Some(_), Some(obj)) = (&rec.domain_id, token.as_object_mut()) {
        obj.insert("domain".into(), domain.clone());
        obj.insert(
            "roles".into(),
            role_list(rec.domain_roles.iter().map(String::as_str).collect()),
        );
        if with_catalog {
            obj.insert("catalog".into(), Value::Array(catalog::catalog(sim, None)));
        }
    }
    json!({ "token": token })
}
