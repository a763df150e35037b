//! `/v1/baymodels` (reference §4.10): cluster templates under their pre-2016 name. Every
//! request is served by the `/v1/clustertemplates` handler; only the collection key
//! (`baymodels`) and the link URLs differ.
use super::legacy::{self, Names};
use super::templates;
use crate::context::{json_body, Ctx};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub const NAMES: Names = Names {
    collection: ("clustertemplates", "baymodels"),
    fields: &[],
    argname: ("cluster_template", "baymodel"),
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/baymodels", get(list).post(create))
        .route("/v1/baymodels/", get(list).post(create))
        .route("/v1/baymodels/detail", get(detail))
        .route("/v1/baymodels/detail/", get(detail))
        .route(
            "/v1/baymodels/{ident}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/v1/baymodels/{ident}/",
            get(show).patch(update).delete(remove),
        )
}

async fn list(state: State<AppState>, ctx: Ctx, q: Query<Vec<(String, String)>>) -> Response {
    let r = templates::list(state, ctx, q)
        .await
        .map(IntoResponse::into_response);
    legacy::translate(&NAMES, r, |v| NAMES.list(v)).await
}

async fn detail(state: State<AppState>, ctx: Ctx, q: Query<Vec<(String, String)>>) -> Response {
    let r = templates::detail(state, ctx, q)
        .await
        .map(IntoResponse::into_response);
    legacy::translate(&NAMES, r, |v| NAMES.list(v)).await
}

async fn show(state: State<AppState>, ctx: Ctx, ident: Path<String>) -> Response {
    let r = templates::show(state, ctx, ident)
        .await
        .map(IntoResponse::into_response);
    legacy::translate(&NAMES, r, |v| NAMES.resource(v)).await
}

async fn create(state: State<AppState>, ctx: Ctx, headers: HeaderMap, body: Bytes) -> Response {
    let r = match json_body(&headers, &body, "baymodel") {
        Ok(_) => templates::create(state, ctx, headers, body).await,
        Err(e) => Err(e),
    };
    legacy::translate(&NAMES, r, |v| NAMES.resource(v)).await
}

async fn update(
    state: State<AppState>,
    ctx: Ctx,
    ident: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = templates::update(state, ctx, ident, headers, body)
        .await
        .map(IntoResponse::into_response);
    legacy::translate(&NAMES, r, |v| NAMES.resource(v)).await
}

async fn remove(state: State<AppState>, ctx: Ctx, ident: Path<String>) -> Response {
    let r = templates::remove(state, ctx, ident)
        .await
        .map(IntoResponse::into_response);
    legacy::translate(&NAMES, r, |v| v).await
}
