//! `SimConfig::keystone`: the services accept the tokens of an external Keystone (here another
//! simulator's, standing in for real Keystone) and only those; `SimConfig::floating_ip_range`.

use std::time::Duration;

use magnum_cloud_sim::{serve, ExternalKeystone, SimConfig, SimError};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{self, outputs, Sim};

/// A simulator whose services validate tokens with `issuer`'s Keystone.
async fn relying_on(issuer: &str, password: &str, cache_ttl: Duration) -> Sim {
    let handle = serve(SimConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        time_scale: 0.01,
        keystone: Some(ExternalKeystone {
            url: format!("{issuer}/identity/v3"),
            user: "magnum".into(),
            password: password.into(),
            project: "service".into(),
            domain: "Default".into(),
            cache_ttl,
        }),
        ..Default::default()
    })
    .await
    .expect("serve");
    let base = handle.base_url().to_string();
    Sim {
        handle,
        base,
        http: common::client(),
    }
}

async fn status(sim: &Sim, path: &str, token: Option<&str>) -> (StatusCode, Option<String>) {
    let mut rb = sim.http.get(sim.url(path));
    if let Some(t) = token {
        rb = rb.header("X-Auth-Token", t);
    }
    let r = rb.send().await.expect("request");
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (r.status(), www)
}

#[tokio::test]
async fn services_accept_only_the_external_keystones_tokens() {
    let issuer = common::start().await;
    let sim = relying_on(&issuer.base, "secret", Duration::from_millis(300)).await;
    let (demo, _) = issuer.login("demo", "demo").await;
    let (own, _) = sim.login("demo", "demo").await;

    for path in [
        "/image/v2/images",
        "/compute/v2.1/flavors",
        "/networking/v2.0/networks",
    ] {
        assert_eq!(status(&sim, path, Some(&demo)).await.0, StatusCode::OK);
        // A token of the simulator's own Keystone is not the external Keystone's.
        let (s, www) = status(&sim, path, Some(&own)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            www.as_deref(),
            Some(format!("Keystone uri=\"{}/identity\"", issuer.base).as_str())
        );
        assert_eq!(
            status(&sim, path, Some("garbage")).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status(&sim, path, None).await.0, StatusCode::UNAUTHORIZED);
    }

    // Heat: the project in the path is the external token's, or the caller is an admin.
    let demo_project = magnum_cloud_sim::project_id("demo");
    let stacks = format!("{}/heat-api/v1/{demo_project}/stacks", sim.base);
    let body = json!({"stack_name": "ext", "template": {
        "heat_template_version": "2018-08-31",
        "resources": {"r": {"type": "OS::Heat::RandomString"}}}});
    let r = sim
        .call(Method::POST, &stacks, &demo, Some(body.clone()))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let alt = format!(
        "{}/heat-api/v1/{}/stacks",
        sim.base,
        magnum_cloud_sim::project_id("alt_demo")
    );
    let r = sim.call(Method::GET, &alt, &demo, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (admin, _) = issuer.login("admin", "admin").await;
    let r = sim.call(Method::GET, &alt, &admin, None).await;
    assert_eq!(r.status(), StatusCode::OK);

    // A revoked token is still taken from the cache for its TTL, then refused.
    let r = issuer
        .subject_call(
            Method::DELETE,
            &issuer.url("/identity/v3/auth/tokens"),
            Some(&admin),
            &demo,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status(&sim, "/image/v2/images", Some(&demo)).await.0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        status(&sim, "/image/v2/images", Some(&demo)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_unreachable_or_refusing_keystone_is_a_503() {
    let issuer = common::start().await;
    let (demo, _) = issuer.login("demo", "demo").await;
    // Wrong service password: Keystone refuses cloud-sim's own login.
    let sim = relying_on(&issuer.base, "wrong", Duration::from_secs(60)).await;
    let r = sim
        .http
        .get(sim.url("/compute/v2.1/flavors"))
        .header("X-Auth-Token", &demo)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.expect("body");
    assert_eq!(v["error"]["code"], 503, "{v}");

    // Keystone gone: 503, not 401 (the token may well be valid).
    let gone = issuer.base.clone();
    issuer.handle.shutdown().await;
    let sim = relying_on(&gone, "secret", Duration::from_secs(60)).await;
    assert_eq!(
        status(&sim, "/image/v2/images", Some(&demo)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn the_floating_ip_range_is_configurable() {
    let handle = serve(SimConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        time_scale: 0.01,
        floating_ip_range: Some("127.24.4.0/24".into()),
        ..Default::default()
    })
    .await
    .expect("serve");
    let base = handle.base_url().to_string();
    let sim = Sim {
        handle,
        base,
        http: common::client(),
    };
    let (tok, _) = sim.login("demo", "demo").await;
    let r = sim
        .call(
            Method::GET,
            &sim.url("/networking/v2.0/subnets?name=public-subnet"),
            &tok,
            None,
        )
        .await;
    let v: Value = r.json().await.expect("subnets");
    let subnet = &v["subnets"][0];
    assert_eq!(subnet["cidr"], "127.24.4.0/24", "{v}");
    assert_eq!(subnet["gateway_ip"], "127.24.4.1", "{v}");
    assert_eq!(subnet["allocation_pools"][0]["end"], "127.24.4.254", "{v}");

    let body = json!({"stack_name": "fip", "template": {
        "heat_template_version": "2018-08-31",
        "resources": {
            "port": {"type": "OS::Neutron::Port", "properties": {"network": "private"}},
            "fip": {"type": "OS::Neutron::FloatingIP",
                "properties": {"floating_network": "public", "port_id": {"get_resource": "port"}}}},
        "outputs": {"ip": {"value": {"get_attr": ["fip", "floating_ip_address"]}}}}});
    let url = sim.create_stack(&tok, "demo", body).await;
    let shown = sim.wait(&tok, &url).await;
    assert_eq!(shown["stack_status"], "CREATE_COMPLETE", "{shown}");
    assert_eq!(outputs(&shown)["ip"], "127.24.4.10", "{shown}");

    // Not a usable range: refused at start.
    for bad in ["127.24.4.0/30", "fd00::/64", "nonsense"] {
        let r = serve(SimConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            floating_ip_range: Some(bad.into()),
            ..Default::default()
        })
        .await;
        assert!(matches!(r, Err(SimError::Config(_))), "{bad}");
    }
}
