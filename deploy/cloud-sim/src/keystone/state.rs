//! Users and trusts created through the API (beside the fixed seeded directory), the counters
//! of `/sim/keystone/ledger`, and the one view of a user, seeded or created, that
//! authentication and rendering use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::directory::{domain_name, User as SeededUser, DIRECTORY, DOMAIN_ID};

/// A user created with `POST /v3/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DynUser {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    /// sha256(id ":" password): the state file holds no clear passwords.
    pub password_hash: String,
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// A trust created with `POST /v3/OS-TRUST/trusts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TrustRecord {
    pub id: String,
    pub trustor_user_id: String,
    pub trustee_user_id: String,
    pub project_id: Option<String>,
    pub impersonation: bool,
    /// Role names as delegated (not expanded).
    pub roles: Vec<String>,
}

/// Everything the identity API created, persisted with the tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct IdentityState {
    #[serde(default)]
    pub users: BTreeMap<String, DynUser>,
    #[serde(default)]
    pub trusts: BTreeMap<String, TrustRecord>,
    /// Password hashes that replace a seeded user's `secret` after a PATCH.
    #[serde(default)]
    pub seeded_passwords: BTreeMap<String, String>,
    /// Accepted `POST /v3/users` per user name.
    #[serde(default)]
    pub users_created: BTreeMap<String, u64>,
    /// Accepted `POST /v3/OS-TRUST/trusts` per trustee user id.
    #[serde(default)]
    pub trusts_created: BTreeMap<String, u64>,
    /// Accepted password changes per user id.
    #[serde(default)]
    pub password_sets: BTreeMap<String, u64>,
}

/// A user as authentication sees it: seeded or created.
#[derive(Clone)]
pub(crate) struct Principal {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub seeded: Option<&'static SeededUser>,
}

impl Principal {
    pub(crate) fn domain_name(&self) -> &'static str {
        domain_name(&self.domain_id).unwrap_or("")
    }
}

pub(crate) fn password_hash(user_id: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(user_id.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn seeded(u: &'static SeededUser) -> Principal {
    Principal {
        id: u.id.clone(),
        name: u.name.to_string(),
        domain_id: DOMAIN_ID.to_string(),
        seeded: Some(u),
    }
}

fn created(u: &DynUser) -> Principal {
    Principal {
        id: u.id.clone(),
        name: u.name.clone(),
        domain_id: u.domain_id.clone(),
        seeded: None,
    }
}

/// Keystone's bootstrap role implications: admin → member → reader.
fn implied(role: &str) -> Option<&'static str> {
    match role {
        "admin" => Some("member"),
        "member" => Some("reader"),
        _ => None,
    }
}

/// `roles` with the roles they imply, each once, in Keystone's order.
pub(crate) fn expand_implied(roles: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in roles {
        let mut next = Some(r.as_str());
        while let Some(role) = next {
            if !out.iter().any(|x| x == role) {
                out.push(role.to_string());
            }
            next = implied(role);
        }
    }
    out
}

impl IdentityState {
    pub(crate) fn principal(&self, id: &str) -> Option<Principal> {
        if let Some(u) = DIRECTORY.user_by_id(id) {
            return Some(seeded(u));
        }
        self.users.get(id).map(created)
    }

    pub(crate) fn principal_by_name(&self, domain_id: &str, name: &str) -> Option<Principal> {
        if domain_id == DOMAIN_ID {
            if let Some(u) = DIRECTORY.user_by_name(name) {
                return Some(seeded(u));
            }
        }
        self.users
            .values()
            .find(|u| u.domain_id == domain_id && u.name == name)
            .map(created)
    }

    /// The users `GET /v3/users` lists (seeded first), with its `name` and `domain_id`
    /// filters applied before anything is copied: the conductors look trustees up by name, one
    /// per cluster, among as many users.
    pub(crate) fn users_matching(
        &self,
        name: Option<&str>,
        domain: Option<&str>,
    ) -> Vec<Principal> {
        let keep = |n: &str, d: &str| name.is_none_or(|x| x == n) && domain.is_none_or(|x| x == d);
        let mut all: Vec<Principal> = DIRECTORY
            .users
            .iter()
            .filter(|u| keep(u.name, DOMAIN_ID))
            .map(seeded)
            .collect();
        all.extend(
            self.users
                .values()
                .filter(|u| keep(&u.name, &u.domain_id))
                .map(created),
        );
        all
    }

    pub(crate) fn check_password(&self, p: &Principal, password: &str) -> bool {
        let hash = password_hash(&p.id, password);
        match (p.seeded, self.seeded_passwords.get(&p.id)) {
            (Some(_), Some(h)) => *h == hash,
            (Some(u), None) => u.password == password,
            (None, _) => self
                .users
                .get(&p.id)
                .is_some_and(|u| u.password_hash == hash),
        }
    }

    /// Directly assigned roles of `p` on a project (created users have none).
    pub(crate) fn roles_on(&self, p: &Principal, project_id: &str) -> Vec<String> {
        p.seeded
            .map(|u| DIRECTORY.roles_on(u, project_id))
            .unwrap_or_default()
            .into_iter()
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_roles_follow_keystones_bootstrap() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(expand_implied(&s(&["member"])), s(&["member", "reader"]));
        assert_eq!(
            expand_implied(&s(&["admin", "reader"])),
            s(&["admin", "member", "reader"])
        );
        assert_eq!(expand_implied(&s(&["other"])), s(&["other"]));
    }
}
