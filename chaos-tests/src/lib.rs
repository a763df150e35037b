//! Harness for multi-process tests: starts the `deploy/local-cluster.sh` topology (cloud-sim,
//! three conductors, one API node) on its own ports under a temporary directory, and offers the
//! operations the failure tests need (kill/stop/start a process, tokens, raw HTTP, the conductor
//! forwarding client, cloud-sim's admin API). Everything is torn down on drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod burst;
pub mod chaos;
pub mod differential;
pub mod load;
pub mod peers;
pub mod real_heat;
pub mod upgrade;

use magnum_proto::ConductorClient;
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub mod cli;

/// Repository root (this crate lives in `<root>/chaos-tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `magnum` binary the tests run: `$MAGNUM_BIN`, else `target/debug/magnum`, built (or
/// brought up to date) once per test process so a stale binary is never tested.
pub fn magnum_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(b) = std::env::var("MAGNUM_BIN") {
            return PathBuf::from(b);
        }
        let ok = Command::new("cargo")
            .args(["build", "-q", "-p", "magnum-deploy"])
            .current_dir(repo_root())
            .status()
            .expect("cargo build")
            .success();
        assert!(ok, "building the magnum binary failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("target"));
        target.join("debug").join("magnum")
    })
    .clone()
}

#[derive(Clone, Debug)]
pub struct Options {
    pub shards: u32,
    pub poll_ms: u64,
    pub time_scale: f64,
    /// Extra conductor flags (`MAGNUM_RAFT_ARGS` of local-cluster.sh), e.g. `--vote-audit`.
    pub raft_args: String,
    /// Extra cloud-sim flags (`MAGNUM_SIM_ARGS`), e.g. `--heat-url URL` for a real Heat.
    pub sim_args: String,
    /// Conductors read failpoints from `DIR/conductor-ID.failpoints` (see `arm_failpoints`).
    pub failpoint_files: bool,
    /// Run against the real Keystone 30 of the peers toolkit (`MAGNUM_KEYSTONE=real`): the
    /// users, projects and catalog `local-cluster.sh` sets up there, `DIR/openrc-<user>`.
    pub real_keystone: bool,
    /// Run each conductor on its own host (`chaos-tests/netns.sh`): the namespaces' prefix and
    /// subnet. The test itself must run in `PREFIX-hub`, where cloud-sim and the API listen.
    pub netns: Option<Netns>,
}

/// Private hosts made by `chaos-tests/netns.sh up PREFIX SUBNET N`.
#[derive(Clone, Debug)]
pub struct Netns {
    pub prefix: String,
    /// The first three octets, e.g. `10.213.7`.
    pub subnet: String,
}

impl Netns {
    /// cloud-sim's and the API node's address (the hub's bridge).
    pub fn hub(&self) -> String {
        format!("{}.1", self.subnet)
    }

    pub fn conductor(&self, id: u64) -> String {
        format!("{}.{}", self.subnet, 10 + id)
    }

    /// The namespace conductor `id` runs in.
    pub fn namespace(&self, id: u64) -> String {
        format!("{}-c{id}", self.prefix)
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            shards: 4,
            poll_ms: 300,
            time_scale: 0.2,
            raft_args: String::new(),
            sim_args: String::new(),
            failpoint_files: false,
            real_keystone: false,
            netns: None,
        }
    }
}

pub struct Deployment {
    pub dir: PathBuf,
    pub port_base: u16,
    pub opts: Options,
    /// `http://127.0.0.1:P` of cloud-sim.
    pub sim: String,
    /// `http://127.0.0.1:P/v1` of the API node.
    pub api: String,
    pub http: reqwest::Client,
    /// The `local-cluster.sh` that manages it and the binary it starts processes with (HEAD's,
    /// or a previous release's for upgrade tests).
    pub script: PathBuf,
    pub bin: PathBuf,
    /// The operator certificate and mode a test switched to (turning TLS on in a running
    /// deployment); otherwise `local-cluster.sh`'s, if it made one.
    operator: std::sync::Mutex<Option<(PathBuf, magnum_net::Mode)>>,
    /// Ends the certificate reloaders of the operator clients handed out (on drop).
    reloaders: tokio_util::sync::CancellationToken,
    _tmp: Option<TempDir>,
}

/// A directory removed on drop unless `MAGNUM_KEEP_TEST_DIRS` is set (for post-mortems).
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MAGNUM_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn ports_free(base: u16) -> bool {
    // Room for two conductors added by membership tests and a second API node.
    let offsets = [
        0u16, 11, 12, 101, 102, 103, 104, 105, 201, 202, 203, 204, 205,
    ];
    offsets
        .iter()
        .all(|o| TcpListener::bind(("127.0.0.1", base + o)).is_ok())
}

fn pick_port_base() -> u16 {
    for _ in 0..200 {
        // Below the kernel's ephemeral range (32768+): outgoing connections never take these.
        let base = 20_000 + 300 * rand::Rng::gen_range(&mut rand::thread_rng(), 0u16..40);
        if ports_free(base) {
            return base;
        }
    }
    panic!("no free port range found");
}

impl Deployment {
    pub fn up(name: &str, opts: Options) -> Deployment {
        Self::up_with(
            name,
            opts,
            repo_root().join("deploy/local-cluster.sh"),
            magnum_bin(),
        )
    }

    /// Like `up`, with another release's `local-cluster.sh` and binary.
    pub fn up_with(name: &str, opts: Options, script: PathBuf, bin: PathBuf) -> Deployment {
        let d = Self::prepare_with(name, opts, script, bin);
        d.script(&["up"]);
        d
    }

    /// A directory and free ports for a deployment, nothing started: the test fills the
    /// directory (e.g. restores data dirs into it) before its `script(&["up"])`.
    pub fn prepare(name: &str, opts: Options) -> Deployment {
        Self::prepare_with(
            name,
            opts,
            repo_root().join("deploy/local-cluster.sh"),
            magnum_bin(),
        )
    }

    fn prepare_with(name: &str, opts: Options, script: PathBuf, bin: PathBuf) -> Deployment {
        let dir =
            std::env::temp_dir().join(format!("magnum-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = pick_port_base();
        let host = opts.netns.as_ref().map_or("127.0.0.1".into(), Netns::hub);
        Deployment {
            sim: format!("http://{host}:{base}"),
            api: format!("http://{host}:{}/v1", base + 11),
            dir: dir.clone(),
            port_base: base,
            opts,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            script,
            bin,
            operator: std::sync::Mutex::new(None),
            reloaders: tokio_util::sync::CancellationToken::new(),
            _tmp: Some(TempDir(dir)),
        }
    }

    /// Runs `local-cluster.sh ARGS[0] DIR ARGS[1..]`.
    pub fn script(&self, args: &[&str]) {
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script)
            .arg(args[0])
            .arg(&self.dir)
            .args(&args[1..])
            .env("MAGNUM_BIN", &self.bin)
            .env("MAGNUM_PORT_BASE", self.port_base.to_string())
            .env("MAGNUM_SHARDS", self.opts.shards.to_string())
            .env("MAGNUM_POLL_MS", self.opts.poll_ms.to_string())
            .env("MAGNUM_SIM_TIME_SCALE", self.opts.time_scale.to_string())
            .env("MAGNUM_RAFT_ARGS", &self.opts.raft_args)
            .env(
                "MAGNUM_NETNS",
                self.opts.netns.as_ref().map_or("", |n| n.prefix.as_str()),
            )
            .env(
                "MAGNUM_NETNS_SUBNET",
                self.opts.netns.as_ref().map_or("", |n| n.subnet.as_str()),
            )
            .env("MAGNUM_SIM_ARGS", &self.opts.sim_args)
            .env(
                "MAGNUM_FAILPOINT_FILES",
                if self.opts.failpoint_files { "1" } else { "0" },
            )
            .env(
                "MAGNUM_KEYSTONE",
                if self.opts.real_keystone {
                    "real"
                } else {
                    "sim"
                },
            );
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info,openraft=warn,sled=warn");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "local-cluster.sh {args:?} failed:\n{}\n{}\nlogs in {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.dir.display()
        );
    }

    /// Stop one process: `signal` KILL for a crash, TERM for a clean stop, STOP to freeze it.
    pub fn signal(&self, role: &str, id: Option<u64>, signal: &str) {
        let name = match id {
            Some(i) => format!("{role}-{i}"),
            None => role.to_string(),
        };
        let pid = std::fs::read_to_string(self.dir.join(format!("{name}.pid"))).unwrap_or_default();
        let pid = pid.trim();
        assert!(!pid.is_empty(), "{name} is not running");
        let st = Command::new("kill")
            .args(["-s", signal, pid])
            .status()
            .unwrap();
        assert!(st.success());
        if signal == "KILL" || signal == "TERM" {
            // Wait until it's gone so a restart can bind its ports.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                if std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = std::fs::remove_file(self.dir.join(format!("{name}.pid")));
        }
    }

    /// Arms conductor `id` with `spec` (failpoint syntax), read at its next site; needs
    /// `Options::failpoint_files`.
    pub fn arm_failpoints(&self, id: u64, spec: &str) {
        std::fs::write(self.dir.join(format!("conductor-{id}.failpoints")), spec).unwrap();
    }

    pub fn disarm_failpoints(&self, id: u64) {
        let _ = std::fs::remove_file(self.dir.join(format!("conductor-{id}.failpoints")));
    }

    /// Pid of a running process of the deployment, from its pid file.
    pub fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    pub fn kill_conductor(&self, id: u64) {
        self.signal("conductor", Some(id), "KILL");
    }

    pub fn start(&self, role: &str, id: Option<u64>) {
        let id = id.map(|i| i.to_string());
        let mut args = vec!["start", role];
        if let Some(i) = &id {
            args.push(i);
        }
        self.script(&args);
    }

    pub fn down(&self) {
        self.script(&["down"]);
    }

    /// Starts conductor `id` (> 3) and adds it with `magnum manage conductor add`, which returns
    /// once replicas are spread over it.
    pub fn add_conductor(&self, id: u64) {
        self.script(&["add", &id.to_string()]);
    }

    /// Runs HEAD's `magnum manage ARGS` against the first three conductors (with the operator's
    /// certificate when the deployment has TLS), whatever it exits.
    pub fn manage_output(&self, args: &[&str]) -> std::process::Output {
        let seeds: Vec<String> = (1..=3).map(|i| self.conductor_service(i)).collect();
        let mut cmd = Command::new(magnum_bin());
        cmd.arg("manage")
            .args(args)
            .env("MAGNUM_CONDUCTORS", seeds.join(","));
        if let Some((dir, mode)) = self.operator() {
            cmd.env("MAGNUM_TLS_DIR", dir)
                .env("MAGNUM_INTERNAL_TLS", mode.as_str());
        }
        cmd.output().unwrap()
    }

    /// `magnum manage certs issue`: a certificate of the CA in `ca` for `role`/`name` in `out`.
    pub fn issue_cert(&self, ca: &Path, role: &str, name: &str, out: &Path) {
        let (ca, out) = (ca.to_str().unwrap(), out.to_str().unwrap());
        let args = [
            "certs", "issue", "--ca-dir", ca, "--role", role, "--name", name, "--out", out,
        ];
        self.manage(&args);
    }

    /// From now on, operator calls use this certificate and mode.
    pub fn set_operator_tls(&self, dir: PathBuf, mode: magnum_net::Mode) {
        *self.operator.lock().unwrap() = Some((dir, mode));
    }

    fn operator(&self) -> Option<(PathBuf, magnum_net::Mode)> {
        if let Some(o) = self.operator.lock().unwrap().clone() {
            return Some(o);
        }
        let dir = self.tls_dir("operator");
        dir.exists().then_some((dir, magnum_net::Mode::Strict))
    }

    /// Where `local-cluster.sh` keeps process NAME's certificate (`conductor-ID`, `api`,
    /// `operator`); absent in a deployment without TLS.
    pub fn tls_dir(&self, name: &str) -> PathBuf {
        self.dir.join("tls").join(name)
    }

    /// The operator's TLS (plain if the deployment has none).
    pub fn operator_tls(&self) -> magnum_net::Tls {
        match self.operator() {
            Some((dir, mode)) => {
                let tls = magnum_net::Tls::load(&dir, mode, magnum_net::Role::Operator).unwrap();
                // Like a long-running operator tool: certificate rotations are picked up.
                if tokio::runtime::Handle::try_current().is_ok() {
                    tls.spawn_reloader(self.reloaders.child_token());
                }
                tls
            }
            None => magnum_net::Tls::plain(),
        }
    }

    /// An internal-plane client with the operator's certificate.
    pub fn internal_http(&self) -> magnum_net::InternalClient {
        magnum_net::InternalClient::new(&self.operator_tls(), |b| b.timeout(Duration::from_secs(5)))
            .unwrap()
    }

    /// Runs `magnum manage ARGS` against the first three conductors; returns its stdout.
    pub fn manage(&self, args: &[&str]) -> String {
        let out = self.manage_output(args);
        assert!(
            out.status.success(),
            "magnum manage {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `magnum manage status --json`.
    pub fn status(&self) -> Value {
        serde_json::from_str(&self.manage(&["status", "--json"])).unwrap()
    }

    pub fn conductor_service(&self, id: u64) -> String {
        let host = self
            .opts
            .netns
            .as_ref()
            .map_or("127.0.0.1".into(), |n| n.conductor(id));
        format!("{host}:{}", self.port_base + 200 + id as u16)
    }

    /// A conductor's data dir (its Raft store is under `raft/`).
    pub fn conductor_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("conductor-{id}"))
    }

    /// Waits until conductor `id` answers on its service listener (its groups are open).
    pub async fn wait_conductor_up(&self, id: u64, timeout: Duration) {
        let addr = self.conductor_service(id);
        let http = self.internal_http();
        let start = Instant::now();
        loop {
            let topology = http.send(&addr, magnum_proto::wire::TOPOLOGY_PATH, |h, url| {
                h.get(url)
            });
            if let Ok(r) = topology.await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                start.elapsed() < timeout,
                "conductor {id} not up after {timeout:?}; log:\n{}",
                tail(&self.log(&format!("conductor-{id}")), 30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sum over the first three conductors of the `/metrics` samples whose line starts with
    /// `series` (a name, or a name and the start of its labels); a conductor that does not
    /// answer adds nothing.
    pub async fn metric_sum(&self, series: &str) -> f64 {
        let http = self.internal_http();
        let mut sum = 0.0;
        for id in 1..=3 {
            let addr = self.conductor_service(id);
            let Ok(r) = http.send(&addr, "/metrics", |h, url| h.get(url)).await else {
                continue;
            };
            let text = r.text().await.unwrap_or_default();
            sum += text
                .lines()
                .filter(|l| l.starts_with(series))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        sum
    }

    pub fn conductor_client(&self) -> ConductorClient {
        let seeds = (1..=3).map(|i| self.conductor_service(i)).collect();
        ConductorClient::new(seeds, Duration::from_secs(20), &self.operator_tls()).unwrap()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.sim)
    }

    /// A project-scoped token from cloud-sim's Keystone.
    pub async fn token(&self, user: &str, project: &str) -> String {
        self.login(user, project).await.0
    }

    /// A project-scoped token from cloud-sim's Keystone, and the project's id.
    pub async fn login(&self, user: &str, project: &str) -> (String, String) {
        login(&self.http, &self.auth_url(), user, project).await
    }

    /// `(status, json body)` of an API call.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rq = self.http.request(method, format!("{}{path}", self.api));
        if let Some(t) = token {
            rq = rq.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn sim_stacks(&self) -> Value {
        self.http
            .get(format!("{}/sim/heat/stacks", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// cloud-sim's `/sim/keystone/ledger`: live users and trusts, and what was ever created.
    pub async fn sim_keystone_ledger(&self) -> Value {
        self.http
            .get(format!("{}/sim/keystone/ledger", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn sim_post(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.sim))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "cloud-sim {path} answered {}",
            r.status()
        );
    }

    /// Polls a cluster until `pred` holds on its JSON, or panics after `timeout`.
    pub async fn wait_cluster(
        &self,
        token: &str,
        id: &str,
        timeout: Duration,
        pred: impl Fn(u16, &Value) -> bool,
    ) -> (u16, Value) {
        let start = Instant::now();
        loop {
            let (s, v) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/clusters/{id}"),
                    Some(token),
                    None,
                )
                .await;
            if pred(s, &v) {
                return (s, v);
            }
            assert!(
                start.elapsed() < timeout,
                "cluster {id} did not reach the expected state in {timeout:?}; last: {s} {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A project-scoped token from the Keystone v3 at `auth_url` (cloud-sim's seeded users, password
/// `secret`), and the project's id.
pub async fn login(
    http: &reqwest::Client,
    auth_url: &str,
    user: &str,
    project: &str,
) -> (String, String) {
    try_login(http, auth_url, user, project)
        .await
        .unwrap_or_else(|| panic!("login as {user} on {project} failed"))
}

/// [`login`], or `None` when Keystone refuses it (e.g. no role on that project).
pub async fn try_login(
    http: &reqwest::Client,
    auth_url: &str,
    user: &str,
    project: &str,
) -> Option<(String, String)> {
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": "secret"}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}});
    let r = http
        .post(format!("{auth_url}/auth/tokens"))
        .json(&body)
        .send()
        .await
        .ok()?;
    if r.status().as_u16() != 201 {
        return None;
    }
    let token = r
        .headers()
        .get("x-subject-token")?
        .to_str()
        .ok()?
        .to_string();
    let v: Value = r.json().await.ok()?;
    Some((token, v["token"]["project"]["id"].as_str()?.to_string()))
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.reloaders.cancel();
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("down")
            .arg(&self.dir)
            // Thrown away: a graceful stop (drain, hand-off, close) would only cost seconds.
            .env("MAGNUM_STOP_SIGNAL", "KILL")
            .env("MAGNUM_BIN", &self.bin)
            .env("MAGNUM_PORT_BASE", self.port_base.to_string())
            .output();
        // Processes the script does not list (a second API node a test started).
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "pid") {
                if let Ok(pid) = std::fs::read_to_string(e.path()) {
                    let _ = Command::new("kill").args(["-9", pid.trim()]).output();
                }
            }
        }
    }
}
