//! Test seams: an in-memory `Backend` over the conductor's real `ShardState` (one per shard),
//! a fake Keystone and fake Glance/Nova/Neutron look-ups, and request helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use magnum_api::*;
use magnum_conductor::shard::persist;
use magnum_conductor::ShardState;
use magnum_proto::*;
use magnum_raft::NoStoredRows;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

pub const PROJECT_A: &str = "project-a"; // shard 0 of 4
pub const PROJECT_B: &str = "project-b"; // shard 1 of 4
pub const SHARDS: u32 = 4;

/// Shards in memory, applying commands with the conductor's own state machine.
pub struct MemBackend {
    shards: Vec<Mutex<ShardState>>,
    index: AtomicU64,
    pub down: AtomicBool,
    /// Makes queries panic (to check that a panicking handler still answers in the envelope).
    pub panic: AtomicBool,
    /// When set, the next `UpdateTemplate` loses a race: another update (setting `tags` to this
    /// value) is applied to the same template just before it.
    pub race_tags: Mutex<Option<String>>,
    /// Every command received (to assert that rejected input persisted nothing).
    pub commands: Mutex<Vec<(ShardId, ShardRequest)>>,
    /// The conductor registry `services()` answers.
    pub services: Mutex<Vec<ServiceRecord>>,
    /// How old the conductors act: 1 ignores `ClusterKeysPage`'s `views` (keys only), 2
    /// answers the keys-first list queries (`ClusterKeysPage`, `ClustersById`) as a release
    /// from before them does (400: undecodable), 3 `ClustersPage` too; 0 is this release.
    pub old_conductors: AtomicU8,
    /// When set, `ClustersById` leaves out one cluster it holds, as if it was deleted between
    /// the rounds of a keys-first list, and `ClusterKeysPage` one view (so that its cluster is
    /// asked by id).
    pub lose_between_rounds: AtomicBool,
    /// The shard of every `ShardQuery::Cluster` asked (a look-up by uuid).
    pub cluster_lookups: Mutex<Vec<ShardId>>,
}

impl MemBackend {
    pub fn new(n: u32) -> Self {
        Self {
            shards: (0..n)
                .map(|s| Mutex::new(ShardState::new(ShardId(s), n)))
                .collect(),
            index: AtomicU64::new(1),
            down: AtomicBool::new(false),
            panic: AtomicBool::new(false),
            race_tags: Mutex::new(None),
            commands: Mutex::new(Vec::new()),
            services: Mutex::new(Vec::new()),
            old_conductors: AtomicU8::new(0),
            lose_between_rounds: AtomicBool::new(false),
            cluster_lookups: Mutex::new(Vec::new()),
        }
    }

    pub fn command_count(&self) -> usize {
        self.commands.lock().unwrap().len()
    }

    pub fn all_templates(&self) -> Vec<ClusterTemplate> {
        self.shards
            .iter()
            .flat_map(|s| {
                match s.lock().unwrap().ask(&ShardQuery::Templates {
                    project: None,
                    include_public: true,
                }) {
                    QueryResult::Templates(t) => t,
                    _ => vec![],
                }
            })
            .collect()
    }

    pub fn all_clusters(&self) -> Vec<ClusterView> {
        self.shards
            .iter()
            .flat_map(|s| {
                match s
                    .lock()
                    .unwrap()
                    .ask(&ShardQuery::Clusters { project: None })
                {
                    QueryResult::Clusters(c) => c,
                    _ => vec![],
                }
            })
            .collect()
    }

    pub fn operations(&self, shard: u32) -> Vec<Operation> {
        match self.shards[shard as usize]
            .lock()
            .unwrap()
            .ask(&ShardQuery::Operations)
        {
            QueryResult::Operations(o) => o,
            _ => vec![],
        }
    }

    fn check(&self) -> Result<(), BackendError> {
        if self.down.load(Ordering::SeqCst) {
            Err(BackendError::Unavailable("test: conductors down".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Backend for MemBackend {
    async fn shards(&self) -> Result<u32, BackendError> {
        self.check()?;
        Ok(self.shards.len() as u32)
    }

    async fn command(
        &self,
        user: &wire::UserToken,
        shard: ShardId,
        req: &ShardRequest,
    ) -> Result<ShardResponse, BackendError> {
        self.check()?;
        assert!(
            !user.0.is_empty(),
            "every forwarded command carries the user's token"
        );
        assert!(
            req.request_id.is_some(),
            "every forwarded command carries a request id"
        );
        self.commands.lock().unwrap().push((shard, req.clone()));
        let mut state = self.shards[shard.0 as usize].lock().unwrap();
        if let ShardCommand::UpdateTemplate { template, at } = &req.command {
            if let Some(tags) = self.race_tags.lock().unwrap().take() {
                let QueryResult::Templates(all) = state.ask(&ShardQuery::Templates {
                    project: None,
                    include_public: true,
                }) else {
                    unreachable!()
                };
                let mut other = all.into_iter().find(|t| t.uuid == template.uuid).unwrap();
                other.tags = Some(tags);
                let racer = ShardRequest {
                    request_id: Some(RequestId::new_v4()),
                    command: ShardCommand::UpdateTemplate {
                        template: other,
                        at: *at,
                    },
                };
                let idx = self.index.fetch_add(1, Ordering::SeqCst);
                assert!(state.run(idx, &racer).is_ok());
            }
        }
        let idx = self.index.fetch_add(1, Ordering::SeqCst);
        Ok(state.run(idx, req))
    }

    async fn query(
        &self,
        user: &wire::UserToken,
        shard: ShardId,
        q: &ShardQuery,
    ) -> Result<QueryResult, BackendError> {
        self.check()?;
        assert!(
            !user.0.is_empty(),
            "every forwarded read carries the user's token"
        );
        assert!(!self.panic.load(Ordering::SeqCst), "test: query panics");
        let newer_than = match q {
            ShardQuery::ClusterKeysPage { .. } | ShardQuery::ClustersById { .. } => 2,
            ShardQuery::ClustersPage { .. } => 3,
            _ => u8::MAX,
        };
        let release = self.old_conductors.load(Ordering::SeqCst);
        if release >= newer_than {
            return Err(BackendError::Rejected(
                "malformed envelope: unknown variant".into(),
            ));
        }
        let mut q = q.clone();
        if let ShardQuery::ClusterKeysPage { views, .. } = &mut q {
            if release == 1 {
                *views = 0;
            }
        }
        let q = &q;
        if let ShardQuery::Cluster { .. } = q {
            self.cluster_lookups.lock().unwrap().push(shard);
        }
        let mut r = self.shards[shard.0 as usize].lock().unwrap().ask(q);
        if let QueryResult::Clusters(views) | QueryResult::ClusterKeysAndViews { views, .. } =
            &mut r
        {
            let keys_first = matches!(
                q,
                ShardQuery::ClustersById { .. } | ShardQuery::ClusterKeysPage { .. }
            );
            if keys_first && !views.is_empty() && self.lose_between_rounds.load(Ordering::SeqCst) {
                views.remove(0);
            }
        }
        Ok(r)
    }

    async fn services(&self) -> Result<Vec<ServiceRecord>, BackendError> {
        self.check()?;
        Ok(self.services.lock().unwrap().clone())
    }

    async fn sign(
        &self,
        _user: &wire::UserToken,
        shard: ShardId,
        req: &wire::SignCsr,
    ) -> Result<wire::SignResult, BackendError> {
        self.check()?;
        let state = self.shards[shard.0 as usize].lock().unwrap();
        let certs = persist::certs(state.rows(), &NoStoredRows, req.cluster)
            .expect("no stored rows are read");
        drop(state);
        Ok(match certs {
            None => wire::SignResult::NoCertificates,
            Some(c) => match magnum_conductor::pki::csr::sign_csr(
                &c,
                &magnum_conductor::pki::sealing::CertKey::process_ephemeral(),
                req.ca,
                &req.csr,
            ) {
                Ok(pem) => wire::SignResult::Signed(pem),
                Err(e) => wire::SignResult::BadCsr(e.to_string()),
            },
        })
    }
}

impl MemBackend {
    /// What the reconciler's first step does: take ownership and commit a fresh CA and client
    /// certificate for the cluster.
    /// Drives a create operation to CREATE_COMPLETE as the reconciler would.
    pub fn complete_create(&self, shard: u32, cluster: ClusterId) {
        self.generate_certs(shard, cluster);
        let mut s = self.shards[shard as usize].lock().unwrap();
        let epoch = s.epoch();
        let op = s.operation(cluster).unwrap().id;
        // A deployment without a trustee domain: the create gets no trustee.
        let events = [
            OpEvent::TrusteeCreated { trustee: None },
            OpEvent::StackCreateIntent,
            OpEvent::StackCreated {
                stack_id: "stack-1".into(),
            },
            OpEvent::CreateFinished {
                status: ClusterStatus::CREATE_COMPLETE,
                reason: None,
                outputs: StackOutputs {
                    api_address: Some("https://10.0.0.2:6443".into()),
                    ..StackOutputs::default()
                },
            },
        ];
        for event in events {
            let i = self.index.fetch_add(1, Ordering::SeqCst);
            let adv = ShardRequest {
                request_id: None,
                command: ShardCommand::Advance {
                    epoch,
                    cluster,
                    op,
                    event,
                    at: Timestamp(2),
                },
            };
            s.run(i, &adv).unwrap();
        }
    }

    /// Commits reconciler events for the cluster's active operation at the current epoch.
    #[allow(dead_code)]
    pub fn advance(&self, shard: u32, cluster: ClusterId, events: Vec<OpEvent>) {
        let mut s = self.shards[shard as usize].lock().unwrap();
        let epoch = s.epoch();
        let op = s.operation(cluster).unwrap().id;
        for event in events {
            let i = self.index.fetch_add(1, Ordering::SeqCst);
            let adv = ShardRequest {
                request_id: None,
                command: ShardCommand::Advance {
                    epoch,
                    cluster,
                    op,
                    event,
                    at: Timestamp(3),
                },
            };
            s.run(i, &adv).unwrap();
        }
    }

    pub fn generate_certs(&self, shard: u32, cluster: ClusterId) -> ClusterCerts {
        // Four RSA-2048 keys take seconds in a debug build: one set per test process.
        static CERTS: std::sync::OnceLock<ClusterCerts> = std::sync::OnceLock::new();
        let certs = CERTS
            .get_or_init(|| {
                magnum_conductor::pki::certs::generate(
                    "test",
                    &magnum_conductor::pki::sealing::CertKey::process_ephemeral(),
                )
                .unwrap()
            })
            .clone();
        let mut s = self.shards[shard as usize].lock().unwrap();
        let i = self.index.fetch_add(2, Ordering::SeqCst);
        let epoch = s.epoch() + 1;
        let own = ShardRequest {
            request_id: None,
            command: ShardCommand::TakeOwnership {
                node: NodeId(1),
                epoch,
            },
        };
        s.run(i, &own).unwrap();
        let op = s.operation(cluster).unwrap().id;
        let adv = ShardRequest {
            request_id: None,
            command: ShardCommand::Advance {
                epoch,
                cluster,
                op,
                event: OpEvent::CertsGenerated {
                    certs: certs.clone(),
                },
                at: Timestamp(1),
            },
        };
        s.run(i + 1, &adv).unwrap();
        certs
    }
}

/// Tokens: `admin-token` (admin, project A), `member-a`, `reader-a`, `norole-a`, `member-b`,
/// `reader-b`; `keystone-down` makes Keystone unreachable; anything else is invalid.
pub struct FakeAuth;

#[async_trait]
impl Authenticator for FakeAuth {
    async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let (user, project, roles): (&str, &str, &[&str]) = match token {
            "admin-token" => ("admin", PROJECT_A, &["admin", "member", "reader"]),
            "member-a" => ("alice", PROJECT_A, &["member", "reader"]),
            "reader-a" => ("rita", PROJECT_A, &["reader"]),
            "norole-a" => ("nora", PROJECT_A, &[]),
            "member-b" => ("bob", PROJECT_B, &["member", "reader"]),
            "reader-b" => ("rob", PROJECT_B, &["reader"]),
            "keystone-down" => return Err(AuthError::Unavailable("test: keystone down".into())),
            _ => return Err(AuthError::InvalidToken),
        };
        Ok(Identity {
            user_id: format!("{user}-id"),
            user_name: user.into(),
            project_id: project.into(),
            project_name: project.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            token: token.into(),
            catalog: Default::default(),
        })
    }
}

pub const IMAGE_ID: &str = "6f1f7e0a-3c1e-4a45-9d8e-1a2b3c4d5e6f";

/// Glance/Nova/Neutron: image `fedora-coreos-40` (fedora-coreos), `ubuntu-22` (ubuntu),
/// `fedora-atomic-29`, `no-distro` (no os_distro), `dup-image` (two matches), `secret-image`
/// (403), `down-image` (service down); flavors m1.small/m1.medium, `m1.nodisk` (disk 0);
/// keypair `default`; networks `public` (external), `private`, `dup-net` (two matches);
/// subnet `private-subnet`.
pub struct FakeLookups;

#[async_trait]
impl Lookups for FakeLookups {
    async fn find_image(&self, _: &Identity, id: &str) -> Result<Lookup<Image>, LookupError> {
        let img = |name: &str, distro: Option<&str>| {
            Lookup::Found(Image {
                id: IMAGE_ID.into(),
                name: name.into(),
                os_distro: distro.map(str::to_string),
                magnum_driver: None,
            })
        };
        Ok(match id {
            "fedora-coreos-40" | IMAGE_ID => img("fedora-coreos-40", Some("fedora-coreos")),
            "ubuntu-22" => img("ubuntu-22", Some("ubuntu")),
            "fedora-atomic-29" => img("fedora-atomic-29", Some("fedora-atomic")),
            "no-distro" => img("no-distro", None),
            "dup-image" => Lookup::Ambiguous,
            "secret-image" => return Err(LookupError::Forbidden),
            "down-image" => return Err(LookupError::Unavailable("test: glance down".into())),
            _ => Lookup::NotFound,
        })
    }

    async fn find_flavor(&self, _: &Identity, id: &str) -> Result<Lookup<Flavor>, LookupError> {
        let disk = match id {
            "m1.small" => 20,
            "m1.medium" => 40,
            "m1.nodisk" => 0,
            _ => return Ok(Lookup::NotFound),
        };
        Ok(Lookup::Found(Flavor {
            id: id.into(),
            name: id.into(),
            disk,
        }))
    }

    async fn get_keypair(&self, _: &Identity, name: &str) -> Result<Lookup<Keypair>, LookupError> {
        Ok(if name == "default" {
            Lookup::Found(Keypair { name: name.into() })
        } else {
            Lookup::NotFound
        })
    }

    async fn find_network(
        &self,
        _: &Identity,
        id: &str,
        external: bool,
    ) -> Result<Lookup<Network>, LookupError> {
        Ok(match (id, external) {
            ("public", _) => Lookup::Found(Network {
                id: "net-public".into(),
                name: "public".into(),
                external: true,
            }),
            ("private", false) => Lookup::Found(Network {
                id: "net-private".into(),
                name: "private".into(),
                external: false,
            }),
            ("dup-net", _) => Lookup::Ambiguous,
            _ => Lookup::NotFound,
        })
    }

    async fn find_subnet(&self, _: &Identity, id: &str) -> Result<Lookup<Subnet>, LookupError> {
        Ok(if id == "private-subnet" {
            Lookup::Found(Subnet {
                id: "subnet-1".into(),
                name: id.into(),
            })
        } else {
            Lookup::NotFound
        })
    }

    async fn get_project(&self, _: &Identity, id: &str) -> Result<Lookup<()>, LookupError> {
        Ok(if [PROJECT_A, PROJECT_B, "admin-project"].contains(&id) {
            Lookup::Found(())
        } else {
            Lookup::NotFound
        })
    }
}

pub struct Harness {
    pub app: Router,
    pub backend: Arc<MemBackend>,
}

pub fn harness() -> Harness {
    harness_with(Settings::new("http://keystone.test:5000/v3"))
}

pub fn harness_with(settings: Settings) -> Harness {
    let backend = Arc::new(MemBackend::new(SHARDS));
    let state = AppState::new(
        backend.clone(),
        Arc::new(FakeAuth),
        Arc::new(FakeLookups),
        settings,
    );
    Harness {
        app: router(state),
        backend,
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request builder: `h.req("GET", "/v1/clusters").token("member-a").send().await`.
pub struct Req<'a> {
    h: &'a Harness,
    builder: axum::http::request::Builder,
    body: Body,
    has_version: bool,
}

impl Harness {
    pub fn req(&self, method: &str, path: &str) -> Req<'_> {
        Req {
            h: self,
            builder: Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(path)
                .header("host", "magnum.test:9511")
                .header("accept", "application/json"),
            body: Body::empty(),
            has_version: false,
        }
    }

    /// GET with a member of project A at the latest version.
    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.req("GET", path).token(token).send().await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.req("POST", path).token(token).json(body).send().await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.req("PATCH", path).token(token).json(body).send().await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.req("DELETE", path).token(token).send().await
    }

    /// Creates a template (as `token`) and returns its JSON.
    pub async fn template(&self, token: &str, extra: Value) -> Value {
        let mut body = json!({
            "name": "k8s-tmpl", "coe": "kubernetes", "image_id": "fedora-coreos-40",
            "external_network_id": "public", "flavor_id": "m1.small",
            "master_flavor_id": "m1.small", "keypair_id": "default",
            "labels": {"kube_tag": "v1.27.0", "foo": "bar"},
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.post("/v1/clustertemplates", token, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
        r.body
    }

    /// Creates a cluster (as `token`) and returns its uuid.
    pub async fn cluster(&self, token: &str, body: Value) -> String {
        let r = self.post("/v1/clusters", token, body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
        r.body["uuid"].as_str().unwrap().to_string()
    }
}

impl Req<'_> {
    pub fn token(mut self, t: &str) -> Self {
        self.builder = self.builder.header("x-auth-token", t);
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        if k.eq_ignore_ascii_case("openstack-api-version") {
            self.has_version = true;
        }
        self.builder = self.builder.header(k, v);
        self
    }

    /// No microversion header at all (defaults to 1.1).
    pub fn no_version(mut self) -> Self {
        self.has_version = true;
        self
    }

    pub fn json(mut self, v: Value) -> Self {
        self.builder = self.builder.header("content-type", "application/json");
        self.body = Body::from(v.to_string());
        self
    }

    pub fn raw(mut self, content_type: &str, body: &str) -> Self {
        self.builder = self.builder.header("content-type", content_type);
        self.body = Body::from(body.to_string());
        self
    }

    pub async fn send(self) -> Resp {
        let mut b = self.builder;
        if !self.has_version {
            b = b.header("OpenStack-API-Version", "container-infra latest");
        }
        let resp = self
            .h
            .app
            .clone()
            .oneshot(b.body(self.body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 10 << 20)
            .await
            .unwrap();
        let raw = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }
}

/// Asserts Magnum's error envelope with `status` and a detail containing `detail`.
pub fn assert_error(r: &Resp, status: u16, detail: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.raw);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let errors = r.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no envelope: {}", r.raw));
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e["request_id"], "");
    assert_eq!(e["status"], status);
    assert_eq!(e["links"], json!([]));
    let d = e["detail"].as_str().unwrap();
    assert!(
        d.contains(detail),
        "detail {d:?} does not contain {detail:?}"
    );
    let title = e["title"].as_str().unwrap();
    assert_eq!(title, d.split('.').next().unwrap());
    let code = e["code"].as_str().unwrap();
    if status >= 500 {
        assert_eq!(code, "server");
    } else {
        assert!(code == "client" || code.is_empty(), "code {code}");
    }
}

/// Asserts that a rejected request changed nothing.
pub fn assert_nothing_persisted(h: &Harness, commands_before: usize) {
    assert_eq!(
        h.backend.command_count(),
        commands_before,
        "a rejected request forwarded a command"
    );
}

/// The conductor's state kept in memory only: with no disk, the rows it would store stay in it
/// as not yet written (nothing calls `take_dirty`), and its reads find them there.
trait InMemory {
    fn run(&mut self, index: u64, req: &ShardRequest) -> ShardResponse;
    fn ask(&self, q: &ShardQuery) -> QueryResult;
}

impl InMemory for ShardState {
    fn run(&mut self, index: u64, req: &ShardRequest) -> ShardResponse {
        self.apply_request(index, req, &NoStoredRows)
            .expect("no stored rows are read")
    }

    fn ask(&self, q: &ShardQuery) -> QueryResult {
        self.query(q, &NoStoredRows)
            .expect("no stored rows are read")
    }
}
