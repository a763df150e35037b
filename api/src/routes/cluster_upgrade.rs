//! `POST /v1/clusters/{ident}/actions/upgrade` (reference §4.2, §6.5; 1.7 → 400, ≥ 1.8): a
//! nodegroup's rolling upgrade to another template's `kube_tag`, as a durable operation. The
//! shard checks the status gate, the template's tags and downgrades atomically.
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
use serde_json::json;

pub const SPECS: &[Spec] = &[
    mandatory("cluster_template", Kind::Text),
    field(
        "max_batch_size",
        Kind::Int {
            min: Some(1),
            max: Some(i32::MAX as i64),
        },
    ),
    field("nodegroup", Kind::Text),
];

pub async fn upgrade(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !ctx.version.at_least(1, 7) {
        return Err(ApiError::NotAcceptable(format!(
            "Version {} was requested but the requested API upgrade is not supported for this \
             version.",
            ctx.version
        )));
    }
    if !ctx.version.at_least(1, 8) {
        return Err(ApiError::bad_request(
            "Upgrading a cluster is supported from API version 1.8 on.",
        ));
    }
    let body = json_body(&headers, &body, "cluster_upgrade_req")?;
    let f = fields::parse_object("cluster_upgrade_req", &body, SPECS)?;
    let who = &ctx.who;
    let store = Store::new(&state, &ctx.who);
    let view = store.find_cluster(who, &ident).await?;
    let project = view.cluster.project_id.clone();
    policy::enforce(who, Action::ClusterUpgrade, Some(&project.0))?;
    let ct_ident = f.str("cluster_template").unwrap_or_default();
    let new = store.find_template(who, &ct_ident, false).await?;
    let ng = nodegroups::target(&view, f.str("nodegroup").as_deref())?;
    let current = store
        .template_by_id(view.cluster.cluster_template_id, &project)
        .await?
        .unwrap_or_default();
    // A driver that cannot upgrade answers 400 and leaves the cluster as it is (upstream).
    match crate::coe::template_driver(&current) {
        Some(d) if d.supports_upgrade() => {}
        Some(d) => {
            return Err(ApiError::BadRequest(format!(
                "Upgrading a cluster that uses the {} driver is not supported.",
                d.name()
            )))
        }
        None => {
            return Err(ApiError::bad_request(
                "The cluster's template has no driver that can upgrade it.",
            ))
        }
    }
    let batch = f.int("max_batch_size").unwrap_or(1);
    let now = Timestamp::now();
    let cmd = ShardCommand::UpgradeCluster {
        id: view.cluster.uuid,
        nodegroup: ng.uuid,
        template: new,
        max_batch_size: u32::try_from(batch).unwrap_or(1),
        operation: super::cluster_update::operation(&view.cluster, OpKind::Upgrade, current, now),
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
