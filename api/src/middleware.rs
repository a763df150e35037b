//! Request plumbing around the routes:
//! - [`request_context`] (outermost): request id (`x-openstack-request-id: req-<uuid>`) on
//!   every answer, a tracing span per request, Magnum's root routing (a path whose first
//!   segment is not `v1` is served as `/v1/<path>`), and the guarantee that every error leaves
//!   in Magnum's envelope, whoever produced it (axum's own 404/405/413 included).
//! - [`v1_gate`]: for `/v1…`, Keystone authentication (except the public `/v1` document) and
//!   microversion negotiation, and the version headers on every `/v1` answer.
use crate::context::BaseUrl;
use crate::error::{envelope, ApiError, WithoutVersionHeaders};
use crate::state::AppState;
use crate::version;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// Identifies a request in logs and in the `x-openstack-request-id` header.
#[derive(Clone, Debug)]
pub struct RequestIdent(pub String);

/// Served as they are, with no token and no microversion: the root document and the probes
/// (upstream serves `/healthcheck` outside its paste pipeline).
fn outside_v1(path: &str) -> bool {
    use magnum_proto::wire::{HEALTHCHECK_PATH, READY_PATH};
    matches!(path, "/" | HEALTHCHECK_PATH | READY_PATH)
}

/// Pecan's root controller: unknown first segments are routed under `v1`, so bookmark links
/// (`/clusters/<id>`) work.
fn rewrite(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if outside_v1(path) || path == "/v1" || path.starts_with("/v1/") || path.starts_with("/v1.") {
        return None;
    }
    let pq = match uri.query() {
        Some(q) => format!("/v1{path}?{q}"),
        None => format!("/v1{path}"),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    Uri::from_parts(parts).ok()
}

pub async fn request_context(mut req: Request, next: Next) -> Response {
    let rid = format!("req-{}", uuid::Uuid::new_v4());
    if let Some(uri) = rewrite(req.uri()) {
        *req.uri_mut() = uri;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(RequestIdent(rid.clone()));
    let span = tracing::info_span!("request", %method, %path, request_id = %rid);
    async move {
        let started = Instant::now();
        let resp = next.run(req).await;
        let mut resp = ensure_envelope(resp, &method).await;
        if let Ok(v) = HeaderValue::from_str(&rid) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        tracing::info!(
            status = resp.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request done"
        );
        resp
    }
    .instrument(span)
    .await
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// Rewrites a non-JSON error answer (produced by axum itself, not by our handlers) into
/// Magnum's envelope.
async fn ensure_envelope(resp: Response, method: &Method) -> Response {
    let status = resp.status();
    if status.as_u16() < 400 || is_json(&resp) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let mut out = match status {
        StatusCode::NOT_FOUND => ApiError::RouteNotFound.into_response(),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::MethodNotAllowed(method.to_string()).into_response()
        }
        s => {
            let detail = if text.is_empty() {
                s.canonical_reason().unwrap_or("Error").to_string()
            } else {
                text
            };
            envelope(s, &detail)
        }
    };
    // Keep headers such as Allow or the version headers.
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    *out.status_mut() = status;
    out
}

/// Paths keystonemiddleware lets through without a token (`acl_public_routes = /, /v1`).
fn is_public(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    matches!(p, "" | "/v1" | "/v1.json" | "/.json" | "/v1/openapi.json")
}

fn base_url(state: &AppState, req: &Request) -> String {
    if let Some(u) = &state.settings.public_url {
        return u.clone();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub async fn v1_gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let base = base_url(&state, &req);
    req.extensions_mut().insert(BaseUrl(base));
    if outside_v1(req.uri().path()) {
        return next.run(req).await;
    }
    if !is_public(req.uri().path()) {
        let token = req
            .headers()
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let unauthorized = || {
            ApiError::Unauthorized {
                www_authenticate: state.settings.www_authenticate(),
            }
            .into_response()
        };
        let Some(token) = token else {
            return unauthorized();
        };
        match state.auth.authenticate(&token).await {
            Ok(identity) => {
                tracing::debug!(user = %identity.user_id, project = %identity.project_id, "authenticated");
                req.extensions_mut().insert(identity);
            }
            Err(crate::auth::AuthError::InvalidToken) => return unauthorized(),
            Err(crate::auth::AuthError::Unavailable(m)) => {
                return ApiError::Unavailable(format!("Identity service unavailable: {m}"))
                    .into_response()
            }
        }
    }
    let max = state.settings.max_version;
    let version = match version::negotiate(req.headers(), max) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(version);
    let mut resp = next.run(req).await;
    if resp.extensions().get::<WithoutVersionHeaders>().is_none() {
        version::apply_headers(resp.headers_mut(), version, max);
    }
    resp
}

/// 500 in the envelope when a handler panics (never expected; never leaks the panic text).
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("handler panicked");
    envelope(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_routing() {
        let u: Uri = "/clusters/x?limit=1".parse().unwrap();
        assert_eq!(rewrite(&u).unwrap().to_string(), "/v1/clusters/x?limit=1");
        assert!(rewrite(&"/v1/clusters".parse().unwrap()).is_none());
        assert!(rewrite(&"/".parse().unwrap()).is_none());
        assert!(is_public("/v1/"));
        assert!(!is_public("/v1/clusters"));
    }
}
