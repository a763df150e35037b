//! The real Keystone tier: the API's production token validator against a real Keystone
//! (`../shared/tools/peers/peers.sh install keystone; peers.sh up keystone`, admin / secret on
//! :15000), with the in-memory shards behind it. A fresh project with a member and a reader,
//! and a second project, prove: each role's valid token, scoping to the token's project, and
//! 401 with `WWW-Authenticate: Keystone uri="…"` for an invalid and for a revoked token.
//!
//! Needs the peers toolkit: `$PEERS_TOOLS`, else `<repo>/../shared/tools/peers`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use magnum_api::keystone::{KeystoneAuthenticator, KeystoneSettings};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const KEYSTONE: &str = "http://127.0.0.1:15000/v3";

fn peers_sh() -> PathBuf {
    let dir = std::env::var("PEERS_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/peers")
        });
    let sh = dir.join("peers.sh");
    assert!(
        sh.exists(),
        "{} not found: set PEERS_TOOLS to the peers toolkit (shared/tools/peers)",
        sh.display()
    );
    sh
}

/// `peers.sh install keystone` then `up keystone` (both idempotent; Keystone is shared).
fn keystone_up() {
    let sh = peers_sh();
    for step in ["install", "up"] {
        let out = std::process::Command::new("bash")
            .arg(&sh)
            .args([step, "keystone"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "peers.sh {step} keystone: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

struct Ks {
    http: reqwest::Client,
    admin: String,
}

impl Ks {
    /// A project-scoped token by password (the `X-Subject-Token` header).
    async fn token(&self, user: &str, project: &str) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": "secret"}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        let r = self
            .http
            .post(format!("{KEYSTONE}/auth/tokens"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "token for {user}");
        r.headers()["x-subject-token"].to_str().unwrap().to_string()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{KEYSTONE}{path}"))
            .header("X-Auth-Token", &self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "POST {path}");
        r.json().await.unwrap()
    }

    async fn role_id(&self, name: &str) -> String {
        let r: Value = self
            .http
            .get(format!("{KEYSTONE}/roles?name={name}"))
            .header("X-Auth-Token", &self.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["roles"][0]["id"].as_str().unwrap().to_string()
    }

    /// A project, and a user holding `role` on it; returns the project id.
    async fn project_with(&self, project: &str, users: &[(&str, &str)]) -> String {
        let p = self
            .post(
                "/projects",
                json!({"project": {"name": project, "domain_id": "default"}}),
            )
            .await;
        let pid = p["project"]["id"].as_str().unwrap().to_string();
        for (user, role) in users {
            let u = self
                .post(
                    "/users",
                    json!({"user": {"name": user, "password": "secret", "domain_id": "default"}}),
                )
                .await;
            let uid = u["user"]["id"].as_str().unwrap();
            let rid = self.role_id(role).await;
            let r = self
                .http
                .put(format!("{KEYSTONE}/projects/{pid}/users/{uid}/roles/{rid}"))
                .header("X-Auth-Token", &self.admin)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204, "assign {role} to {user}");
        }
        pid
    }

    async fn revoke(&self, token: &str) {
        let r = self
            .http
            .delete(format!("{KEYSTONE}/auth/tokens"))
            .header("X-Auth-Token", &self.admin)
            .header("X-Subject-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "revoke");
    }
}

fn harness_with_keystone() -> Harness {
    let auth = KeystoneAuthenticator::new(KeystoneSettings {
        auth_url: KEYSTONE.into(),
        user: "admin".into(),
        password: "secret".into(),
        project: "admin".into(),
        domain: "default".into(),
        // No caching, so that a revocation shows at once (keystonemiddleware caches too).
        cache_ttl: Duration::ZERO,
        timeout: Duration::from_secs(30),
    })
    .unwrap();
    let backend = Arc::new(MemBackend::new(SHARDS));
    let state = magnum_api::AppState::new(
        backend.clone(),
        Arc::new(auth),
        Arc::new(FakeLookups),
        magnum_api::Settings::new(KEYSTONE),
    );
    Harness {
        app: magnum_api::router(state),
        backend,
    }
}

fn assert_401(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.raw);
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Keystone uri=\"{KEYSTONE}\"").as_str())
    );
    assert_eq!(r.body["error"]["code"], 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_keystone_tokens_roles_scoping_and_revocation() {
    tokio::task::spawn_blocking(keystone_up).await.unwrap();
    let http = reqwest::Client::new();
    let mut ks = Ks {
        http,
        admin: String::new(),
    };
    ks.admin = ks.token("admin", "admin").await;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (pa, pb) = (format!("mrs-a-{tag}"), format!("mrs-b-{tag}"));
    let (member, reader, other) = (
        format!("mrs-member-{tag}"),
        format!("mrs-reader-{tag}"),
        format!("mrs-other-{tag}"),
    );
    let pa_id = ks
        .project_with(&pa, &[(&member, "member"), (&reader, "reader")])
        .await;
    ks.project_with(&pb, &[(&other, "member")]).await;
    let (t_member, t_reader, t_other) = (
        ks.token(&member, &pa).await,
        ks.token(&reader, &pa).await,
        ks.token(&other, &pb).await,
    );
    let h = harness_with_keystone();

    // A member writes in its token's project.
    let r = h
        .post(
            "/v1/clustertemplates",
            &t_member,
            json!({"name": "ks-tmpl", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                   "external_network_id": "public", "flavor_id": "m1.small",
                   "master_flavor_id": "m1.small"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.body["project_id"], pa_id.as_str());
    let uuid = r.body["uuid"].as_str().unwrap().to_string();
    assert_eq!(h.get("/v1/clusters", &t_member).await.status, 200);

    // A reader reads (roles as Keystone resolved them) but may not write.
    let r = h
        .get(&format!("/v1/clustertemplates/{uuid}"), &t_reader)
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = h
        .post(
            "/v1/clusters",
            &t_reader,
            json!({"cluster_template_id": uuid}),
        )
        .await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow cluster:create to be performed.",
    );

    // Scoping: another project's member sees nothing of project A.
    let r = h.get("/v1/clustertemplates", &t_other).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["clustertemplates"], json!([]));
    let r = h
        .get(&format!("/v1/clustertemplates/{uuid}"), &t_other)
        .await;
    assert_error(&r, 404, "could not be found");

    // Invalid, missing and revoked tokens: 401 with the Keystone challenge.
    assert_401(&h.get("/v1/clusters", "not-a-token").await);
    assert_401(&h.req("GET", "/v1/clusters").send().await);
    assert_eq!(h.get("/v1/clusters", &t_other).await.status, 200);
    ks.revoke(&t_other).await;
    assert_401(&h.get("/v1/clusters", &t_other).await);
    // The others' tokens still work.
    assert_eq!(h.get("/v1/clusters", &t_member).await.status, 200);
}
