//! Nodegroup create, update and delete (reference §4.3, §6.3, ≥ 1.9). Each is one command to
//! the cluster's shard, which re-checks the rules and starts the nodegroup's operation; the
//! answer is given after the commit.
use super::nodegroups::{cluster_of, find, full, gate, NodeGroupFull};
use crate::context::{json_body, Ctx};
use crate::error::ApiError;
use crate::patch::{self, PatchRules};
use crate::policy::{self, Action};
use crate::state::AppState;
use crate::store::Store;
use crate::validate::fields::{self, field, mandatory, Kind, Spec};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use magnum_proto::{
    Cluster, ClusterView, CommandOk, Labels, NodeGroup, NodeGroupId, OpId, OpKind,
    OperationRequest, ShardCommand, Taint, Timestamp,
};
use serde_json::Value;

pub const SPECS: &[Spec] = &[
    mandatory("name", Kind::Str { min: 1, max: 255 }),
    field(
        "docker_volume_size",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    ),
    field("labels", Kind::Labels),
    field("flavor_id", Kind::Text),
    field("image_id", Kind::Text),
    field(
        "node_count",
        Kind::Int {
            min: Some(0),
            max: Some(i32::MAX as i64),
        },
    ),
    field("role", Kind::Text),
    field(
        "min_node_count",
        Kind::Int {
            min: Some(0),
            max: Some(i32::MAX as i64),
        },
    ),
    field(
        "max_node_count",
        Kind::Int {
            min: Some(0),
            max: Some(i32::MAX as i64),
        },
    ),
    field("merge_labels", Kind::Bool),
    field("id", Kind::ReadOnly),
    field("uuid", Kind::ReadOnly),
    field("cluster_id", Kind::ReadOnly),
    field("project_id", Kind::ReadOnly),
    field("node_addresses", Kind::ReadOnly),
    field("is_default", Kind::ReadOnly),
    field("stack_id", Kind::ReadOnly),
    field("status", Kind::ReadOnly),
    field("status_reason", Kind::ReadOnly),
    field("version", Kind::ReadOnly),
];

/// Everything but the autoscaler bounds is internal to a nodegroup PATCH.
const PATCH_RULES: PatchRules = PatchRules {
    internal: &[
        "/name",
        "/cluster_id",
        "/docker_volume_size",
        "/labels",
        "/flavor_id",
        "/image_id",
        "/node_addresses",
        "/node_count",
        "/role",
        "/is_default",
        "/stack_id",
        "/status",
        "/status_reason",
        "/version",
        "/merge_labels",
        "/node_labels",
        "/node_taints",
    ],
    non_removable: &[],
};

const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// How long a nodegroup stack create or delete may run before the conductor fails it.
const NODEGROUP_DEADLINE_SECS: i64 = 3600;

fn invalid_node_field(field: &str, why: &str) -> ApiError {
    ApiError::Conflict(format!("{field} for nodegroup is invalid ({why})."))
}

/// `node_labels`: a dict of strings (1.14).
fn node_labels(v: &Value) -> Result<Labels, ApiError> {
    let Value::Object(m) = v else {
        return Err(invalid_node_field("node_labels", "expected a dict"));
    };
    let labels = m
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) if !k.is_empty() => Ok((k.clone(), s.clone())),
            _ => Err(invalid_node_field(
                "node_labels",
                &format!("label {k} must have a string value"),
            )),
        })
        .collect::<Result<Labels, ApiError>>()?;
    fields::check_labels_size("node_labels", &labels)?;
    Ok(labels)
}

/// `node_taints`: `[{key, value?, effect}]` (1.14).
fn node_taints(v: &Value) -> Result<Vec<Taint>, ApiError> {
    let Value::Array(items) = v else {
        return Err(invalid_node_field("node_taints", "expected a list"));
    };
    items
        .iter()
        .map(|t| {
            let Value::Object(o) = t else {
                return Err(invalid_node_field("node_taints", "each taint is a dict"));
            };
            if let Some(k) = o
                .keys()
                .find(|k| !["key", "value", "effect"].contains(&k.as_str()))
            {
                return Err(invalid_node_field(
                    "node_taints",
                    &format!("unknown key {k}"),
                ));
            }
            let key = match o.get("key") {
                Some(Value::String(k)) if !k.is_empty() => k.clone(),
                _ => return Err(invalid_node_field("node_taints", "a taint needs a key")),
            };
            let value = match o.get("value") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(invalid_node_field("node_taints", "value must be a string")),
            };
            let effect = match o.get("effect") {
                Some(Value::String(e)) if TAINT_EFFECTS.contains(&e.as_str()) => e.clone(),
                _ => {
                    return Err(invalid_node_field(
                        "node_taints",
                        "effect must be one of NoSchedule, PreferNoSchedule, NoExecute",
                    ))
                }
            };
            Ok(Taint { key, value, effect })
        })
        .collect()
}

/// What the user asked of a nodegroup's create or delete (`kind`); the conductor builds the
/// operation.
fn operation(
    c: &Cluster,
    ng: &NodeGroup,
    kind: OpKind,
    template: magnum_proto::ClusterTemplate,
    now: Timestamp,
) -> OperationRequest {
    OperationRequest {
        id: OpId::new_v4(),
        started_at: now,
        deadline: now.plus_secs(NODEGROUP_DEADLINE_SECS),
        template,
        trustor: None,
        legacy: None,
    }
    .readable_by_v1(
        kind,
        c.uuid,
        magnum_drivers::nodegroup_stack_name(&c.name, &ng.name, ng.uuid.0),
    )
}

fn accepted(
    view: &ClusterView,
    ng: NodeGroupId,
    base: &str,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let n = view
        .nodegroups
        .iter()
        .find(|n| n.uuid == ng)
        .ok_or_else(|| ApiError::Internal("the committed nodegroup is missing".into()))?;
    let body: NodeGroupFull = full(n, &view.cluster.labels, base, ctx.version.at_least(1, 14));
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

fn committed_view(ok: CommandOk) -> Result<ClusterView, ApiError> {
    match ok {
        CommandOk::Cluster(v) => Ok(*v),
        other => Err(ApiError::Internal(format!("unexpected answer {other:?}"))),
    }
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(cluster): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    gate(&ctx, "post")?;
    let mut body = json_body(&headers, &body, "nodegroup")?;
    // 1.14 fields: taken out before the generic parse; below 1.14 they stay unknown.
    let (mut labels_14, mut taints_14) = (Labels::new(), Vec::new());
    if ctx.version.at_least(1, 14) {
        if let Some(o) = body.as_object_mut() {
            if let Some(v) = o.remove("node_labels").filter(|v| !v.is_null()) {
                labels_14 = node_labels(&v)?;
            }
            if let Some(v) = o.remove("node_taints").filter(|v| !v.is_null()) {
                taints_14 = node_taints(&v)?;
            }
        }
    }
    let f = fields::parse_object("nodegroup", &body, SPECS)?;
    if let Some(n) = f.int("node_count") {
        fields::check_count("node_count", n, state.settings.validation.max_node_count)?;
    }
    let who = &ctx.who;
    let store = Store::new(&state, &ctx.who);
    let view = cluster_of(&state, &ctx, &cluster).await?;
    let project = view.cluster.project_id.clone();
    policy::enforce(who, Action::NodegroupCreate, Some(&project.0))?;
    let role = f.str("role").unwrap_or_else(|| "worker".into());
    if role == "master" {
        return Err(ApiError::bad_request(
            "Creating master nodegroups is currently not supported.",
        ));
    }
    let template = store
        .template_by_id(view.cluster.cluster_template_id, &project)
        .await?
        .unwrap_or_default();
    // Only drivers with nodegroup stacks take one; others answer 400 and nothing changes
    // (upstream accepts and fails the cluster later).
    if let Some(d) = crate::coe::template_driver(&template) {
        if !d.supports_nodegroups() {
            return Err(ApiError::BadRequest(format!(
                "Creating nodegroups is not supported by the {} driver.",
                d.name()
            )));
        }
    }
    let c = &view.cluster;
    let labels = match f.map("labels") {
        Some(given) if f.bool("merge_labels").unwrap_or(false) => {
            let mut l = c.labels.clone();
            l.extend(given);
            l
        }
        Some(given) if !given.is_empty() => given,
        _ => c.labels.clone(),
    };
    let count = |k: &str| f.int(k).and_then(|n| u32::try_from(n).ok());
    let now = Timestamp::now();
    let ng = NodeGroup {
        id: 0,
        uuid: NodeGroupId::new_v4(),
        name: f.str("name").unwrap_or_default(),
        cluster_id: c.uuid,
        project_id: project.clone(),
        docker_volume_size: f.int("docker_volume_size").or(c.docker_volume_size),
        labels,
        flavor_id: f
            .str("flavor_id")
            .or_else(|| c.flavor_id.clone())
            .or_else(|| template.flavor_id.clone()),
        image_id: f.str("image_id").or_else(|| template.image_id.clone()),
        node_addresses: Vec::new(),
        node_count: count("node_count").unwrap_or(1),
        role,
        min_node_count: count("min_node_count").unwrap_or(0),
        max_node_count: count("max_node_count"),
        is_default: false,
        stack_id: None,
        status: None,
        status_reason: None,
        version: None,
        created_at: now,
        updated_at: None,
        node_labels: labels_14,
        node_taints: taints_14,
    };
    let id = ng.uuid;
    let cmd = ShardCommand::CreateNodeGroup {
        operation: operation(&view.cluster, &ng, OpKind::NodeGroupCreate, template, now),
        nodegroup: ng,
        at: now,
    };
    let shard = store.shard_of(&project).await?;
    let committed = committed_view(store.submit(shard, cmd).await?)?;
    accepted(&committed, id, &ctx.base, &ctx)
}

pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((cluster, ng)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    gate(&ctx, "patch")?;
    let body = json_body(&headers, &body, "patch")?;
    let ops = patch::parse(&body, &PATCH_RULES)?;
    let who = &ctx.who;
    let store = Store::new(&state, &ctx.who);
    let view = cluster_of(&state, &ctx, &cluster).await?;
    let project = view.cluster.project_id.clone();
    policy::enforce(who, Action::NodegroupUpdate, Some(&project.0))?;
    let n = find(&view, &ng)?;
    let old = serde_json::to_value(full(n, &view.cluster.labels, "", false))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let new = patch::apply(&old, &ops)?;
    let bound = |k: &'static str| -> Result<Option<u32>, ApiError> {
        match &new[k] {
            Value::Null => Ok(None),
            v => {
                let spec = field(
                    k,
                    Kind::Int {
                        min: Some(0),
                        max: Some(i32::MAX as i64),
                    },
                );
                match fields::convert(&spec, v)? {
                    fields::Val::Int(i) => Ok(u32::try_from(i).ok()),
                    _ => Err(fields::invalid(k, v, "Value should be integer")),
                }
            }
        }
    };
    let cmd = ShardCommand::UpdateNodeGroup {
        cluster: view.cluster.uuid,
        nodegroup: n.uuid,
        // `remove` of the minimum puts the default back.
        min_node_count: bound("min_node_count")?.unwrap_or(0),
        max_node_count: bound("max_node_count")?,
        at: Timestamp::now(),
    };
    let id = n.uuid;
    let shard = store.shard_of(&project).await?;
    let committed = committed_view(store.submit(shard, cmd).await?)?;
    accepted(&committed, id, &ctx.base, &ctx)
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((cluster, ng)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    gate(&ctx, "delete")?;
    let who = &ctx.who;
    let store = Store::new(&state, &ctx.who);
    let view = cluster_of(&state, &ctx, &cluster).await?;
    let project = view.cluster.project_id.clone();
    policy::enforce(who, Action::NodegroupDelete, Some(&project.0))?;
    let n = find(&view, &ng)?;
    if n.is_default {
        return Err(ApiError::bad_request(
            "Deleting a default nodegroup is not supported.",
        ));
    }
    let now = Timestamp::now();
    let template = store
        .template_by_id(view.cluster.cluster_template_id, &project)
        .await?
        .unwrap_or_default();
    let cmd = ShardCommand::DeleteNodeGroup {
        cluster: view.cluster.uuid,
        nodegroup: n.uuid,
        operation: operation(&view.cluster, n, OpKind::NodeGroupDelete, template, now),
        at: now,
    };
    let shard = store.shard_of(&project).await?;
    store.submit(shard, cmd).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
