//! `POST /v1/clusters/{ident}/actions/resize` (reference §4.2, §6.4, ≥ 1.7): a worker
//! nodegroup's count, optionally removing named servers, as a durable update operation.
use crate::context::{json_body, Ctx};
use crate::error::ApiError;
use crate::policy::{self, Action};
use crate::routes::nodegroups;
use crate::state::AppState;
use crate::store::Store;
use crate::validate::fields::{self, field, mandatory, Kind, Spec};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use magnum_proto::{OpKind, ShardCommand, Timestamp};
use serde_json::{json, Value};

const SPECS: &[Spec] = &[
    mandatory(
        "node_count",
        Kind::Int {
            min: Some(0),
            max: Some(i32::MAX as i64),
        },
    ),
    field("nodegroup", Kind::Text),
];

fn nodes_to_remove(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                other => Err(fields::invalid(
                    "nodes_to_remove",
                    other,
                    "Value should be string",
                )),
            })
            .collect(),
        Some(other) => Err(fields::invalid(
            "nodes_to_remove",
            other,
            "Value should be list",
        )),
    }
}

pub async fn resize(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !ctx.version.at_least(1, 7) {
        return Err(ApiError::NotAcceptable(format!(
            "Version {} was requested but the requested API resize is not supported for this \
             version.",
            ctx.version
        )));
    }
    let mut body = json_body(&headers, &body, "cluster_resize_req")?;
    let remove = nodes_to_remove(
        body.as_object_mut()
            .and_then(|o| o.remove("nodes_to_remove"))
            .as_ref(),
    )?;
    let f = fields::parse_object("cluster_resize_req", &body, SPECS)?;
    let count = f
        .int("node_count")
        .ok_or_else(|| ApiError::bad_request("Mandatory field missing: node_count"))?;
    fields::check_count(
        "node_count",
        count,
        state.settings.validation.max_node_count,
    )?;
    if count == 0 && !ctx.version.at_least(1, 10) {
        return Err(ApiError::bad_request(
            "Resizing a nodegroup to zero is not supported in the provided microversion.",
        ));
    }
    let who = &ctx.who;
    let store = Store::new(&state, &ctx.who);
    let view = store.find_cluster(who, &ident).await?;
    let project = view.cluster.project_id.clone();
    policy::enforce(who, Action::ClusterResize, Some(&project.0))?;
    let ng = nodegroups::target(&view, f.str("nodegroup").as_deref())?;
    let template = store
        .template_by_id(view.cluster.cluster_template_id, &project)
        .await?
        .unwrap_or_default();
    let now = Timestamp::now();
    let cmd = ShardCommand::ResizeCluster {
        id: view.cluster.uuid,
        nodegroup: ng.uuid,
        node_count: u32::try_from(count).unwrap_or(u32::MAX),
        nodes_to_remove: remove,
        operation: super::cluster_update::operation(&view.cluster, OpKind::Update, template, now),
        at: now,
    };
    let shard = store.shard_of(&project).await?;
    store.submit(shard, cmd).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"uuid": view.cluster.uuid.to_string()})),
    )
        .into_response())
}
