//! `GET /v1/stats` (reference §4.7): cluster and node counts, per project or (admins) overall.
use crate::context::Ctx;
use crate::error::ApiError;
use crate::policy::{self, Action};
use crate::state::AppState;
use crate::store::Store;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use magnum_proto::{ProjectId, QueryResult, ShardQuery};
use serde::Serialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/stats", get(stats))
        .route("/v1/stats/", get(stats))
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub clusters: u64,
    pub nodes: u64,
}

fn add(total: &mut Stats, r: QueryResult) -> Result<(), ApiError> {
    match r {
        QueryResult::Stats { clusters, nodes } => {
            total.clusters += clusters;
            total.nodes += nodes;
            Ok(())
        }
        other => Err(ApiError::Internal(format!(
            "conductor answered a stats query with {other:?}"
        ))),
    }
}

async fn stats(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Stats>, ApiError> {
    let param = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let kind = param("type").unwrap_or_else(|| "cluster".into());
    if !kind.eq_ignore_ascii_case("cluster") {
        return Err(ApiError::BadRequest(format!(
            "Invalid stats type: {kind}. Acceptable value is: cluster"
        )));
    }
    let who = &ctx.who;
    let project = match param("project_id") {
        Some(p) if !who.is_admin() && p != who.project_id => {
            return Err(ApiError::Forbidden(format!(
                "Policy doesn't allow {} to be performed.",
                Action::StatsGetAll.name()
            )))
        }
        Some(p) => Some(ProjectId(p)),
        None if who.is_admin() => None,
        None => Some(who.project()),
    };
    policy::enforce(
        who,
        Action::StatsGetAll,
        project.as_ref().map(|p| p.0.as_str()),
    )?;
    let store = Store::new(&state, &ctx.who);
    let q = ShardQuery::Stats {
        project: project.clone(),
    };
    let mut total = Stats::default();
    match &project {
        Some(p) => add(&mut total, store.query(store.shard_of(p).await?, &q).await?)?,
        None => {
            for r in store.query_all(&q).await? {
                add(&mut total, r)?;
            }
        }
    }
    Ok(Json(total))
}
