//! The router: one module per resource, assembled here with the request plumbing.
pub mod baymodels;
pub mod bays;
pub mod certificates;
pub mod cluster_resize;
pub mod cluster_update;
pub mod cluster_upgrade;
pub mod clusters;
pub mod credentials;
pub mod federations;
pub mod health;
pub mod legacy;
pub mod mservices;
pub mod nodegroup_ops;
pub mod nodegroups;
pub mod quotas;
pub mod root;
pub mod stats;
pub mod templates;

use crate::error::ApiError;
use crate::middleware::{panic_response, request_context, v1_gate};
use crate::state::AppState;
use axum::http::Method;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

async fn route_not_found(method: Method) -> ApiError {
    tracing::debug!(%method, "no route");
    ApiError::RouteNotFound
}

/// The whole API as an axum router (tests build it with fake seams).
pub fn router(state: AppState) -> Router {
    let inner = Router::new()
        .route("/", get(root::root))
        .route(
            magnum_proto::wire::HEALTHCHECK_PATH,
            get(health::healthcheck),
        )
        .route(magnum_proto::wire::READY_PATH, get(health::ready))
        .route("/v1", get(root::v1))
        .route("/v1/", get(root::v1))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .merge(templates::routes())
        .merge(clusters::routes())
        .merge(certificates::routes())
        .merge(credentials::routes())
        .merge(mservices::routes())
        .merge(nodegroups::routes())
        .merge(quotas::routes())
        .merge(stats::routes())
        .merge(federations::routes())
        .merge(bays::routes())
        .merge(baymodels::routes())
        .fallback(route_not_found)
        // The one bound on request bodies; the conductors take what this lets through.
        .layer(axum::extract::DefaultBodyLimit::max(
            magnum_proto::wire::MAX_REQUEST_BODY,
        ))
        .layer(from_fn_with_state(state.clone(), v1_gate))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state);
    // Outside the routing so that root-routing rewrites happen before a route is chosen.
    let svc = ServiceBuilder::new()
        .layer(from_fn(request_context))
        .service(inner);
    Router::new().fallback_service(svc)
}
