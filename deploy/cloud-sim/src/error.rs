//! The one error type of the simulator. API errors render in the envelope of the service that
//! raised them (Keystone, Heat, Nova, Neutron, Glance, or the admin API).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything that can go wrong in cloud-sim: start-up failures and per-request API errors.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The state file could not be read, parsed or written.
    #[error("state file {path}: {message}")]
    StateFile { path: PathBuf, message: String },
    /// A [`crate::SimConfig`] value cannot be used (refused at start).
    #[error("configuration: {0}")]
    Config(String),
    /// The external Keystone could not validate a token (keystonemiddleware's 503).
    #[error("identity unavailable: {message}")]
    IdentityUnavailable { message: String },
    /// Missing or invalid token (keystonemiddleware's or Keystone's 401).
    #[error("unauthorized: {message}")]
    Unauthorized {
        identity_uri: String,
        message: String,
    },
    /// A Keystone error (`{"error":{"code","title","message"}}`).
    #[error("keystone {status}: {message}")]
    Keystone { status: StatusCode, message: String },
    /// A Heat error (`{"code","title","explanation","error":{"type","message","traceback"}}`).
    #[error("heat {status} {kind}: {message}")]
    Heat {
        status: StatusCode,
        kind: String,
        message: String,
    },
    /// A Nova error (`{"itemNotFound":{"code","message"}}` and friends).
    #[error("nova {status}: {message}")]
    Nova { status: StatusCode, message: String },
    /// A Neutron error (`{"NeutronError":{"type","message","detail"}}`).
    #[error("neutron {status} {kind}: {message}")]
    Neutron {
        status: StatusCode,
        kind: String,
        message: String,
    },
    /// A Glance error (plain text body, like glance-api).
    #[error("glance {status}: {message}")]
    Glance { status: StatusCode, message: String },
    /// An error of the simulator's own admin API (`{"error": "..."}`).
    #[error("admin {status}: {message}")]
    Admin { status: StatusCode, message: String },
}

impl SimError {
    pub(crate) fn heat(status: u16, kind: &str, message: impl Into<String>) -> Self {
        SimError::Heat {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            kind: kind.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn heat_bad(message: impl Into<String>) -> Self {
        Self::heat(400, "StackValidationFailed", message)
    }

    pub(crate) fn keystone(status: u16, message: impl Into<String>) -> Self {
        SimError::Keystone {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
        }
    }

    pub(crate) fn admin(status: u16, message: impl Into<String>) -> Self {
        SimError::Admin {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
        }
    }

    /// The error a service mounted at `path` would answer with `status` (used by injected
    /// `api_error` / `lost_response` faults).
    pub(crate) fn for_path(
        path: &str,
        status: StatusCode,
        message: &str,
        identity_uri: &str,
    ) -> Self {
        let message = message.to_string();
        if status == StatusCode::UNAUTHORIZED {
            return SimError::Unauthorized {
                identity_uri: identity_uri.to_string(),
                message,
            };
        }
        if path.starts_with("/identity") {
            SimError::Keystone { status, message }
        } else if path.starts_with("/heat-api") {
            SimError::Heat {
                status,
                kind: heat_kind_for(status).to_string(),
                message,
            }
        } else if path.starts_with("/compute") {
            SimError::Nova { status, message }
        } else if path.starts_with("/networking") {
            SimError::Neutron {
                status,
                kind: "HTTPError".to_string(),
                message,
            }
        } else if path.starts_with("/image") {
            SimError::Glance { status, message }
        } else {
            SimError::Admin { status, message }
        }
    }
}

fn heat_kind_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "HTTPBadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        503 => "HTTPServiceUnavailable",
        _ => "HTTPInternalServerError",
    }
}

/// webob's title for a status (Heat and Keystone use these).
pub(crate) fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// webob's explanation text for a status (part of Heat's error envelope).
fn explanation(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        401 => "This server could not verify that you are authorized to access the document you requested.",
        403 => "Access was denied to this resource.",
        404 => "The resource could not be found.",
        405 => "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        409 => "There was a conflict when trying to complete your request.",
        503 => "The server is currently unavailable. Please try again at a later time.",
        _ => "The server has either erred or is incapable of performing the requested operation.",
    }
}

fn nova_key(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        403 => "forbidden",
        404 => "itemNotFound",
        409 => "conflictingRequest",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A version discovery document listing one `CURRENT` version `id` at `href` (Heat, Glance,
/// Neutron).
pub(crate) fn single_version(status: StatusCode, id: &str, href: String) -> Response {
    json_response(
        status,
        &json!({"versions": [{"id": id, "status": "CURRENT", "links": [{"rel": "self", "href": href}]}]}),
    )
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        match self {
            SimError::Bind { .. } | SimError::StateFile { .. } | SimError::Config(_) => {
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                json_response(status, &json!({"error": self.to_string()}))
            }
            SimError::Unauthorized {
                identity_uri,
                message,
            } => {
                let status = StatusCode::UNAUTHORIZED;
                let mut resp = json_response(
                    status,
                    &json!({"error": {"code": 401, "title": "Unauthorized", "message": message}}),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{identity_uri}\"")) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                resp
            }
            SimError::IdentityUnavailable { message } => {
                tracing::warn!(%message, "token validation failed");
                let status = StatusCode::SERVICE_UNAVAILABLE;
                json_response(
                    status,
                    &json!({"error": {"code": 503, "title": title(status),
                        "message": "The Keystone service is temporarily unavailable."}}),
                )
            }
            SimError::Keystone { status, message } => json_response(
                status,
                &json!({"error": {"code": status.as_u16(), "title": title(status), "message": message}}),
            ),
            SimError::Heat {
                status,
                kind,
                message,
            } => json_response(
                status,
                &json!({
                    "code": status.as_u16(),
                    "title": title(status),
                    "explanation": explanation(status),
                    "error": {"type": kind, "message": message, "traceback": null},
                }),
            ),
            SimError::Nova { status, message } => json_response(
                status,
                &json!({ nova_key(status): {"code": status.as_u16(), "message": message} }),
            ),
            SimError::Neutron {
                status,
                kind,
                message,
            } => json_response(
                status,
                &json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}),
            ),
            SimError::Glance { status, message } => {
                let body = format!(
                    "{} {}\n\n{}\n\n   ",
                    status.as_u16(),
                    title(status),
                    message
                );
                let mut resp = (status, body).into_response();
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=UTF-8"),
                );
                resp
            }
            SimError::Admin { status, message } => {
                json_response(status, &json!({"error": message}))
            }
        }
    }
}
