//! `deploy/docker-compose.yml` as an operator runs it (issue 16): the image built from scratch
//! (`deploy/build-image.sh --debug`, the binary the tests built), `docker-compose up -d` to a
//! settled deployment, a cluster created through one API node and watched through the other,
//! and the shard leader's container killed mid-create: the cluster still ends
//! `CREATE_COMPLETE` with exactly one stack create. The real `openstack` CLI is the readiness
//! probe (`coe service list`) and sees the cluster complete.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_chaos_tests::cli::openstack;
use magnum_chaos_tests::{login, repo_root};
use magnum_proto::{shard_of, ProjectId};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

const API: u16 = 27511;
const API2: u16 = 27521;
const KEYSTONE: u16 = 27500;

struct Compose {
    project: String,
}

impl Compose {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker-compose");
        c.current_dir(repo_root())
            .env("MAGNUM_API_PORT", API.to_string())
            .env("MAGNUM_API2_PORT", API2.to_string())
            .env("MAGNUM_KEYSTONE_PORT", KEYSTONE.to_string())
            .env("MAGNUM_SIM_TIME_SCALE", "1.0")
            .args(["-p", &self.project, "-f", "deploy/docker-compose.yml"])
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `magnum manage status --json` from a one-off container with the operator's certificate;
    /// what went wrong otherwise.
    fn status(&self) -> Result<Value, String> {
        let out = self
            .cmd(&[
                "run",
                "--rm",
                "-T",
                "pki",
                "manage",
                "status",
                "--json",
                "--conductors",
                "conductor-1:9612,conductor-2:9612,conductor-3:9612",
                "--tls-dir",
                "/var/lib/magnum/pki/tls/operator",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "{e} ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(out) = self.cmd(&["logs", "--tail", "60"]).output() {
                eprintln!("{}", String::from_utf8_lossy(&out.stdout));
            }
        }
        let _ = self.cmd(&["down", "-v", "--timeout", "5"]).output();
    }
}

fn settled(st: &Value) -> bool {
    st["settled"] == true
        && st["groups"]
            .as_array()
            .is_some_and(|g| g.iter().all(|g| !g["leader"].is_null()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_deployment_survives_a_conductor_kill_mid_create() {
    let root = repo_root();
    let built = Command::new("bash")
        .arg(root.join("deploy/build-image.sh"))
        .arg("--debug")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "build-image.sh: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let c = Compose {
        project: format!("magnum-compose-{}", std::process::id()),
    };
    // deploy/compose-openrc, on this test's ports.
    let rc = std::env::temp_dir().join(format!("{}.openrc", c.project));
    let openrc = std::fs::read_to_string(root.join("deploy/compose-openrc"))
        .unwrap()
        .replace("127.0.0.1:5000", &format!("127.0.0.1:{KEYSTONE}"))
        .replace("127.0.0.1:9511", &format!("127.0.0.1:{API}"));
    std::fs::write(&rc, openrc).unwrap();
    let start = Instant::now();
    c.run(&["up", "-d"]);
    // Ready when the real CLI lists the conductors.
    loop {
        let out = openstack(&rc, &["coe", "service", "list", "-f", "json"]);
        if out.code == 0 && out.stdout.contains("magnum-conductor") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "`openstack coe service list` failing 90 s after `up`: {}",
            out.stderr
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ready = start.elapsed();
    // Every group led and every replica placed, within two minutes of the CLI's first answer
    // (a loaded CI machine starts containers slowly).
    let mut last = Err("not asked yet".to_string());
    while !last.as_ref().is_ok_and(settled) {
        assert!(
            start.elapsed() < ready + Duration::from_secs(120),
            "not settled 120 s after the CLI answered; last status: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = c.status();
    }
    let http = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{API}/v1");

    // A user of cloud-sim's Keystone, through the published port.
    let auth_url = format!("http://127.0.0.1:{KEYSTONE}/identity/v3");
    let (token, project) = login(&http, &auth_url, "demo", "demo").await;
    let project = ProjectId(project);
    let post = |path: &str, body: Value| {
        http.post(format!("{api}{path}"))
            .header("X-Auth-Token", &token)
            .json(&body)
            .send()
    };
    let r = post("/clustertemplates", common::template_body("compose"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // The project's shard leader, to be killed as soon as the create is accepted.
    let st = c.status().unwrap();
    let shards = u32::try_from(st["shards"].as_u64().unwrap()).unwrap();
    let group = u64::from(shard_of(&project, shards).0) + 1;
    let leader = st["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group)
        .and_then(|g| g["leader"].as_u64())
        .unwrap();
    let victim = format!("conductor-{leader}");
    let r = post(
        "/clusters",
        json!({"name": "compose-k8s", "cluster_template_id": "compose", "master_count": 1, "node_count": 1}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<Value>().await.unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();

    c.run(&["kill", &victim]);
    let killed = Instant::now();

    // Watched through the other API node; the first look must still see the create running,
    // or the kill was not mid-create.
    let other = format!("http://127.0.0.1:{API2}/v1/clusters/{id}");
    let mut first = None;
    let status = loop {
        let v: Value = http
            .get(&other)
            .header("X-Auth-Token", &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        let s = v["status"].as_str().unwrap_or("").to_string();
        first.get_or_insert_with(|| s.clone());
        if s.ends_with("_COMPLETE") || s.ends_with("_FAILED") {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(180),
            "cluster still {s} 180 s after the kill"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        first.as_deref(),
        Some("CREATE_IN_PROGRESS"),
        "killed after the create"
    );
    assert_eq!(status, "CREATE_COMPLETE");
    let stacks: Value = http
        .get(format!("http://127.0.0.1:{KEYSTONE}/sim/heat/stacks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let creates: Vec<(&String, &Value)> = stacks["creates_by_name"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with("compose-k8s"))
        .collect();
    assert_eq!(creates.len(), 1, "{stacks}");
    assert_eq!(creates[0].1, 1, "one stack create: {stacks}");
    let done = killed.elapsed();
    // The CLI sees it too (the admin, through api-1).
    let out = openstack(
        &rc,
        &[
            "coe", "cluster", "list", "-f", "value", "-c", "name", "-c", "status",
        ],
    );
    assert!(
        out.stdout.contains("compose-k8s CREATE_COMPLETE"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    c.run(&["start", &victim]);
    eprintln!(
        "MEASURE compose: `up -d` → first successful `openstack coe service list` {:.1} s; \
         {victim} killed mid-create, CREATE_COMPLETE {:.1} s later with one stack",
        ready.as_secs_f64(),
        done.as_secs_f64()
    );
}
