//! The production Authenticator and Lookups (magnum-drivers clients) against cloud-sim's
//! Keystone v3 and Glance/Nova/Neutron, behind a real TCP listener (`serve_state`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::MemBackend;
use magnum_api::keystone::{KeystoneAuthenticator, KeystoneSettings};
use magnum_api::openstack_lookups::OpenStackLookups;
use magnum_api::{serve_state, AppState, Settings};
use magnum_cloud_sim::{serve, SimConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

async fn token(http: &reqwest::Client, auth_url: &str, user: &str, project: &str) -> String {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": "secret"}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
    let r = http
        .post(format!("{auth_url}/auth/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "login {user}: {}", r.status());
    r.headers()["x-subject-token"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn keystone_and_lookups_end_to_end() {
    let sim = serve(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        container_infra_url: None,
        time_scale: 0.01,
        state_file: None,
        heat_url: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let auth_url = format!("{}/identity/v3", sim.base_url());
    let auth = KeystoneAuthenticator::new(KeystoneSettings {
        auth_url: auth_url.clone(),
        user: "magnum".into(),
        password: "secret".into(),
        project: "service".into(),
        domain: "Default".into(),
        cache_ttl: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let lookups = OpenStackLookups::new("public", None, Duration::from_secs(5)).unwrap();
    let backend = Arc::new(MemBackend::new(4));
    let mut settings = Settings::new(auth_url.clone());
    settings.public_url = Some("http://api.example:9511".into());
    let state = AppState::new(backend.clone(), Arc::new(auth), Arc::new(lookups), settings);
    let server = serve_state("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    let api = format!("http://{}", server.local_addr);
    let http = reqwest::Client::new();

    let demo = token(&http, &auth_url, "demo", "demo").await;
    let reader = token(&http, &auth_url, "reader", "demo").await;
    let send = |method: reqwest::Method, path: &str, tok: &str, body: Option<Value>| {
        let mut rb = http
            .request(method, format!("{api}{path}"))
            .header("X-Auth-Token", tok)
            .header("OpenStack-API-Version", "container-infra latest");
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send()
    };

    // Template create: image, flavors, external network and keypair resolved in cloud-sim.
    let body = json!({"name": "k8s", "coe": "kubernetes", "image_id": "fedora-coreos-40",
        "external_network_id": "public", "flavor_id": "m1.small", "master_flavor_id": "m1.small",
        "fixed_network": "private", "fixed_subnet": "private-subnet", "keypair_id": "default"});
    let r = send(
        reqwest::Method::POST,
        "/v1/clustertemplates",
        &demo,
        Some(body.clone()),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("http://api.example:9511/v1/clustertemplates/"));
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["cluster_distro"], "fedora-coreos");
    assert_eq!(t["project_id"], magnum_cloud_sim::project_id("demo"));

    // Look-up failures come back with Magnum's messages.
    for (field, value, status, detail) in [
        (
            "image_id",
            "no-such-image",
            400,
            "Image no-such-image could not be found.",
        ),
        (
            "image_id",
            "cirros-no-distro",
            400,
            "Cluster type (vm, None, kubernetes) not supported.",
        ),
        (
            "flavor_id",
            "m9.huge",
            400,
            "Unable to find flavor m9.huge.",
        ),
        (
            "flavor_id",
            "m1.nodisk",
            400,
            "Flavor with zero root volume size",
        ),
        (
            "external_network_id",
            "private",
            400,
            "Unable to find external network private.",
        ),
        (
            "fixed_subnet",
            "nope",
            400,
            "Unable to find fixed subnet nope.",
        ),
    ] {
        let mut b = body.clone();
        b[field] = json!(value);
        let r = send(
            reqwest::Method::POST,
            "/v1/clustertemplates",
            &demo,
            Some(b),
        )
        .await
        .unwrap();
        assert_eq!(r.status().as_u16(), status, "{field}={value}");
        let e: Value = r.json().await.unwrap();
        let d = e["errors"][0]["detail"].as_str().unwrap();
        assert!(d.contains(detail), "{field}={value}: {d}");
    }

    // Roles come from Keystone: a reader may list but not create.
    let r = send(reqwest::Method::GET, "/v1/clustertemplates", &reader, None)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = send(
        reqwest::Method::POST,
        "/v1/clustertemplates",
        &reader,
        Some(body.clone()),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);

    // Cluster create: keypair checked in Nova with the user's token.
    let r = send(
        reqwest::Method::POST,
        "/v1/clusters",
        &demo,
        Some(json!({"cluster_template_id": "k8s", "name": "c1", "keypair": "nope"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let r = send(
        reqwest::Method::POST,
        "/v1/clusters",
        &demo,
        Some(json!({"cluster_template_id": "k8s", "name": "c1", "node_count": 2})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let uuid = r.json::<Value>().await.unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(
        reqwest::Method::GET,
        &format!("/v1/clusters/{uuid}"),
        &demo,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["node_count"], 2);
    assert_eq!(c["keypair"], "default");

    // A bogus token is 401 with Keystone's address.
    let r = send(reqwest::Method::GET, "/v1/clusters", "not-a-token", None)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        format!("Keystone uri=\"{auth_url}\"")
    );

    server.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn keystone_unreachable_is_503() {
    // Nothing listens on this port: bind and drop to get a free one.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let auth = KeystoneAuthenticator::new(KeystoneSettings {
        auth_url: format!("http://127.0.0.1:{port}/identity"),
        user: "magnum".into(),
        password: "secret".into(),
        project: "service".into(),
        domain: "default".into(),
        cache_ttl: Duration::from_secs(30),
        timeout: Duration::from_secs(2),
    })
    .unwrap();
    let state = AppState::new(
        Arc::new(MemBackend::new(1)),
        Arc::new(auth),
        Arc::new(OpenStackLookups::new("public", None, Duration::from_secs(2)).unwrap()),
        Settings::new("http://keystone"),
    );
    let server = serve_state("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .get(format!("http://{}/v1/clusters", server.local_addr))
        .header("X-Auth-Token", "whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["errors"][0]["code"], "server");
    server.shutdown().await;
}
