use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{password_body, start, start_with};

fn is_keystone_time(s: &str) -> bool {
    // 2026-01-02T03:04:05.123456Z
    s.len() == 27 && s.ends_with('Z') && s.as_bytes()[19] == b'.' && s.as_bytes()[10] == b'T'
}

#[tokio::test]
async fn version_discovery() {
    let sim = start().await;
    let r = sim.http.get(sim.url("/identity")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MULTIPLE_CHOICES);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["versions"]["values"][0]["id"], "v3.14");
    assert_eq!(v["versions"]["values"][0]["status"], "stable");
    let r = sim.http.get(sim.url("/identity/v3")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["version"]["links"][0]["href"],
        format!("{}/identity/v3/", sim.base)
    );
    assert_eq!(
        v["version"]["media-types"][0]["type"],
        "application/vnd.openstack.identity-v3+json"
    );
}

#[tokio::test]
async fn password_login_and_catalog() {
    let sim = start_with(None, Some("http://127.0.0.1:9511/v1".into())).await;
    let (tok, body) = sim.login("admin", "admin").await;
    assert!(tok.starts_with("gAAAA"), "{tok}");
    let t = &body["token"];
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(t["user"]["name"], "admin");
    assert_eq!(
        t["user"]["domain"],
        json!({"id": "default", "name": "Default"})
    );
    assert_eq!(t["user"]["password_expires_at"], Value::Null);
    let admin_id = magnum_cloud_sim::project_id("admin");
    assert_eq!(t["project"]["id"], admin_id.as_str());
    assert_eq!(t["project"]["name"], "admin");
    assert_eq!(t["is_domain"], false);
    let roles: Vec<&str> = t["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"admin") && roles.contains(&"member") && roles.contains(&"reader"));
    assert!(is_keystone_time(t["expires_at"].as_str().unwrap()));
    assert!(is_keystone_time(t["issued_at"].as_str().unwrap()));
    assert_eq!(t["audit_ids"].as_array().unwrap().len(), 1);

    let catalog = t["catalog"].as_array().unwrap();
    let find = |ty: &str| catalog.iter().find(|c| c["type"] == ty).cloned();
    let heat = find("orchestration").expect("orchestration");
    assert_eq!(heat["endpoints"].as_array().unwrap().len(), 3);
    let public = heat["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["interface"] == "public")
        .unwrap();
    assert_eq!(
        public["url"],
        format!("{}/heat-api/v1/{admin_id}", sim.base)
    );
    assert_eq!(public["region_id"], "RegionOne");
    assert_eq!(
        find("identity").unwrap()["endpoints"][0]["url"],
        format!("{}/identity", sim.base)
    );
    assert_eq!(
        find("compute").unwrap()["endpoints"][0]["url"],
        format!("{}/compute/v2.1", sim.base)
    );
    assert_eq!(
        find("network").unwrap()["endpoints"][0]["url"],
        format!("{}/networking", sim.base)
    );
    assert_eq!(
        find("image").unwrap()["endpoints"][0]["url"],
        format!("{}/image", sim.base)
    );
    assert_eq!(
        find("container-infra").unwrap()["endpoints"][0]["url"],
        "http://127.0.0.1:9511/v1"
    );

    // The same user in another project gets the project substituted into the Heat URL.
    let (_, demo) = sim.login("demo", "demo").await;
    let demo_id = magnum_cloud_sim::project_id("demo");
    let heat = demo["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "orchestration")
        .cloned()
        .unwrap();
    assert_eq!(
        heat["endpoints"][0]["url"],
        format!("{}/heat-api/v1/{demo_id}", sim.base)
    );
    let roles: Vec<&str> = demo["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["member", "reader"]);

    // GET /v3/auth/catalog
    let r = sim
        .call(
            Method::GET,
            &sim.url("/identity/v3/auth/catalog"),
            &tok,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["catalog"].as_array().unwrap().len(), 6);

    // Login by ids.
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "id": magnum_cloud_sim::user_id("magnum"), "password": "secret"}}},
        "scope": {"project": {"id": magnum_cloud_sim::project_id("service")}}}});
    let r = sim
        .http
        .post(sim.url("/identity/v3/auth/tokens?nocatalog"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token"]["project"]["name"], "service");
    assert!(v["token"].get("catalog").is_none());
}

#[tokio::test]
async fn login_failures() {
    let sim = start().await;
    let post = |body: Value| {
        let (http, url) = (sim.http.clone(), sim.url("/identity/v3/auth/tokens"));
        async move { http.post(url).json(&body).send().await.unwrap() }
    };
    let mut bad = password_body("admin", Some("admin"));
    bad["auth"]["identity"]["password"]["user"]["password"] = json!("wrong");
    let r = post(bad).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("www-authenticate").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})
    );
    assert_eq!(
        post(password_body("nobody", Some("admin"))).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // demo has no role on admin.
    assert_eq!(
        post(password_body("demo", Some("admin"))).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Malformed bodies.
    let r = post(json!({"auth": {}})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 400);
    assert_eq!(v["error"]["title"], "Bad Request");
    let r = sim
        .http
        .post(sim.url("/identity/v3/auth/tokens"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": "secret"}}}}})).await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "user name without domain"
    );
}

#[tokio::test]
async fn validation_and_rescope() {
    let sim = start().await;
    let (admin, _) = sim.login("admin", "admin").await;
    let (demo, demo_body) = sim.login("demo", "demo").await;
    let url = sim.url("/identity/v3/auth/tokens");

    // Admin validates demo's token.
    let r = sim
        .subject_call(Method::GET, &url, Some(&admin), &demo)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("x-subject-token")
            .unwrap()
            .to_str()
            .unwrap(),
        demo
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, demo_body);

    // nocatalog
    let r = sim
        .subject_call(
            Method::GET,
            &format!("{url}?nocatalog"),
            Some(&admin),
            &demo,
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert!(v["token"].get("catalog").is_none());
    assert_eq!(v["token"]["project"]["name"], "demo");

    // A user may validate its own token; not someone else's.
    let r = sim
        .subject_call(Method::GET, &url, Some(&demo), &demo)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = sim
        .subject_call(Method::GET, &url, Some(&demo), &admin)
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // HEAD
    let r = sim
        .subject_call(Method::HEAD, &url, Some(&admin), &demo)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap().is_empty());

    // Unknown subject → 404; bad caller → 401.
    let r = sim
        .subject_call(Method::GET, &url, Some(&admin), "gAAAAbogus")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 404);
    assert_eq!(v["error"]["title"], "Not Found");
    let r = sim
        .subject_call(Method::GET, &url, Some("bogus"), &demo)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = sim.subject_call(Method::GET, &url, None, &demo).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Unscoped then rescoped with the token method.
    let r = sim
        .http
        .post(&url)
        .json(&password_body("alt_demo", None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let unscoped = r
        .headers()
        .get("x-subject-token")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = r.json().await.unwrap();
    assert!(v["token"].get("project").is_none());
    assert!(v["token"].get("catalog").is_none());
    let unscoped_expiry = v["token"]["expires_at"].clone();
    let body = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": {"project": {"name": "alt_demo", "domain": {"name": "Default"}}}}});
    let r = sim.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token"]["methods"], json!(["token", "password"]));
    assert_eq!(v["token"]["project"]["name"], "alt_demo");
    assert_eq!(v["token"]["expires_at"], unscoped_expiry);
    assert_eq!(v["token"]["audit_ids"].as_array().unwrap().len(), 2);

    // Revocation.
    let r = sim
        .subject_call(Method::DELETE, &url, Some(&admin), &demo)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = sim
        .subject_call(Method::GET, &url, Some(&admin), &demo)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expired_tokens() {
    let sim = start().await;
    let (admin, _) = sim.login("admin", "admin").await;
    let r = sim
        .admin(
            Method::POST,
            "/sim/keystone/token_ttl",
            Some(json!({"seconds": 0.2})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (short, _) = sim.login("demo", "demo").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = sim.url("/identity/v3/auth/tokens");
    let r = sim
        .subject_call(Method::GET, &url, Some(&admin), &short)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // An expired token is no longer accepted by the other services either.
    let r = sim
        .call(Method::GET, &sim.stacks("demo"), &short, None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 401);
}

#[tokio::test]
async fn projects() {
    let sim = start().await;
    let (admin, _) = sim.login("admin", "admin").await;
    let (demo, _) = sim.login("demo", "demo").await;
    let r = sim
        .call(Method::GET, &sim.url("/identity/v3/projects"), &admin, None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let names: Vec<&str> = v["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["admin", "demo", "alt_demo", "service"]);
    let r = sim
        .call(
            Method::GET,
            &sim.url("/identity/v3/projects?name=demo"),
            &admin,
            None,
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["projects"].as_array().unwrap().len(), 1);
    let demo_id = magnum_cloud_sim::project_id("demo");
    let r = sim
        .call(
            Method::GET,
            &sim.url(&format!("/identity/v3/projects/{demo_id}")),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["project"]["name"], "demo");
    assert_eq!(v["project"]["domain_id"], "default");
    let r = sim
        .call(
            Method::GET,
            &sim.url("/identity/v3/projects/0123456789abcdef0123456789abcdef"),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = sim
        .call(Method::GET, &sim.url("/identity/v3/projects"), &demo, None)
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = sim
        .call(
            Method::GET,
            &sim.url(&format!("/identity/v3/projects/{demo_id}")),
            &demo,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}
