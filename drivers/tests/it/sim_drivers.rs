//! Every registered driver's template set on cloud-sim's Heat, through the driver's own requests
//! and `HeatClient`: Heat's `validate` accepts it, the stack reaches CREATE_COMPLETE with the
//! outputs the driver reads, a scale PATCH reaches UPDATE_COMPLETE with the new worker count, and
//! a delete removes the stack.

use std::sync::Arc;
use std::time::{Duration, Instant};

use magnum_cloud_sim::{serve, SimConfig, SimHandle};
use magnum_drivers::openstack::{HeatClient, HttpClient, Stack, StackRef, StaticToken};
use magnum_drivers::{all_drivers, ClusterSpec, Driver, OutputOptions, ScaleSpec};
use serde_json::{json, Value};
use url::Url;
use uuid::Uuid;

struct Env {
    _sim: SimHandle,
    base: String,
    project: String,
    token: String,
    http: reqwest::Client,
}

async fn start() -> Env {
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
    let base = sim.base_url.clone();
    let http = reqwest::Client::new();
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"name": "Default"}, "password": "secret"}}},
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}});
    let r = http
        .post(format!("{base}/identity/v3/auth/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let token = r.headers()["x-subject-token"].to_str().unwrap().to_string();
    Env {
        _sim: sim,
        base,
        project: magnum_cloud_sim::project_id("demo"),
        token,
        http,
    }
}

impl Env {
    fn heat(&self) -> HeatClient {
        let url = Url::parse(&format!("{}/heat-api/v1/{}", self.base, self.project)).unwrap();
        HeatClient::new(
            HttpClient::with_defaults().unwrap(),
            url,
            Arc::new(StaticToken::new(self.token.clone())),
        )
    }

    async fn validate(&self, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!(
                "{}/heat-api/v1/{}/validate",
                self.base, self.project
            ))
            .header("X-Auth-Token", &self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

/// A cluster of this driver on the simulator's seeded image, flavors and networks.
fn spec(d: &dyn Driver, fixed_network: bool) -> ClusterSpec {
    let key = d.provides()[0];
    let (image, flavor) = match key.os_distro {
        "fedora-atomic" => ("fedora-atomic-29", "m1.small"),
        "coreos" => ("coreos-stable", "m1.small"),
        "fedora" => ("fedora-ironic", "baremetal"),
        "ubuntu" => ("ubuntu-mesos", "m1.small"),
        "centos" => ("centos-dcos", "m1.small"),
        _ => ("fedora-coreos-40", "m1.small"),
    };
    ClusterSpec {
        cluster_uuid: Uuid::new_v4(),
        name: format!("c-{}", d.name().replace('_', "-")),
        project_id: magnum_cloud_sim::project_id("demo"),
        coe: key.coe.into(),
        server_type: key.server_type.into(),
        cluster_distro: key.os_distro.into(),
        image_id: image.into(),
        flavor_id: Some(flavor.into()),
        master_flavor_id: Some(flavor.into()),
        keypair: Some("default".into()),
        external_network_id: Some("public".into()),
        fixed_network: fixed_network.then(|| "private".into()),
        fixed_subnet: fixed_network.then(|| "private-subnet".into()),
        docker_volume_size: Some(3),
        node_count: 2,
        master_count: 1,
        magnum_url: "http://127.0.0.1:9511/v1".into(),
        auth_url: "http://127.0.0.1:5000/v3".into(),
        ..ClusterSpec::default()
    }
}

async fn wait(heat: &HeatClient, sref: &StackRef, done: &str) -> Stack {
    let start = Instant::now();
    loop {
        let s = heat.get_stack(sref, true).await.unwrap().unwrap();
        if !s.status.ends_with("IN_PROGRESS") {
            assert_eq!(s.status, done, "{}: {}", sref.name, s.status_reason);
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} stuck in {}",
            sref.name,
            s.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn api_prefix(coe: &str, tls_disabled: bool) -> (&'static str, &'static str) {
    match (coe, tls_disabled) {
        ("kubernetes", false) => ("https://", ":6443"),
        ("kubernetes", true) => ("http://", ":8080"),
        ("swarm", _) => ("tcp://", ":2376"),
        ("swarm-mode", _) => ("tcp://", ":2375"),
        ("mesos", _) => ("http://", ":5050"),
        _ => ("https://", ":443"),
    }
}

async fn run_driver(env: &Env, d: &dyn Driver, fixed_network: bool, floating: bool) {
    let mut s = spec(d, fixed_network);
    s.floating_ip_enabled = floating;
    let req = d.create_stack_request(&s).unwrap();
    let body = serde_json::to_value(&req).unwrap();
    let (status, v) = env.validate(&body).await;
    assert_eq!(status, 200, "{}: validate: {v}", d.name());

    let heat = env.heat();
    let sref = heat.create_stack(&req).await.unwrap();
    let stack = wait(&heat, &sref, "CREATE_COMPLETE").await;
    let opts = OutputOptions {
        tls_disabled: s.tls_disabled,
        floating_ip_enabled: floating,
    };
    let out = d.map_outputs(&opts, &stack);
    let api = out
        .api_address
        .clone()
        .unwrap_or_else(|| panic!("{}: no api_address in {:?}", d.name(), stack.outputs));
    let (scheme, port) = api_prefix(d.provides()[0].coe, s.tls_disabled);
    assert!(
        api.starts_with(scheme) && api.ends_with(port),
        "{}: {api}",
        d.name()
    );
    let public_net = if floating { "172.24.4." } else { "10.0.0." };
    assert!(api.contains(public_net), "{}: {api}", d.name());
    assert_eq!(out.master_addresses.len(), 1, "{}: {out:?}", d.name());
    assert_eq!(out.node_addresses.len(), 2, "{}: {out:?}", d.name());
    assert!(
        out.node_addresses.iter().all(|a| a.starts_with(public_net)),
        "{}: {out:?}",
        d.name()
    );
    assert_eq!(out.master_count, Some(1), "{}", d.name());
    assert_eq!(out.node_count, Some(2), "{}", d.name());

    // Scale up by one, then remove member "0" while going back to two.
    for (count, remove) in [(3u32, vec![]), (2, vec!["0".to_string()])] {
        let patch = d.scale_request(&ScaleSpec {
            node_count: count,
            nodes_to_remove: remove,
            rollback: false,
        });
        heat.update_stack_patch(&sref, &patch).await.unwrap();
        let stack = wait(&heat, &sref, "UPDATE_COMPLETE").await;
        let out = d.map_outputs(&opts, &stack);
        assert_eq!(out.node_count, Some(count), "{}", d.name());
        assert_eq!(
            out.node_addresses.len(),
            count as usize,
            "{}: {out:?}",
            d.name()
        );
        assert_eq!(
            out.api_address.as_deref(),
            Some(api.as_str()),
            "{}",
            d.name()
        );
    }

    heat.delete_stack(&sref).await.unwrap();
    let start = Instant::now();
    loop {
        match heat.get_stack(&sref, false).await.unwrap() {
            None => break,
            Some(s) if s.status == "DELETE_COMPLETE" => break,
            Some(s) => {
                assert!(!s.status.ends_with("FAILED"), "{}: {}", d.name(), s.status);
                assert!(start.elapsed() < Duration::from_secs(60));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The COE drivers (servers, ports, floating IPs); `heat_test_v1` builds no servers and is
/// checked against real Heat by `chaos-tests/tests/failover_real_heat.rs`.
fn cloud_drivers() -> impl Iterator<Item = &'static &'static (dyn magnum_drivers::Driver + 'static)>
{
    all_drivers().iter().filter(|d| d.name() != "heat_test_v1")
}

#[tokio::test]
async fn every_driver_validates_creates_scales_and_deletes_on_cloud_sim() {
    let env = start().await;
    for d in cloud_drivers() {
        run_driver(&env, *d, false, true).await;
    }
}

#[tokio::test]
async fn every_driver_runs_on_an_existing_network_without_floating_ips() {
    let env = start().await;
    for d in cloud_drivers() {
        run_driver(&env, *d, true, false).await;
    }
}
