//! The crate's one error type, and the one place where errors become HTTP responses.
//!
//! Magnum answers every failure of `/v1` with `ParsableErrorMiddleware`'s envelope
//! `{"errors":[{"request_id":"","code":…,"status":…,"title":…,"detail":…,"links":[]}]}`,
//! except the two bodies that come from outside its Pecan app: keystonemiddleware's 401 and
//! the microversion 406. Everything here renders through [`ApiError::into_response`] or
//! [`envelope`], so the wire format cannot drift between handlers.
use crate::version::{self, ApiVersion};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: bad input (WSME type errors, InvalidParameterValue, PatchError, NotSupported...).
    #[error("{0}")]
    BadRequest(String),
    /// 401 with keystonemiddleware's body and `WWW-Authenticate`.
    #[error("The request you have made requires authentication.")]
    Unauthorized { www_authenticate: String },
    /// 403: policy, publish rights, quota.
    #[error("{0}")]
    Forbidden(String),
    /// 404 for a resource that does not exist or is not visible to the caller.
    #[error("{0}")]
    NotFound(String),
    /// 404 for a path no route serves (Pecan's own 404: empty `code`).
    #[error("The resource could not be found.")]
    RouteNotFound,
    /// 405 (Pecan's own: empty `code`).
    #[error("The method {0} is not allowed for this resource.")]
    MethodNotAllowed(String),
    /// 406 for a malformed `OpenStack-API-Version` header (plain webob 406: empty `code`).
    #[error("{0}")]
    NotAcceptable(String),
    /// 406 for a well-formed but unsupported microversion; carries the version headers.
    #[error("{description}")]
    VersionUnsupported {
        description: String,
        requested: ApiVersion,
        max: ApiVersion,
    },
    /// 409: ambiguous names, duplicates.
    #[error("{0}")]
    Conflict(String),
    /// 415: a body whose media type WSME would not parse.
    #[error("Unknown mimetype: {0}")]
    UnsupportedMediaType(String),
    /// 503: conductors or Keystone or a look-up service unreachable within the deadline.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an answer we cannot interpret.
    #[error("{0}")]
    Internal(String),
    /// Start-up: the listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// Start-up: the configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable(_) | Self::VersionUnsupported { .. } => StatusCode::NOT_ACCEPTABLE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) | Self::Bind { .. } | Self::Config(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// `code` of the envelope: WSME faults say `client`/`server`; errors raised by webob/Pecan
    /// outside WSME (unknown route, 405, plain 406) carry no fault code.
    fn fault_code(&self) -> &'static str {
        match self {
            Self::RouteNotFound | Self::MethodNotAllowed(_) | Self::NotAcceptable(_) => "",
            e if e.status().is_server_error() => "server",
            _ => "client",
        }
    }
}

#[derive(Serialize)]
struct ErrorItem<'a> {
    request_id: &'a str,
    code: &'a str,
    status: u16,
    title: &'a str,
    detail: &'a str,
    links: [(); 0],
}

#[derive(Serialize)]
struct Envelope<'a> {
    errors: [ErrorItem<'a>; 1],
}

/// Magnum's title: the fault string up to its first '.'.
pub fn title_of(detail: &str) -> &str {
    detail.split('.').next().unwrap_or(detail)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Magnum's error envelope with an explicit fault code.
pub fn envelope_with_code(status: StatusCode, code: &str, detail: &str) -> Response {
    let env = Envelope {
        errors: [ErrorItem {
            request_id: "",
            code,
            status: status.as_u16(),
            title: title_of(detail),
            detail,
            links: [],
        }],
    };
    let body = serde_json::to_vec(&env).unwrap_or_default();
    json_response(status, body)
}

/// Magnum's error envelope, `code` derived from the status class.
pub fn envelope(status: StatusCode, detail: &str) -> Response {
    let code = if status.is_server_error() {
        "server"
    } else {
        "client"
    };
    envelope_with_code(status, code, detail)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request rejected");
        }
        let mut resp = match &self {
            Self::Unauthorized { www_authenticate } => {
                let body = serde_json::json!({"error": {
                    "code": 401,
                    "title": "Unauthorized",
                    "message": "The request you have made requires authentication.",
                }});
                let mut resp = json_response(status, body.to_string().into_bytes());
                if let Ok(v) = HeaderValue::from_str(www_authenticate) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                resp
            }
            Self::VersionUnsupported {
                description,
                requested,
                max,
            } => {
                // Built by HTTPNotAcceptableAPIVersion; ParsableErrorMiddleware leaves items that
                // carry `min_version` untouched, hence the different shape.
                let body = serde_json::json!({"errors": [{
                    "code": "magnum.microversion-unsupported",
                    "title": "Requested microversion is unsupported",
                    "links": [{"rel": "help",
                               "href": "http://docs.openstack.org/api-guide/compute/microversions.html"}],
                    "max_version": max.to_string(),
                    "min_version": version::MIN_VERSION.to_string(),
                    "description": description,
                }]});
                let mut resp = json_response(status, body.to_string().into_bytes());
                version::apply_headers(resp.headers_mut(), *requested, *max);
                resp
            }
            Self::NotAcceptable(detail) => {
                // Plain webob 406: title is the status phrase, detail the explanation.
                let env = Envelope {
                    errors: [ErrorItem {
                        request_id: "",
                        code: "",
                        status: 406,
                        title: "Not Acceptable",
                        detail,
                        links: [],
                    }],
                };
                json_response(status, serde_json::to_vec(&env).unwrap_or_default())
            }
            other => envelope_with_code(status, other.fault_code(), &other.to_string()),
        };
        // Every 503 is transient (conductors electing, a burst being shed): say when to retry.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(magnum_net::shed::RETRY_AFTER_SECS),
            );
        }
        // Pecan answers these before the versioned controller runs: no version headers.
        if matches!(self, Self::RouteNotFound | Self::NotAcceptable(_)) {
            resp.extensions_mut().insert(WithoutVersionHeaders);
        }
        resp
    }
}

/// Marks an answer that must leave without the microversion headers.
#[derive(Clone, Copy, Debug)]
pub struct WithoutVersionHeaders;

impl From<crate::backend::BackendError> for ApiError {
    fn from(e: crate::backend::BackendError) -> Self {
        match e {
            crate::backend::BackendError::Unavailable(m) => {
                // Conductor addresses are internal: log them, tell the client to retry.
                tracing::warn!(error = %m, "conductors unavailable");
                Self::Unavailable("Conductors are unavailable. Please retry later.".into())
            }
            crate::backend::BackendError::Overloaded(m) => {
                tracing::warn!(error = %m, "a conductor shed the request");
                Self::Unavailable("The service is overloaded. Please retry later.".into())
            }
            crate::backend::BackendError::Rejected(m) => Self::Internal(m),
            // A feature of a release the deployment has not finalized: the user's 409.
            crate::backend::BackendError::NotYetActive(m) => Self::Conflict(m),
            // The conductor's own check of the user refused what the API node let through
            // (e.g. a token revoked since the API node cached it): the user's 403.
            crate::backend::BackendError::UserRefused(m) => Self::Forbidden(m),
        }
    }
}

impl From<magnum_proto::CommandError> for ApiError {
    fn from(e: magnum_proto::CommandError) -> Self {
        use magnum_proto::CommandError as C;
        match e {
            C::NotFound(m) => Self::NotFound(m),
            C::Conflict(m) => Self::Conflict(m),
            C::BadRequest(m) => Self::BadRequest(m),
            C::Forbidden(m) => Self::Forbidden(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_text_before_first_dot() {
        assert_eq!(
            title_of("Cluster k8s could not be found."),
            "Cluster k8s could not be found"
        );
        assert_eq!(title_of("no dot"), "no dot");
        assert_eq!(title_of("a.b.c"), "a");
    }
}
