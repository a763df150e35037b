//! Nova quotas over HTTP: `os-quota-sets` and Heat stacks that need more servers than a
//! project has left (checked before any group is expanded).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use magnum_cloud_sim::{serve, serve_with, NovaQuotas, SimConfig, SimHandle};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const MINION: &str = r#"
heat_template_version: queens
parameters:
  name: {type: string}
  flavor: {type: string, default: m1.small}
resources:
  kube-minion:
    type: OS::Nova::Server
    properties: {name: {get_param: name}, flavor: {get_param: flavor}}
"#;

/// Shaped like Magnum's k8s templates: a group of master servers, then (depending on it) a
/// group of nested minion templates.
const CLUSTER: &str = r#"
heat_template_version: 2018-08-31
parameters:
  master_count: {type: number, default: 1}
  number_of_minions: {type: number, default: 1}
  minion_flavor: {type: string, default: m1.small}
resources:
  net: {type: OS::Neutron::Net}
  kube_masters:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: master_count}
      resource_def:
        type: OS::Nova::Server
        properties: {name: 'master-%index%', flavor: m1.small, networks: [{network: {get_resource: net}}]}
  kube_minions:
    type: OS::Heat::ResourceGroup
    depends_on: kube_masters
    properties:
      count: {get_param: number_of_minions}
      resource_def:
        type: file:///kubeminion.yaml
        properties: {name: 'minion-%index%', flavor: {get_param: minion_flavor}}
"#;

struct Sim {
    _handle: SimHandle,
    base: String,
    http: Client,
}

async fn start(quotas: Option<NovaQuotas>) -> Sim {
    let cfg = SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        container_infra_url: None,
        time_scale: 0.01,
        state_file: None,
        heat_url: None,
        ..Default::default()
    };
    let handle = match quotas {
        Some(q) => serve_with(cfg, q).await.unwrap(),
        None => serve(cfg).await.unwrap(),
    };
    Sim {
        base: handle.base_url().to_string(),
        _handle: handle,
        http: Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
    }
}

fn cluster(name: &str, masters: u64, minions: u64) -> Value {
    json!({
        "stack_name": name,
        "template": CLUSTER,
        "files": {"file:///kubeminion.yaml": MINION},
        "parameters": {"master_count": masters, "number_of_minions": minions},
    })
}

impl Sim {
    async fn login(&self, user: &str, project: &str) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": "secret"}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        let r = self
            .http
            .post(format!("{}/identity/v3/auth/tokens", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.headers()["x-subject-token"].to_str().unwrap().to_string()
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.http.request(method, url).header("X-Auth-Token", token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn quota_url(&self, project: &str) -> String {
        format!(
            "{}/compute/v2.1/os-quota-sets/{}",
            self.base,
            magnum_cloud_sim::project_id(project)
        )
    }

    /// `in_use` of instances and cores.
    async fn in_use(&self, token: &str, project: &str) -> (u64, u64) {
        let (s, v) = self
            .call(
                Method::GET,
                &format!("{}/detail", self.quota_url(project)),
                token,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let q = &v["quota_set"];
        (
            q["instances"]["in_use"].as_u64().unwrap(),
            q["cores"]["in_use"].as_u64().unwrap(),
        )
    }

    async fn set_quota(&self, token: &str, project: &str, set: Value) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &self.quota_url(project),
            token,
            Some(json!({ "quota_set": set })),
        )
        .await
    }

    /// POST /stacks; the canonical stack URL.
    async fn create(&self, token: &str, project: &str, body: Value) -> String {
        let url = format!(
            "{}/heat-api/v1/{}/stacks",
            self.base,
            magnum_cloud_sim::project_id(project)
        );
        let (s, v) = self.call(Method::POST, &url, token, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["stack"]["links"][0]["href"].as_str().unwrap().to_string()
    }

    /// Poll until the stack leaves IN_PROGRESS; its show body.
    async fn wait(&self, token: &str, url: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (s, v) = self.call(Method::GET, url, token, None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let stack = v["stack"].clone();
            if !stack["stack_status"]
                .as_str()
                .unwrap_or("")
                .ends_with("IN_PROGRESS")
            {
                return stack;
            }
            assert!(Instant::now() < deadline, "stuck: {stack}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn patch(&self, token: &str, url: &str, params: Value) -> Value {
        let (s, v) = self
            .call(
                Method::PATCH,
                url,
                token,
                Some(json!({ "parameters": params })),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        self.wait(token, url).await
    }

    async fn delete(&self, token: &str, url: &str) {
        let (s, v) = self.call(Method::DELETE, url, token, None).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, v) = self.call(Method::GET, url, token, None).await;
            if v["stack"]["stack_status"] == "DELETE_COMPLETE" {
                return;
            }
            assert!(Instant::now() < deadline, "delete stuck: {v}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stacks of every depth the simulator holds (admin API).
    async fn all_stacks(&self) -> usize {
        let v: Value = self
            .http
            .get(format!("{}/sim/heat/stacks?show_nested=true", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["stacks"].as_array().unwrap().len()
    }
}

/// Resident set size of this process (the simulator runs in it), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn reason(stack: &Value) -> String {
    stack["stack_status_reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn ten_million_minions_fail_fast_at_the_default_quota() {
    let sim = start(None).await;
    let demo = sim.login("demo", "demo").await;

    // Defaults: 1000 instances, 4000 cores.
    let (s, v) = sim
        .call(Method::GET, &sim.quota_url("demo"), &demo, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["quota_set"]["instances"], 1000);
    assert_eq!(v["quota_set"]["cores"], 4000);
    assert_eq!(v["quota_set"]["id"], magnum_cloud_sim::project_id("demo"));

    let rss_before = rss_kib();
    let t0 = Instant::now();
    let url = sim
        .create(&demo, "demo", cluster("huge", 1, 10_000_000))
        .await;
    let s = sim.wait(&demo, &url).await;
    let elapsed = t0.elapsed();
    let rss_after = rss_kib();
    println!(
        "10M minions: {} after {elapsed:?}, RSS {rss_before} KiB -> {rss_after} KiB",
        s["stack_status"]
    );
    assert_eq!(s["stack_status"], "CREATE_FAILED", "{s}");
    // One master, then minions 0..=998 fit; minion 999 is the 1001st server.
    let r = reason(&s);
    assert!(
        r.starts_with(
            "Resource CREATE failed: Forbidden: resources.kube_minions.resources[999].resources.kube-minion: \
             Quota exceeded for instances: Requested 1, but already used 1000 of 1000 instances (HTTP 403) (Request-ID: req-"
        ),
        "{r}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(
        rss_after.saturating_sub(rss_before) < 100 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    // Nothing was expanded or created, and nothing is charged.
    assert_eq!(sim.all_stacks().await, 1);
    assert_eq!(sim.in_use(&demo, "demo").await, (0, 0));
    let (_, v) = sim
        .call(Method::GET, &format!("{url}/resources"), &demo, None)
        .await;
    let res = v["resources"].as_array().unwrap();
    assert_eq!(res.len(), 1, "{v}");
    assert_eq!(res[0]["resource_name"], "kube_minions");
    assert_eq!(res[0]["resource_status"], "CREATE_FAILED");
    assert!(res[0]["resource_status_reason"]
        .as_str()
        .unwrap()
        .starts_with("Forbidden: resources.kube_minions.resources[999].resources.kube-minion: Quota exceeded for instances"));
}

#[tokio::test]
async fn quota_update_admits_an_update_and_delete_frees_usage() {
    let sim = start(Some(NovaQuotas {
        instances: 3,
        cores: 100,
    }))
    .await;
    let demo = sim.login("demo", "demo").await;
    let admin = sim.login("admin", "admin").await;

    // Within quota: completes and is charged.
    let c1 = sim.create(&demo, "demo", cluster("c1", 1, 2)).await;
    let s = sim.wait(&demo, &c1).await;
    assert_eq!(s["stack_status"], "CREATE_COMPLETE", "{s}");
    assert_eq!(sim.in_use(&demo, "demo").await, (3, 3));

    // Over quota: the first server over it is the master of c2.
    let c2 = sim.create(&demo, "demo", cluster("c2", 1, 1)).await;
    let s = sim.wait(&demo, &c2).await;
    assert_eq!(s["stack_status"], "CREATE_FAILED", "{s}");
    assert!(
        reason(&s).starts_with(
            "Resource CREATE failed: Forbidden: resources.kube_masters.resources[0]: \
             Quota exceeded for instances: Requested 1, but already used 3 of 3 instances (HTTP 403)"
        ),
        "{s}"
    );
    assert_eq!(sim.in_use(&demo, "demo").await, (3, 3));

    // Only an admin sets quotas; a member reads its own project's only.
    let (s, v) = sim.set_quota(&demo, "demo", json!({"instances": 5})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(
        v["forbidden"]["message"],
        "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed."
    );
    let (s, _) = sim
        .call(Method::GET, &sim.quota_url("alt_demo"), &demo, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = sim
        .set_quota(&admin, "demo", json!({"instances": "bogus"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = sim
        .set_quota(&admin, "demo", json!({"floating_ips": 1}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    let (s, v) = sim.set_quota(&admin, "demo", json!({"instances": 5})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["quota_set"]["instances"], 5);
    assert_eq!(v["quota_set"]["cores"], 100);

    // The failed stack is updated into existence now that it fits.
    let s = sim.patch(&demo, &c2, json!({"number_of_minions": 1})).await;
    assert_eq!(s["stack_status"], "UPDATE_COMPLETE", "{s}");
    assert_eq!(sim.in_use(&demo, "demo").await, (5, 5));

    // A limit below what is in use needs force.
    let (s, v) = sim.set_quota(&admin, "demo", json!({"instances": 4})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        v["badRequest"]["message"],
        "Quota limit 4 for instances must be greater than or equal to already used and reserved 5."
    );
    let (s, v) = sim
        .set_quota(&admin, "demo", json!({"instances": 4, "force": true}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Deleting a stack frees its servers: c2 can then grow to 4 servers.
    sim.delete(&demo, &c1).await;
    assert_eq!(sim.in_use(&demo, "demo").await, (2, 2));
    let s = sim.patch(&demo, &c2, json!({"number_of_minions": 3})).await;
    assert_eq!(s["stack_status"], "UPDATE_COMPLETE", "{s}");
    assert_eq!(sim.in_use(&demo, "demo").await, (4, 4));

    // Other projects keep the defaults; DELETE reverts to them.
    let (_, v) = sim
        .call(Method::GET, &sim.quota_url("alt_demo"), &admin, None)
        .await;
    assert_eq!(v["quota_set"]["instances"], 3);
    let (s, _) = sim
        .call(Method::DELETE, &sim.quota_url("demo"), &admin, None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (_, v) = sim
        .call(Method::GET, &sim.quota_url("demo"), &demo, None)
        .await;
    assert_eq!(v["quota_set"]["instances"], 3);
}

#[tokio::test]
async fn cores_quota_fails_an_update_and_keeps_the_servers() {
    let sim = start(Some(NovaQuotas {
        instances: -1,
        cores: 4,
    }))
    .await;
    let demo = sim.login("demo", "demo").await;
    // m1.medium has 2 vCPUs: two minions fit, a third does not.
    let mut body = cluster("c", 0, 2);
    body["parameters"]["minion_flavor"] = json!("m1.medium");
    let url = sim.create(&demo, "demo", body).await;
    let s = sim.wait(&demo, &url).await;
    assert_eq!(s["stack_status"], "CREATE_COMPLETE", "{s}");
    assert_eq!(sim.in_use(&demo, "demo").await, (2, 4));

    let s = sim
        .patch(&demo, &url, json!({"number_of_minions": 3}))
        .await;
    assert_eq!(s["stack_status"], "UPDATE_FAILED", "{s}");
    assert!(
        reason(&s).starts_with(
            "Resource UPDATE failed: Forbidden: resources.kube_minions.resources[2].resources.kube-minion: \
             Quota exceeded for cores: Requested 2, but already used 4 of 4 cores (HTTP 403)"
        ),
        "{s}"
    );
    // The existing servers are untouched and still charged.
    assert_eq!(sim.in_use(&demo, "demo").await, (2, 4));
    let s = sim
        .patch(&demo, &url, json!({"number_of_minions": 1}))
        .await;
    assert_eq!(s["stack_status"], "UPDATE_COMPLETE", "{s}");
    assert_eq!(sim.in_use(&demo, "demo").await, (1, 2));
}

#[tokio::test]
async fn a_failed_stack_is_charged_only_for_servers_that_exist() {
    let sim = start(Some(NovaQuotas {
        instances: 10,
        cores: 100,
    }))
    .await;
    let demo = sim.login("demo", "demo").await;
    // The masters' group fails; the minions (which depend on it) are never created.
    let r = sim
        .http
        .post(format!("{}/sim/heat/faults", sim.base))
        .json(
            &json!({"kind": "resource_fail", "resource_type": "OS::Nova::Server",
            "action": "CREATE", "message": "boom", "count": 0}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let url = sim.create(&demo, "demo", cluster("f", 1, 8)).await;
    let s = sim.wait(&demo, &url).await;
    assert_eq!(s["stack_status"], "CREATE_FAILED", "{s}");
    // 9 servers were claimed while it ran; none exists now.
    assert_eq!(sim.in_use(&demo, "demo").await, (0, 0));
    let r = sim
        .http
        .delete(format!("{}/sim/heat/faults", sim.base))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // So a stack using the whole quota fits.
    let url2 = sim.create(&demo, "demo", cluster("g", 1, 9)).await;
    let s = sim.wait(&demo, &url2).await;
    assert_eq!(s["stack_status"], "CREATE_COMPLETE", "{s}");
    assert_eq!(sim.in_use(&demo, "demo").await, (10, 10));
}
