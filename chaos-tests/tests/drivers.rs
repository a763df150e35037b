//! Every COE driver end to end in one deployment: a template with the driver's image and COE
//! through the REST API, a cluster → CREATE_COMPLETE with the driver's api_address shape, a
//! node_count PATCH → UPDATE_COMPLETE with the new count on the stack, a delete → 404 and the
//! stack DELETE_COMPLETE. The drivers run concurrently to keep CI time low.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::stacks_named;
use magnum_chaos_tests::{Deployment, Options};
use reqwest::Method;
use serde_json::{json, Value};

struct Case {
    driver: &'static str,
    template: Value,
    /// `(scheme://, :port)` of api_address.
    api: (&'static str, &'static str),
}

fn cases() -> Vec<Case> {
    let t = |extra: Value| {
        let mut body = json!({
            "external_network_id": "public", "flavor_id": "m1.small",
            "master_flavor_id": "m1.small", "keypair_id": "default"
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    vec![
        Case {
            driver: "k8s_fedora_coreos_v1",
            template: t(json!({"coe": "kubernetes", "image_id": "fedora-coreos-40"})),
            api: ("https://", ":6443"),
        },
        Case {
            driver: "k8s_fedora_atomic_v1",
            template: t(
                json!({"coe": "kubernetes", "image_id": "fedora-atomic-29", "docker_volume_size": 5}),
            ),
            api: ("https://", ":6443"),
        },
        Case {
            driver: "k8s_coreos_v1",
            template: t(
                json!({"coe": "kubernetes", "image_id": "coreos-stable", "network_driver": "calico", "tls_disabled": true}),
            ),
            api: ("http://", ":8080"),
        },
        Case {
            driver: "k8s_fedora_ironic_v1",
            template: t(
                json!({"coe": "kubernetes", "image_id": "fedora-ironic", "server_type": "bm",
                       "flavor_id": "baremetal", "master_flavor_id": "baremetal"}),
            ),
            api: ("https://", ":6443"),
        },
        Case {
            driver: "swarm_fedora_atomic_v1",
            template: t(
                json!({"coe": "swarm", "image_id": "fedora-atomic-29", "network_driver": "flannel"}),
            ),
            api: ("tcp://", ":2376"),
        },
        Case {
            driver: "swarm_fedora_atomic_v2",
            template: t(
                json!({"coe": "swarm-mode", "image_id": "fedora-atomic-29", "tls_disabled": true}),
            ),
            api: ("tcp://", ":2375"),
        },
        Case {
            driver: "mesos_ubuntu_v1",
            template: t(
                json!({"coe": "mesos", "image_id": "ubuntu-mesos", "volume_driver": "rexray"}),
            ),
            api: ("http://", ":5050"),
        },
        Case {
            driver: "dcos_centos_v1",
            template: t(json!({"coe": "dcos", "image_id": "centos-dcos"})),
            api: ("https://", ":443"),
        },
    ]
}

async fn wait(
    d: &Deployment,
    tok: &str,
    id: &str,
    what: &str,
    pred: impl Fn(u16, &Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let (s, v) = d
            .call(Method::GET, &format!("/clusters/{id}"), Some(tok), None)
            .await;
        if pred(s, &v) {
            return v;
        }
        assert!(
            !v["status"].as_str().unwrap_or("").ends_with("FAILED"),
            "{what}: {v}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what}: timed out; last {s} {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The one stack cloud-sim created for cluster `name`, as `GET /sim/heat/stacks` shows it.
async fn only_stack(d: &Deployment, name: &str) -> Value {
    let stacks: Vec<Value> = stacks_named(d, &format!("{name}-"))
        .await
        .into_iter()
        .filter(|s| s["parent"].is_null())
        .collect();
    assert_eq!(stacks.len(), 1, "{name}: {stacks:?}");
    stacks[0].clone()
}

async fn run(d: Arc<Deployment>, tok: String, c: Case) {
    let t0 = Instant::now();
    let name = format!("drv-{}", c.driver.replace('_', "-"));
    let mut body = c.template.clone();
    body["name"] = json!(name);
    let (s, tpl) = d
        .call(Method::POST, "/clustertemplates", Some(&tok), Some(body))
        .await;
    assert_eq!(s, 201, "{}: template: {tpl}", c.driver);
    let coe = tpl["coe"].as_str().unwrap().to_string();

    let body = json!({"name": name, "cluster_template_id": tpl["uuid"], "master_count": 1, "node_count": 1});
    let (s, v) = d
        .call(Method::POST, "/clusters", Some(&tok), Some(body))
        .await;
    assert_eq!(s, 202, "{}: cluster: {v}", c.driver);
    let id = v["uuid"].as_str().unwrap().to_string();
    let what = format!("{} create", c.driver);
    let v = wait(&d, &tok, &id, &what, |_, v| {
        v["status"] == "CREATE_COMPLETE"
    })
    .await;
    let api = v["api_address"].as_str().unwrap_or_default();
    assert!(
        api.starts_with(c.api.0) && api.ends_with(c.api.1) && api.contains("172.24.4."),
        "{}: api_address {api:?} ({coe})",
        c.driver
    );
    assert_eq!(v["node_count"], 1, "{}: {v}", c.driver);
    let stack = only_stack(&d, &name).await;
    assert_eq!(stack["status"], "CREATE_COMPLETE", "{}", c.driver);
    eprintln!("{}: created in {:?}", c.driver, t0.elapsed());

    let patch = json!([{"op": "replace", "path": "/node_count", "value": 2}]);
    let (s, v) = d
        .call(
            Method::PATCH,
            &format!("/clusters/{id}"),
            Some(&tok),
            Some(patch),
        )
        .await;
    assert_eq!(s, 202, "{}: patch: {v}", c.driver);
    let what = format!("{} scale", c.driver);
    let v = wait(&d, &tok, &id, &what, |_, v| {
        v["status"] == "UPDATE_COMPLETE"
    })
    .await;
    assert_eq!(v["node_count"], 2, "{}: {v}", c.driver);
    let stack = only_stack(&d, &name).await;
    assert_eq!(stack["status"], "UPDATE_COMPLETE", "{}: {stack}", c.driver);
    eprintln!("{}: scaled at {:?}", c.driver, t0.elapsed());

    let (s, v) = d
        .call(Method::DELETE, &format!("/clusters/{id}"), Some(&tok), None)
        .await;
    assert_eq!(s, 204, "{}: delete: {v}", c.driver);
    let what = format!("{} delete", c.driver);
    wait(&d, &tok, &id, &what, |s, _| s == 404).await;
    let stack = only_stack(&d, &name).await;
    assert_eq!(stack["status"], "DELETE_COMPLETE", "{}: {stack}", c.driver);
    eprintln!("{}: deleted at {:?}", c.driver, t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_driver_creates_scales_and_deletes_through_the_api() {
    let d = Arc::new(Deployment::up("drivers", Options::default()));
    let tok = d.token("demo", "demo").await;
    eprintln!("deployment up");
    let tasks: Vec<_> = cases()
        .into_iter()
        .map(|c| tokio::spawn(run(d.clone(), tok.clone(), c)))
        .collect();
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(e) = t.await {
            failures.push(e.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{failures:#?}\nlogs in {}",
        d.dir.display()
    );
}
