//! Shared helpers: start a simulator on an ephemeral port, log in, poll stacks.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use magnum_cloud_sim::{serve, SimConfig, SimHandle};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};

pub struct Sim {
    pub handle: SimHandle,
    pub base: String,
    pub http: Client,
}

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

pub async fn start() -> Sim {
    start_with(None, None).await
}

pub async fn start_with(state_file: Option<PathBuf>, container_infra_url: Option<String>) -> Sim {
    let handle = serve(SimConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        container_infra_url,
        time_scale: 0.01,
        state_file,
        heat_url: None,
        ..Default::default()
    })
    .await
    .expect("serve");
    let base = handle.base_url().to_string();
    Sim {
        handle,
        base,
        http: client(),
    }
}

pub fn password_body(user: &str, project: Option<&str>) -> Value {
    let mut auth = json!({
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": "secret"}}
        }
    });
    if let Some(p) = project {
        auth["scope"] = json!({"project": {"name": p, "domain": {"id": "default"}}});
    }
    json!({ "auth": auth })
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Password login; returns (token, body).
    pub async fn login(&self, user: &str, project: &str) -> (String, Value) {
        let r = self
            .http
            .post(self.url("/identity/v3/auth/tokens"))
            .json(&password_body(user, Some(project)))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), StatusCode::CREATED, "login {user}/{project}");
        let tok = r
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .expect("subject token")
            .to_string();
        (tok, r.json().await.expect("token body"))
    }

    pub fn heat(&self, project: &str) -> String {
        format!(
            "{}/heat-api/v1/{}",
            self.base,
            magnum_cloud_sim::project_id(project)
        )
    }

    /// `.../heat-api/v1/{project_id}/stacks`.
    pub fn stacks(&self, project: &str) -> String {
        format!("{}/stacks", self.heat(project))
    }

    pub async fn call(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> Response {
        let mut rb = self.http.request(method, url).header("X-Auth-Token", token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.expect("request")
    }

    /// POST /stacks; returns the canonical stack URL.
    pub async fn create_stack(&self, token: &str, project: &str, body: Value) -> String {
        let r = self
            .call(Method::POST, &self.stacks(project), token, Some(body))
            .await;
        let status = r.status();
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::CREATED, "create: {body}");
        let href = body["stack"]["links"][0]["href"]
            .as_str()
            .expect("self link")
            .to_string();
        assert_eq!(loc.as_deref(), Some(href.as_str()));
        href
    }

    pub async fn show(&self, token: &str, stack_url: &str) -> Value {
        let r = self.call(Method::GET, stack_url, token, None).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.expect("show")["stack"].clone()
    }

    /// Poll until the stack leaves IN_PROGRESS; returns the final show body.
    pub async fn wait(&self, token: &str, stack_url: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.show(token, stack_url).await;
            let status = s["stack_status"].as_str().unwrap_or("").to_string();
            if !status.ends_with("IN_PROGRESS") {
                return s;
            }
            assert!(Instant::now() < deadline, "stack stuck in {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.expect("admin request")
    }

    /// GET an admin path; its JSON body.
    pub async fn admin_json(&self, path: &str) -> Value {
        self.admin(Method::GET, path, None)
            .await
            .json()
            .await
            .expect("admin body")
    }

    /// Install a fault (`POST /sim/heat/faults`).
    pub async fn add_fault(&self, spec: Value) -> Response {
        self.admin(Method::POST, "/sim/heat/faults", Some(spec))
            .await
    }

    /// Override a latency (`POST /sim/heat/latency`).
    pub async fn set_latency(&self, spec: Value) -> Response {
        self.admin(Method::POST, "/sim/heat/latency", Some(spec))
            .await
    }

    /// A Keystone token call about `subject` (`X-Subject-Token`), as `auth` if given.
    pub async fn subject_call(
        &self,
        method: Method,
        url: &str,
        auth: Option<&str>,
        subject: &str,
    ) -> Response {
        let mut rb = self
            .http
            .request(method, url)
            .header("X-Subject-Token", subject);
        if let Some(a) = auth {
            rb = rb.header("X-Auth-Token", a);
        }
        rb.send().await.expect("token request")
    }

    /// Status reasons of the events of resource `name` of a stack, oldest first.
    pub async fn event_reasons(&self, token: &str, stack_url: &str, name: &str) -> Vec<String> {
        let r = self
            .call(
                Method::GET,
                &format!("{stack_url}/events?sort_dir=asc"),
                token,
                None,
            )
            .await;
        let v: Value = r.json().await.expect("events");
        v["events"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter(|e| e["resource_name"] == name)
                    .map(|e| {
                        e["resource_status_reason"]
                            .as_str()
                            .unwrap_or("")
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Outputs of a show body as a map key → value.
pub fn outputs(show: &Value) -> serde_json::Map<String, Value> {
    show["outputs"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|o| {
                    (
                        o["output_key"].as_str().unwrap_or("").to_string(),
                        o["output_value"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
