//! `/v1/quotas` (reference §4.6): rows live in their project's shard, so every write is one
//! command there and the shard's own cluster-create check sees it atomically.
use crate::auth::Identity;
use crate::context::{json_body, Ctx};
use crate::error::ApiError;
use crate::lookups::{self, Lookup};
use crate::pagination::{ListQuery, Listing, Page, Row};
use crate::policy::{self, Action};
use crate::state::AppState;
use crate::store::Store;
use crate::validate::fields::{self, field, Kind, Spec};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_proto::{
    CommandOk, ProjectId, QueryResult, Quota, ShardCommand, ShardQuery, Timestamp,
    DEFAULT_CLUSTER_QUOTA,
};
use serde::Serialize;
use serde_json::{json, Value};

/// The only quota resource Magnum knows.
const RESOURCES: &[&str] = &["Cluster"];
const COLUMNS: &[&str] = &[
    "id",
    "project_id",
    "resource",
    "hard_limit",
    "created_at",
    "updated_at",
];

/// The API type `Quota` in declaration order (`id` is accepted and ignored, as WSME does).
const SPECS: &[Spec] = &[
    field(
        "id",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    ),
    field(
        "hard_limit",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    ),
    field("project_id", fields::STR255),
    field("resource", Kind::Enum(RESOURCES)),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/quotas", get(list).post(create))
        .route("/v1/quotas/", get(list).post(create))
        .route(
            "/v1/quotas/{project}/{resource}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/v1/quotas/{project}/{resource}/",
            get(show).patch(update).delete(remove),
        )
}

#[derive(Debug, Serialize)]
pub struct QuotaView {
    pub id: u64,
    pub hard_limit: u32,
    pub project_id: String,
    pub resource: String,
    pub created_at: String,
    pub updated_at: Option<String>,
}

fn view(q: &Quota) -> QuotaView {
    QuotaView {
        id: q.id,
        hard_limit: q.hard_limit,
        project_id: q.project_id.0.clone(),
        resource: q.resource.clone(),
        created_at: q.created_at.to_magnum(),
        updated_at: q.updated_at.map(Timestamp::to_magnum),
    }
}

#[derive(Debug, Serialize)]
pub struct QuotaList {
    pub quotas: Vec<QuotaView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn quota_of(ok: CommandOk) -> Result<Quota, ApiError> {
    match ok {
        CommandOk::Quota(q) => Ok(q),
        other => Err(ApiError::Internal(format!(
            "conductor answered a quota command with {other:?}"
        ))),
    }
}

fn quotas_of(r: QueryResult) -> Result<Vec<Quota>, ApiError> {
    match r {
        QueryResult::Quotas(q) => Ok(q),
        other => Err(ApiError::Internal(format!(
            "conductor answered a quota query with {other:?}"
        ))),
    }
}

fn not_found(project: &str, resource: &str) -> ApiError {
    ApiError::NotFound(format!(
        "Quota could not be found: project_id {project} resource {resource}."
    ))
}

/// The body's `hard_limit` (WSME default 1) and `resource` (default `Cluster`).
fn parse_body(body: &Value) -> Result<(Option<String>, String, u32), ApiError> {
    let f = fields::parse_object("quota", body, SPECS)?;
    let limit = f.int("hard_limit").unwrap_or(1);
    let limit = u32::try_from(limit).map_err(|_| {
        fields::invalid(
            "hard_limit",
            &body["hard_limit"],
            &format!("Value should be less than or equal to {}", u32::MAX),
        )
    })?;
    let resource = f.str("resource").unwrap_or_else(|| "Cluster".into());
    Ok((f.str("project_id"), resource, limit))
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body, "quota")?;
    let (project, resource, hard_limit) = parse_body(&body)?;
    // Magnum checks the project before the policy (`enforce_valid_project_id_on_create`).
    let project = match project {
        Some(p) if !p.is_empty() => p,
        _ => return Err(ApiError::bad_request("Must provide a valid project ID.")),
    };
    match state
        .lookups
        .get_project(&ctx.who, &project)
        .await
        .map_err(lookups::unavailable)?
    {
        Lookup::Found(()) => {}
        _ => {
            return Err(ApiError::NotFound(format!(
                "Project {project} could not be found."
            )))
        }
    }
    policy::enforce(&ctx.who, Action::QuotaCreate, None)?;
    let project = ProjectId(project);
    let store = Store::new(&state, &ctx.who);
    let shard = store.shard_of(&project).await?;
    let quota = Quota {
        id: 0,
        project_id: project,
        resource,
        hard_limit,
        created_at: Timestamp::now(),
        updated_at: None,
    };
    let q = quota_of(
        store
            .submit(shard, ShardCommand::CreateQuota { quota })
            .await?,
    )?;
    Ok((StatusCode::CREATED, Json(view(&q))).into_response())
}

// Quotas have no uuid: the marker and the tie-break are the integer id.
impl Row for Quota {
    const COLUMNS: &'static [&'static str] = COLUMNS;
    fn uuid(&self) -> String {
        self.id.to_string()
    }
    fn created(&self) -> i64 {
        i64::try_from(self.id).unwrap_or(i64::MAX)
    }
    fn doc(&self) -> Value {
        serde_json::to_value(view(self)).unwrap_or(Value::Null)
    }
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<QuotaList>, ApiError> {
    // The marker is an integer id here, not a uuid.
    let marker = match pairs.iter().find(|(k, _)| k == "marker") {
        Some((_, v)) => Some(v.trim().parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "Invalid input for field/attribute marker. Value: '{v}'. unable to convert to \
                 int. Error: invalid literal for int() with base 10: '{v}'"
            ))
        })?),
        None => None,
    };
    let rest: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "marker")
        .cloned()
        .collect();
    let mut q = ListQuery::parse(&rest)?;
    q.marker = marker.map(|m| m.to_string());
    let all_tenants = match pairs.iter().find(|(k, _)| k == "all_tenants") {
        Some((_, v)) => fields::boolean(&Value::String(v.clone()))?,
        None => false,
    };
    policy::enforce(&ctx.who, Action::QuotaGetAll, None)?;
    let list = Listing::new(q, state.settings.validation.max_limit)?;
    let store = Store::new(&state, &ctx.who);
    let rows: Vec<Quota> = if ctx.who.is_admin() && all_tenants {
        let mut v = Vec::new();
        for r in store
            .query_all(&ShardQuery::Quotas { project: None })
            .await?
        {
            v.extend(quotas_of(r)?);
        }
        v
    } else {
        let me = ctx.who.project();
        let shard = store.shard_of(&me).await?;
        quotas_of(
            store
                .query(shard, &ShardQuery::Quotas { project: Some(me) })
                .await?,
        )?
    };
    let marker = list.find_marker(&rows, |m| {
        ApiError::NotFound(format!("Quota {m} could not be found."))
    })?;
    let Page { rows, next } = list.page(rows, marker, &ctx.base, "quotas")?;
    Ok(Json(QuotaList {
        quotas: rows.iter().map(view).collect(),
        next,
    }))
}

async fn find(
    state: &AppState,
    who: &Identity,
    project: &str,
    resource: &str,
) -> Result<Option<Quota>, ApiError> {
    let store = Store::new(state, who);
    let p = ProjectId(project.to_string());
    let shard = store.shard_of(&p).await?;
    let rows = quotas_of(
        store
            .query(shard, &ShardQuery::Quotas { project: Some(p) })
            .await?,
    )?;
    Ok(rows.into_iter().find(|q| q.resource == resource))
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((project, resource)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    policy::enforce(&ctx.who, Action::QuotaGet, None)?;
    if !ctx.who.is_admin() && project != ctx.who.project_id {
        return Err(ApiError::Forbidden("Not authorized.".into()));
    }
    Ok(match find(&state, &ctx.who, &project, &resource).await? {
        Some(q) => Json(view(&q)).into_response(),
        // No row: the configured default, without id or timestamps.
        None => Json(json!({
            "project_id": project,
            "resource": "Cluster",
            "hard_limit": DEFAULT_CLUSTER_QUOTA,
        }))
        .into_response(),
    })
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((project, resource)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body, "quotapatch")?;
    let (_, _, hard_limit) = parse_body(&body)?;
    policy::enforce(&ctx.who, Action::QuotaUpdate, None)?;
    let store = Store::new(&state, &ctx.who);
    let p = ProjectId(project.clone());
    let shard = store.shard_of(&p).await?;
    let cmd = ShardCommand::UpdateQuota {
        project_id: p,
        resource: resource.clone(),
        hard_limit,
        at: Timestamp::now(),
    };
    let q = quota_of(store.submit(shard, cmd).await.map_err(|e| match e {
        ApiError::NotFound(_) => not_found(&project, &resource),
        other => other,
    })?)?;
    Ok((StatusCode::ACCEPTED, Json(view(&q))).into_response())
}

async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((project, resource)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    policy::enforce(&ctx.who, Action::QuotaDelete, None)?;
    let store = Store::new(&state, &ctx.who);
    let p = ProjectId(project.clone());
    let shard = store.shard_of(&p).await?;
    let cmd = ShardCommand::DeleteQuota {
        project_id: p,
        resource: resource.clone(),
    };
    store.submit(shard, cmd).await.map_err(|e| match e {
        ApiError::NotFound(_) => not_found(&project, &resource),
        other => other,
    })?;
    Ok(StatusCode::NO_CONTENT)
}
