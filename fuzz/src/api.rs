//! The API node's input handling: `json_validators` (create bodies), `json_patch` (PATCH bodies)
//! and `labels_pylit` (Python literals in label PATCHes).
//!
//! The validators are the real `validate_create` functions of `magnum_api::validate`, run on an
//! `AppState` whose seams answer at once from memory: one shard holding one public template
//! (`k8s-tmpl`), and Glance/Nova/Neutron that know `fedora-coreos-40`, `m1.small`, `m1.nodisk`,
//! `public`, `private`, `private-subnet` and keypair `default` (as the API's tests do).

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use magnum_api::auth::{AuthError, Authenticator, Identity};
use magnum_api::backend::{Backend, BackendError};
use magnum_api::lookups::{Flavor, Image, Keypair, Lookup, LookupError, Lookups, Network, Subnet};
use magnum_api::patch;
use magnum_api::pylit;
use magnum_api::routes::{cluster_update, cluster_upgrade, nodegroup_ops};
use magnum_api::validate::{cluster, fields, template};
use magnum_api::version::ApiVersion;
use magnum_api::{AppState, Settings};
use magnum_proto::wire::{SignCsr, SignResult, UserToken};
use magnum_proto::*;
use serde_json::{json, Value};

use crate::command::{CLUSTER, PROJECT, TEMPLATE};
use crate::Seed;

/// One shard with the template `k8s-tmpl`; commands are refused (validation never sends one).
struct Shard;

fn the_template() -> ClusterTemplate {
    ClusterTemplate {
        uuid: Some(TemplateId(
            uuid::Uuid::parse_str(TEMPLATE).unwrap_or_else(|e| panic!("{e}")),
        )),
        name: Some("k8s-tmpl".into()),
        project_id: Some(ProjectId::from(PROJECT)),
        user_id: Some(UserId::from("alice-id")),
        coe: Some("kubernetes".into()),
        image_id: Some("fedora-coreos-40".into()),
        flavor_id: Some("m1.small".into()),
        master_flavor_id: Some("m1.small".into()),
        external_network_id: Some("public".into()),
        keypair_id: Some("default".into()),
        network_driver: Some("flannel".into()),
        server_type: Some("vm".into()),
        cluster_distro: Some("fedora-coreos".into()),
        docker_storage_driver: Some("overlay2".into()),
        labels: [
            ("kube_tag".to_string(), "v1.27.0".to_string()),
            ("foo".to_string(), "bar".to_string()),
        ]
        .into(),
        floating_ip_enabled: true,
        public: true,
        ..Default::default()
    }
}

#[async_trait]
impl Backend for Shard {
    async fn shards(&self) -> Result<u32, BackendError> {
        Ok(1)
    }

    async fn command(
        &self,
        _: &UserToken,
        _: ShardId,
        _: &ShardRequest,
    ) -> Result<ShardResponse, BackendError> {
        Err(BackendError::Unavailable("fuzz: no commands".into()))
    }

    async fn query(
        &self,
        _: &UserToken,
        _: ShardId,
        q: &ShardQuery,
    ) -> Result<QueryResult, BackendError> {
        Ok(match q {
            ShardQuery::Templates { .. } => QueryResult::Templates(vec![the_template()]),
            ShardQuery::Clusters { .. } => QueryResult::Clusters(vec![]),
            ShardQuery::Cluster { .. } => QueryResult::Cluster(None),
            ShardQuery::ClustersUsingTemplate { .. } => QueryResult::Clusters(vec![]),
            ShardQuery::Quotas { .. } => QueryResult::Quotas(vec![]),
            ShardQuery::Stats { .. } => QueryResult::Stats {
                clusters: 0,
                nodes: 0,
            },
            _ => return Err(BackendError::Unavailable("fuzz: not served".into())),
        })
    }

    async fn sign(
        &self,
        _: &UserToken,
        _: ShardId,
        _: &SignCsr,
    ) -> Result<SignResult, BackendError> {
        Ok(SignResult::NoCertificates)
    }
}

struct NoAuth;

#[async_trait]
impl Authenticator for NoAuth {
    async fn authenticate(&self, _: &str) -> Result<Identity, AuthError> {
        Err(AuthError::InvalidToken)
    }
}

struct Cloud;

#[async_trait]
impl Lookups for Cloud {
    async fn find_image(&self, _: &Identity, id: &str) -> Result<Lookup<Image>, LookupError> {
        let img = |distro: Option<&str>| {
            Lookup::Found(Image {
                id: "6f1f7e0a-3c1e-4a45-9d8e-1a2b3c4d5e6f".into(),
                name: id.into(),
                os_distro: distro.map(str::to_string),
                magnum_driver: None,
            })
        };
        Ok(match id {
            "fedora-coreos-40" => img(Some("fedora-coreos")),
            "ubuntu-22" => img(Some("ubuntu")),
            "no-distro" => img(None),
            "dup-image" => Lookup::Ambiguous,
            "secret-image" => return Err(LookupError::Forbidden),
            _ => Lookup::NotFound,
        })
    }

    async fn find_flavor(&self, _: &Identity, id: &str) -> Result<Lookup<Flavor>, LookupError> {
        let disk = match id {
            "m1.small" => 20,
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
        Ok(match name {
            "default" => Lookup::Found(Keypair { name: name.into() }),
            _ => Lookup::NotFound,
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
            _ => Lookup::NotFound,
        })
    }

    async fn find_subnet(&self, _: &Identity, id: &str) -> Result<Lookup<Subnet>, LookupError> {
        Ok(match id {
            "private-subnet" => Lookup::Found(Subnet {
                id: "subnet-1".into(),
                name: id.into(),
            }),
            _ => Lookup::NotFound,
        })
    }

    async fn get_project(&self, _: &Identity, _: &str) -> Result<Lookup<()>, LookupError> {
        Ok(Lookup::Found(()))
    }
}

fn state() -> &'static AppState {
    static STATE: OnceLock<AppState> = OnceLock::new();
    STATE.get_or_init(|| {
        AppState::new(
            Arc::new(Shard),
            Arc::new(NoAuth),
            Arc::new(Cloud),
            Settings::new("http://keystone.invalid:5000/v3"),
        )
    })
}

/// A member of the template's project (admin: publishing allowed too).
fn who() -> &'static Identity {
    static WHO: OnceLock<Identity> = OnceLock::new();
    WHO.get_or_init(|| Identity {
        user_id: "alice-id".into(),
        user_name: "alice".into(),
        project_id: PROJECT.into(),
        project_name: PROJECT.into(),
        roles: vec!["admin".into(), "member".into(), "reader".into()],
        token: "fuzz-token".into(),
        catalog: Default::default(),
    })
}

/// Every validator that takes a create body, on the input parsed as JSON.
pub fn run_validators(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (state, who) = (state(), who());
    futures::executor::block_on(async {
        let _ = template::validate_create(state, who, &body).await;
        for version in [ApiVersion::new(1, 9), ApiVersion::new(1, 10)] {
            let _ = cluster::validate_create(state, who, version, &body).await;
        }
    });
    // `POST /clusters/{id}/nodegroups` after the 1.14 fields are taken out.
    if let Ok(f) = fields::parse_object("nodegroup", &body, nodegroup_ops::SPECS) {
        if let Some(n) = f.int("node_count") {
            let _ = fields::check_count("node_count", n, 5000);
        }
    }
    let _ = fields::parse_object("cluster_upgrade_req", &body, cluster_upgrade::SPECS);
    // The patched document of a template PATCH, re-validated attribute by attribute.
    let _ = template::from_doc(&body, &the_template());
}

/// `(the document a PATCH applies to, rules of its route)`.
fn documents() -> &'static [(Value, &'static patch::PatchRules); 2] {
    static DOCS: OnceLock<[(Value, &'static patch::PatchRules); 2]> = OnceLock::new();
    DOCS.get_or_init(|| {
        let t = the_template();
        let (mut c, ngs, _) = fixtures::cluster_rows(&t, "k8s", 1, 2);
        c.uuid = ClusterId(uuid::Uuid::parse_str(CLUSTER).unwrap_or_else(|e| panic!("{e}")));
        c.labels = t.labels.clone();
        c.health_status_reason = Some([("api".to_string(), "ok".to_string())].into());
        let view = ClusterView {
            cluster: c,
            nodegroups: ngs,
            trustee: None,
            template_labels: None,
        };
        let cluster_doc = serde_json::to_value(magnum_api::render::cluster_full(
            &view, &t.labels, "", false,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        [
            (template::to_doc(&t), &template::PATCH_RULES),
            (cluster_doc, &cluster_update::PATCH_RULES),
        ]
    })
}

/// A PATCH body as the template and cluster routes take it: parse, apply, re-validate.
pub fn run_patch(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let old = the_template();
    for (i, (doc, rules)) in documents().iter().enumerate() {
        let Ok(ops) = patch::parse(&body, rules) else {
            continue;
        };
        let Ok(new) = patch::apply(doc, &ops) else {
            continue;
        };
        if i == 0 {
            let _ = template::validate_patched_drivers(state(), &new);
            let _ = template::from_doc(&new, &old);
        }
    }
}

/// `ast.literal_eval` of a label string, then the way back: the repr of what it parsed must
/// parse to the same value.
pub fn run_pylit(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(v) = pylit::literal_eval(src) else {
        return;
    };
    let shown = pylit::repr(&v);
    let _ = (pylit::str_of(&v), pylit::type_name(&v));
    match pylit::literal_eval(&shown) {
        Ok(back) => assert_eq!(
            back, v,
            "repr {shown:?} of {src:?} parses to something else"
        ),
        Err(e) => panic!("repr {shown:?} of {src:?} does not parse: {e}"),
    }
    // What a label PATCH does with a dict.
    if v.is_object() {
        let _ = fields::labels("labels", &v);
    }
}

fn seed(name: &str, v: &Value) -> Seed {
    (
        name.to_string(),
        serde_json::to_vec(v).unwrap_or_else(|e| panic!("{e}")),
    )
}

/// Bodies from the API's tests (what the CLI sends).
pub fn validator_seeds() -> Vec<Seed> {
    vec![
        seed(
            "template-cli",
            &json!({"name": "k8s-tmpl", "image_id": "fedora-coreos-40", "keypair_id": null,
            "external_network_id": "public", "coe": "kubernetes", "fixed_network": null,
            "fixed_subnet": null, "network_driver": null, "volume_driver": null, "driver": null,
            "dns_nameserver": "8.8.8.8", "flavor_id": "m1.small", "master_flavor_id": "m1.small",
            "docker_volume_size": null, "docker_storage_driver": "overlay2", "http_proxy": null,
            "https_proxy": null, "no_proxy": null, "labels": {"kube_tag": "v1.27.0", "foo": "bar"},
            "tls_disabled": false, "public": false, "registry_enabled": false,
            "insecure_registry": null, "server_type": "vm", "master_lb_enabled": false,
            "tags": "t1"}),
        ),
        seed(
            "template-min",
            &json!({"coe": "kubernetes", "image_id": "fedora-coreos-40",
            "external_network_id": "public", "docker_volume_size": "10",
            "labels": {"boot_volume_size": 10, "x": true, "f": 1.5}, "public": "yes"}),
        ),
        seed(
            "cluster-cli",
            &json!({"cluster_template_id": "k8s-tmpl", "create_timeout": 30,
            "discovery_url": null, "keypair": "default", "master_count": 1, "name": "k8s",
            "node_count": 2, "labels": {"x": "y"}, "flavor_id": "m1.small",
            "merge_labels": true, "master_lb_enabled": true}),
        ),
        seed(
            "cluster-uuid",
            &json!({"cluster_template_id": TEMPLATE, "master_count": 3, "node_count": 0,
            "master_lb_enabled": "true", "fixed_network": "private",
            "fixed_subnet": "private-subnet", "labels": {"min_node_count": "1"},
            "health_status": "HEALTHY", "health_status_reason": {"api": "ok"}}),
        ),
        seed(
            "nodegroup",
            &json!({"name": "extra", "node_count": 2, "min_node_count": 1, "max_node_count": 5,
            "flavor_id": "m1.small", "role": "worker", "labels": {"a": "b"},
            "merge_labels": false}),
        ),
        seed(
            "upgrade",
            &json!({"cluster_template": TEMPLATE, "max_batch_size": 1, "nodegroup": "default-worker"}),
        ),
    ]
}

/// PATCH bodies as python-magnumclient sends them.
pub fn patch_seeds() -> Vec<Seed> {
    vec![
        seed(
            "template-replace",
            &json!([{"op": "replace", "path": "/name", "value": "renamed"},
            {"op": "replace", "path": "/labels", "value": "{'kube_tag': 'v1.28.1', 'x': 1}"},
            {"op": "remove", "path": "/http_proxy"}]),
        ),
        seed(
            "template-add",
            &json!([{"op": "add", "path": "/tags", "value": "t2"},
            {"op": "add", "path": "/labels/new", "value": "v"},
            {"op": "replace", "path": "/docker_volume_size", "value": 20}]),
        ),
        seed(
            "cluster-node-count",
            &json!([{"op": "replace", "path": "/node_count", "value": 3}]),
        ),
        seed(
            "cluster-health",
            &json!([{"op": "replace", "path": "/health_status", "value": "UNHEALTHY"},
            {"op": "replace", "path": "/health_status_reason", "value": {"api": "down"}}]),
        ),
    ]
}

/// Label strings as python-magnumclient sends them, and Python literal corner cases.
pub fn pylit_seeds() -> Vec<Seed> {
    [
        "{'kube_tag': 'v1.27.3', 'availability_zone': 'nova'}",
        "{\"a\": 1, 'b': -2.5e-3, 'c': True, 'd': None, 'e': [1, (2, 3), {4}]}",
        "'it''s' \"concat\\n\\t\\x41\\u00e9\\\\\"",
        "[0x1f, 1_000, -+-3, .5, 1e+16, 0.0]",
        "{'nested': {'k': ['v', {'x': ('y',)}]}}",
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| (format!("literal-{i}"), s.as_bytes().to_vec()))
    .collect()
}
