//! `GET /v1/mservices` (reference §4.8): the conductor registry kept in the meta group.
use crate::context::Ctx;
use crate::error::ApiError;
use crate::policy::{self, Action};
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use magnum_proto::{ServiceRecord, Timestamp};
use serde::Serialize;
use std::time::Duration;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/mservices", get(list))
        .route("/v1/mservices/", get(list))
}

#[derive(Debug, Serialize)]
pub struct MService {
    pub id: u64,
    pub host: String,
    pub binary: String,
    pub state: &'static str,
    pub report_count: u64,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
pub struct MServiceList {
    pub mservices: Vec<MService>,
}

/// `up` iff the last report is at most `down_time` old.
pub fn render(r: &ServiceRecord, now: Timestamp, down_time: Duration) -> MService {
    let age_us = i128::from(now.0) - i128::from(r.updated_at.0);
    let up = age_us <= down_time.as_micros() as i128;
    MService {
        id: r.id,
        host: r.host.clone(),
        binary: r.binary.clone(),
        state: if up { "up" } else { "down" },
        report_count: r.report_count,
        disabled: false,
        disabled_reason: None,
        created_at: r.created_at.to_magnum(),
        updated_at: r.updated_at.to_magnum(),
    }
}

async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<MServiceList>, ApiError> {
    policy::enforce(&ctx.who, Action::ServiceGetAll, None)?;
    let records = state.backend.services().await?;
    let now = Timestamp::now();
    let down = state.settings.service_down_time;
    Ok(Json(MServiceList {
        mservices: records.iter().map(|r| render(r, now, down)).collect(),
    }))
}
