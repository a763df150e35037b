//! `/v1/clusters` (reference §4.2, §6).
use crate::context::{json_body, Ctx};
use crate::error::ApiError;
use crate::pagination::{ListQuery, Listing, Page, Row};
use crate::policy::{self, Action};
use crate::render::{self, ClusterList};
use crate::state::AppState;
use crate::store::{cluster_not_found, Store};
use crate::validate::cluster as vc;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use magnum_proto::{ClusterView, CommandOk, OpId, ShardCommand, TemplateId, Timestamp};
use serde_json::Value;

/// Columns of Magnum's `cluster` table (valid `sort_key`s); node/master counts live in
/// nodegroups and are not sortable.
const COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "project_id",
    "user_id",
    "name",
    "cluster_template_id",
    "keypair",
    "docker_volume_size",
    "labels",
    "master_flavor_id",
    "flavor_id",
    "stack_id",
    "api_address",
    "status",
    "status_reason",
    "health_status",
    "health_status_reason",
    "create_timeout",
    "discovery_url",
    "ca_cert_ref",
    "magnum_cert_ref",
    "etcd_ca_cert_ref",
    "front_proxy_ca_cert_ref",
    "trust_id",
    "trustee_username",
    "trustee_user_id",
    "trustee_password",
    "coe_version",
    "container_version",
    "fixed_network",
    "fixed_subnet",
    "floating_ip_enabled",
    "master_lb_enabled",
    "created_at",
    "updated_at",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/clusters", get(list).post(create))
        .route("/v1/clusters/", get(list).post(create))
        .route("/v1/clusters/detail", get(detail))
        .route("/v1/clusters/detail/", get(detail))
        .route(
            "/v1/clusters/{ident}",
            get(show)
                .delete(remove)
                .patch(super::cluster_update::update),
        )
        .route(
            "/v1/clusters/{ident}/",
            get(show)
                .delete(remove)
                .patch(super::cluster_update::update),
        )
        .route(
            "/v1/clusters/{ident}/actions/resize",
            post(super::cluster_resize::resize),
        )
        .route(
            "/v1/clusters/{ident}/actions/upgrade",
            post(super::cluster_upgrade::upgrade),
        )
}

impl Row for ClusterView {
    const COLUMNS: &'static [&'static str] = COLUMNS;
    fn uuid(&self) -> String {
        self.cluster.uuid.to_string()
    }
    fn created(&self) -> i64 {
        self.cluster.created_at.0
    }
    fn doc(&self) -> Value {
        serde_json::to_value(render::cluster_full(self, &Default::default(), "", false))
            .unwrap_or(Value::Null)
    }
}

async fn list_impl(
    state: AppState,
    ctx: Ctx,
    pairs: Vec<(String, String)>,
    detail: bool,
) -> Result<Response, ApiError> {
    let q = ListQuery::parse(&pairs)?;
    let who = &ctx.who;
    let (action, all) = if detail {
        (Action::ClusterDetail, Action::ClusterDetailAllProjects)
    } else {
        (Action::ClusterGetAll, Action::ClusterGetAllAllProjects)
    };
    policy::enforce(who, action, None)?;
    if who.is_admin() {
        policy::enforce(who, all, None)?;
    }
    let list = Listing::new(q, state.settings.validation.max_limit)?;
    let store = Store::new(&state, &ctx.who);
    // In creation order (the default) the shards cut the page: one page travels, not every
    // cluster. Other orders, and conductors that cannot, get every cluster paged here.
    let paged = match list.id_order() {
        Some((desc, limit)) => {
            let after = match list.marker() {
                None => None,
                // A marker is a uuid (`ListQuery::parse`): not visible → "Cluster <m> could
                // not be found.", as the marker search over every cluster answers.
                Some(m) => {
                    let c = store.find_cluster(who, m).await?;
                    Some((c.cluster.created_at, c.cluster.uuid))
                }
            };
            store.clusters_page(who, after, desc, limit).await?
        }
        None => None,
    };
    let (clusters, marker) = match paged {
        Some(rows) => (rows, None),
        None => {
            let clusters = store.list_clusters(who).await?;
            let marker = list.find_marker(&clusters, cluster_not_found)?;
            (clusters, marker)
        }
    };
    let resource = if detail {
        "clusters/detail"
    } else {
        "clusters"
    };
    let Page { rows, next } = list.page(clusters, marker, &ctx.base, resource)?;
    if !detail {
        return Ok(Json(ClusterList {
            clusters: rows
                .iter()
                .map(|c| render::cluster_summary(c, &ctx.base).at_version(ctx.version))
                .collect(),
            next,
        })
        .into_response());
    }
    let mut ids: Vec<TemplateId> = rows.iter().map(|c| c.cluster.cluster_template_id).collect();
    ids.sort();
    ids.dedup();
    let parents = store.template_labels(&ids, &who.project()).await?;
    let empty = Default::default();
    Ok(Json(ClusterList {
        clusters: rows
            .iter()
            .map(|c| {
                let p = parents
                    .get(&c.cluster.cluster_template_id)
                    .unwrap_or(&empty);
                render::cluster_full(c, p, &ctx.base, false).at_version(ctx.version)
            })
            .collect(),
        next,
    })
    .into_response())
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    list_impl(state, ctx, pairs, false).await
}

pub(crate) async fn detail(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    list_impl(state, ctx, pairs, true).await
}

pub(crate) async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> Result<Json<render::ClusterFull>, ApiError> {
    let who = &ctx.who;
    if who.is_admin() {
        policy::enforce(who, Action::ClusterGetOneAllProjects, None)?;
    }
    let store = Store::new(&state, &ctx.who);
    let mut c = store.find_cluster(who, &ident).await?;
    policy::enforce(who, Action::ClusterGet, Some(&c.cluster.project_id.0))?;
    let labels = match c.template_labels.take() {
        Some(l) => l,
        None => store
            .template_by_id(c.cluster.cluster_template_id, &c.cluster.project_id)
            .await?
            .map(|t| t.labels)
            .unwrap_or_default(),
    };
    Ok(Json(
        render::cluster_full(&c, &labels, &ctx.base, true).at_version(ctx.version),
    ))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body, "cluster")?;
    let new = vc::validate_create(&state, &ctx.who, ctx.version, &body).await?;
    let store = Store::new(&state, &ctx.who);
    let shard = store.shard_of(&new.cluster.project_id).await?;
    let id = new.cluster.uuid;
    let ok = store
        .submit(
            shard,
            ShardCommand::CreateCluster {
                cluster: new.cluster,
                nodegroups: new.nodegroups,
                operation: new.operation,
            },
        )
        .await?;
    // Answer only after the commit: the uuid always names a cluster that exists.
    let uuid = match ok {
        CommandOk::Cluster(v) => v.cluster.uuid,
        _ => id,
    };
    tracing::info!(cluster = %uuid, "cluster create committed");
    Ok((
        StatusCode::ACCEPTED,
        Json(render::Uuid {
            uuid: uuid.to_string(),
        }),
    )
        .into_response())
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    let who = &ctx.who;
    if who.is_admin() {
        policy::enforce(who, Action::ClusterDeleteAllProjects, None)?;
    }
    let store = Store::new(&state, &ctx.who);
    let c = store.find_cluster(who, &ident).await?;
    policy::enforce(who, Action::ClusterDelete, Some(&c.cluster.project_id.0))?;
    let shard = store.shard_of(&c.cluster.project_id).await?;
    let now = Timestamp::now();
    let timeout = i64::try_from(state.settings.validation.delete_timeout.as_secs()).unwrap_or(4200);
    store
        .submit(
            shard,
            ShardCommand::DeleteCluster {
                id: c.cluster.uuid,
                op: OpId::new_v4(),
                at: now,
                deadline: now.plus_secs(timeout),
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
