//! Per-request context handed to handlers, and request-body parsing.
use crate::auth::Identity;
use crate::error::ApiError;
use crate::version::ApiVersion;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde_json::Value;

/// Base URL for links (`http://host:port`, no trailing slash).
#[derive(Clone, Debug)]
pub struct BaseUrl(pub String);

/// Everything a `/v1` handler needs about its caller.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub who: Identity,
    pub version: ApiVersion,
    pub base: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let missing = || ApiError::Internal("request context missing".into());
        Ok(Ctx {
            who: parts
                .extensions
                .get::<Identity>()
                .cloned()
                .ok_or_else(missing)?,
            version: *parts.extensions.get::<ApiVersion>().ok_or_else(missing)?,
            base: parts
                .extensions
                .get::<BaseUrl>()
                .map(|b| b.0.clone())
                .ok_or_else(missing)?,
        })
    }
}

/// JSON media types WSME parses.
const JSON_TYPES: [&str; 3] = [
    "application/json",
    "text/javascript",
    "application/javascript",
];

/// The JSON body of a request, checked the way WSME's `args_from_body` does: an empty body is
/// a missing argument, a body in another media type is 415, bad JSON is 400.
pub fn json_body(headers: &HeaderMap, body: &Bytes, argname: &str) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(format!(
            "Missing argument: \"{argname}\""
        )));
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        // No Content-Type at all is read as JSON: curl and friends often omit it.
        if !JSON_TYPES.contains(&mime.as_str()) {
            return Err(ApiError::UnsupportedMediaType(mime));
        }
    }
    serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("Request is not in valid JSON format"))
}
