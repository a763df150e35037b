//! `/v1/bays` (reference §4.10): clusters under their pre-2016 name, served by the
//! `/v1/clusters` handlers. What differs, and is translated here:
//! - field names `baymodel_id`, `bay_create_timeout`, `bay_faults` (collection key `bays`);
//! - `node_count` must be at least 1 (the Bay type's minimum), whatever the microversion;
//! - at 1.1 create answers 201 with the full bay (after the create is committed) and update
//!   answers 200 with the full bay; from 1.2 on both answer 202 `{"uuid"}` like clusters;
//! - bays always show `stack_id` (they never learned 1.13's `cluster_id`).
use super::legacy::{self, body_json, Names};
use super::{cluster_update, clusters};
use crate::context::{json_body, Ctx};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate::fields::{self, Kind};
use crate::version::ApiVersion;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

pub const NAMES: Names = Names {
    collection: ("clusters", "bays"),
    fields: &[
        ("cluster_template_id", "baymodel_id"),
        ("create_timeout", "bay_create_timeout"),
        ("faults", "bay_faults"),
    ],
    argname: ("cluster", "bay"),
};

/// The newest cluster rendering a bay keeps (`stack_id`, not 1.13's `cluster_id`).
const LAST_BAY_RENDERING: ApiVersion = ApiVersion::new(1, 12);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/bays", get(list).post(create))
        .route("/v1/bays/", get(list).post(create))
        .route("/v1/bays/detail", get(detail))
        .route("/v1/bays/detail/", get(detail))
        .route("/v1/bays/{ident}", get(show).patch(update).delete(remove))
        .route("/v1/bays/{ident}/", get(show).patch(update).delete(remove))
}

/// The caller's context with the version capped at the last one whose cluster rendering bays
/// share; checks that depend on the version (1.2 async, 1.3 rollback) read the real one.
fn cluster_ctx(ctx: &Ctx) -> Ctx {
    let mut c = ctx.clone();
    c.version = c.version.min(LAST_BAY_RENDERING);
    c
}

/// `node_count` of a Bay: an integer ≥ 1.
fn check_node_count(v: Option<&Value>) -> Result<(), ApiError> {
    let Some(v) = v else { return Ok(()) };
    let spec = fields::field(
        "node_count",
        Kind::Int {
            min: Some(1),
            max: Some(i64::from(i32::MAX)),
        },
    );
    fields::convert(&spec, v).map(|_| ())
}

async fn list(state: State<AppState>, ctx: Ctx, q: Query<Vec<(String, String)>>) -> Response {
    let r = clusters::list(state, cluster_ctx(&ctx), q).await;
    legacy::translate(&NAMES, r, |v| NAMES.list(v)).await
}

async fn detail(state: State<AppState>, ctx: Ctx, q: Query<Vec<(String, String)>>) -> Response {
    let r = clusters::detail(state, cluster_ctx(&ctx), q).await;
    legacy::translate(&NAMES, r, |v| NAMES.list(v)).await
}

async fn show(state: State<AppState>, ctx: Ctx, ident: Path<String>) -> Response {
    let r = clusters::show(state, cluster_ctx(&ctx), ident)
        .await
        .map(IntoResponse::into_response);
    legacy::translate(&NAMES, r, |v| NAMES.resource(v)).await
}

/// The full bay with `status` (1.1 create and update answers).
async fn full_bay(
    state: AppState,
    ctx: &Ctx,
    accepted: Response,
    status: StatusCode,
) -> Result<(Response, String), ApiError> {
    let (_, json) = body_json(accepted).await?;
    let uuid = json
        .as_ref()
        .and_then(|j| j.get("uuid"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::Internal("cluster handler answered without a uuid".into()))?;
    let Json(full) = clusters::show(State(state), cluster_ctx(ctx), Path(uuid.clone())).await?;
    Ok(((status, Json(full)).into_response(), uuid))
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Errors of the translation itself already speak the legacy names.
    let prepared = json_body(&headers, &body, "bay")
        .and_then(|b| NAMES.request_object(b))
        .and_then(|b| check_node_count(b.get("node_count")).map(|()| b));
    let body = match prepared {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let r = async {
        let accepted = clusters::create(
            State(state.clone()),
            cluster_ctx(&ctx),
            headers,
            legacy::to_bytes(&body),
        )
        .await?;
        if ctx.version.at_least(1, 2) {
            return Ok(accepted);
        }
        // 1.1 was synchronous: the bay itself, once its create is committed.
        let (mut resp, uuid) = full_bay(state, &ctx, accepted, StatusCode::CREATED).await?;
        if let Ok(v) = HeaderValue::from_str(&format!("{}/v1/bays/{uuid}", ctx.base)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Ok(resp)
    }
    .await;
    legacy::translate(&NAMES, r, |v| NAMES.resource(v)).await
}

/// The cluster-side patch of a bay patch; a new `node_count` must be at least 1.
fn prepare_patch(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let patch = NAMES.request_patch(json_body(headers, body, "patch")?);
    for op in patch.as_array().into_iter().flatten() {
        let sets = matches!(
            op.get("op").and_then(Value::as_str),
            Some("add" | "replace")
        );
        if sets && op.get("path").and_then(Value::as_str) == Some("/node_count") {
            check_node_count(op.get("value"))?;
        }
    }
    Ok(patch)
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    q: Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let patch = match prepare_patch(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let r = async {
        let accepted = cluster_update::update(
            State(state.clone()),
            ctx.clone(),
            Path(ident),
            q,
            headers,
            legacy::to_bytes(&patch),
        )
        .await?;
        if ctx.version.at_least(1, 2) {
            return Ok(accepted);
        }
        Ok(full_bay(state, &ctx, accepted, StatusCode::OK).await?.0)
    }
    .await;
    legacy::translate(&NAMES, r, |v| NAMES.resource(v)).await
}

async fn remove(state: State<AppState>, ctx: Ctx, ident: Path<String>) -> Response {
    let r = clusters::remove(state, cluster_ctx(&ctx), ident)
        .await
        .map(IntoResponse::into_response);
    legacy::translate(&NAMES, r, |v| v).await
}
