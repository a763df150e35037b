//! `PATCH /v1/credentials/{cluster_ident}` (reference §4.5, microversion 1.12 on): rotate the
//! cluster's trustee credentials. Policy `credential:rotate` needs a member of the cluster's
//! project (the admin role alone does not pass); the status gate is checked by the shard.
use crate::context::Ctx;
use crate::error::ApiError;
use crate::policy::{self, Action};
use crate::state::AppState;
use crate::store::Store;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::patch;
use axum::{Json, Router};
use magnum_proto::{OpKind, ShardCommand, Timestamp};
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/credentials/{ident}", patch(rotate))
        .route("/v1/credentials/{ident}/", patch(rotate))
}

async fn rotate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> Result<Response, ApiError> {
    if !ctx.version.at_least(1, 12) {
        return Err(ApiError::NotAcceptable(format!(
            "Version {} was requested but the requested API rotate is not supported for this \
             version.",
            ctx.version
        )));
    }
    let store = Store::new(&state, &ctx.who);
    let c = store.find_cluster(&ctx.who, &ident).await?;
    let project = c.cluster.project_id.clone();
    policy::enforce(&ctx.who, Action::CredentialRotate, Some(&project.0))?;
    let template = store
        .template_by_id(c.cluster.cluster_template_id, &project)
        .await?
        .unwrap_or_default();
    let shard = store.shard_of(&project).await?;
    let now = Timestamp::now();
    let cmd = ShardCommand::RotateCredential {
        id: c.cluster.uuid,
        operation: super::cluster_update::operation(
            &c.cluster,
            OpKind::RotateCredential,
            template,
            now,
        ),
        at: now,
    };
    store.submit(shard, cmd).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"uuid": c.cluster.uuid.to_string()})),
    )
        .into_response())
}
