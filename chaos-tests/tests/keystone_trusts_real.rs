//! Differential tier for Magnum's trustee flow: the same sequence of Keystone user and trust
//! calls through OUR client (`magnum_drivers::openstack::KeystoneClient`) against real Keystone
//! (peers toolkit, `peers.sh up keystone`) and against cloud-sim, side by side. Outcomes (ok /
//! error kind and message, normalised values, key sets of raw bodies) must be equal once ids
//! are replaced by labels; accepted differences are listed in
//! `deploy/cloud-sim/KEYSTONE_DIFFERENCES.md`. Everything created in the real Keystone is
//! deleted again, also when a step panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use magnum_chaos_tests::peers;
use magnum_drivers::openstack::{
    Domain, HttpClient, KeystoneClient, PasswordCredentials, Token, Trust,
};
use magnum_drivers::Error;
use serde_json::{json, Value};

const TRUSTEE_DOMAIN: &str = "magnum";

type Transcript = Vec<(String, Value)>;

/// One Keystone and the principals the sequence uses there.
struct Side {
    label: &'static str,
    ks: KeystoneClient,
    /// `http://host/.../v3`
    v3: String,
    raw: reqwest::Client,
    admin: Token,
    admin_password: String,
    trustor: Token,
    domain_id: String,
    trustee_name: String,
    /// (actual id or name, label), longest first when applied.
    labels: Vec<(String, String)>,
}

/// What the real side must remove at the end.
#[derive(Clone)]
struct Cleanup {
    v3: String,
    admin_token: String,
    project_id: String,
    trustor_id: String,
    domain_created: Option<String>,
    trustee_name: String,
    domain_id: String,
}

fn err_kind(e: &Error) -> (&'static str, String) {
    match e {
        Error::Conflict(m) => ("Conflict", m.clone()),
        Error::NotFound(m) => ("NotFound", m.clone()),
        Error::BadRequest(m) => ("BadRequest", m.clone()),
        Error::Forbidden(m) => ("Forbidden", m.clone()),
        Error::Unauthorized(m) => ("Unauthorized", m.clone()),
        Error::InvalidToken => ("InvalidToken", String::new()),
        other => ("other", other.to_string()),
    }
}

impl Side {
    fn label_id(&mut self, id: &str, label: &str) {
        if !id.is_empty() && !self.labels.iter().any(|(i, _)| i == id) {
            self.labels.push((id.to_string(), format!("<{label}>")));
            self.labels.sort_by_key(|(i, _)| std::cmp::Reverse(i.len()));
        }
    }

    fn norm(&self, v: Value) -> Value {
        let mut s = v.to_string();
        for (id, label) in &self.labels {
            s = s.replace(id.as_str(), label);
        }
        serde_json::from_str(&s).unwrap()
    }

    fn res<T>(&self, r: &Result<T, Error>, ok: impl Fn(&T) -> Value) -> Value {
        let v = match r {
            Ok(v) => json!({"ok": ok(v)}),
            Err(e) => {
                let (kind, message) = err_kind(e);
                json!({"err": {"kind": kind, "message": message}})
            }
        };
        self.norm(v)
    }

    fn token_view(t: &Token) -> Value {
        // Keystone's order of effective roles varies from token to token (a set inside).
        let mut roles = t.roles.clone();
        roles.sort();
        json!({"user_id": t.user_id, "project_id": t.project_id, "roles": roles,
            "trust_id": t.trust_id, "methods": t.methods})
    }

    /// Status and sorted key sets of a raw GET (top level object, and `inner`'s object).
    async fn raw_keys(&self, path: &str, inner: &str) -> Value {
        let r = self
            .raw
            .get(format!("{}{path}", self.v3))
            .header("X-Auth-Token", &self.admin.id)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let obj = if inner.is_empty() { &v } else { &v[inner] };
        let obj = match obj {
            Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
            o => o.clone(),
        };
        json!({"status": status, "keys": keys(&obj), "top": keys(&v)})
    }

    /// A raw trust-scoped auth: status, the token's key set and that of its trust and roles.
    async fn raw_trust_token(&self, user_id: &str, password: &str, trust_id: &str) -> Value {
        let body = json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"id": user_id, "password": password}}},
            "scope": {"OS-TRUST:trust": {"id": trust_id}}}});
        let r = self
            .raw
            .post(format!("{}/auth/tokens?nocatalog", self.v3))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let t = &v["token"];
        self.norm(json!({
            "status": status, "token": keys(t), "trust": t["OS-TRUST:trust"],
            "role": keys(&t["roles"][0]), "user": keys(&t["user"]), "project": keys(&t["project"]),
            "error": keys(&v["error"]),
        }))
    }

    async fn run(mut self) -> Transcript {
        let mut t = Transcript::new();
        let admin = self.admin.id.clone();
        let trustor_tok = self.trustor.id.clone();
        let trustor_id = self.trustor.user_id.clone();
        let project = self.trustor.project_id.clone().unwrap_or_default();
        let domain = self.domain_id.clone();
        let name = self.trustee_name.clone();
        let member = vec!["member".to_string()];

        let r = self.ks.find_domain(&admin, TRUSTEE_DOMAIN).await;
        t.push(("find_domain".into(), self.res(&r, |d| json!(d))));
        let r = self.ks.find_user(&admin, &domain, &name).await;
        t.push((
            "find_user (absent)".into(),
            self.res(&r, |u| json!(u.is_some())),
        ));
        let created = self.ks.create_user(&admin, &domain, &name, "pw-one").await;
        let trustee = created.as_ref().map(|u| u.id.clone()).unwrap_or_default();
        self.label_id(&trustee, "trustee");
        t.push((
            "create_user".into(),
            self.res(&created, |u| json!([u.id, u.name, u.domain_id])),
        ));
        let keys = self.raw_keys(&format!("/users/{trustee}"), "user").await;
        t.push(("GET user (raw keys)".into(), keys));
        let r = self.ks.create_user(&admin, &domain, &name, "pw-one").await;
        t.push((
            "create_user duplicate".into(),
            self.res(&r, |u| json!(u.id)),
        ));
        let r = self.ks.find_user(&admin, &domain, &name).await;
        t.push((
            "find_user".into(),
            self.res(&r, |u| {
                json!(u.as_ref().map(|u| [&u.id, &u.name, &u.domain_id]))
            }),
        ));
        let r = self
            .ks
            .trust_auth(&trustee, "pw-one", "0123456789abcdef0123456789abcdef")
            .await;
        t.push((
            "trust_auth before any trust".into(),
            self.res(&r, Self::token_view),
        ));

        let r = self
            .ks
            .create_trust(
                &trustor_tok,
                &trustor_id,
                &trustee,
                &project,
                &["admin".into()],
            )
            .await;
        t.push((
            "create_trust with a role not held".into(),
            self.res(&r, |t| json!(t.id)),
        ));
        let first = self
            .ks
            .create_trust(&trustor_tok, &trustor_id, &trustee, &project, &member)
            .await;
        let trust1 = first.as_ref().map(|t| t.id.clone()).unwrap_or_default();
        self.label_id(&trust1, "trust1");
        t.push(("create_trust".into(), self.res(&first, trust_view)));
        let keys = self
            .raw_keys(&format!("/OS-TRUST/trusts/{trust1}"), "trust")
            .await;
        t.push(("GET trust (raw keys)".into(), keys));
        let keys = self
            .raw_keys(
                &format!("/OS-TRUST/trusts?trustee_user_id={trustee}"),
                "trusts",
            )
            .await;
        t.push(("GET trusts of trustee (raw keys)".into(), keys));
        let r = self.ks.trusts_of_trustee(&admin, &trustee).await;
        t.push((
            "trusts_of_trustee (1)".into(),
            self.res(&r, |v| trusts_view(v)),
        ));
        let r = self.ks.trust_auth(&trustee, "pw-one", &trust1).await;
        t.push(("trust_auth".into(), self.res(&r, Self::token_view)));
        let trust_token = r.map(|t| t.id).unwrap_or_default();
        let r = self.ks.validate(&admin, &trust_token).await;
        t.push((
            "validate trust token".into(),
            self.res(&r, Self::token_view),
        ));
        let raw = self.raw_trust_token(&trustee, "pw-one", &trust1).await;
        t.push(("trust_auth (raw keys)".into(), raw));

        let r = self.ks.set_user_password(&admin, &trustee, "pw-two").await;
        t.push(("set_user_password".into(), self.res(&r, |_| json!(null))));
        // A password change revokes the trustee's tokens, trust-scoped ones included.
        let r = self.ks.validate(&admin, &trust_token).await;
        t.push((
            "validate trust token after password change".into(),
            self.res(&r, Self::token_view),
        ));
        let r = self.ks.trust_auth(&trustee, "pw-one", &trust1).await;
        t.push((
            "trust_auth old password".into(),
            self.res(&r, Self::token_view),
        ));
        let raw = self.raw_trust_token(&trustee, "pw-one", &trust1).await;
        t.push(("trust_auth old password (raw keys)".into(), raw));
        let r = self.ks.trust_auth(&trustee, "pw-two", &trust1).await;
        t.push((
            "trust_auth new password".into(),
            self.res(&r, Self::token_view),
        ));

        let r = self
            .ks
            .create_trust(&admin, &trustor_id, &trustee, &project, &member)
            .await;
        t.push((
            "create_trust with another's token".into(),
            self.res(&r, |t| json!(t.id)),
        ));
        let r = self.ks.delete_trust(&admin, &trust1).await;
        t.push(("delete_trust".into(), self.res(&r, |d| json!(d))));
        let r = self.ks.trusts_of_trustee(&admin, &trustee).await;
        t.push((
            "trusts_of_trustee (0)".into(),
            self.res(&r, |v| trusts_view(v)),
        ));
        let r = self.ks.delete_trust(&admin, &trust1).await;
        t.push(("delete_trust again".into(), self.res(&r, |d| json!(d))));
        let r = self.ks.trust_auth(&trustee, "pw-two", &trust1).await;
        t.push((
            "trust_auth deleted trust".into(),
            self.res(&r, Self::token_view),
        ));

        let second = self
            .ks
            .create_trust(&trustor_tok, &trustor_id, &trustee, &project, &member)
            .await;
        let trust2 = second.as_ref().map(|t| t.id.clone()).unwrap_or_default();
        self.label_id(&trust2, "trust2");
        t.push(("create_trust second".into(), self.res(&second, trust_view)));
        let admin_id = self.admin.user_id.clone();
        let admin_pw = self.admin_password.clone();
        let r = self.ks.trust_auth(&admin_id, &admin_pw, &trust2).await;
        t.push((
            "trust_auth not the trustee".into(),
            self.res(&r, Self::token_view),
        ));
        let r = self.ks.delete_user(&admin, &trustee).await;
        t.push(("delete_user".into(), self.res(&r, |d| json!(d))));
        let r = self.ks.trusts_of_trustee(&admin, &trustee).await;
        t.push((
            "trusts_of_trustee after delete_user".into(),
            self.res(&r, |v| trusts_view(v)),
        ));
        let keys = self
            .raw_keys(&format!("/OS-TRUST/trusts/{trust2}"), "error")
            .await;
        t.push(("GET trust of deleted user (raw keys)".into(), keys));
        let r = self.ks.trust_auth(&trustee, "pw-two", &trust2).await;
        t.push((
            "trust_auth after delete_user".into(),
            self.res(&r, Self::token_view),
        ));
        let r = self
            .ks
            .set_user_password(&admin, &trustee, "pw-three")
            .await;
        t.push((
            "set_user_password deleted".into(),
            self.res(&r, |_| json!(null)),
        ));
        let r = self.ks.find_user(&admin, &domain, &name).await;
        t.push((
            "find_user after delete".into(),
            self.res(&r, |u| json!(u.is_some())),
        ));
        let r = self.ks.delete_user(&admin, &trustee).await;
        t.push(("delete_user again".into(), self.res(&r, |d| json!(d))));
        t
    }
}

fn trust_view(t: &Trust) -> Value {
    json!({"id": t.id, "trustor": t.trustor_user_id, "trustee": t.trustee_user_id,
        "project": t.project_id, "impersonation": t.impersonation, "roles": t.roles})
}

fn trusts_view(v: &[Trust]) -> Value {
    Value::Array(v.iter().map(trust_view).collect())
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn creds(user: &str, password: &str, project: &str) -> PasswordCredentials {
    PasswordCredentials {
        username: user.into(),
        password: password.into(),
        user_domain: Domain::Name("Default".into()),
        project_name: project.into(),
        project_domain: Domain::Name("Default".into()),
    }
}

async fn labelled_roles(raw: &reqwest::Client, v3: &str, admin: &str) -> Vec<(String, String)> {
    let v: Value = raw
        .get(format!("{v3}/roles"))
        .header("X-Auth-Token", admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                format!("<role {}>", r["name"].as_str().unwrap()),
            )
        })
        .collect()
}

async fn side(
    label: &'static str,
    v3: &str,
    admin: Token,
    admin_password: &str,
    trustor: Token,
    domain_id: &str,
) -> Side {
    let raw = reqwest::Client::new();
    let project = trustor.project_id.clone().unwrap_or_default();
    let trustee_name = format!("{}_{project}", uuid::Uuid::new_v4());
    let mut s = Side {
        label,
        ks: KeystoneClient::new(HttpClient::with_defaults().unwrap(), v3).unwrap(),
        v3: v3.to_string(),
        labels: labelled_roles(&raw, v3, &admin.id).await,
        raw,
        admin_password: admin_password.to_string(),
        domain_id: domain_id.to_string(),
        trustee_name: trustee_name.clone(),
        admin,
        trustor,
    };
    s.label_id(&trustee_name, "trustee name");
    let (tor, adm) = (s.trustor.user_id.clone(), s.admin.user_id.clone());
    s.label_id(&tor, "trustor");
    s.label_id(&adm, "admin");
    s.label_id(&project, "project");
    s.label_id(domain_id, "trustee domain");
    s
}

/// Real Keystone: the trustee domain (created if absent), a project, and a trustor user with
/// `member` on it.
async fn real_side() -> (Side, Cleanup) {
    let v3 = peers::keystone_url();
    let pw = std::env::var("PEERS_ADMIN_PASSWORD").unwrap_or_else(|_| "secret".into());
    let ks = KeystoneClient::new(HttpClient::with_defaults().unwrap(), &v3).unwrap();
    let admin = ks
        .password_auth(&creds("admin", &pw, "admin"))
        .await
        .unwrap();
    let raw = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        raw.post(format!("{v3}{path}"))
            .header("X-Auth-Token", &admin.id)
            .json(&body)
            .send()
    };
    let (domain_id, domain_created) = match ks.find_domain(&admin.id, TRUSTEE_DOMAIN).await.unwrap()
    {
        Some(d) => (d, None),
        None => {
            let r = post(
                "/domains",
                json!({"domain": {"name": TRUSTEE_DOMAIN,
                "description": "Owns users and projects created by magnum"}}),
            )
            .await
            .unwrap();
            assert_eq!(r.status().as_u16(), 201);
            let v: Value = r.json().await.unwrap();
            let id = v["domain"]["id"].as_str().unwrap().to_string();
            (id.clone(), Some(id))
        }
    };
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let project_name = format!("ksdiff-{tag}");
    let r = post(
        "/projects",
        json!({"project": {"name": project_name, "domain_id": "default"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    let project_id = v["project"]["id"].as_str().unwrap().to_string();
    let trustor_name = format!("ksdiff-{tag}-trustor");
    let trustor_pw = uuid::Uuid::new_v4().to_string();
    let trustor_user = ks
        .create_user(&admin.id, "default", &trustor_name, &trustor_pw)
        .await
        .unwrap();
    let roles: Value = raw
        .get(format!("{v3}/roles?name=member"))
        .header("X-Auth-Token", &admin.id)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let member = roles["roles"][0]["id"].as_str().unwrap().to_string();
    let r = raw
        .put(format!(
            "{v3}/projects/{project_id}/users/{}/roles/{member}",
            trustor_user.id
        ))
        .header("X-Auth-Token", &admin.id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let trustor = ks
        .password_auth(&creds(&trustor_name, &trustor_pw, &project_name))
        .await
        .unwrap();
    let s = side(
        "real keystone",
        &v3,
        admin.clone(),
        &pw,
        trustor,
        &domain_id,
    )
    .await;
    let cleanup = Cleanup {
        v3,
        admin_token: admin.id,
        project_id,
        trustor_id: trustor_user.id,
        domain_created,
        trustee_name: s.trustee_name.clone(),
        domain_id,
    };
    (s, cleanup)
}

/// Removes what the real side created; returns what could not be removed.
async fn cleanup(c: &Cleanup) -> Vec<String> {
    let raw = reqwest::Client::new();
    let ks = KeystoneClient::new(HttpClient::with_defaults().unwrap(), &c.v3).unwrap();
    let mut left = Vec::new();
    // The sequence deletes its trustee; this catches a run that panicked before.
    if let Ok(Some(u)) = ks
        .find_user(&c.admin_token, &c.domain_id, &c.trustee_name)
        .await
    {
        if ks.delete_user(&c.admin_token, &u.id).await.is_err() {
            left.push(format!("trustee {}", u.id));
        }
    }
    if ks.delete_user(&c.admin_token, &c.trustor_id).await.is_err() {
        left.push(format!("trustor {}", c.trustor_id));
    }
    let del = |path: String| {
        raw.delete(format!("{}{path}", c.v3))
            .header("X-Auth-Token", &c.admin_token)
            .send()
    };
    match del(format!("/projects/{}", c.project_id)).await {
        Ok(r) if r.status().is_success() => {}
        _ => left.push(format!("project {}", c.project_id)),
    }
    if let Some(d) = &c.domain_created {
        // Keystone deletes only disabled domains.
        let _ = raw
            .patch(format!("{}/domains/{d}", c.v3))
            .header("X-Auth-Token", &c.admin_token)
            .json(&json!({"domain": {"enabled": false}}))
            .send()
            .await;
        match del(format!("/domains/{d}")).await {
            Ok(r) if r.status().is_success() => {}
            _ => left.push(format!("domain {d}")),
        }
    }
    left
}

async fn sim_side() -> (magnum_cloud_sim::SimHandle, Side) {
    let sim = magnum_cloud_sim::serve(magnum_cloud_sim::SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        container_infra_url: None,
        time_scale: 1.0,
        state_file: None,
        heat_url: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let v3 = format!("{}/identity/v3", sim.base_url());
    let ks = KeystoneClient::new(HttpClient::with_defaults().unwrap(), &v3).unwrap();
    let admin = ks
        .password_auth(&creds("admin", "secret", "admin"))
        .await
        .unwrap();
    let trustor = ks
        .password_auth(&creds("demo", "secret", "demo"))
        .await
        .unwrap();
    let domain = ks
        .find_domain(&admin.id, TRUSTEE_DOMAIN)
        .await
        .unwrap()
        .expect("cloud-sim seeds the trustee domain");
    let s = side("cloud-sim", &v3, admin, "secret", trustor, &domain).await;
    (sim, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_sim_keystone_trusts_match_real_keystone() {
    let started = Instant::now();
    peers::ensure_up("keystone");
    let up = started.elapsed();
    let (real, real_cleanup) = real_side().await;
    let (sim, simb) = sim_side().await;
    let sim_trustee_name = simb.trustee_name.clone();
    let (real_label, sim_label) = (real.label, simb.label);

    // A panic inside a sequence must not skip the clean-up of the real Keystone.
    let real_run = tokio::spawn(real.run());
    let sim_run = tokio::spawn(simb.run());
    let (rt, st) = (real_run.await, sim_run.await);
    let left = cleanup(&real_cleanup).await;
    let (rt, st) = (rt.unwrap(), st.unwrap());
    assert!(left.is_empty(), "left in the real Keystone: {left:?}");

    assert_eq!(
        rt.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        st.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    let mut mismatches = Vec::new();
    for ((step, r), (_, s)) in rt.iter().zip(st.iter()) {
        if r != s {
            mismatches.push(format!("{step}:\n  {real_label}: {r}\n  {sim_label}: {s}"));
        }
    }
    for (step, r) in &rt {
        println!("{step}: {r}");
    }
    println!(
        "MEASURE keystone_trusts_real: peers.sh up keystone {} ms, differential run {} ms, {} observations, {} differ",
        up.as_millis(),
        started.elapsed().as_millis(),
        rt.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "cloud-sim differs from real Keystone in {} of {} observations:\n{}",
        mismatches.len(),
        rt.len(),
        mismatches.join("\n")
    );

    // Exactly one trustee created, two trusts for it (one deleted, one gone with the user), one
    // password change; nothing left.
    let ledger: Value = reqwest::get(format!("{}/sim/keystone/ledger", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ledger["users_created"][&sim_trustee_name], 1, "{ledger}");
    assert_eq!(ledger["users"], json!([]), "{ledger}");
    assert_eq!(ledger["trusts"], json!([]), "{ledger}");
    let trusts: Vec<u64> = ledger["trusts_created"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(trusts, vec![2], "{ledger}");
    let sets: Vec<u64> = ledger["password_sets"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(sets, vec![1], "{ledger}");
}
