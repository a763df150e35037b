//! Reads and writes against the shards, with Magnum's visibility rules.
//!
//! Everything of a project lives in its shard (`shard_of(project)`), so a non-admin's clusters
//! are one query away. Public templates may live in any shard, and admins see every project,
//! so those reads fan out to all shards and merge.
use crate::auth::Identity;
use crate::backend::{Backend, BackendError};
use crate::error::ApiError;
use crate::homes::ClusterHomes;
use crate::state::AppState;
use magnum_proto::wire::{SignCsr, SignResult, UserToken};
use magnum_proto::{
    shard_of, ClusterId, ClusterTemplate, ClusterView, CommandOk, ProjectId, QueryResult,
    RequestId, ShardCommand, ShardId, ShardQuery, ShardRequest, TemplateId, Timestamp,
};
use std::collections::{BTreeMap, HashMap};

pub struct Store<'a> {
    backend: &'a dyn Backend,
    homes: &'a ClusterHomes,
    /// Every read and write goes to the conductor for this user, who checks it again there.
    user: UserToken,
}

fn unexpected(what: &str, got: &QueryResult) -> ApiError {
    ApiError::Internal(format!("conductor answered a {what} query with {got:?}"))
}

fn templates_of(r: QueryResult) -> Result<Vec<ClusterTemplate>, ApiError> {
    match r {
        QueryResult::Templates(t) => Ok(t),
        other => Err(unexpected("templates", &other)),
    }
}

/// A conductor that cannot decode a query (an older release: 400) as `None`.
fn rejected_as_none<T>(r: Result<T, BackendError>) -> Result<Option<T>, ApiError> {
    match r {
        Err(BackendError::Rejected(_)) => Ok(None),
        other => Ok(Some(other?)),
    }
}

/// Sorts in list order: `created_at`, then uuid (reversed when `desc`).
fn sort_listed<T>(rows: &mut [T], key: impl Fn(&T) -> (Timestamp, ClusterId), desc: bool) {
    rows.sort_by(|a, b| match desc {
        false => key(a).cmp(&key(b)),
        true => key(b).cmp(&key(a)),
    });
}

fn clusters_of(r: QueryResult) -> Result<Vec<ClusterView>, ApiError> {
    match r {
        QueryResult::Clusters(c) => Ok(c),
        other => Err(unexpected("clusters", &other)),
    }
}

pub fn template_not_found(ident: &str) -> ApiError {
    ApiError::NotFound(format!("ClusterTemplate {ident} could not be found."))
}

pub fn cluster_not_found(ident: &str) -> ApiError {
    ApiError::NotFound(format!("Cluster {ident} could not be found."))
}

/// `uuidutils.is_uuid_like`.
pub fn as_uuid(ident: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(ident).ok()
}

impl<'a> Store<'a> {
    /// The store as `who` reaches it: the conductor serves what `who` may see and change.
    pub fn new(state: &'a AppState, who: &Identity) -> Self {
        Self {
            backend: state.backend.as_ref(),
            homes: &state.homes,
            user: UserToken(who.token.clone()),
        }
    }

    pub async fn shards(&self) -> Result<u32, ApiError> {
        Ok(self.backend.shards().await?)
    }

    pub async fn shard_of(&self, project: &ProjectId) -> Result<ShardId, ApiError> {
        Ok(shard_of(project, self.shards().await?))
    }

    pub async fn query(&self, shard: ShardId, q: &ShardQuery) -> Result<QueryResult, ApiError> {
        Ok(self.backend.query(&self.user, shard, q).await?)
    }

    /// The same query on every shard.
    pub async fn query_all(&self, q: &ShardQuery) -> Result<Vec<QueryResult>, ApiError> {
        Ok(self.backend.query_all(&self.user, q).await?)
    }

    async fn templates_everywhere(
        &self,
        project: Option<&ProjectId>,
    ) -> Result<Vec<ClusterTemplate>, ApiError> {
        let q = ShardQuery::Templates {
            project: project.cloned(),
            include_public: true,
        };
        let mut by_id: BTreeMap<TemplateId, ClusterTemplate> = BTreeMap::new();
        for r in self.query_all(&q).await? {
            for t in templates_of(r)? {
                if let Some(id) = t.uuid {
                    by_id.insert(id, t);
                }
            }
        }
        Ok(by_id.into_values().collect())
    }

    /// Templates a lookup by uuid or name may return (`get_cluster_template_by_uuid/name`):
    /// own project ∪ every public one; admins acting on all projects see everything.
    async fn template_candidates(
        &self,
        who: &Identity,
        all_projects: bool,
    ) -> Result<Vec<ClusterTemplate>, ApiError> {
        if all_projects {
            return self.templates_everywhere(None).await;
        }
        let me = who.project();
        Ok(self
            .templates_everywhere(Some(&me))
            .await?
            .into_iter()
            .filter(|t| t.public || t.project_id.as_ref() == Some(&me))
            .collect())
    }

    /// `GET /clustertemplates` visibility: own (hidden included) ∪ public∧¬hidden, admins all.
    /// Also returns the lookup-visible set, against which a marker is resolved.
    pub async fn list_templates(
        &self,
        who: &Identity,
    ) -> Result<(Vec<ClusterTemplate>, Vec<ClusterTemplate>), ApiError> {
        let all = who.is_admin();
        let candidates = self.template_candidates(who, all).await?;
        let me = who.project();
        let listed = candidates
            .iter()
            .filter(|t| all || t.project_id.as_ref() == Some(&me) || (t.public && !t.hidden))
            .cloned()
            .collect();
        Ok((listed, candidates))
    }

    /// A template by uuid or name; 404 when not visible, 409 when the name is ambiguous.
    pub async fn find_template(
        &self,
        who: &Identity,
        ident: &str,
        all_projects: bool,
    ) -> Result<ClusterTemplate, ApiError> {
        if let Some(id) = as_uuid(ident) {
            let id = TemplateId(id);
            if !all_projects {
                // Fast path: the caller's own shard holds its own templates.
                let me = who.project();
                let shard = self.shard_of(&me).await?;
                let q = ShardQuery::Templates {
                    project: Some(me.clone()),
                    include_public: true,
                };
                let own = templates_of(self.query(shard, &q).await?)?;
                if let Some(t) = own.into_iter().find(|t| {
                    t.uuid == Some(id) && (t.public || t.project_id.as_ref() == Some(&me))
                }) {
                    return Ok(t);
                }
            }
            return self
                .template_candidates(who, all_projects)
                .await?
                .into_iter()
                .find(|t| t.uuid == Some(id))
                .ok_or_else(|| template_not_found(ident));
        }
        let mut found: Vec<ClusterTemplate> = self
            .template_candidates(who, all_projects)
            .await?
            .into_iter()
            .filter(|t| t.name.as_deref() == Some(ident))
            .collect();
        match found.len() {
            0 => Err(template_not_found(ident)),
            1 => Ok(found.remove(0)),
            _ => Err(ApiError::Conflict(
                "Multiple ClusterTemplates exist with same name. Please use the \
                 ClusterTemplate uuid instead."
                    .into(),
            )),
        }
    }

    /// A template by id regardless of the caller (for rendering label diffs of clusters that
    /// the caller may already see). Looks in `home`'s shard first.
    pub async fn template_by_id(
        &self,
        id: TemplateId,
        home: &ProjectId,
    ) -> Result<Option<ClusterTemplate>, ApiError> {
        let shard = self.shard_of(home).await?;
        let q = ShardQuery::Templates {
            project: Some(home.clone()),
            include_public: true,
        };
        if let Some(t) = templates_of(self.query(shard, &q).await?)?
            .into_iter()
            .find(|t| t.uuid == Some(id))
        {
            return Ok(Some(t));
        }
        Ok(self
            .templates_everywhere(None)
            .await?
            .into_iter()
            .find(|t| t.uuid == Some(id)))
    }

    /// Labels of each template in `ids` (missing templates map to nothing).
    pub async fn template_labels(
        &self,
        ids: &[TemplateId],
        home: &ProjectId,
    ) -> Result<BTreeMap<TemplateId, magnum_proto::Labels>, ApiError> {
        let mut out = BTreeMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let shard = self.shard_of(home).await?;
        let q = ShardQuery::Templates {
            project: Some(home.clone()),
            include_public: true,
        };
        for t in templates_of(self.query(shard, &q).await?)? {
            if let Some(id) = t.uuid.filter(|id| ids.contains(id)) {
                out.insert(id, t.labels);
            }
        }
        if ids.iter().any(|id| !out.contains_key(id)) {
            for t in self.templates_everywhere(None).await? {
                if let Some(id) = t.uuid.filter(|id| ids.contains(id)) {
                    out.entry(id).or_insert(t.labels);
                }
            }
        }
        Ok(out)
    }

    /// Clusters visible to `who`: its project's, or every project's for admins.
    pub async fn list_clusters(&self, who: &Identity) -> Result<Vec<ClusterView>, ApiError> {
        if who.is_admin() {
            let q = ShardQuery::Clusters { project: None };
            let mut out = Vec::new();
            for r in self.query_all(&q).await? {
                out.extend(clusters_of(r)?);
            }
            return Ok(out);
        }
        let me = who.project();
        let shard = self.shard_of(&me).await?;
        let q = ShardQuery::Clusters {
            project: Some(me.clone()),
        };
        Ok(clusters_of(self.query(shard, &q).await?)?
            .into_iter()
            .filter(|c| c.cluster.project_id == me)
            .collect())
    }

    /// One page of the clusters visible to `who` in creation order (reversed when `desc`),
    /// strictly after `after`. A project's page is cut by its shard; the admin's is merged from
    /// every shard's keys first ([`Self::page_by_keys`]), else from every shard's page of views
    /// (`ShardQuery::ClustersPage`). `None` when a conductor predates `ClustersPage` (it
    /// answers 400, e.g. during a rolling upgrade): the caller then pages
    /// [`Self::list_clusters`] itself.
    pub async fn clusters_page(
        &self,
        who: &Identity,
        after: Option<(Timestamp, ClusterId)>,
        desc: bool,
        limit: usize,
    ) -> Result<Option<Vec<ClusterView>>, ApiError> {
        let project = (!who.is_admin()).then(|| who.project());
        let limit32 = u32::try_from(limit).unwrap_or(u32::MAX);
        if project.is_none() {
            if let Some(rows) = self.page_by_keys(after, desc, limit32).await? {
                return Ok(Some(rows));
            }
        }
        let q = ShardQuery::ClustersPage {
            project: project.clone(),
            after,
            desc,
            limit: limit32,
        };
        let answers = match &project {
            Some(me) => {
                let shard = self.shard_of(me).await?;
                self.backend
                    .query(&self.user, shard, &q)
                    .await
                    .map(|r| vec![r])
            }
            None => self.backend.query_all(&self.user, &q).await,
        };
        let Some(answers) = rejected_as_none(answers)? else {
            return Ok(None);
        };
        let mut rows = Vec::new();
        for r in answers {
            rows.extend(clusters_of(r)?);
        }
        rows.retain(|c| project.as_ref().is_none_or(|p| &c.cluster.project_id == p));
        sort_listed(&mut rows, |c| (c.cluster.created_at, c.cluster.uuid), desc);
        rows.truncate(limit);
        Ok(Some(rows))
    }

    /// Every cluster's page from each shard's first `limit` keys and the views of the first
    /// few of them (twice a fair share, and two more): the merged page usually finds all its
    /// views there. The rest are asked by id of the shards that hold them, so one page of
    /// views is built and shipped instead of one per shard. `None` when a conductor cannot
    /// answer these queries (an older release: 400) or a cluster of the page went away
    /// between the rounds: a short page would read as the end of the list, so the caller
    /// asks again in one round.
    async fn page_by_keys(
        &self,
        after: Option<(Timestamp, ClusterId)>,
        desc: bool,
        limit: u32,
    ) -> Result<Option<Vec<ClusterView>>, ApiError> {
        let views = limit
            .div_ceil(self.shards().await?.max(1))
            .saturating_mul(2)
            + 2;
        let q = ShardQuery::ClusterKeysPage {
            project: None,
            after,
            desc,
            limit,
            views,
        };
        let Some(answers) = rejected_as_none(self.backend.query_all(&self.user, &q).await)? else {
            return Ok(None);
        };
        let mut keys = Vec::new();
        let mut found: HashMap<ClusterId, ClusterView> = HashMap::new();
        for (shard, r) in (0..).map(ShardId).zip(answers) {
            let k = match r {
                // A conductor from before `views`: keys only.
                QueryResult::ClusterKeys(k) => k,
                QueryResult::ClusterKeysAndViews { keys, views } => {
                    found.extend(views.into_iter().map(|v| (v.cluster.uuid, v)));
                    keys
                }
                other => return Err(unexpected("cluster keys", &other)),
            };
            keys.extend(k.into_iter().map(|k| (k, shard)));
        }
        sort_listed(&mut keys, |(k, _)| *k, desc);
        keys.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        // The page's last cluster is the next page's marker: its look-up then asks one shard,
        // which the uuid says already unless it was made before it could.
        if let Some(&((_, id), shard)) = keys.last() {
            if id.shard_hint() != Some(shard) {
                self.homes.remember(id, shard);
            }
        }
        let mut missing: BTreeMap<ShardId, Vec<ClusterId>> = BTreeMap::new();
        for &((_, id), shard) in &keys {
            if !found.contains_key(&id) {
                missing.entry(shard).or_default().push(id);
            }
        }
        let asked = missing.into_iter().map(|(shard, ids)| async move {
            rejected_as_none(
                self.backend
                    .query(&self.user, shard, &ShardQuery::ClustersById { ids })
                    .await,
            )
        });
        for answer in futures::future::join_all(asked).await {
            let Some(r) = answer? else {
                return Ok(None);
            };
            found.extend(clusters_of(r)?.into_iter().map(|v| (v.cluster.uuid, v)));
        }
        let rows: Option<Vec<ClusterView>> =
            keys.iter().map(|((_, id), _)| found.remove(id)).collect();
        Ok(rows)
    }

    /// A cluster by uuid or name; 404 when not visible, 409 when the name is ambiguous.
    pub async fn find_cluster(&self, who: &Identity, ident: &str) -> Result<ClusterView, ApiError> {
        let me = who.project();
        if let Some(id) = as_uuid(ident) {
            let id = ClusterId(id);
            let found = if who.is_admin() {
                self.cluster_anywhere(id).await?
            } else {
                let shard = self.shard_of(&me).await?;
                self.cluster_in(shard, id)
                    .await?
                    .filter(|v| v.cluster.project_id == me)
            };
            return found.ok_or_else(|| cluster_not_found(ident));
        }
        let mut found: Vec<ClusterView> = self
            .list_clusters(who)
            .await?
            .into_iter()
            .filter(|c| c.cluster.name == ident)
            .collect();
        match found.len() {
            0 => Err(cluster_not_found(ident)),
            1 => Ok(found.remove(0)),
            _ => Err(ApiError::Conflict(
                "Multiple clusters exist with same name. Please use the cluster uuid instead."
                    .into(),
            )),
        }
    }

    async fn cluster_in(
        &self,
        shard: ShardId,
        id: ClusterId,
    ) -> Result<Option<ClusterView>, ApiError> {
        match self.query(shard, &ShardQuery::Cluster { id }).await? {
            QueryResult::Cluster(v) => Ok(v.map(|v| *v)),
            other => Err(unexpected("cluster", &other)),
        }
    }

    /// An admin's look-up by uuid alone: the shard remembered from an earlier look-up (whose
    /// "no such cluster" is final), else the shard the uuid names (`ClusterId::shard_hint`;
    /// checked, a uuid made elsewhere may carry one by chance), else every shard.
    async fn cluster_anywhere(&self, id: ClusterId) -> Result<Option<ClusterView>, ApiError> {
        if let Some(shard) = self.homes.get(id) {
            let v = self.cluster_in(shard, id).await?;
            if v.is_none() {
                self.homes.forget(id);
            }
            return Ok(v);
        }
        let shards = self.shards().await?;
        if let Some(shard) = id.shard_hint().filter(|s| s.0 < shards) {
            if let Some(v) = self.cluster_in(shard, id).await? {
                return Ok(Some(v));
            }
        }
        let q = ShardQuery::Cluster { id };
        for (shard, r) in (0..).map(ShardId).zip(self.query_all(&q).await?) {
            match r {
                QueryResult::Cluster(Some(v)) => {
                    self.homes.remember(id, shard);
                    return Ok(Some(*v));
                }
                QueryResult::Cluster(None) => {}
                other => return Err(unexpected("cluster", &other)),
            }
        }
        Ok(None)
    }

    /// Signs a CSR with a cluster's CA on the shard leader.
    pub async fn sign(&self, shard: ShardId, req: &SignCsr) -> Result<SignResult, ApiError> {
        Ok(self.backend.sign(&self.user, shard, req).await?)
    }

    /// Forwards one mutation with a fresh request id (the client's retries reuse it, so the
    /// shard applies it once) and waits for its commit.
    pub async fn submit(
        &self,
        shard: ShardId,
        command: ShardCommand,
    ) -> Result<CommandOk, ApiError> {
        let req = ShardRequest {
            request_id: Some(RequestId::new_v4()),
            command,
        };
        tracing::debug!(shard = shard.0, request_id = ?req.request_id, "forwarding command");
        Ok(self.backend.command(&self.user, shard, &req).await??)
    }
}
