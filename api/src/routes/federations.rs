//! `/v1/federations` (reference §4.9). Upstream's API validates and casts to a conductor that
//! raises NotImplementedError, so nothing is ever stored there. Here a federation is a row in
//! its project's shard, committed before the answer, and it completes at once
//! (`CREATE_COMPLETE`, `UPDATE_COMPLETE`): a federation drives no stack.
use crate::auth::Identity;
use crate::context::{json_body, Ctx};
use crate::error::ApiError;
use crate::pagination::{ListQuery, Listing, Page, Row};
use crate::patch::{self, Op, PatchRules};
use crate::policy::{self, Action};
use crate::render::{links, Link};
use crate::state::AppState;
use crate::store::{as_uuid, Store};
use crate::validate::fields::{self, field, parse_object, Kind};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_proto::{
    ClusterStatus, CommandOk, Federation, FederationChange, FederationId, QueryResult,
    ShardCommand, ShardQuery, Timestamp,
};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Columns of Magnum's `federation` table (valid `sort_key`s).
const COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "project_id",
    "name",
    "hostcluster_id",
    "member_ids",
    "status",
    "status_reason",
    "properties",
    "created_at",
    "updated_at",
];

const STATUSES: &[&str] = &[
    "CREATE_IN_PROGRESS",
    "CREATE_FAILED",
    "CREATE_COMPLETE",
    "UPDATE_IN_PROGRESS",
    "UPDATE_FAILED",
    "UPDATE_COMPLETE",
    "DELETE_IN_PROGRESS",
    "DELETE_FAILED",
    "DELETE_COMPLETE",
];

/// The API type's attributes (`member_ids`, a list, is checked on its own).
pub const FIELDS: &[fields::Spec] = &[
    field("uuid", Kind::Uuid),
    field("name", Kind::ClusterName),
    field("project_id", Kind::ReadOnly),
    field("hostcluster_id", Kind::Str { min: 1, max: 255 }),
    field("status", Kind::Enum(STATUSES)),
    field("status_reason", Kind::Text),
    field("properties", Kind::StrDict),
    field("links", Kind::ReadOnly),
];

const PATCH_RULES: PatchRules = PatchRules {
    internal: &[],
    non_removable: &[],
};

/// What a PATCH may change (anything else is 400).
const CHANGEABLE: [&str; 2] = ["member_ids", "properties"];

const NO_DNS_ZONE: &str = "No DNS zone specified.";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/federations", get(list).post(create))
        .route("/v1/federations/", get(list).post(create))
        .route("/v1/federations/detail", get(detail))
        .route("/v1/federations/detail/", get(detail))
        .route(
            "/v1/federations/{ident}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/v1/federations/{ident}/",
            get(show).patch(update).delete(remove),
        )
}

/// `GET /federations` items.
#[derive(Serialize)]
pub struct FederationSummary {
    pub uuid: String,
    pub name: String,
    pub hostcluster_id: String,
    pub member_ids: Vec<String>,
    pub status: &'static str,
    pub project_id: String,
    pub links: Vec<Link>,
}

/// `GET /federations/{id}` and `/federations/detail` items.
#[derive(Serialize)]
pub struct FederationFull {
    pub uuid: String,
    pub name: String,
    pub project_id: String,
    pub hostcluster_id: String,
    pub member_ids: Vec<String>,
    pub status: &'static str,
    pub status_reason: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub links: Vec<Link>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

#[derive(Serialize)]
struct FederationList<T: Serialize> {
    federations: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

fn summary(f: &Federation, base: &str) -> FederationSummary {
    let id = f.uuid.to_string();
    FederationSummary {
        links: links(base, "federations", &id),
        uuid: id,
        name: f.name.clone(),
        hostcluster_id: f.hostcluster_id.clone(),
        member_ids: f.member_ids.clone(),
        status: f.status.as_str(),
        project_id: f.project_id.0.clone(),
    }
}

fn full(f: &Federation, base: &str) -> FederationFull {
    let id = f.uuid.to_string();
    FederationFull {
        links: links(base, "federations", &id),
        uuid: id,
        name: f.name.clone(),
        project_id: f.project_id.0.clone(),
        hostcluster_id: f.hostcluster_id.clone(),
        member_ids: f.member_ids.clone(),
        status: f.status.as_str(),
        status_reason: f.status_reason.clone(),
        properties: f.properties.clone(),
        created_at: f.created_at.to_magnum(),
        updated_at: f.updated_at.map(Timestamp::to_magnum),
    }
}

fn not_found(ident: &str) -> ApiError {
    ApiError::NotFound(format!("Federation {ident} could not be found."))
}

fn federations_of(r: QueryResult) -> Result<Vec<Federation>, ApiError> {
    match r {
        QueryResult::Federations(f) => Ok(f),
        other => Err(ApiError::Internal(format!(
            "conductor answered a federations query with {other:?}"
        ))),
    }
}

/// Federations visible to the caller: its project's (one shard), or all for admins.
async fn visible(state: &AppState, ctx: &Ctx) -> Result<Vec<Federation>, ApiError> {
    let store = Store::new(state, &ctx.who);
    if ctx.who.is_admin() {
        let q = ShardQuery::Federations { project: None };
        let mut out = Vec::new();
        for r in store.query_all(&q).await? {
            out.extend(federations_of(r)?);
        }
        return Ok(out);
    }
    let me = ctx.who.project();
    let q = ShardQuery::Federations {
        project: Some(me.clone()),
    };
    let shard = store.shard_of(&me).await?;
    Ok(federations_of(store.query(shard, &q).await?)?
        .into_iter()
        .filter(|f| f.project_id == me)
        .collect())
}

/// A federation by uuid or name; 404 when not visible, 409 when the name is ambiguous.
async fn find(state: &AppState, ctx: &Ctx, ident: &str) -> Result<Federation, ApiError> {
    let all = visible(state, ctx).await?;
    if let Some(id) = as_uuid(ident) {
        return all
            .into_iter()
            .find(|f| f.uuid.0 == id)
            .ok_or_else(|| not_found(ident));
    }
    let mut found: Vec<Federation> = all.into_iter().filter(|f| f.name == ident).collect();
    match found.len() {
        0 => Err(not_found(ident)),
        1 => Ok(found.remove(0)),
        _ => Err(ApiError::Conflict(
            "Multiple federations exist with same name. Please use the federation uuid instead."
                .into(),
        )),
    }
}

impl Row for Federation {
    const COLUMNS: &'static [&'static str] = COLUMNS;
    fn uuid(&self) -> String {
        self.uuid.to_string()
    }
    fn created(&self) -> i64 {
        self.created_at.0
    }
    fn doc(&self) -> Value {
        serde_json::to_value(full(self, "")).unwrap_or(Value::Null)
    }
}

async fn list_impl(
    state: AppState,
    ctx: Ctx,
    pairs: Vec<(String, String)>,
    detail: bool,
) -> Result<Response, ApiError> {
    let q = ListQuery::parse(&pairs)?;
    let action = if detail {
        Action::FederationDetail
    } else {
        Action::FederationGetAll
    };
    policy::enforce(&ctx.who, action, None)?;
    let list = Listing::new(q, state.settings.validation.max_limit)?;
    let all = visible(&state, &ctx).await?;
    let marker = list.find_marker(&all, not_found)?;
    let resource = if detail {
        "federations/detail"
    } else {
        "federations"
    };
    let Page { rows, next } = list.page(all, marker, &ctx.base, resource)?;
    let resp = if detail {
        Json(FederationList {
            federations: rows.iter().map(|f| full(f, &ctx.base)).collect(),
            next,
        })
        .into_response()
    } else {
        Json(FederationList {
            federations: rows.iter().map(|f| summary(f, &ctx.base)).collect(),
            next,
        })
        .into_response()
    };
    Ok(resp)
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    list_impl(state, ctx, pairs, false).await
}

async fn detail(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    list_impl(state, ctx, pairs, true).await
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> Result<Json<FederationFull>, ApiError> {
    let f = find(&state, &ctx, &ident).await?;
    policy::enforce(&ctx.who, Action::FederationGet, Some(&f.project_id.0))?;
    Ok(Json(full(&f, &ctx.base)))
}

/// `member_ids`: a list of strings (`[wtypes.text]`).
fn member_list(v: &Value) -> Result<Vec<String>, ApiError> {
    let bad = || fields::invalid("member_ids", v, "Value should be a list of strings.");
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// `properties` must name a DNS zone (`validate_federation_properties`).
fn check_properties(p: Option<&BTreeMap<String, String>>) -> Result<(), ApiError> {
    match p {
        Some(p) if p.contains_key("dns-zone") => Ok(()),
        _ => Err(ApiError::bad_request(NO_DNS_ZONE)),
    }
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut body = json_body(&headers, &body, "federation")?;
    let members = match body.as_object_mut().and_then(|o| o.remove("member_ids")) {
        Some(v) => member_list(&v)?,
        None => Vec::new(),
    };
    let f = parse_object("federation", &body, FIELDS)?;
    policy::enforce(&ctx.who, Action::FederationCreate, None)?;
    let store = Store::new(&state, &ctx.who);
    // `validate_federation_hostcluster`: the host cluster must exist (and be visible).
    let Some(host) = f.str("hostcluster_id") else {
        return Err(ApiError::bad_request("No hostcluster specified."));
    };
    let host = match store.find_cluster(&ctx.who, &host).await {
        Ok(c) => c,
        Err(ApiError::NotFound(m)) => return Err(ApiError::BadRequest(m)),
        Err(e) => return Err(e),
    };
    let properties = f.map("properties");
    check_properties(properties.as_ref())?;
    let members = visible_members(&store, &ctx.who, members).await?;
    let project = ctx.who.project();
    let federation = Federation {
        uuid: FederationId::new_v4(),
        name: f
            .str("name")
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| crate::names::random_name("federation")),
        project_id: project.clone(),
        hostcluster_id: host.cluster.uuid.to_string(),
        member_ids: members,
        status: ClusterStatus::CREATE_IN_PROGRESS,
        status_reason: None,
        properties: properties.unwrap_or_default(),
        created_at: Timestamp::now(),
        updated_at: None,
    };
    let shard = store.shard_of(&project).await?;
    let ok = store
        .submit(shard, ShardCommand::CreateFederation { federation })
        .await?;
    let CommandOk::Federation(created) = ok else {
        return Err(ApiError::Internal(format!(
            "conductor answered a federation create with {ok:?}"
        )));
    };
    tracing::info!(federation = %created.uuid, "federation create committed");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"uuid": created.uuid.to_string()})),
    )
        .into_response())
}

/// Every member must name a cluster the caller can see, stored by uuid. Upstream takes any
/// string here, so a federation could list another project's cluster (chaos-tests'
/// DIFFERENCES.md); a join already had to find the cluster.
async fn visible_members(
    store: &Store<'_>,
    who: &Identity,
    ids: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match store.find_cluster(who, &id).await {
            Ok(c) => out.push(c.cluster.uuid.to_string()),
            Err(ApiError::NotFound(m)) => return Err(ApiError::BadRequest(m)),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The one-member `add`/`remove` on `/member_ids` (upstream's join/unjoin wrappers).
fn membership(ops: &[patch::PatchOp]) -> Option<(Op, Value)> {
    match ops {
        [p] if p.path == "/member_ids" && p.op != Op::Replace => match &p.value {
            Some(v) if !v.is_null() => Some((p.op, v.clone())),
            _ => None,
        },
        _ => None,
    }
}

async fn change_of(
    state: &AppState,
    ctx: &Ctx,
    f: &Federation,
    ops: &[patch::PatchOp],
) -> Result<FederationChange, ApiError> {
    if let Some((op, value)) = membership(ops) {
        let member = fields::label_string(&value).unwrap_or_default();
        // The cluster must exist (`Cluster.get_by_uuid`): 404 otherwise.
        let not_found = || ApiError::NotFound(format!("Cluster {member} could not be found."));
        if as_uuid(&member).is_none() {
            return Err(not_found());
        }
        let store = Store::new(state, &ctx.who);
        let c = store.find_cluster(&ctx.who, &member).await?;
        let member = c.cluster.uuid.to_string();
        let is_member = f.member_ids.contains(&member);
        return match op {
            Op::Add if is_member => Err(ApiError::Conflict(format!(
                "A cluster with UUID {member} is already a member of the federation {}.",
                f.name
            ))),
            Op::Add => Ok(FederationChange::Join { member }),
            _ if !is_member => Err(ApiError::NotFound(format!(
                "Cluster {member} is not a member of the federation {}.",
                f.name
            ))),
            _ => Ok(FederationChange::Leave { member }),
        };
    }
    let old = serde_json::to_value(full(f, "")).map_err(|e| ApiError::Internal(e.to_string()))?;
    let new = patch::apply(&old, ops)?;
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return Err(ApiError::bad_request("A federation must be an object."));
    };
    let delta: BTreeSet<&String> = o
        .keys()
        .chain(n.keys())
        .filter(|k| o.get(*k).unwrap_or(&Value::Null) != n.get(*k).unwrap_or(&Value::Null))
        .collect();
    let bad: Vec<&str> = delta
        .iter()
        .map(|k| k.as_str())
        .filter(|k| !CHANGEABLE.contains(k))
        .collect();
    if !bad.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "cannot change federation property(ies) {}.",
            bad.join(", ")
        )));
    }
    let member_ids = match delta.iter().any(|k| *k == "member_ids") {
        true => {
            let list = member_list(&n["member_ids"])?;
            Some(visible_members(&Store::new(state, &ctx.who), &ctx.who, list).await?)
        }
        false => None,
    };
    let properties = match delta.iter().any(|k| *k == "properties") {
        true => {
            let spec = field("properties", Kind::StrDict);
            let p = match fields::convert(&spec, &n["properties"])? {
                fields::Val::Map(m) => Some(m),
                _ => None,
            };
            check_properties(p.as_ref())?;
            p
        }
        false => None,
    };
    Ok(FederationChange::Set {
        member_ids,
        properties,
    })
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // `?rollback` is accepted (and checked) though there is nothing to roll back.
    if let Some((_, v)) = pairs.iter().find(|(k, _)| k == "rollback") {
        fields::boolean(&json!(v))?;
    }
    let body = json_body(&headers, &body, "patch")?;
    let ops = patch::parse(&body, &PATCH_RULES)?;
    let f = find(&state, &ctx, &ident).await?;
    policy::enforce(&ctx.who, Action::FederationUpdate, Some(&f.project_id.0))?;
    let change = change_of(&state, &ctx, &f, &ops).await?;
    let store = Store::new(&state, &ctx.who);
    let shard = store.shard_of(&f.project_id).await?;
    let cmd = ShardCommand::UpdateFederation {
        id: f.uuid,
        change,
        at: Timestamp::now(),
    };
    store.submit(shard, cmd).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"uuid": f.uuid.to_string()})),
    )
        .into_response())
}

async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> Result<StatusCode, ApiError> {
    let f = find(&state, &ctx, &ident).await?;
    policy::enforce(&ctx.who, Action::FederationDelete, Some(&f.project_id.0))?;
    let store = Store::new(&state, &ctx.who);
    let shard = store.shard_of(&f.project_id).await?;
    store
        .submit(shard, ShardCommand::DeleteFederation { id: f.uuid })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
