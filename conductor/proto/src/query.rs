//! Reads served by a shard leader after a linearizability check.
use crate::federation::Federation;
use crate::ids::*;
use crate::model::*;
use crate::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ShardQuery {
    /// Templates owned by `project` (all projects when `None`), plus public ones when
    /// `include_public`.
    Templates {
        project: Option<ProjectId>,
        include_public: bool,
    },
    /// Clusters of `project` (all projects when `None`).
    Clusters {
        project: Option<ProjectId>,
    },
    /// One page of [`ShardQuery::Clusters`] in list order (`created_at`, then uuid; reversed
    /// when `desc`): the first `limit` strictly after `after`. A list then ships one page per
    /// shard instead of every cluster. Conductors from before it answer 400 (they cannot decode
    /// it); the API then asks `Clusters` and pages itself, so no version gate is needed.
    ClustersPage {
        project: Option<ProjectId>,
        after: Option<(Timestamp, ClusterId)>,
        desc: bool,
        limit: u32,
    },
    /// The keys (`created_at`, uuid) of [`ShardQuery::ClustersPage`]'s page, without views. A
    /// list over every shard merges their keys first and then asks [`ShardQuery::ClustersById`]
    /// for its page only, so one page of views is built and shipped instead of one per shard.
    /// Conductors from before it answer 400; the API then asks `ClustersPage`.
    ClusterKeysPage {
        project: Option<ProjectId>,
        after: Option<(Timestamp, ClusterId)>,
        desc: bool,
        limit: u32,
        /// Also the views of the first `views` keys ([`QueryResult::ClusterKeysAndViews`]):
        /// a shard's share of a merged page is usually among them, so the page needs no
        /// second round. Conductors from before it ignore the field and answer keys only.
        #[serde(default)]
        views: u32,
    },
    /// The views of those of `ids` this shard holds, in `ids`' order.
    ClustersById {
        ids: Vec<ClusterId>,
    },
    Cluster {
        id: ClusterId,
    },
    /// Clusters referencing a template (template-in-use checks and tests).
    ClustersUsingTemplate {
        id: TemplateId,
    },
    /// The CA certificate (PEM) of a cluster; private keys never leave the shard.
    CaCert {
        id: ClusterId,
        #[serde(default)]
        kind: CaKind,
    },
    /// Active operations (operators and tests).
    Operations,
    /// The shard's current ownership epoch and owner.
    Ownership,
    /// Quota rows of `project` (all projects when `None`).
    Quotas {
        project: Option<ProjectId>,
    },
    /// Cluster count and node count (masters and workers of every nodegroup) of `project`
    /// (all projects when `None`).
    Stats {
        project: Option<ProjectId>,
    },
    /// Canary rows whose key starts with `prefix`.
    Canaries {
        prefix: String,
    },
    /// Federations of `project` (all projects when `None`).
    Federations {
        project: Option<ProjectId>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QueryResult {
    Templates(Vec<ClusterTemplate>),
    Clusters(Vec<ClusterView>),
    /// List keys (`created_at`, uuid) in list order ([`ShardQuery::ClusterKeysPage`]).
    ClusterKeys(Vec<(Timestamp, ClusterId)>),
    /// [`QueryResult::ClusterKeys`] and the views of the first of them, in the same order.
    ClusterKeysAndViews {
        keys: Vec<(Timestamp, ClusterId)>,
        views: Vec<ClusterView>,
    },
    Cluster(Option<Box<ClusterView>>),
    CaCert(Option<String>),
    Operations(Vec<Operation>),
    Ownership {
        epoch: u64,
        owner: Option<NodeId>,
    },
    Canaries(std::collections::BTreeMap<String, String>),
    Quotas(Vec<Quota>),
    Stats {
        clusters: u64,
        nodes: u64,
    },
    Federations(Vec<Federation>),
}
