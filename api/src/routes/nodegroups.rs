//! `/v1/clusters/{cluster}/nodegroups` reads and rendering (reference §4.3, ≥ 1.9); create,
//! update and delete are in `nodegroup_ops`.
use super::nodegroup_ops as ops;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::pagination::{ListQuery, Listing, Page, Row};
use crate::policy::{self, Action};
use crate::render::{self, Link};
use crate::state::AppState;
use crate::store::Store;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use magnum_proto::{ClusterView, Labels, NodeGroup, Timestamp};
use serde::Serialize;
use serde_json::Value;

const COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "cluster_id",
    "project_id",
    "docker_volume_size",
    "labels",
    "flavor_id",
    "image_id",
    "node_addresses",
    "node_count",
    "role",
    "min_node_count",
    "max_node_count",
    "is_default",
    "stack_id",
    "status",
    "status_reason",
    "version",
    "created_at",
    "updated_at",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/clusters/{cluster}/nodegroups",
            get(list).post(ops::create),
        )
        .route(
            "/v1/clusters/{cluster}/nodegroups/",
            get(list).post(ops::create),
        )
        .route(
            "/v1/clusters/{cluster}/nodegroups/{ng}",
            get(show).patch(ops::update).delete(ops::delete),
        )
        .route(
            "/v1/clusters/{cluster}/nodegroups/{ng}/",
            get(show).patch(ops::update).delete(ops::delete),
        )
}

/// List entries: the summary attributes, plus the WSME defaults the type always carries.
#[derive(Debug, Serialize)]
pub struct NodeGroupSummary {
    pub uuid: String,
    pub name: String,
    pub flavor_id: Option<String>,
    pub image_id: Option<String>,
    pub node_count: u32,
    pub role: String,
    pub min_node_count: u32,
    pub max_node_count: Option<u32>,
    pub is_default: bool,
    pub stack_id: Option<String>,
    pub status: Option<&'static str>,
    pub merge_labels: bool,
}

#[derive(Debug, Serialize)]
pub struct NodeGroupFull {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub cluster_id: String,
    pub project_id: String,
    pub docker_volume_size: Option<i64>,
    pub labels: Labels,
    pub links: Vec<Link>,
    pub flavor_id: Option<String>,
    pub image_id: Option<String>,
    pub node_addresses: Vec<String>,
    pub node_count: u32,
    pub role: String,
    pub min_node_count: u32,
    pub max_node_count: Option<u32>,
    pub is_default: bool,
    pub stack_id: Option<String>,
    pub status: Option<&'static str>,
    pub status_reason: Option<String>,
    pub version: Option<String>,
    pub merge_labels: bool,
    pub labels_overridden: Labels,
    pub labels_added: Labels,
    pub labels_skipped: Labels,
    pub created_at: String,
    pub updated_at: Option<String>,
    /// Microversion 1.14 on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_labels: Option<Labels>,
    /// Microversion 1.14 on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_taints: Option<Vec<magnum_proto::Taint>>,
}

#[derive(Debug, Serialize)]
pub struct NodeGroupList {
    pub nodegroups: Vec<NodeGroupSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn summary(n: &NodeGroup) -> NodeGroupSummary {
    NodeGroupSummary {
        uuid: n.uuid.to_string(),
        name: n.name.clone(),
        flavor_id: n.flavor_id.clone(),
        image_id: n.image_id.clone(),
        node_count: n.node_count,
        role: n.role.clone(),
        // WSME defaults: the summary does not copy these.
        min_node_count: 0,
        max_node_count: None,
        is_default: n.is_default,
        stack_id: n.stack_id.clone(),
        status: n.status.map(|s| s.as_str()),
        merge_labels: false,
    }
}

/// The full nodegroup; `v1_14` adds `node_labels` and `node_taints`.
pub(crate) fn full(
    n: &NodeGroup,
    cluster_labels: &Labels,
    base: &str,
    v1_14: bool,
) -> NodeGroupFull {
    let (labels_overridden, labels_added, labels_skipped) =
        render::labels_diff(cluster_labels, &n.labels);
    let cluster = n.cluster_id.to_string();
    let id = n.uuid.to_string();
    NodeGroupFull {
        id: n.id,
        links: render::links(base, &format!("clusters/{cluster}/nodegroups"), &id),
        uuid: id,
        name: n.name.clone(),
        cluster_id: cluster,
        project_id: n.project_id.0.clone(),
        docker_volume_size: n.docker_volume_size,
        labels: n.labels.clone(),
        flavor_id: n.flavor_id.clone(),
        image_id: n.image_id.clone(),
        node_addresses: n.node_addresses.clone(),
        node_count: n.node_count,
        role: n.role.clone(),
        min_node_count: n.min_node_count,
        max_node_count: n.max_node_count,
        is_default: n.is_default,
        stack_id: n.stack_id.clone(),
        status: n.status.map(|s| s.as_str()),
        status_reason: n.status_reason.clone(),
        version: n.version.clone(),
        merge_labels: false,
        labels_overridden,
        labels_added,
        labels_skipped,
        created_at: n.created_at.to_magnum(),
        updated_at: n.updated_at.map(Timestamp::to_magnum),
        node_labels: v1_14.then(|| n.node_labels.clone()),
        node_taints: v1_14.then(|| n.node_taints.clone()),
    }
}

/// Nodegroups exist from microversion 1.9 on; older requests get Pecan's 406.
pub(crate) fn gate(ctx: &Ctx, method: &str) -> Result<(), ApiError> {
    if ctx.version.at_least(1, 9) {
        return Ok(());
    }
    Err(ApiError::NotAcceptable(format!(
        "Version {} was requested but the requested API {method} is not supported for this \
         version.",
        ctx.version
    )))
}

fn not_found(ident: &str) -> ApiError {
    ApiError::NotFound(format!("Nodegroup {ident} could not be found."))
}

/// `NodeGroup.get(cluster, ident)`: by uuid, else by name (ambiguous names → 409).
pub(crate) fn find<'a>(c: &'a ClusterView, ident: &str) -> Result<&'a NodeGroup, ApiError> {
    if let Some(n) = c.nodegroups.iter().find(|n| n.uuid.to_string() == ident) {
        return Ok(n);
    }
    let named: Vec<&NodeGroup> = c.nodegroups.iter().filter(|n| n.name == ident).collect();
    match named.as_slice() {
        [] => Err(not_found(ident)),
        [one] => Ok(one),
        _ => Err(ApiError::Conflict(
            "Multiple nodegroups exist with same name. Please use the nodegroup uuid instead."
                .into(),
        )),
    }
}

/// The nodegroup a resize or upgrade names (uuid or name), else the default worker.
pub(crate) fn target<'a>(
    c: &'a ClusterView,
    ident: Option<&str>,
) -> Result<&'a NodeGroup, ApiError> {
    match ident {
        Some(ident) => find(c, ident),
        None => c
            .nodegroups
            .iter()
            .find(|n| n.is_default && !n.is_master())
            .ok_or_else(|| not_found("default-worker")),
    }
}

pub(crate) async fn cluster_of(
    state: &AppState,
    ctx: &Ctx,
    ident: &str,
) -> Result<ClusterView, ApiError> {
    Store::new(state, &ctx.who)
        .find_cluster(&ctx.who, ident)
        .await
}

impl Row for NodeGroup {
    const COLUMNS: &'static [&'static str] = COLUMNS;
    fn uuid(&self) -> String {
        self.uuid.to_string()
    }
    fn created(&self) -> i64 {
        i64::try_from(self.id).unwrap_or(i64::MAX)
    }
    fn doc(&self) -> Value {
        serde_json::to_value(full(self, &Labels::new(), "", false)).unwrap_or(Value::Null)
    }
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(cluster): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<NodeGroupList>, ApiError> {
    gate(&ctx, "get_all")?;
    let q = ListQuery::parse(&pairs)?;
    policy::enforce(&ctx.who, Action::NodegroupGetAll, None)?;
    if ctx.who.is_admin() {
        policy::enforce(&ctx.who, Action::NodegroupGetAllAllProjects, None)?;
    }
    let list = Listing::new(q, state.settings.validation.max_limit)?;
    let c = cluster_of(&state, &ctx, &cluster).await?;
    let role = pairs.iter().find(|(k, _)| k == "role").map(|(_, v)| v);
    let rows: Vec<&NodeGroup> = c
        .nodegroups
        .iter()
        .filter(|n| role.is_none_or(|r| *r == n.role))
        .collect();
    // The marker is looked up like a show's ident, among all the cluster's nodegroups.
    let marker = match list.marker() {
        Some(m) => Some(list.key(find(&c, m)?)),
        None => None,
    };
    let resource = format!("clusters/{}/nodegroups", c.cluster.uuid);
    let Page { rows, next } = list.page(rows, marker, &ctx.base, &resource)?;
    Ok(Json(NodeGroupList {
        nodegroups: rows.iter().map(|n| summary(n)).collect(),
        next,
    }))
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((cluster, ng)): Path<(String, String)>,
) -> Result<Json<NodeGroupFull>, ApiError> {
    gate(&ctx, "get_one")?;
    policy::enforce(&ctx.who, Action::NodegroupGet, None)?;
    if ctx.who.is_admin() {
        policy::enforce(&ctx.who, Action::NodegroupGetOneAllProjects, None)?;
    }
    let c = cluster_of(&state, &ctx, &cluster).await?;
    let n = find(&c, &ng)?;
    Ok(Json(full(
        n,
        &c.cluster.labels,
        &ctx.base,
        ctx.version.at_least(1, 14),
    )))
}
