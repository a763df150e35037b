use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::start;

#[tokio::test]
async fn glance_nova_neutron() {
    let sim = start().await;
    let (tok, _) = sim.login("demo", "demo").await;
    let get = |path: &str| {
        let (sim, tok, url) = (&sim, tok.clone(), sim.url(path));
        async move {
            let r = sim.call(Method::GET, &url, &tok, None).await;
            let status = r.status();
            let text = r.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
            )
        }
    };

    // Glance.
    let (st, v) = get("/image/v2/images?name=fedora-coreos-40").await;
    assert_eq!(st, StatusCode::OK);
    let imgs = v["images"].as_array().unwrap();
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0]["os_distro"], "fedora-coreos");
    assert_eq!(imgs[0]["status"], "active");
    let id = imgs[0]["id"].as_str().unwrap().to_string();
    let (st, v) = get(&format!("/image/v2/images/{id}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["name"], "fedora-coreos-40");
    let (st, _) = get("/image/v2/images/fedora-coreos-40").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = get("/image/v2/images?name=cirros-no-distro").await;
    assert!(v["images"][0].get("os_distro").is_none());
    let (_, v) = get("/image/v2/images?name=nope").await;
    assert!(v["images"].as_array().unwrap().is_empty());
    let (_, v) = get("/image/v2/images").await;
    assert_eq!(v["images"].as_array().unwrap().len(), 8);

    // Nova.
    let (st, v) = get("/compute/v2.1/flavors/detail").await;
    assert_eq!(st, StatusCode::OK);
    let flavors = v["flavors"].as_array().unwrap();
    let small = flavors.iter().find(|f| f["name"] == "m1.small").unwrap();
    assert_eq!(small["disk"], 20);
    let nodisk = flavors.iter().find(|f| f["name"] == "m1.nodisk").unwrap();
    assert_eq!(nodisk["disk"], 0);
    let (st, v) = get(&format!(
        "/compute/v2.1/flavors/{}",
        small["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["flavor"]["name"], "m1.small");
    let (st, v) = get("/compute/v2.1/flavors/m1.small").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["itemNotFound"]["code"], 404);
    let (st, v) = get("/compute/v2.1/os-keypairs/default").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["keypair"]["name"], "default");
    let (st, v) = get("/compute/v2.1/os-keypairs/mine").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let msg = v["itemNotFound"]["message"].as_str().unwrap();
    assert!(msg.starts_with("Keypair mine not found for user "), "{msg}");

    // Neutron.
    let (st, v) = get("/networking/v2.0/networks?name=public").await;
    assert_eq!(st, StatusCode::OK);
    let net = &v["networks"][0];
    assert_eq!(net["router:external"], true);
    let net_id = net["id"].as_str().unwrap().to_string();
    let (_, v) = get(&format!("/networking/v2.0/networks/{net_id}")).await;
    assert_eq!(v["network"]["name"], "public");
    let (_, v) = get("/networking/v2.0/networks?router:external=True").await;
    assert_eq!(v["networks"].as_array().unwrap().len(), 1);
    let (_, v) = get("/networking/v2.0/networks?name=private").await;
    assert_eq!(v["networks"][0]["router:external"], false);
    let (st, v) = get("/networking/v2.0/networks/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["NeutronError"]["type"], "NetworkNotFound");
    let (_, v) = get("/networking/v2.0/subnets?name=private-subnet").await;
    assert_eq!(v["subnets"][0]["cidr"], "10.0.0.0/24");
    let sub_id = v["subnets"][0]["id"].as_str().unwrap().to_string();
    let (st, v) = get(&format!("/networking/v2.0/subnets/{sub_id}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["subnet"]["name"], "private-subnet");

    // Stable ids across instances.
    let other = start().await;
    let (tok2, _) = other.login("demo", "demo").await;
    let r = other
        .call(
            Method::GET,
            &other.url(&format!("/networking/v2.0/networks/{net_id}")),
            &tok2,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // Tokens are required.
    let r = sim
        .http
        .get(sim.url("/image/v2/images"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = sim
        .http
        .get(sim.url("/compute/v2.1/flavors/detail"))
        .header("X-Auth-Token", "bad")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
