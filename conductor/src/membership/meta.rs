//! The meta group (Raft group 0): bootstrap parameters every node must agree on, the conductor
//! registry (`GET /v1/mservices`), the conductor membership (`magnum manage conductor ...`) and
//! the replica placement of every data group.
use crate::membership::placement::Placement;
use crate::propose::ActiveVersion;
use crate::shard::persist::{dec, enc};
use magnum_proto::meta::{recent_api_nodes, ApiNodeSeen, CONDUCTOR_BINARY};
pub use magnum_proto::meta::{Bootstrap, MetaCommand, MetaResponse, DEFAULT_REPLICAS};
use magnum_proto::version::BASE_VERSION;
use magnum_proto::{NodeEntry, NodeId, NodeState, PlacementView, ServiceRecord, Timestamp};
use magnum_raft::{StateMachineLogic, StoredRows, WriteSet};
use std::collections::{BTreeMap, BTreeSet};

const BOOTSTRAP_KEY: &[u8] = b"bootstrap";
/// The active cluster version (absent: `BASE_VERSION`, a deployment from before versioning).
const CLUSTER_VERSION_KEY: &[u8] = b"cluster_version";
/// Registry rows: this prefix, then the node id big-endian.
const SERVICE_PREFIX: &[u8] = b"svc/";
/// Membership rows: this prefix, then the node id big-endian.
const NODE_PREFIX: &[u8] = b"node/";
/// Placement rows: this prefix, then the group id big-endian.
const PLACE_PREFIX: &[u8] = b"place/";

#[derive(Debug, Default)]
pub struct MetaState {
    pub bootstrap: Option<Bootstrap>,
    /// The conductor registry by node id.
    pub services: BTreeMap<u64, ServiceRecord>,
    /// The conductors of the deployment.
    pub nodes: BTreeMap<NodeId, NodeEntry>,
    /// Replica sets of the data groups.
    pub placement: Placement,
    /// The committed cluster version; `None` before one was ever set.
    cluster_version: Option<u32>,
    /// This node's cached copy of the active version, shared with its propose handles.
    active: ActiveVersion,
    /// Why a row of the command being applied could not be encoded; `apply` then fails and the
    /// group stops, rather than committing a state whose rows on disk miss the change.
    encode_error: Option<String>,
}

fn key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn service_key(node: u64) -> Vec<u8> {
    key(SERVICE_PREFIX, node)
}

fn id_after(k: &[u8], prefix: &[u8]) -> Result<u64, String> {
    let b: [u8; 8] = k[prefix.len()..]
        .try_into()
        .map_err(|_| format!("bad meta key {k:?}"))?;
    Ok(u64::from_be_bytes(b))
}

impl MetaState {
    fn heartbeat(
        &mut self,
        node: u64,
        host: String,
        version: String,
        at: Timestamp,
        feature_version: u32,
        api_nodes: Vec<ApiNodeSeen>,
    ) -> ServiceRecord {
        let rec = self.services.entry(node).or_insert_with(|| ServiceRecord {
            id: node,
            host: host.clone(),
            binary: CONDUCTOR_BINARY.to_string(),
            report_count: 0,
            created_at: at,
            updated_at: at,
            version: version.clone(),
            feature_version,
            api_nodes: Vec::new(),
        });
        rec.host = host;
        rec.version = version;
        rec.feature_version = feature_version;
        rec.api_nodes = api_nodes;
        rec.report_count = rec.report_count.saturating_add(1);
        // A late beat with an older clock never moves the row back in time.
        rec.updated_at = rec.updated_at.max(at);
        rec.clone()
    }
}

impl MetaState {
    /// A state whose applies keep `active` up to date (the node's propose handles read it).
    pub fn new(active: ActiveVersion) -> Self {
        Self {
            active,
            ..Self::default()
        }
    }

    /// The active cluster version.
    pub fn cluster_version(&self) -> u32 {
        self.cluster_version.unwrap_or(BASE_VERSION)
    }

    /// The cell this node's propose handles read.
    pub fn active_version(&self) -> ActiveVersion {
        self.active.clone()
    }

    /// The feature version each registered conductor last reported (1 without a report);
    /// before membership is recorded, every conductor in the registry.
    pub fn supported_versions(&self) -> BTreeMap<u64, u32> {
        let ids: Vec<u64> = if self.nodes.is_empty() {
            self.services.keys().copied().collect()
        } else {
            self.nodes.keys().map(|n| n.0).collect()
        };
        ids.into_iter()
            .map(|id| {
                let v = self
                    .services
                    .get(&id)
                    .map_or(BASE_VERSION, |s| s.feature_version);
                (id, v)
            })
            .collect()
    }

    /// The registered conductors that do not support `version`, as the operator reads them.
    /// Checked by the proposer (`MetaLeader`), not in `apply`: the registry rows a replica
    /// holds can differ while versions are mixed (a replica that was old when it applied a
    /// heartbeat dropped its `feature_version` until the next one), and `apply` must decide the
    /// same on every replica.
    /// API nodes count while a conductor reported hearing from them lately (as of `now`).
    pub fn laggards(&self, version: u32, now: Timestamp) -> Vec<String> {
        let conductors = self
            .supported_versions()
            .into_iter()
            .filter(|(_, v)| *v < version)
            .map(|(id, v)| format!("conductor {id} supports {v}"));
        let api = recent_api_nodes(self.services.values(), now)
            .into_iter()
            .filter(|a| a.feature_version < version)
            .map(|a| format!("{} supports {}", a.name(), a.feature_version));
        conductors.chain(api).collect()
    }

    /// Never down; a repeat is a no-op. Decided from the committed version alone.
    fn set_cluster_version(&mut self, version: u32, writes: &mut WriteSet) -> MetaResponse {
        let active = self.cluster_version();
        if version < active {
            return MetaResponse::Rejected(format!(
                "the cluster version cannot go down (active {active}, asked {version})"
            ));
        }
        if version == active {
            return MetaResponse::ClusterVersion(active);
        }
        self.put_row(CLUSTER_VERSION_KEY.to_vec(), &version, writes);
        self.cluster_version = Some(version);
        MetaResponse::ClusterVersion(version)
    }

    /// Replicas per data group wanted by the deployment.
    pub fn replicas(&self) -> u32 {
        self.bootstrap
            .as_ref()
            .map_or(DEFAULT_REPLICAS, |b| b.replicas)
    }

    /// Data groups of the deployment (1..=S), empty before bootstrap.
    pub fn data_groups(&self) -> Vec<u64> {
        let s = self.bootstrap.as_ref().map_or(0, |b| b.shards);
        (1..=u64::from(s)).collect()
    }

    pub fn view(&self) -> PlacementView {
        PlacementView {
            replicas: self.replicas(),
            shards: self.bootstrap.as_ref().map_or(0, |b| b.shards),
            nodes: self.nodes.values().cloned().collect(),
            groups: self
                .placement
                .iter()
                .map(|(g, s)| (*g, s.iter().copied().collect()))
                .collect(),
        }
    }

    fn put_row<T: serde::Serialize>(&mut self, k: Vec<u8>, v: &T, writes: &mut WriteSet) {
        match enc(v) {
            Ok(v) => writes.put(k, v),
            Err(e) => self.encode_error = Some(e.to_string()),
        }
    }

    fn put_node(&mut self, n: NodeEntry, writes: &mut WriteSet) {
        self.put_row(key(NODE_PREFIX, n.id.0), &n, writes);
        self.nodes.insert(n.id, n);
    }

    fn put_placement(&mut self, group: u64, set: BTreeSet<NodeId>, writes: &mut WriteSet) {
        self.put_row(key(PLACE_PREFIX, group), &set, writes);
        self.placement.insert(group, set);
    }

    fn apply_membership(&mut self, cmd: MetaCommand, writes: &mut WriteSet) -> MetaResponse {
        match cmd {
            MetaCommand::InitPlacement { nodes, placement } => {
                if !self.nodes.is_empty() {
                    return MetaResponse::Done;
                }
                for n in nodes {
                    self.put_node(n, writes);
                }
                for (g, set) in placement {
                    self.put_placement(g, set, writes);
                }
                MetaResponse::Done
            }
            MetaCommand::AddNode { id, raft, service } => match self.nodes.get(&id) {
                Some(n) if n.raft == raft && n.service == service => MetaResponse::Node(n.clone()),
                Some(n) => MetaResponse::Rejected(format!(
                    "conductor {} is already registered with raft {} and service {}",
                    id.0, n.raft, n.service
                )),
                None if self
                    .nodes
                    .values()
                    .any(|n| n.raft == raft || n.service == service) =>
                {
                    MetaResponse::Rejected(format!(
                        "another conductor already uses raft {raft} or service {service}"
                    ))
                }
                None => {
                    let n = NodeEntry {
                        id,
                        raft,
                        service,
                        state: NodeState::Active,
                    };
                    self.put_node(n.clone(), writes);
                    MetaResponse::Node(n)
                }
            },
            MetaCommand::SetNodeState { id, state } => {
                let Some(mut n) = self.nodes.get(&id).cloned() else {
                    return MetaResponse::Rejected(format!("no conductor {}", id.0));
                };
                if n.state == NodeState::Leaving && state != NodeState::Leaving {
                    return MetaResponse::Rejected(format!(
                        "conductor {} is being removed; add it again once it is gone",
                        id.0
                    ));
                }
                if state == NodeState::Leaving
                    && self
                        .nodes
                        .values()
                        .filter(|m| m.state != NodeState::Leaving)
                        .count()
                        <= 1
                {
                    return MetaResponse::Rejected("the last conductor cannot be removed".into());
                }
                n.state = state;
                self.put_node(n.clone(), writes);
                MetaResponse::Node(n)
            }
            MetaCommand::SetPlacement {
                group,
                expected,
                replicas,
            } => {
                let cur = self.placement.get(&group).cloned().unwrap_or_default();
                if cur != expected {
                    return MetaResponse::Rejected(format!(
                        "placement of group {group} changed meanwhile"
                    ));
                }
                self.put_placement(group, replicas, writes);
                MetaResponse::Done
            }
            MetaCommand::ForgetNode { id } => {
                let hosts = self.placement.values().any(|s| s.contains(&id));
                match self.nodes.get(&id) {
                    Some(n) if n.state == NodeState::Leaving && !hosts => {
                        self.nodes.remove(&id);
                        writes.delete(key(NODE_PREFIX, id.0));
                        self.services.remove(&id.0);
                        writes.delete(service_key(id.0));
                        MetaResponse::Done
                    }
                    Some(_) => MetaResponse::Rejected(format!(
                        "conductor {} still hosts replicas or is not leaving",
                        id.0
                    )),
                    None => MetaResponse::Done,
                }
            }
            MetaCommand::Bootstrap(_)
            | MetaCommand::Heartbeat { .. }
            | MetaCommand::SetClusterVersion { .. } => {
                MetaResponse::Rejected("not a membership command".into())
            }
        }
    }
}

impl StateMachineLogic for MetaState {
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        *self = Self::new(self.active.clone());
        for (k, v) in kv {
            if k == BOOTSTRAP_KEY {
                self.bootstrap = Some(serde_json::from_slice(&v).map_err(|e| e.to_string())?);
            } else if k == CLUSTER_VERSION_KEY {
                self.cluster_version = Some(dec(&v)?);
            } else if k.starts_with(SERVICE_PREFIX) {
                let rec: ServiceRecord = dec(&v)?;
                self.services.insert(rec.id, rec);
            } else if k.starts_with(NODE_PREFIX) {
                let n: NodeEntry = dec(&v)?;
                self.nodes.insert(n.id, n);
            } else if k.starts_with(PLACE_PREFIX) {
                self.placement.insert(id_after(&k, PLACE_PREFIX)?, dec(&v)?);
            }
        }
        self.active.set(self.cluster_version());
        Ok(())
    }

    /// An entry this build cannot decode fails the apply, so the group halts here: it is a
    /// command of a newer version that newer replicas apply, and skipping it would diverge.
    fn apply(
        &mut self,
        _index: u64,
        payload: &[u8],
        writes: &mut WriteSet,
        _stored: &dyn StoredRows,
    ) -> Result<Vec<u8>, String> {
        let cmd = serde_json::from_slice::<MetaCommand>(payload).map_err(|e| {
            format!("meta: undecodable command (written by a newer conductor?): {e}")
        })?;
        let resp = match cmd {
            MetaCommand::Bootstrap(mut b) => match &self.bootstrap {
                Some(cur) if !cur.same_layout(&b) => MetaResponse::Conflict(cur.clone()),
                Some(cur) => MetaResponse::Ok(cur.clone()),
                None => {
                    // A fresh deployment starts at the version its bootstrapper brought; the
                    // bootstrap row keeps its old format.
                    if let Some(v) = b.cluster_version.take() {
                        self.put_row(CLUSTER_VERSION_KEY.to_vec(), &v, writes);
                        self.cluster_version = Some(v);
                    }
                    match serde_json::to_vec(&b) {
                        Ok(v) => writes.put(BOOTSTRAP_KEY, v),
                        Err(e) => self.encode_error = Some(e.to_string()),
                    }
                    self.bootstrap = Some(b.clone());
                    MetaResponse::Ok(b)
                }
            },
            MetaCommand::Heartbeat {
                node,
                host,
                version,
                at,
                ..
            } if !self.nodes.is_empty() && !self.nodes.contains_key(&NodeId(node)) => {
                // A removed conductor (or one not added yet) is not a service of this deployment.
                MetaResponse::Rejected(format!(
                    "conductor {node} ({host}, {version}, {at:?}) is not a member"
                ))
            }
            MetaCommand::Heartbeat {
                node,
                host,
                version,
                at,
                feature_version,
                api_nodes,
            } => {
                let rec = self.heartbeat(node, host, version, at, feature_version, api_nodes);
                self.put_row(service_key(node), &rec, writes);
                MetaResponse::Service(rec)
            }
            MetaCommand::SetClusterVersion { version } => self.set_cluster_version(version, writes),
            other => self.apply_membership(other, writes),
        };
        self.active.set(self.cluster_version());
        if let Some(e) = self.encode_error.take() {
            return Err(format!("meta row cannot be encoded: {e}"));
        }
        serde_json::to_vec(&resp).map_err(|e| format!("meta response cannot be encoded: {e}"))
    }
}

#[cfg(test)]
#[path = "meta_tests.rs"]
mod tests;
