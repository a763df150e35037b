//! Keystone domains, created users and OS-TRUST trusts: Magnum's trustee flow, policies, the
//! ledger, and persistence across a restart.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{start, start_with, Sim};

const USERS: &str = "/identity/v3/users";
const TRUSTS: &str = "/identity/v3/OS-TRUST/trusts";

async fn send(sim: &Sim, m: Method, path: &str, tok: &str, body: Option<Value>) -> (u16, Value) {
    let r = sim.call(m, &sim.url(path), tok, body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn magnum_domain(sim: &Sim, admin: &str) -> String {
    let (s, v) = send(
        sim,
        Method::GET,
        "/identity/v3/domains?name=magnum",
        admin,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["domains"][0]["id"].as_str().unwrap().to_string()
}

async fn create_user(sim: &Sim, admin: &str, domain: &str, name: &str, pw: &str) -> String {
    let body =
        json!({"user": {"name": name, "domain_id": domain, "password": pw, "enabled": true}});
    let (s, v) = send(sim, Method::POST, USERS, admin, Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v["user"]["id"].as_str().unwrap().to_string()
}

/// `POST /v3/auth/tokens` by user id with a trust scope (or none): (status, token, body).
async fn user_auth(
    sim: &Sim,
    user_id: &str,
    pw: &str,
    trust: Option<&str>,
) -> (u16, String, Value) {
    let mut auth = json!({"identity": {"methods": ["password"],
        "password": {"user": {"id": user_id, "password": pw}}}});
    if let Some(t) = trust {
        auth["scope"] = json!({"OS-TRUST:trust": {"id": t}});
    }
    let r = sim
        .http
        .post(sim.url("/identity/v3/auth/tokens?nocatalog"))
        .json(&json!({ "auth": auth }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let tok = r
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, tok, r.json().await.unwrap_or(Value::Null))
}

fn trust_body(trustor: &str, trustee: &str, project: &str, role: &str) -> Value {
    json!({"trust": {"trustor_user_id": trustor, "trustee_user_id": trustee, "project_id": project,
        "impersonation": true, "allow_redelegation": false, "roles": [{"name": role}]}})
}

#[tokio::test]
async fn domains_and_users() {
    let sim = start().await;
    let (admin, _) = sim.login("admin", "admin").await;
    let (demo, _) = sim.login("demo", "demo").await;
    let d = magnum_domain(&sim, &admin).await;
    assert_eq!(d.len(), 32);
    assert!(d.chars().all(|c| c.is_ascii_hexdigit()));
    let (s, v) = send(
        &sim,
        Method::GET,
        "/identity/v3/domains?name=nosuch",
        &admin,
        None,
    )
    .await;
    assert_eq!((s, v["domains"].as_array().unwrap().len()), (200, 0));
    let (s, v) = send(
        &sim,
        Method::GET,
        "/identity/v3/domains?name=magnum",
        &demo,
        None,
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(
        v["error"]["message"],
        "You are not authorized to perform the requested action: identity:list_domains."
    );
    let (s, v) = send(
        &sim,
        Method::GET,
        &format!("/identity/v3/domains/{d}"),
        &admin,
        None,
    )
    .await;
    assert_eq!((s, v["domain"]["name"].as_str()), (200, Some("magnum")));
    let (s, _) = send(
        &sim,
        Method::GET,
        &format!("/identity/v3/domains/{d}"),
        &demo,
        None,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = send(
        &sim,
        Method::GET,
        "/identity/v3/domains/default",
        &demo,
        None,
    )
    .await;
    assert_eq!(s, 200);

    let find = format!("{USERS}?name=c1_p1&domain_id={d}");
    let (s, v) = send(&sim, Method::GET, &find, &admin, None).await;
    assert_eq!((s, v["users"].as_array().unwrap().len()), (200, 0));
    let id = create_user(&sim, &admin, &d, "c1_p1", "pw1").await;
    let body = json!({"user": {"name": "c1_p1", "domain_id": d, "password": "x"}});
    let (s, v) = send(&sim, Method::POST, USERS, &admin, Some(body.clone())).await;
    assert_eq!(s, 409);
    assert_eq!(
        v["error"]["message"],
        format!("Conflict occurred attempting to store user - Duplicate entry found with name c1_p1 at domain ID {d}.")
    );
    // The same name in another domain is another user.
    let body_default = json!({"user": {"name": "c1_p1", "password": "x"}});
    let (s, _) = send(&sim, Method::POST, USERS, &admin, Some(body_default)).await;
    assert_eq!(s, 201);
    let (s, _) = send(&sim, Method::POST, USERS, &demo, Some(body)).await;
    assert_eq!(s, 403);
    let (s, v) = send(&sim, Method::GET, &find, &admin, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["users"].as_array().unwrap().len(), 1);
    assert_eq!(v["users"][0]["id"], id.as_str());
    let (s, _) = send(&sim, Method::GET, &find, &demo, None).await;
    assert_eq!(s, 403);

    // Unscoped login of the new user, in its own domain.
    let (s, _, v) = user_auth(&sim, &id, "pw1", None).await;
    assert_eq!(s, 201);
    assert_eq!(
        v["token"]["user"]["domain"],
        json!({"id": d, "name": "magnum"})
    );
    let by_name = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "c1_p1", "domain": {"name": "magnum"}, "password": "pw1"}}}}});
    let r = sim
        .http
        .post(sim.url("/identity/v3/auth/tokens"))
        .json(&by_name)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let path = format!("{USERS}/{id}");
    let (s, _) = send(
        &sim,
        Method::PATCH,
        &path,
        &demo,
        Some(json!({"user": {"password": "pw2"}})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = send(
        &sim,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"user": {"password": "pw2"}})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(user_auth(&sim, &id, "pw1", None).await.0, 401);
    assert_eq!(user_auth(&sim, &id, "pw2", None).await.0, 201);
    let (s, _) = send(&sim, Method::DELETE, &path, &admin, None).await;
    assert_eq!(s, 204);
    let (s, v) = send(&sim, Method::DELETE, &path, &admin, None).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["message"], format!("Could not find user: {id}."));
    assert_eq!(send(&sim, Method::GET, &path, &admin, None).await.0, 404);
    assert_eq!(user_auth(&sim, &id, "pw2", None).await.0, 401);

    let l = sim.admin_json("/sim/keystone/ledger").await;
    assert_eq!(l["users_created"]["c1_p1"], 2);
    assert_eq!(l["password_sets"][&id], 1);
    assert_eq!(l["users"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn trusts_and_trust_scoped_tokens() {
    let sim = start().await;
    let (admin, _) = sim.login("admin", "admin").await;
    let (demo, _) = sim.login("demo", "demo").await;
    let demo_id = magnum_cloud_sim::user_id("demo");
    let demo_project = magnum_cloud_sim::project_id("demo");
    let d = magnum_domain(&sim, &admin).await;
    let trustee = create_user(&sim, &admin, &d, "c1_demo", "pw1").await;

    // Before any trust: an unknown trust is 401.
    assert_eq!(user_auth(&sim, &trustee, "pw1", Some("0123")).await.0, 401);
    // Only the trustor's own token; only roles it holds on the project.
    let body = trust_body(&demo_id, &trustee, &demo_project, "member");
    let (s, v) = send(&sim, Method::POST, TRUSTS, &admin, Some(body.clone())).await;
    assert_eq!(s, 403);
    assert_eq!(
        v["error"]["message"],
        "You are not authorized to perform the requested action: identity:create_trust."
    );
    let bad = trust_body(&demo_id, &trustee, &demo_project, "admin");
    let (s, v) = send(&sim, Method::POST, TRUSTS, &demo, Some(bad)).await;
    assert_eq!(s, 404, "{v}");
    let undefined = trust_body(&demo_id, &trustee, &demo_project, "nosuch");
    let (s, v) = send(&sim, Method::POST, TRUSTS, &demo, Some(undefined)).await;
    assert_eq!(
        (s, v["error"]["message"].as_str()),
        (404, Some("Role nosuch is not defined"))
    );
    let (s, v) = send(&sim, Method::POST, TRUSTS, &demo, Some(body.clone())).await;
    assert_eq!(s, 201, "{v}");
    let t = &v["trust"];
    assert_eq!(t["impersonation"], true);
    assert_eq!(t["project_id"], demo_project.as_str());
    assert_eq!(t["roles"][0]["name"], "member");
    let trust = t["id"].as_str().unwrap().to_string();

    let by_trustee = format!("{TRUSTS}?trustee_user_id={trustee}");
    let (s, v) = send(&sim, Method::GET, &by_trustee, &admin, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["trusts"].as_array().unwrap().len(), 1);
    assert!(v["trusts"][0].get("roles").is_none());
    assert_eq!(
        send(&sim, Method::GET, &by_trustee, &demo, None).await.0,
        403
    );
    let by_trustor = format!("{TRUSTS}?trustor_user_id={demo_id}");
    assert_eq!(
        send(&sim, Method::GET, &by_trustor, &demo, None).await.0,
        200
    );
    let (s, v) = send(&sim, Method::GET, &format!("{TRUSTS}/{trust}"), &demo, None).await;
    assert_eq!(
        (s, v["trust"]["roles"][0]["name"].as_str()),
        (200, Some("member"))
    );

    // The trust-scoped token impersonates the trustor, with the trust's (implied) roles.
    let (s, tok, v) = user_auth(&sim, &trustee, "pw1", Some(&trust)).await;
    assert_eq!(s, 201, "{v}");
    let t = &v["token"];
    assert_eq!(t["user"]["id"], demo_id.as_str());
    assert_eq!(t["project"]["id"], demo_project.as_str());
    let roles: Vec<&str> = t["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["member", "reader"]);
    assert_eq!(
        t["OS-TRUST:trust"],
        json!({"id": trust, "impersonation": true, "trustee_user": {"id": trustee}, "trustor_user": {"id": demo_id}})
    );
    // It works against Heat of the trustor's project.
    let r = sim.call(Method::GET, &sim.stacks("demo"), &tok, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Someone else than the trustee: 403.
    let admin_id = magnum_cloud_sim::user_id("admin");
    assert_eq!(
        user_auth(&sim, &admin_id, "secret", Some(&trust)).await.0,
        403
    );
    assert_eq!(
        user_auth(&sim, &trustee, "wrong", Some(&trust)).await.0,
        401
    );

    // Deleting the trust kills its tokens.
    let path = format!("{TRUSTS}/{trust}");
    assert_eq!(send(&sim, Method::DELETE, &path, &admin, None).await.0, 204);
    let (s, v) = send(&sim, Method::DELETE, &path, &admin, None).await;
    assert_eq!(
        (s, v["error"]["message"].as_str()),
        (
            404,
            Some(format!("Could not find trust: {trust}.").as_str())
        )
    );
    let r = sim
        .subject_call(
            Method::GET,
            &sim.url("/identity/v3/auth/tokens"),
            Some(&admin),
            &tok,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(user_auth(&sim, &trustee, "pw1", Some(&trust)).await.0, 401);

    // Deleting the trustee deletes its trusts.
    let (s, v) = send(&sim, Method::POST, TRUSTS, &demo, Some(body)).await;
    assert_eq!(s, 201);
    let second = v["trust"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        send(
            &sim,
            Method::DELETE,
            &format!("{USERS}/{trustee}"),
            &admin,
            None
        )
        .await
        .0,
        204
    );
    let (_, v) = send(&sim, Method::GET, &by_trustee, &admin, None).await;
    assert_eq!(v["trusts"].as_array().unwrap().len(), 0);
    assert_eq!(
        send(
            &sim,
            Method::GET,
            &format!("{TRUSTS}/{second}"),
            &admin,
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(user_auth(&sim, &trustee, "pw1", Some(&second)).await.0, 401);

    let l = sim.admin_json("/sim/keystone/ledger").await;
    assert_eq!(l["trusts_created"][&trustee], 2);
    assert_eq!(l["users_created"]["c1_demo"], 1);
    assert_eq!(l["trusts"].as_array().unwrap().len(), 0);
    assert_eq!(l["users"].as_array().unwrap().len(), 0);
    // A seeded user cannot be deleted.
    assert_eq!(
        send(
            &sim,
            Method::DELETE,
            &format!("{USERS}/{demo_id}"),
            &admin,
            None
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn users_and_trusts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let sim = start_with(Some(path.clone()), None).await;
    let (admin, _) = sim.login("admin", "admin").await;
    let (demo, _) = sim.login("demo", "demo").await;
    let d = magnum_domain(&sim, &admin).await;
    let trustee = create_user(&sim, &admin, &d, "c2_demo", "pw1").await;
    let body = trust_body(
        &magnum_cloud_sim::user_id("demo"),
        &trustee,
        &magnum_cloud_sim::project_id("demo"),
        "member",
    );
    let (s, v) = send(&sim, Method::POST, TRUSTS, &demo, Some(body)).await;
    assert_eq!(s, 201);
    let trust = v["trust"]["id"].as_str().unwrap().to_string();
    let (_, tok, _) = user_auth(&sim, &trustee, "pw1", Some(&trust)).await;
    sim.handle.shutdown().await;

    let sim = start_with(Some(path.clone()), None).await;
    assert_eq!(magnum_domain(&sim, &admin).await, d);
    let (s, v) = send(
        &sim,
        Method::GET,
        &format!("{USERS}?name=c2_demo&domain_id={d}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (s, v["users"][0]["id"].as_str()),
        (200, Some(trustee.as_str()))
    );
    let (s, v) = send(
        &sim,
        Method::GET,
        &format!("{TRUSTS}?trustee_user_id={trustee}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (s, v["trusts"][0]["id"].as_str()),
        (200, Some(trust.as_str()))
    );
    // The trust-scoped token issued before the restart still validates, and a new one is issued.
    let r = sim
        .subject_call(
            Method::GET,
            &sim.url("/identity/v3/auth/tokens"),
            Some(&admin),
            &tok,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(user_auth(&sim, &trustee, "pw1", Some(&trust)).await.0, 201);
    let l = sim.admin_json("/sim/keystone/ledger").await;
    assert_eq!(l["trusts_created"][&trustee], 1);
    // /sim/reset forgets them.
    let r = sim.admin(Method::POST, "/sim/reset", None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let l = sim.admin_json("/sim/keystone/ledger").await;
    assert_eq!(
        l,
        json!({"users": [], "trusts": [], "users_created": {}, "trusts_created": {}, "password_sets": {}})
    );
}
