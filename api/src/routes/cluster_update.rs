//! `PATCH /v1/clusters/{ident}[?rollback=bool]` (reference §4.2, §6.6): only the default
//! worker's `node_count` and the health fields may change. A new count starts an update
//! operation in the cluster's shard; health fields are saved directly.
use crate::context::{json_body, Ctx};
use crate::error::ApiError;
use crate::patch::{self, PatchRules};
use crate::policy::{self, Action};
use crate::render;
use crate::state::AppState;
use crate::store::Store;
use crate::validate::fields::{self, Kind};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use magnum_proto::{Cluster, OpId, OpKind, OperationRequest, ShardCommand, Timestamp};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// `ClusterPatchType.internal_attrs()`.
pub const PATCH_RULES: PatchRules = PatchRules {
    internal: &[
        "/api_address",
        "/node_addresses",
        "/master_addresses",
        "/stack_id",
        "/ca_cert_ref",
        "/magnum_cert_ref",
        "/trust_id",
        "/trustee_user_name",
        "/trustee_password",
        "/trustee_user_id",
        "/etcd_ca_cert_ref",
        "/front_proxy_ca_cert_ref",
    ],
    non_removable: &[],
};

const ALLOWED: [&str; 3] = ["node_count", "health_status", "health_status_reason"];

/// How long an update may run before the conductor fails it (Heat has no update timeout of
/// Magnum's either).
const UPDATE_DEADLINE_SECS: i64 = 3600;

pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = &ctx.who;
    // `?rollback` exists from 1.3 on; older requests ignore it.
    let rollback = match pairs.iter().find(|(k, _)| k == "rollback") {
        Some((_, v)) if ctx.version.at_least(1, 3) => fields::boolean(&json!(v))?,
        _ => false,
    };
    let body = json_body(&headers, &body, "patch")?;
    let ops = patch::parse(&body, &PATCH_RULES)?;
    let store = Store::new(&state, &ctx.who);
    let view = store.find_cluster(who, &ident).await?;
    let project = view.cluster.project_id.clone();
    if who.is_admin() {
        policy::enforce(who, Action::ClusterUpdateAllProjects, None)?;
    }
    policy::enforce(who, Action::ClusterUpdate, Some(&project.0))?;
    policy::enforce(who, Action::ClusterUpdateHealthStatus, Some(&project.0))?;
    let template = store
        .template_by_id(view.cluster.cluster_template_id, &project)
        .await?
        .unwrap_or_default();
    let old = serde_json::to_value(render::cluster_full(&view, &template.labels, "", false))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let new = patch::apply(&old, &ops)?;
    let delta: BTreeSet<String> = changed(&old, &new);
    let bad: Vec<&str> = delta
        .iter()
        .map(String::as_str)
        .filter(|k| !ALLOWED.contains(k))
        .collect();
    if !bad.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "cannot change cluster property(ies) {}.",
            bad.join(", ")
        )));
    }
    let shard = store.shard_of(&project).await?;
    let now = Timestamp::now();
    if delta.contains("health_status") || delta.contains("health_status_reason") {
        let cmd = ShardCommand::SetHealth {
            id: view.cluster.uuid,
            health_status: new["health_status"].as_str().map(str::to_string),
            health_status_reason: health_reason(&new["health_status_reason"])?,
            at: now,
        };
        store.submit(shard, cmd).await?;
    }
    if delta.contains("node_count") {
        let max = state.settings.validation.max_node_count;
        let count = node_count(&ctx, &new["node_count"], max)?;
        let cmd = ShardCommand::UpdateCluster {
            id: view.cluster.uuid,
            node_count: count,
            rollback,
            operation: operation(&view.cluster, OpKind::Update, template, now),
            at: now,
        };
        store.submit(shard, cmd).await?;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"uuid": view.cluster.uuid.to_string()})),
    )
        .into_response())
}

/// Top-level attributes whose value the patch changed.
fn changed(old: &Value, new: &Value) -> BTreeSet<String> {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return BTreeSet::new();
    };
    o.keys()
        .chain(n.keys())
        .filter(|k| o.get(*k).unwrap_or(&Value::Null) != n.get(*k).unwrap_or(&Value::Null))
        .cloned()
        .collect()
}

fn node_count(ctx: &Ctx, v: &Value, max: i64) -> Result<u32, ApiError> {
    let spec = fields::field(
        "node_count",
        Kind::Int {
            min: Some(0),
            max: Some(i64::from(i32::MAX)),
        },
    );
    let n = match fields::convert(&spec, v)? {
        fields::Val::Int(n) => n,
        _ => return Err(fields::invalid("node_count", v, "Mandatory field missing.")),
    };
    fields::check_count("node_count", n, max)?;
    if n == 0 && !ctx.version.at_least(1, 10) {
        return Err(ApiError::bad_request(
            "Resizing a nodegroup to zero is not supported in the provided microversion.",
        ));
    }
    u32::try_from(n).map_err(|_| fields::invalid("node_count", v, "out of range"))
}

fn health_reason(
    v: &Value,
) -> Result<Option<std::collections::BTreeMap<String, String>>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(
            m.iter()
                .map(|(k, v)| (k.clone(), fields::label_string(v).unwrap_or_default()))
                .collect(),
        )),
        other => Err(fields::invalid(
            "health_status_reason",
            other,
            "Value should be a dict.",
        )),
    }
}

/// What the user asked of an operation `kind` that updates `cluster`'s stack (update, resize,
/// upgrade, rotations); the conductor builds the operation from it.
pub(crate) fn operation(
    cluster: &Cluster,
    kind: OpKind,
    template: magnum_proto::ClusterTemplate,
    now: Timestamp,
) -> OperationRequest {
    OperationRequest {
        id: OpId::new_v4(),
        started_at: now,
        deadline: now.plus_secs(UPDATE_DEADLINE_SECS),
        template,
        trustor: None,
        legacy: None,
    }
    .readable_by_v1(
        kind,
        cluster.uuid,
        magnum_drivers::stack_name(&cluster.name, cluster.uuid.0),
    )
}
