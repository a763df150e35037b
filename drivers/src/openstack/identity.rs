//! Keystone v3 users, domains and trusts: what Magnum's `[trust]` needs for cluster trustees
//! (a user per cluster in a trustee domain, and a trust from the requesting user to it).

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::http;
use super::keystone::{KeystoneClient, Token};
use crate::error::Result;

const SERVICE: &str = "keystone";

/// A Keystone user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub id: String,
    /// User name (unique within its domain).
    pub name: String,
    /// The user's domain id.
    pub domain_id: String,
}

/// A Keystone trust (OS-TRUST).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    /// Trust id.
    pub id: String,
    /// The delegating user.
    pub trustor_user_id: String,
    /// The user the roles are delegated to.
    pub trustee_user_id: String,
    /// The project the trust is scoped to.
    pub project_id: Option<String>,
    /// Whether trust-scoped tokens act as the trustor.
    pub impersonation: bool,
    /// Delegated role names.
    pub roles: Vec<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct DomainList {
    domains: Vec<IdOnly>,
}

#[derive(Deserialize)]
struct UserBody {
    id: String,
    name: String,
    domain_id: String,
}

impl From<UserBody> for User {
    fn from(u: UserBody) -> User {
        User {
            id: u.id,
            name: u.name,
            domain_id: u.domain_id,
        }
    }
}

#[derive(Deserialize)]
struct UserEnvelope {
    user: UserBody,
}

#[derive(Deserialize)]
struct UserList {
    users: Vec<UserBody>,
}

#[derive(Deserialize)]
struct RoleRef {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct TrustBody {
    id: String,
    trustor_user_id: String,
    trustee_user_id: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    impersonation: bool,
    // List answers carry no roles; show and create do.
    #[serde(default)]
    roles: Vec<RoleRef>,
}

impl From<TrustBody> for Trust {
    fn from(t: TrustBody) -> Trust {
        Trust {
            id: t.id,
            trustor_user_id: t.trustor_user_id,
            trustee_user_id: t.trustee_user_id,
            project_id: t.project_id,
            impersonation: t.impersonation,
            roles: t.roles.into_iter().filter_map(|r| r.name).collect(),
        }
    }
}

#[derive(Deserialize)]
struct TrustEnvelope {
    trust: TrustBody,
}

#[derive(Deserialize)]
struct TrustList {
    trusts: Vec<TrustBody>,
}

fn create_user_body(domain_id: &str, name: &str, password: &str) -> Value {
    // A service user's password must not expire under a PCI-DSS password policy.
    json!({"user": {
        "name": name,
        "domain_id": domain_id,
        "password": password,
        "enabled": true,
        "options": {"ignore_password_expiry": true},
    }})
}

fn create_trust_body(
    trustor_user_id: &str,
    trustee_user_id: &str,
    project_id: &str,
    roles: &[String],
) -> Value {
    let roles: Vec<Value> = roles.iter().map(|r| json!({ "name": r })).collect();
    json!({"trust": {
        "trustor_user_id": trustor_user_id,
        "trustee_user_id": trustee_user_id,
        "project_id": project_id,
        "impersonation": true,
        "allow_redelegation": false,
        "roles": roles,
    }})
}

fn trust_auth_body(user_id: &str, password: &str, trust_id: &str) -> Value {
    json!({"auth": {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"id": user_id, "password": password}},
        },
        "scope": {"OS-TRUST:trust": {"id": trust_id}},
    }})
}

impl KeystoneClient {
    fn identity_url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<url::Url> {
        let mut url = http::join(&self.auth_url, segments)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    async fn call(
        &self,
        method: Method,
        url: url::Url,
        token: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response> {
        let mut request = self.http.request(method, url).header("X-Auth-Token", token);
        if let Some(body) = body {
            request = request.json(body);
        }
        http::send(SERVICE, request).await
    }

    async fn expect_json<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T> {
        if !response.status().is_success() {
            return Err(http::error_from_response(SERVICE, response).await);
        }
        http::read_json(SERVICE, response).await
    }

    /// A DELETE: 204 → true, 404 → false.
    async fn delete(&self, url: url::Url, token: &str) -> Result<bool> {
        let response = self.call(Method::DELETE, url, token, None).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(http::error_from_response(SERVICE, response).await),
        }
    }

    /// `GET /v3/domains?name=` → the domain's id, `None` if absent.
    #[tracing::instrument(name = "keystone.find_domain", skip_all, fields(domain = %name))]
    pub async fn find_domain(&self, token: &str, name: &str) -> Result<Option<String>> {
        let url = self.identity_url(&["domains"], &[("name", name)])?;
        let response = self.call(Method::GET, url, token, None).await?;
        let list: DomainList = Self::expect_json(response).await?;
        Ok(list.domains.into_iter().next().map(|d| d.id))
    }

    /// `GET /v3/users?name=&domain_id=` → the user, `None` if absent.
    #[tracing::instrument(name = "keystone.find_user", skip_all, fields(domain = %domain_id, user = %name))]
    pub async fn find_user(
        &self,
        token: &str,
        domain_id: &str,
        name: &str,
    ) -> Result<Option<User>> {
        let url = self.identity_url(&["users"], &[("name", name), ("domain_id", domain_id)])?;
        let response = self.call(Method::GET, url, token, None).await?;
        let list: UserList = Self::expect_json(response).await?;
        // Names are unique per domain; the filter is exact, but do not trust a sloppy server.
        Ok(list
            .users
            .into_iter()
            .find(|u| u.name == name && u.domain_id == domain_id)
            .map(User::from))
    }

    /// `POST /v3/users`: enabled, password never expires. 409 (name taken in the domain) →
    /// [`Error::Conflict`](crate::Error::Conflict).
    #[tracing::instrument(name = "keystone.create_user", skip_all, fields(domain = %domain_id, user = %name))]
    pub async fn create_user(
        &self,
        token: &str,
        domain_id: &str,
        name: &str,
        password: &str,
    ) -> Result<User> {
        let url = self.identity_url(&["users"], &[])?;
        let body = create_user_body(domain_id, name, password);
        let response = self.call(Method::POST, url, token, Some(&body)).await?;
        let created: UserEnvelope = Self::expect_json(response).await?;
        Ok(created.user.into())
    }

    /// `PATCH /v3/users/{id}` `{"user":{"password"}}` (admin reset). 404 →
    /// [`Error::NotFound`](crate::Error::NotFound).
    #[tracing::instrument(name = "keystone.set_user_password", skip_all, fields(user_id = %user_id))]
    pub async fn set_user_password(
        &self,
        token: &str,
        user_id: &str,
        password: &str,
    ) -> Result<()> {
        let url = self.identity_url(&["users", user_id], &[])?;
        let body = json!({"user": {"password": password}});
        let response = self.call(Method::PATCH, url, token, Some(&body)).await?;
        if !response.status().is_success() {
            return Err(http::error_from_response(SERVICE, response).await);
        }
        Ok(())
    }

    /// `DELETE /v3/users/{id}`: true if deleted, false on 404. Keystone deletes the trusts the
    /// user is trustee or trustor of with it.
    #[tracing::instrument(name = "keystone.delete_user", skip_all, fields(user_id = %user_id))]
    pub async fn delete_user(&self, token: &str, user_id: &str) -> Result<bool> {
        let url = self.identity_url(&["users", user_id], &[])?;
        self.delete(url, token).await
    }

    /// `GET /v3/OS-TRUST/trusts?trustee_user_id=`, each then read with `GET
    /// /v3/OS-TRUST/trusts/{id}` because list answers omit the roles (a trust deleted in
    /// between is left out).
    #[tracing::instrument(name = "keystone.trusts_of_trustee", skip_all, fields(trustee = %trustee_user_id))]
    pub async fn trusts_of_trustee(
        &self,
        token: &str,
        trustee_user_id: &str,
    ) -> Result<Vec<Trust>> {
        let url = self.identity_url(
            &["OS-TRUST", "trusts"],
            &[("trustee_user_id", trustee_user_id)],
        )?;
        let response = self.call(Method::GET, url, token, None).await?;
        let list: TrustList = Self::expect_json(response).await?;
        let mut trusts = Vec::with_capacity(list.trusts.len());
        for t in list.trusts {
            // Keystone filters exactly; an empty filter value would list every trust.
            if t.trustee_user_id != trustee_user_id {
                continue;
            }
            if let Some(full) = self.get_trust(token, &t.id).await? {
                trusts.push(full);
            }
        }
        Ok(trusts)
    }

    async fn get_trust(&self, token: &str, trust_id: &str) -> Result<Option<Trust>> {
        let url = self.identity_url(&["OS-TRUST", "trusts", trust_id], &[])?;
        let response = self.call(Method::GET, url, token, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let t: TrustEnvelope = Self::expect_json(response).await?;
        Ok(Some(t.trust.into()))
    }

    /// `POST /v3/OS-TRUST/trusts` with the trustor's own token (Keystone lets only the trustor
    /// create it): impersonation, no redelegation, scoped to `project_id`, roles by name.
    /// Another user's token → [`Error::Forbidden`](crate::Error::Forbidden); a role the trustor
    /// lacks on the project → [`Error::NotFound`](crate::Error::NotFound) (Keystone's answer).
    #[tracing::instrument(name = "keystone.create_trust", skip_all, fields(trustor = %trustor_user_id, trustee = %trustee_user_id, project = %project_id))]
    pub async fn create_trust(
        &self,
        trustor_token: &str,
        trustor_user_id: &str,
        trustee_user_id: &str,
        project_id: &str,
        roles: &[String],
    ) -> Result<Trust> {
        let url = self.identity_url(&["OS-TRUST", "trusts"], &[])?;
        let body = create_trust_body(trustor_user_id, trustee_user_id, project_id, roles);
        let response = self
            .call(Method::POST, url, trustor_token, Some(&body))
            .await?;
        let created: TrustEnvelope = Self::expect_json(response).await?;
        Ok(created.trust.into())
    }

    /// `DELETE /v3/OS-TRUST/trusts/{id}`: true if deleted, false on 404.
    #[tracing::instrument(name = "keystone.delete_trust", skip_all, fields(trust_id = %trust_id))]
    pub async fn delete_trust(&self, token: &str, trust_id: &str) -> Result<bool> {
        let url = self.identity_url(&["OS-TRUST", "trusts", trust_id], &[])?;
        self.delete(url, token).await
    }

    /// `POST /v3/auth/tokens`: the trustee's password, scope `{"OS-TRUST:trust":{"id"}}` (what
    /// Magnum's nodes and poller do). Bad password or unknown/deleted trust → 401
    /// [`Error::Unauthorized`](crate::Error::Unauthorized); a user who is not the trustee →
    /// [`Error::Forbidden`](crate::Error::Forbidden).
    #[tracing::instrument(name = "keystone.trust_auth", skip_all, fields(user_id = %user_id, trust_id = %trust_id))]
    pub async fn trust_auth(&self, user_id: &str, password: &str, trust_id: &str) -> Result<Token> {
        self.issue_token(&trust_auth_body(user_id, password, trust_id))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_user_body_shape() {
        let b = create_user_body("d1", "uuid_proj", "pw");
        assert_eq!(
            b,
            json!({"user": {"name": "uuid_proj", "domain_id": "d1", "password": "pw",
                "enabled": true, "options": {"ignore_password_expiry": true}}})
        );
    }

    #[test]
    fn create_trust_body_shape() {
        let b = create_trust_body("tor", "tee", "p1", &["member".into(), "reader".into()]);
        assert_eq!(
            b,
            json!({"trust": {"trustor_user_id": "tor", "trustee_user_id": "tee",
                "project_id": "p1", "impersonation": true, "allow_redelegation": false,
                "roles": [{"name": "member"}, {"name": "reader"}]}})
        );
    }

    #[test]
    fn trust_auth_body_shape() {
        let b = trust_auth_body("u1", "pw", "t1");
        assert_eq!(b["auth"]["identity"]["methods"], json!(["password"]));
        assert_eq!(
            b["auth"]["identity"]["password"]["user"],
            json!({"id": "u1", "password": "pw"})
        );
        assert_eq!(b["auth"]["scope"], json!({"OS-TRUST:trust": {"id": "t1"}}));
    }

    #[test]
    fn parses_keystone_users_and_trusts() {
        // Real Keystone 30 answers (trimmed of links).
        let u: UserEnvelope = serde_json::from_value(json!({"user": {
            "id": "e851", "name": "t1", "domain_id": "795c", "enabled": true,
            "password_expires_at": null, "options": {"ignore_password_expiry": true}}}))
        .unwrap();
        assert_eq!(
            User::from(u.user),
            User {
                id: "e851".into(),
                name: "t1".into(),
                domain_id: "795c".into()
            }
        );
        let t: TrustEnvelope = serde_json::from_value(json!({"trust": {
            "roles": [{"id": "43e4", "name": "member", "domain_id": null}],
            "id": "db1d", "trustor_user_id": "94e9", "trustee_user_id": "e851",
            "project_id": "252e", "impersonation": true, "expires_at": null,
            "remaining_uses": null, "deleted_at": null, "redelegated_trust_id": null,
            "redelegation_count": 0}}))
        .unwrap();
        assert_eq!(
            Trust::from(t.trust),
            Trust {
                id: "db1d".into(),
                trustor_user_id: "94e9".into(),
                trustee_user_id: "e851".into(),
                project_id: Some("252e".into()),
                impersonation: true,
                roles: vec!["member".into()],
            }
        );
        let l: TrustList = serde_json::from_value(json!({"trusts": [{
            "id": "db1d", "trustor_user_id": "94e9", "trustee_user_id": "e851",
            "project_id": null, "impersonation": false}], "links": {}}))
        .unwrap();
        let t = Trust::from(l.trusts.into_iter().next().unwrap());
        assert!(t.roles.is_empty() && t.project_id.is_none() && !t.impersonation);
        let d: DomainList = serde_json::from_value(json!({"domains": [], "links": {}})).unwrap();
        assert!(d.domains.is_empty());
    }
}
