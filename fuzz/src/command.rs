//! `forwarded_command`: the conductor service listener's JSON bodies (`conductor/src/service`),
//! each `wire::Envelope<T>` decoded and version-checked as its `decode` does, then what the
//! handler does with the body before it needs a live Raft group:
//!
//! * `command`: the trustor token sealed, the `ShardCommand::origin` allow-list, the cluster
//!   version gate (`ActiveVersion::check`), then the request as the shard's log entry through
//!   `ShardLogic::apply` (decode, `apply_request`, rows persisted) on a shard that holds a
//!   template and a cluster. The apply must not fail (that halts the shard on every replica),
//!   a repeat of the request id must change nothing, and the rows written must load back
//!   (`persist::load`) to the same state.
//! * `meta-command`: the `MetaRequest` → `MetaCommand` mapping (addresses checked) applied by
//!   `MetaState` on a bootstrapped meta group; its rows must load back to the same state.
//! * the other bodies: decode only.
//!
//! Every decoded envelope must survive a JSON round trip unchanged.
//!
//! Input: one selector byte (`PATHS[sel % len]`), then the HTTP body.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::OnceLock;

use magnum_conductor::membership::meta::MetaState;
use magnum_conductor::pki::sealing::CertKey;
use magnum_conductor::propose::ActiveVersion;
use magnum_conductor::shard::{persist, ShardLogic};
use magnum_proto::version::{min_version, Kind, FEATURE_VERSION};
use magnum_proto::wire::{Envelope, MultiQuery, SetMembers, SignCsr, TransferLeader};
use magnum_proto::*;
use magnum_raft::{NoStoredRows, StateMachineLogic, WriteSet};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::Seed;

/// The service listener's POST routes, by what their body is.
pub const PATHS: [&str; 8] = [
    "command",
    "query",
    "multi-query",
    "sign",
    "meta-command",
    "meta-query",
    "members",
    "transfer",
];

/// Ids of the rows the shard starts with (seeds use them, so commands reach the deep checks).
pub const PROJECT: &str = "project-a";
pub const TEMPLATE: &str = "6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a001";
pub const CLUSTER: &str = "6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a002";
pub const OP: &str = "6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a003";
pub const MASTERS: &str = "6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a004";
pub const WORKERS: &str = "6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a005";

fn uuid(s: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn run(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    match PATHS[usize::from(sel) % PATHS.len()] {
        "command" => {
            if let Some(req) = envelope::<ShardRequest>(body) {
                command(req);
            }
        }
        "query" => {
            envelope::<ShardQuery>(body);
        }
        "multi-query" => {
            envelope::<MultiQuery>(body);
        }
        "sign" => {
            envelope::<SignCsr>(body);
        }
        "meta-command" => {
            if let Some(req) = envelope::<MetaRequest>(body) {
                meta_command(req);
            }
        }
        "meta-query" => {
            envelope::<MetaQuery>(body);
        }
        "members" => {
            envelope::<SetMembers>(body);
        }
        _ => {
            envelope::<TransferLeader>(body);
        }
    }
}

/// `service::decode`, plus the round trip.
fn envelope<T>(body: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let env: Envelope<T> = serde_json::from_slice(body).ok()?;
    let text = serde_json::to_vec(&env).unwrap_or_else(|e| panic!("re-encode {env:?}: {e}"));
    let again: Envelope<T> = serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "{} does not decode after re-encoding: {e}",
            String::from_utf8_lossy(&text)
        )
    });
    assert_eq!(env, again, "JSON round trip changed the envelope");
    env.version_ok().then_some(env.body)
}

/// A shard with a template and a cluster being created, and the rows it persisted.
struct Shard {
    logic: ShardLogic,
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    next_index: u64,
}

/// Applies one log entry and keeps what it wrote. `Err` stops the group on every replica
/// (fail-stop, meant for entries of a newer version): an entry made from a request that this
/// build decoded must never do that.
fn apply_to(logic: &mut ShardLogic, kv: &mut BTreeMap<Vec<u8>, Vec<u8>>, index: u64, p: &[u8]) {
    let mut ws = WriteSet::new();
    if let Err(e) = logic.apply(index, p, &mut ws, &*kv) {
        panic!(
            "the entry halts the shard: {e}\nentry: {}",
            String::from_utf8_lossy(p)
        );
    }
    for (k, v) in magnum_raft::fuzzing::write_set_ops(&ws) {
        match v {
            Some(v) => kv.insert(k.clone(), v.clone()),
            None => kv.remove(k),
        };
    }
}

fn base_shard() -> &'static Shard {
    static BASE: OnceLock<Shard> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut logic = ShardLogic::new(ShardId(0), 1);
        let mut kv = BTreeMap::new();
        let project = ProjectId::from(PROJECT);
        let mut t = fixtures::template(&project);
        t.uuid = Some(TemplateId(uuid(TEMPLATE)));
        t.name = Some("k8s-tmpl".into());
        let (mut c, mut ngs, mut op) = fixtures::cluster_rows(&t, "k8s", 1, 2);
        c.uuid = ClusterId(uuid(CLUSTER));
        c.created_at = Timestamp(1_700_000_000_000_000);
        for (ng, id) in ngs.iter_mut().zip([MASTERS, WORKERS]) {
            ng.uuid = NodeGroupId(uuid(id));
            ng.cluster_id = c.uuid;
            ng.created_at = c.created_at;
        }
        op.id = OpId(uuid(OP));
        op.started_at = c.created_at;
        op.deadline = c.created_at.plus_secs(3600);
        let setup = [
            ShardCommand::TakeOwnership {
                node: NodeId(1),
                epoch: 1,
            },
            ShardCommand::CreateTemplate {
                template: t,
                max_per_project: None,
            },
            ShardCommand::CreateCluster {
                cluster: c,
                nodegroups: ngs,
                operation: op,
            },
        ];
        for (i, cmd) in setup.into_iter().enumerate() {
            let p = serde_json::to_vec(&ShardRequest::from(cmd)).unwrap_or_else(|e| panic!("{e}"));
            apply_to(&mut logic, &mut kv, i as u64 + 1, &p);
        }
        assert_eq!(logic.state.rows().clusters().len(), 1, "base shard setup");
        Shard {
            logic,
            kv,
            next_index: 4,
        }
    })
}

fn cert_key() -> &'static CertKey {
    static KEY: OnceLock<CertKey> = OnceLock::new();
    KEY.get_or_init(|| CertKey::from_bytes(&[7; 32]))
}

/// `service::command` up to the proposal, then what every replica does with the entry.
fn command(mut req: ShardRequest) {
    if let ShardCommand::CreateCluster { operation, .. } = &mut req.command {
        if let Some(t) = operation.trustor.as_mut() {
            t.token = cert_key().seal(&t.token);
        }
    }
    let _ = min_version(Kind::Shard(&req.command));
    if req.command.origin() != Origin::Client {
        let _ = Kind::Shard(&req.command).name();
        return;
    }
    if ActiveVersion::new(FEATURE_VERSION)
        .check(Kind::Shard(&req.command))
        .is_err()
    {
        return;
    }
    // `ShardLeader::propose`: the log entry.
    let payload = serde_json::to_vec(&req).unwrap_or_else(|e| panic!("encode {req:?}: {e}"));

    let base = base_shard();
    let mut logic = ShardLogic {
        state: base.logic.state.clone(),
    };
    let mut kv = base.kv.clone();
    apply_to(&mut logic, &mut kv, base.next_index, &payload);
    // A repeat (a retry after an unknown outcome) must answer the same and change nothing.
    if req.request_id.is_some() {
        let before = logic.state.clone();
        let mut ws = WriteSet::new();
        let _ = logic.apply(base.next_index + 1, &payload, &mut ws, &kv);
        assert_eq!(
            format!("{:?}", before.rows()),
            format!("{:?}", logic.state.rows()),
            "a repeated request changed the shard"
        );
    }

    // What a restarted replica loads must be what this one holds.
    let mut loaded = ShardLogic::new(ShardId(0), 1);
    let mut it = kv.into_iter();
    persist::load(&mut loaded.state, &mut it)
        .unwrap_or_else(|e| panic!("persisted rows do not load: {e}"));
    let (a, b) = (logic.state.rows(), loaded.state.rows());
    assert_eq!(a.epoch(), b.epoch());
    assert_eq!(a.owner(), b.owner());
    assert_eq!(
        a.templates(),
        b.templates(),
        "templates differ after reload"
    );
    assert_eq!(a.clusters(), b.clusters(), "clusters differ after reload");
    assert_eq!(a.all_nodegroups(), b.all_nodegroups(), "nodegroups differ");
    assert_eq!(a.trustees(), b.trustees(), "trustees differ after reload");
    assert_eq!(
        a.operations(),
        b.operations(),
        "operations differ after reload"
    );
    assert_eq!(a.quotas(), b.quotas(), "quotas differ after reload");
    assert_eq!(
        a.requests(),
        b.requests(),
        "dedup table differs after reload"
    );
    assert_eq!(a.canaries(), b.canaries(), "canaries differ after reload");
    assert_eq!(a.federations(), b.federations(), "federations differ");
    assert_eq!(a.outbox(), b.outbox(), "outbox differs after reload");
}

/// `service::meta_command` up to the proposal, then the meta group's apply.
fn meta_command(req: MetaRequest) {
    let Ok(cmd) = MetaCommand::try_from(req) else {
        return;
    };
    if ActiveVersion::new(FEATURE_VERSION)
        .check(Kind::Meta(&cmd))
        .is_err()
    {
        return;
    }
    let payload = serde_json::to_vec(&cmd).unwrap_or_else(|e| panic!("encode {cmd:?}: {e}"));

    let (mut meta, mut kv) = base_meta();
    let mut ws = WriteSet::new();
    if let Err(e) = meta.apply(10, &payload, &mut ws, &NoStoredRows) {
        panic!("the entry halts the meta group: {e}\nentry: {cmd:?}");
    }
    for (k, v) in magnum_raft::fuzzing::write_set_ops(&ws) {
        match v {
            Some(v) => kv.insert(k.clone(), v.clone()),
            None => kv.remove(k),
        };
    }
    let mut loaded = MetaState::new(ActiveVersion::new(FEATURE_VERSION));
    loaded
        .load(&mut kv.into_iter())
        .unwrap_or_else(|e| panic!("persisted meta rows do not load: {e}"));
    assert_eq!(meta.bootstrap, loaded.bootstrap);
    assert_eq!(
        meta.services, loaded.services,
        "services differ after reload"
    );
    assert_eq!(meta.nodes, loaded.nodes, "nodes differ after reload");
    assert_eq!(meta.placement, loaded.placement, "placement differs");
    assert_eq!(meta.cluster_version(), loaded.cluster_version());
}

/// A bootstrapped meta group of three conductors and two shards (rebuilt per input: the state
/// is not `Clone`, and the setup is three small applies).
fn base_meta() -> (MetaState, BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut meta = MetaState::new(ActiveVersion::new(FEATURE_VERSION));
    let mut kv = BTreeMap::new();
    let nodes: Vec<NodeEntry> = (1..=3)
        .map(|n| NodeEntry {
            id: NodeId(n),
            raft: format!("10.0.0.{n}:9512"),
            service: format!("10.0.0.{n}:9513"),
            state: NodeState::Active,
        })
        .collect();
    let all: BTreeSet<NodeId> = nodes.iter().map(|n| n.id).collect();
    let setup = [
        MetaCommand::Bootstrap(Bootstrap {
            shards: 2,
            hash: "jump-v1".into(),
            replicas: 3,
            cluster_version: Some(FEATURE_VERSION),
        }),
        MetaCommand::InitPlacement {
            nodes,
            placement: (0..=2).map(|g| (g, all.clone())).collect(),
        },
    ];
    for (i, cmd) in setup.iter().enumerate() {
        let p = serde_json::to_vec(cmd).unwrap_or_else(|e| panic!("{e}"));
        let mut ws = WriteSet::new();
        let r = meta.apply(i as u64 + 1, &p, &mut ws, &NoStoredRows);
        assert!(r.is_ok(), "meta setup: {r:?}");
        for (k, v) in magnum_raft::fuzzing::write_set_ops(&ws) {
            match v {
                Some(v) => kv.insert(k.clone(), v.clone()),
                None => kv.remove(k),
            };
        }
    }
    (meta, kv)
}

fn framed(path: &str, body: &serde_json::Value) -> Vec<u8> {
    let sel = PATHS
        .iter()
        .position(|p| *p == path)
        .unwrap_or_else(|| panic!("no selector for {path}"));
    let mut v = vec![u8::try_from(sel).unwrap_or(0)];
    v.extend(serde_json::to_vec(body).unwrap_or_else(|e| panic!("{e}")));
    v
}

fn env<T: Serialize>(body: T) -> serde_json::Value {
    serde_json::to_value(Envelope::new(body)).unwrap_or_else(|e| panic!("{e}"))
}

/// Real bodies as API nodes and `magnum manage` send them, built from the protocol's types.
pub fn seeds() -> Vec<Seed> {
    let project = ProjectId::from(PROJECT);
    let cluster = ClusterId(uuid(CLUSTER));
    let at = Timestamp(1_700_000_100_000_000);
    let req = |command: ShardCommand| ShardRequest {
        request_id: Some(RequestId(uuid("6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a0ff"))),
        command,
    };
    let mut t = fixtures::template(&project);
    t.uuid = Some(TemplateId(uuid(TEMPLATE)));
    let (mut c2, ngs2, mut op2) = fixtures::cluster_rows(&t, "second", 3, 4);
    c2.uuid = ClusterId(uuid("6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a010"));
    op2.trustor = Some(Trustor {
        user_id: "alice-id".into(),
        roles: vec!["member".into()],
        token: "gAAAAA-token".into(),
    });
    let op_req = OperationRequest {
        id: OpId(uuid("6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a020")),
        started_at: at,
        deadline: at.plus_secs(3600),
        template: t.clone(),
        trustor: None,
        legacy: None,
    };
    let commands: Vec<(&str, ShardRequest)> = vec![
        (
            "canary",
            req(ShardCommand::Canary {
                key: "probe/1".into(),
                value: "ok".into(),
            }),
        ),
        (
            "create-template",
            req(ShardCommand::CreateTemplate {
                template: ClusterTemplate {
                    uuid: Some(TemplateId(uuid("6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a030"))),
                    labels: [("kube_tag".to_string(), "v1.27.3".to_string())].into(),
                    public: true,
                    ..t.clone()
                },
                max_per_project: Some(50),
            }),
        ),
        (
            "update-template",
            req(ShardCommand::UpdateTemplate {
                template: ClusterTemplate {
                    tags: Some("t1".into()),
                    ..t.clone()
                },
                at,
            }),
        ),
        (
            "delete-template",
            req(ShardCommand::DeleteTemplate {
                id: TemplateId(uuid(TEMPLATE)),
            }),
        ),
        (
            "create-cluster",
            req(ShardCommand::CreateCluster {
                cluster: c2,
                nodegroups: ngs2,
                operation: op2,
            }),
        ),
        (
            "delete-cluster",
            req(ShardCommand::DeleteCluster {
                id: cluster,
                op: OpId(uuid("6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a021")),
                at,
                deadline: at.plus_secs(4200),
            }),
        ),
        (
            "update-cluster",
            req(ShardCommand::UpdateCluster {
                id: cluster,
                node_count: 5,
                rollback: false,
                operation: op_req.clone(),
                at,
            }),
        ),
        (
            "set-health",
            req(ShardCommand::SetHealth {
                id: cluster,
                health_status: Some("HEALTHY".into()),
                health_status_reason: Some([("api".to_string(), "ok".to_string())].into()),
                at,
            }),
        ),
        (
            "create-quota",
            req(ShardCommand::CreateQuota {
                quota: serde_json::from_value(json!({
                    "id": 1, "project_id": PROJECT, "resource": "Cluster", "hard_limit": 10,
                    "created_at": at.0, "updated_at": null
                }))
                .unwrap_or_else(|e| panic!("quota: {e}")),
            }),
        ),
        (
            "create-nodegroup",
            req(ShardCommand::CreateNodeGroup {
                nodegroup: NodeGroup {
                    uuid: NodeGroupId(uuid("6b1e7b2e-59b3-4b4a-9b43-0d5c0cd3a040")),
                    name: "extra".into(),
                    is_default: false,
                    role: "worker".into(),
                    node_count: 2,
                    ..fixtures::cluster_rows(&t, "x", 1, 1).1[1].clone()
                },
                operation: op_req.clone(),
                at,
            }),
        ),
        (
            "resize",
            req(ShardCommand::ResizeCluster {
                id: cluster,
                nodegroup: NodeGroupId(uuid(WORKERS)),
                node_count: 1,
                nodes_to_remove: vec!["node-1".into()],
                operation: op_req.clone(),
                at,
            }),
        ),
        (
            "rotate-ca",
            req(ShardCommand::RotateCa {
                id: cluster,
                operation: op_req,
                at,
            }),
        ),
        (
            "leader-only-advance",
            req(ShardCommand::Advance {
                epoch: 1,
                cluster,
                op: OpId(uuid(OP)),
                event: OpEvent::StackCreateIntent,
                at,
            }),
        ),
    ];
    let mut out: Vec<Seed> = commands
        .into_iter()
        .map(|(name, r)| (format!("command-{name}"), framed("command", &env(r))))
        .collect();
    let more: Vec<(&str, &str, serde_json::Value)> =
        vec![
        (
            "query-clusters",
            "query",
            env(ShardQuery::Clusters {
                project: Some(project.clone()),
            }),
        ),
        (
            "query-ca",
            "query",
            env(ShardQuery::CaCert {
                id: cluster,
                kind: CaKind::Etcd,
            }),
        ),
        (
            "multi-query",
            "multi-query",
            env(MultiQuery {
                shards: vec![ShardId(0), ShardId(1)],
                query: ShardQuery::Templates {
                    project: Some(project),
                    include_public: true,
                },
            }),
        ),
        (
            "sign",
            "sign",
            serde_json::to_value(Envelope::for_user(
                SignCsr {
                    cluster,
                    csr: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----"
                        .into(),
                    ca: CaKind::FrontProxy,
                },
                Some(wire::UserToken("gAAAAA-token".into())),
            ))
            .unwrap_or_else(|e| panic!("{e}")),
        ),
        (
            "meta-heartbeat",
            "meta-command",
            env(MetaRequest::Heartbeat {
                node: NodeId(2),
                host: "10.0.0.2:9513".into(),
                version: "0.1.0".into(),
                at,
                feature_version: 2,
                api_nodes: vec![meta::ApiNodeSeen {
                    url: "http://10.0.0.9:9511".into(),
                    feature_version: 2,
                    version: "0.1.0".into(),
                    last_seen: at,
                }],
            }),
        ),
        (
            "meta-add-node",
            "meta-command",
            env(MetaRequest::AddNode {
                id: NodeId(4),
                raft: "10.0.0.4:9512".into(),
                service: "10.0.0.4:9513".into(),
            }),
        ),
        (
            "meta-drain",
            "meta-command",
            env(MetaRequest::SetNodeState {
                id: NodeId(3),
                state: NodeState::Leaving,
            }),
        ),
        (
            "meta-version",
            "meta-command",
            env(MetaRequest::SetClusterVersion { version: 2 }),
        ),
        ("meta-query", "meta-query", env(MetaQuery::Placement)),
        (
            "members",
            "members",
            env(SetMembers {
                voters: (1..=3)
                    .map(|n| {
                        (
                            NodeId(n),
                            wire::MemberAddr {
                                raft: format!("10.0.0.{n}:9512"),
                                service: format!("10.0.0.{n}:9513"),
                            },
                        )
                    })
                    .collect(),
                learners: BTreeMap::new(),
            }),
        ),
        ("transfer", "transfer", env(TransferLeader { to: NodeId(2) })),
    ];
    out.extend(
        more.into_iter()
            .map(|(name, path, body)| (name.to_string(), framed(path, &body))),
    );
    out
}
