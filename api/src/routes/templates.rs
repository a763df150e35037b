//! `/v1/clustertemplates` (reference §4.1, §5).
use crate::context::{json_body, Ctx};
use crate::error::ApiError;
use crate::pagination::{ListQuery, Listing, Page, Row};
use crate::patch;
use crate::policy::{self, Action};
use crate::render::{self, TemplateList};
use crate::state::AppState;
use crate::store::{template_not_found, Store};
use crate::validate::template as vt;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_proto::{ClusterTemplate, CommandOk, ProjectId, ShardCommand, Timestamp};
use serde_json::Value;

/// Columns of Magnum's `cluster_template` table (valid `sort_key`s).
const COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "project_id",
    "user_id",
    "name",
    "image_id",
    "flavor_id",
    "master_flavor_id",
    "keypair_id",
    "external_network_id",
    "fixed_network",
    "fixed_subnet",
    "network_driver",
    "volume_driver",
    "dns_nameserver",
    "apiserver_port",
    "docker_volume_size",
    "docker_storage_driver",
    "cluster_distro",
    "coe",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "registry_enabled",
    "labels",
    "tls_disabled",
    "public",
    "server_type",
    "insecure_registry",
    "master_lb_enabled",
    "floating_ip_enabled",
    "hidden",
    "tags",
    "driver",
    "created_at",
    "updated_at",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/clustertemplates", get(list).post(create))
        .route("/v1/clustertemplates/", get(list).post(create))
        .route("/v1/clustertemplates/detail", get(detail))
        .route("/v1/clustertemplates/detail/", get(detail))
        .route(
            "/v1/clustertemplates/{ident}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/v1/clustertemplates/{ident}/",
            get(show).patch(update).delete(remove),
        )
}

impl Row for ClusterTemplate {
    const COLUMNS: &'static [&'static str] = COLUMNS;
    fn uuid(&self) -> String {
        self.uuid.map(|u| u.to_string()).unwrap_or_default()
    }
    fn created(&self) -> i64 {
        self.created_at.map_or(0, |c| c.0)
    }
    fn doc(&self) -> Value {
        vt::to_doc(self)
    }
}

async fn list_impl(
    state: AppState,
    ctx: Ctx,
    pairs: Vec<(String, String)>,
    detail: bool,
) -> Result<Json<TemplateList>, ApiError> {
    let q = ListQuery::parse(&pairs)?;
    let who = &ctx.who;
    let (action, all) = if detail {
        (Action::TemplateDetail, Action::TemplateDetailAllProjects)
    } else {
        (Action::TemplateGetAll, Action::TemplateGetAllAllProjects)
    };
    policy::enforce(who, action, None)?;
    if who.is_admin() {
        policy::enforce(who, all, None)?;
    }
    let list = Listing::new(q, state.settings.validation.max_limit)?;
    let store = Store::new(&state, &ctx.who);
    let (listed, visible) = store.list_templates(who).await?;
    // A marker may name any template the caller can see, listed or not.
    let marker = list.find_marker(&visible, template_not_found)?;
    let resource = if detail {
        "clustertemplates/detail"
    } else {
        "clustertemplates"
    };
    let Page { rows, next } = list.page(listed, marker, &ctx.base, resource)?;
    Ok(Json(TemplateList {
        clustertemplates: rows
            .iter()
            .map(|t| render::template(t, &ctx.base))
            .collect(),
        next,
    }))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<TemplateList>, ApiError> {
    list_impl(state, ctx, pairs, false).await
}

pub(crate) async fn detail(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<TemplateList>, ApiError> {
    list_impl(state, ctx, pairs, true).await
}

pub(crate) async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> Result<Json<render::TemplateView>, ApiError> {
    let who = &ctx.who;
    if who.is_admin() {
        policy::enforce(who, Action::TemplateGetOneAllProjects, None)?;
    }
    let t = Store::new(&state, &ctx.who)
        .find_template(who, &ident, who.is_admin())
        .await?;
    if !t.public {
        let owner = t.project_id.as_ref().map(|p| p.0.as_str());
        policy::enforce(who, Action::TemplateGet, owner)?;
    }
    Ok(Json(render::template(&t, &ctx.base)))
}

fn template_of(ok: CommandOk) -> Result<ClusterTemplate, ApiError> {
    match ok {
        CommandOk::Template(t) => Ok(*t),
        other => Err(ApiError::Internal(format!(
            "conductor answered a template command with {other:?}"
        ))),
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body, "cluster_template")?;
    let t = vt::validate_create(&state, &ctx.who, &body).await?;
    let store = Store::new(&state, &ctx.who);
    let shard = store.shard_of(&ctx.who.project()).await?;
    let created = template_of(
        store
            .submit(
                shard,
                ShardCommand::CreateTemplate {
                    template: t,
                    max_per_project: Some(state.settings.validation.max_templates_per_project),
                },
            )
            .await?,
    )?;
    let view = render::template(&created, &ctx.base);
    let location = format!(
        "{}/v1/clustertemplates/{}",
        ctx.base,
        view.uuid.as_deref().unwrap_or("")
    );
    let mut resp = (StatusCode::CREATED, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

pub(crate) async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<render::TemplateView>, ApiError> {
    let who = &ctx.who;
    let body = json_body(&headers, &body, "patch")?;
    let ops = patch::parse(&body, &vt::PATCH_RULES)?;
    let store = Store::new(&state, &ctx.who);
    let attempts = state.settings.validation.update_attempts.max(1);
    let mut ident = ident;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let old = store.find_template(who, &ident, who.is_admin()).await?;
        let doc = patch::apply(&vt::to_doc(&old), &ops)?;
        vt::validate_patched_drivers(&state, &doc)?;
        if who.is_admin() {
            policy::enforce(who, Action::TemplateUpdateAllProjects, None)?;
        }
        let owner = old
            .project_id
            .clone()
            .unwrap_or_else(|| ProjectId(String::new()));
        policy::enforce(who, Action::TemplateUpdate, Some(&owner.0))?;
        let new = vt::from_doc(&doc, &old)?;
        vt::validate_update(&state, who, &old, &new).await?;
        let shard = store.shard_of(&owner).await?;
        let cmd = ShardCommand::UpdateTemplate {
            template: new,
            at: Timestamp::now(),
        };
        match store.submit(shard, cmd).await {
            Ok(ok) => return Ok(Json(render::template(&template_of(ok)?, &ctx.base))),
            Err(ApiError::Conflict(msg)) if attempt < attempts => {
                // A concurrent update moved the version: recompute from the new row. Any
                // other conflict is the answer.
                let id = old.uuid.map(|u| u.to_string()).unwrap_or_default();
                let now = store.find_template(who, &id, who.is_admin()).await?;
                if now.version == old.version {
                    return Err(ApiError::Conflict(msg));
                }
                tracing::info!(attempt, template = %id, "template update lost a version race, retrying");
                ident = id;
            }
            Err(e) => return Err(e),
        }
    }
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    let who = &ctx.who;
    if who.is_admin() {
        policy::enforce(who, Action::TemplateDeleteAllProjects, None)?;
    }
    let store = Store::new(&state, &ctx.who);
    let t = store.find_template(who, &ident, who.is_admin()).await?;
    let owner = t
        .project_id
        .clone()
        .unwrap_or_else(|| ProjectId(String::new()));
    policy::enforce(who, Action::TemplateDelete, Some(&owner.0))?;
    let Some(id) = t.uuid else {
        return Err(ApiError::Internal("template without uuid".into()));
    };
    let shard = store.shard_of(&owner).await?;
    store
        .submit(shard, ShardCommand::DeleteTemplate { id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
