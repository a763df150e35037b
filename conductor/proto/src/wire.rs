//! The conductor service listener's internal HTTP contract (JSON bodies in a versioned envelope).
use crate::ids::*;
use crate::model::CaKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of every internal message; a node accepts `MIN_PROTO_VERSION..=PROTO_VERSION`.
pub const PROTO_VERSION: u16 = 1;
pub const MIN_PROTO_VERSION: u16 = 1;

pub const TOPOLOGY_PATH: &str = "/internal/v1/topology";

/// Meta-group mutation ([`crate::meta::MetaRequest`]) on the meta leader; answers the
/// [`crate::meta::ServiceRecord`] written.
pub const META_COMMAND_PATH: &str = "/internal/v1/meta/command";
/// Linearizable meta-group read ([`crate::meta::MetaQuery`] → [`crate::meta::MetaQueryResult`]).
pub const META_QUERY_PATH: &str = "/internal/v1/meta/query";

/// Raft group id of the meta group.
pub const META_GROUP: u64 = 0;

/// Leader-only reconfiguration of one Raft group ([`SetMembers`]); the meta leader's placement
/// controller sends it.
pub fn members_path(group: u64) -> String {
    format!("/internal/v1/groups/{group}/members")
}

/// Leader-only leadership transfer of one Raft group ([`TransferLeader`]).
pub fn transfer_path(group: u64) -> String {
    format!("/internal/v1/groups/{group}/transfer")
}

/// Leader-only: sign a client CSR with a cluster's CA ([`SignCsr`] → [`SignResult`]).
pub fn sign_path(shard: ShardId) -> String {
    format!("/internal/v1/shards/{}/sign", shard.0)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignCsr {
    pub cluster: ClusterId,
    /// PEM-encoded PKCS#10 request.
    pub csr: String,
    /// Which CA signs (`ca_cert_type`).
    #[serde(default)]
    pub ca: CaKind,
}

/// A user's Keystone token in transit; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserToken(pub String);

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserToken(<redacted>)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignResult {
    /// The signed certificate, PEM.
    Signed(String),
    /// The cluster has no CA (yet, or any more).
    NoCertificates,
    /// The CSR could not be parsed or used; the reason is for the user.
    BadCsr(String),
    /// The forwarded user token does not let its user sign for this cluster (invalid, or
    /// scoped to another project without the admin role). Sent only to API nodes that forward
    /// a token, so only to those that decode it.
    Forbidden(String),
}

pub fn command_path(shard: ShardId) -> String {
    format!("/internal/v1/shards/{}/command", shard.0)
}

pub fn query_path(shard: ShardId) -> String {
    format!("/internal/v1/shards/{}/query", shard.0)
}

/// One query on several shards at once ([`MultiQuery`] → [`MultiQueryResult`]): the fan-out of
/// cross-shard reads costs one request per conductor instead of one per shard. Added after
/// protocol 1 went out; a node that does not know the path answers 404 and the client falls
/// back to [`query_path`].
pub const MULTI_QUERY_PATH: &str = "/internal/v1/shards/query";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiQuery {
    pub shards: Vec<ShardId>,
    pub query: crate::query::ShardQuery,
}

/// One answer per asked shard, in the asked order; `None` where this node could not serve a
/// linearizable read of the shard (not its leader, no lease), which the client then asks alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiQueryResult {
    pub answers: Vec<Option<crate::query::QueryResult>>,
}

/// Header every internal call of this release carries: `<role> <feature version> <crate
/// version> [<url>]`, role `api` (an API node, with its public URL) or `tool` (anything else).
/// A call without it comes from a release before cluster versions.
pub const CALLER_HEADER: &str = "x-magnum-caller";

/// Who makes internal calls, as [`CALLER_HEADER`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// An API node, by its public URL.
    Api { url: String },
    /// `magnum manage`, a conductor's own client, tests and benches.
    Tool,
}

impl Caller {
    /// The header value for this binary.
    pub fn header(&self) -> String {
        let (fv, cv) = (
            crate::version::FEATURE_VERSION,
            crate::version::CRATE_VERSION,
        );
        match self {
            Caller::Api { url } => format!("api {fv} {cv} {url}"),
            Caller::Tool => format!("tool {fv} {cv}"),
        }
    }

    /// An API node's `(url, feature version, crate version)` from a header value.
    pub fn parse_api(value: &str) -> Option<(String, u32, String)> {
        let mut it = value.split_whitespace();
        if it.next()? != "api" {
            return None;
        }
        let fv = it.next()?.parse().ok()?;
        let cv = it.next()?.to_string();
        Some((it.next()?.to_string(), fv, cv))
    }
}

/// The largest request body an API node takes from a client (upstream's 2 MiB default too).
pub const MAX_REQUEST_BODY: usize = 2 << 20;

/// The largest body the conductor's service listener takes: a forwarded command is one user
/// request (at most [`MAX_REQUEST_BODY`]) plus a template snapshot and the envelope, each of
/// them bounded by the same limit, so no request the API accepted is refused on the second hop.
pub const MAX_INTERNAL_BODY: usize = 4 * MAX_REQUEST_BODY;

/// Status a non-leader answers with; the body is [`NotLeader`].
pub const NOT_LEADER_STATUS: u16 = 421;

/// Status of a command whose kind the active cluster version does not allow yet; the body is
/// [`InternalError`] with the message for the user. Retrying cannot help.
pub const NOT_YET_ACTIVE_STATUS: u16 = 409;

/// Header of a 403 that refuses the user an API node forwards for ([`Envelope::user`]), not
/// the node: the body is [`InternalError`] with the reason, for the user. A 403 without it
/// refuses the node's certificate role, a deployment error.
pub const USER_REFUSED_HEADER: &str = "x-magnum-user-refused";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub proto: u16,
    pub body: T,
    /// The Keystone token of the user an API node forwards a request for. The conductor
    /// validates it with Keystone itself and serves that user only: their project's rows (and
    /// public templates), or everything for an admin. So an API node cannot act for a project
    /// none of whose users it has seen. Absent from conductors' and operators' own calls, and
    /// from API nodes before cluster version 2 (conductors before it ignore the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserToken>,
}

impl<T> Envelope<T> {
    pub fn new(body: T) -> Self {
        Self {
            proto: PROTO_VERSION,
            body,
            user: None,
        }
    }

    /// `body` sent for `user` (see [`Envelope::user`]).
    pub fn for_user(body: T, user: Option<UserToken>) -> Self {
        Self {
            user,
            ..Self::new(body)
        }
    }

    pub fn version_ok(&self) -> bool {
        (MIN_PROTO_VERSION..=PROTO_VERSION).contains(&self.proto)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// host:port of the node's service listener.
    pub service: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotLeader {
    pub leader: Option<NodeInfo>,
}

/// Error body of non-2xx internal answers other than 421.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalError {
    pub error: String,
}

/// Where a replica's peers reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddr {
    pub raft: String,
    pub service: String,
}

/// Make exactly `voters` the voter set of a group: add the missing ones as learners, wait
/// until they caught up, then change the membership (removed voters leave the group).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMembers {
    pub voters: BTreeMap<NodeId, MemberAddr>,
    /// Learners to keep or add besides the voters (the meta group: every other conductor).
    #[serde(default)]
    pub learners: BTreeMap<NodeId, MemberAddr>,
}

/// Body of a 2xx answer that carries no data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLeader {
    pub to: NodeId,
}

/// `GET` on a conductor: its replica's digest of one group's persisted state.
pub fn group_digest_path(group: u64) -> String {
    format!("/internal/v1/groups/{group}/digest")
}

/// `GET` on a group's leader: its state machine pairs at one applied index, in the backup file
/// format (`magnum_raft::backup`), for `magnum manage backup`. Operators and conductors only.
pub fn group_export_path(group: u64) -> String {
    format!("/internal/v1/groups/{group}/export")
}

/// Headers of an export: the applied index the pairs reflect, and how many there are.
pub const EXPORT_APPLIED_HEADER: &str = "x-magnum-applied-index";
pub const EXPORT_PAIRS_HEADER: &str = "x-magnum-pairs";

/// Probes served to callers without a certificate, on conductors and API nodes alike:
/// `HEALTHCHECK_PATH` answers 200 `OK` while the process serves requests (upstream Magnum's
/// oslo.middleware healthcheck), `READY_PATH` 200 only while the node can do its work.
pub const HEALTHCHECK_PATH: &str = "/healthcheck";
pub const READY_PATH: &str = "/readyz";

/// SHA-256 (hex) over a replica's state machine pairs in key order, at `applied_index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDigest {
    pub group: u64,
    pub node: NodeId,
    pub applied_index: Option<u64>,
    pub digest: String,
    /// Set when the replica halted; its digest is of the state it stopped at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
    /// With `?keys=true`: every key (escaped) → the first 16 hex digits of its value's SHA-256,
    /// so that `verify` can name the keys that differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<std::collections::BTreeMap<String, String>>,
}

/// One replica's view of a group it hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group: u64,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_applied: Option<u64>,
    #[serde(default)]
    pub committed: Option<u64>,
    /// Voters of the replica's effective membership.
    #[serde(default)]
    pub voters: Vec<NodeId>,
    #[serde(default)]
    pub learners: Vec<NodeId>,
    /// Why this replica stopped applying the group (fail-stop), e.g. "at index 812: shard 3:
    /// undecodable command …"; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
}

/// What one conductor knows of the deployment; API nodes cache it. `groups` lists only the
/// groups this node hosts; `placement` says where the others are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub shards: u32,
    pub hash: String,
    pub node: NodeId,
    pub nodes: Vec<NodeInfo>,
    pub groups: Vec<GroupInfo>,
    /// Raft group id → nodes hosting a replica (from the meta group; empty before bootstrap).
    #[serde(default)]
    pub placement: BTreeMap<u64, Vec<NodeId>>,
}

impl Topology {
    /// Raft group id of a data shard (group 0 is the meta group).
    pub fn group_of(shard: ShardId) -> u64 {
        u64::from(shard.0) + 1
    }

    pub fn leader_of(&self, shard: ShardId) -> Option<&NodeInfo> {
        self.leader_of_group(Self::group_of(shard))
    }

    /// Leader of any Raft group (0 = meta).
    pub fn leader_of_group(&self, gid: u64) -> Option<&NodeInfo> {
        let leader = self.groups.iter().find(|g| g.group == gid)?.leader?;
        self.nodes.iter().find(|n| n.id == leader)
    }
}

#[cfg(test)]
mod caller_tests {
    use super::*;

    #[test]
    fn api_caller_header_round_trips() {
        let h = Caller::Api {
            url: "http://127.0.0.1:9511".into(),
        }
        .header();
        let (url, fv, cv) = Caller::parse_api(&h).unwrap();
        assert_eq!(url, "http://127.0.0.1:9511");
        assert_eq!(fv, crate::version::FEATURE_VERSION);
        assert_eq!(cv, crate::version::CRATE_VERSION);
        assert_eq!(Caller::parse_api(&Caller::Tool.header()), None);
        assert_eq!(Caller::parse_api("api x 1 u"), None);
    }
}
