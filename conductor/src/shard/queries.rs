//! Reads of a shard's state: the queries API nodes forward, and the views the leader's loops use.
use crate::shard::{persist, ShardState};
use magnum_proto::*;
use magnum_raft::StoredRows;
use std::collections::BTreeMap;

impl ShardState {
    /// The answer to `q`; `stored` holds the rows kept on disk only (certificates), and `Err`
    /// says they could not be read.
    pub fn query(&self, q: &ShardQuery, stored: &dyn StoredRows) -> Result<QueryResult, String> {
        Ok(match q {
            ShardQuery::Templates {
                project,
                include_public,
            } => QueryResult::Templates(
                self.rows
                    .templates()
                    .values()
                    .filter(|t| {
                        project
                            .as_ref()
                            .is_none_or(|p| t.project_id.as_ref() == Some(p))
                            || (*include_public && t.public)
                    })
                    .cloned()
                    .collect(),
            ),
            ShardQuery::Clusters { project } => QueryResult::Clusters(
                self.rows
                    .clusters()
                    .values()
                    .filter(|c| project.as_ref().is_none_or(|p| &c.project_id == p))
                    .filter_map(|c| self.view(c.uuid))
                    .collect(),
            ),
            ShardQuery::ClustersPage {
                project,
                after,
                desc,
                limit,
            } => QueryResult::Clusters(
                self.clusters_page(project.as_ref(), *after, *desc, *limit)
                    .into_iter()
                    .filter_map(|(_, id)| self.view(id))
                    .collect(),
            ),
            ShardQuery::ClusterKeysPage {
                project,
                after,
                desc,
                limit,
                views,
            } => {
                let keys = self.clusters_page(project.as_ref(), *after, *desc, *limit);
                match usize::try_from(*views).unwrap_or(usize::MAX) {
                    0 => QueryResult::ClusterKeys(keys),
                    n => QueryResult::ClusterKeysAndViews {
                        views: keys.iter().take(n).filter_map(|k| self.view(k.1)).collect(),
                        keys,
                    },
                }
            }
            ShardQuery::ClustersById { ids } => {
                QueryResult::Clusters(ids.iter().filter_map(|id| self.view(*id)).collect())
            }
            ShardQuery::Cluster { id } => QueryResult::Cluster(self.view(*id).map(|mut v| {
                v.template_labels = self
                    .rows
                    .templates()
                    .get(&v.cluster.cluster_template_id)
                    .map(|t| t.labels.clone());
                Box::new(v)
            })),
            ShardQuery::ClustersUsingTemplate { id } => QueryResult::Clusters(
                self.rows
                    .clusters()
                    .values()
                    .filter(|c| c.cluster_template_id == *id)
                    .filter_map(|c| self.view(c.uuid))
                    .collect(),
            ),
            ShardQuery::CaCert { id, kind } => QueryResult::CaCert(
                persist::certs(&self.rows, stored, *id)?.map(|c| c.ca(*kind).0.to_string()),
            ),
            ShardQuery::Operations => QueryResult::Operations(self.operations().cloned().collect()),
            ShardQuery::Quotas { project } => QueryResult::Quotas(
                self.rows
                    .quotas()
                    .values()
                    .filter(|q| project.as_ref().is_none_or(|p| *p == q.project_id))
                    .cloned()
                    .collect(),
            ),
            ShardQuery::Stats { project } => {
                let (mut clusters, mut nodes) = (0u64, 0u64);
                for c in self.rows.clusters().values() {
                    if project.as_ref().is_some_and(|p| *p != c.project_id) {
                        continue;
                    }
                    clusters += 1;
                    nodes += self
                        .rows
                        .nodegroups(c.uuid)
                        .iter()
                        .map(|n| u64::from(n.node_count))
                        .sum::<u64>();
                }
                QueryResult::Stats { clusters, nodes }
            }
            ShardQuery::Canaries { prefix } => QueryResult::Canaries(
                self.rows
                    .canaries()
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            ShardQuery::Federations { project } => self.query_federations(project.as_ref()),
            ShardQuery::Ownership => QueryResult::Ownership {
                epoch: self.epoch(),
                owner: self.owner(),
            },
        })
    }

    /// Keys of the first `limit` clusters of `project` (all when `None`) in list order, strictly
    /// after `after`. Only the keys are scanned and the page selected before any view is
    /// built: O(clusters) comparisons, O(page) copies.
    fn clusters_page(
        &self,
        project: Option<&ProjectId>,
        after: Option<(Timestamp, ClusterId)>,
        desc: bool,
        limit: u32,
    ) -> Vec<(Timestamp, ClusterId)> {
        let n = usize::try_from(limit).unwrap_or(usize::MAX);
        self.rows.listed(project, after, desc).take(n).collect()
    }

    pub fn view(&self, id: ClusterId) -> Option<ClusterView> {
        let cluster = self.rows.cluster(id)?.clone();
        let nodegroups = self.rows.nodegroups(id).to_vec();
        Some(ClusterView {
            cluster,
            nodegroups,
            trustee: None,
            template_labels: None,
        })
    }

    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.rows.operations().values()
    }

    pub fn operation(&self, id: ClusterId) -> Option<&Operation> {
        self.rows.operation(id)
    }

    /// The cluster's trustee, password sealed.
    pub fn trustee(&self, id: ClusterId) -> Option<&TrusteeRecord> {
        self.rows.trustees().get(&id)
    }

    pub fn clusters(&self) -> &BTreeMap<ClusterId, Cluster> {
        self.rows.clusters()
    }

    pub fn templates(&self) -> &BTreeMap<TemplateId, ClusterTemplate> {
        self.rows.templates()
    }
}
