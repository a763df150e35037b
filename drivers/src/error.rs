//! The crate's one error type.
//!
//! Callers decide what to do from the variant alone:
//! - [`Error::Conflict`]: the thing already exists or is busy (Heat `StackExists` on create: adopt it).
//! - [`Error::NotFound`]: the resource does not exist.
//! - [`Error::BadRequest`], [`Error::Forbidden`], [`Error::InvalidInput`]: permanent; the message is
//!   meant for the end user (it ends up in a cluster's `status_reason`).
//! - [`Error::Unauthorized`]: the token we sent was refused (our credentials or a user's expired token).
//! - [`Error::InvalidToken`]: Keystone says the *subject* token is invalid, expired or revoked.
//! - [`Error::Transient`], [`Error::InvalidResponse`]: retry with backoff ([`Error::is_retryable`]).

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by Heat calls. Same type as [`Error`]; the alias names the intent at call sites.
pub type HeatError = Error;

/// Errors returned by the COE drivers' mappings. Same type as [`Error`].
pub type DriverError = Error;

/// Everything that can go wrong talking to OpenStack or mapping a cluster onto a driver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 409: e.g. Heat `StackExists` ("The Stack (x) already exists.") or `ActionInProgress`.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 404 from the service.
    #[error("not found: {0}")]
    NotFound(String),
    /// 400 and other permanent 4xx answers. The message is the service's own (Heat `error.message`).
    #[error("{0}")]
    BadRequest(String),
    /// 401: the token we presented was refused.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: authenticated but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Keystone answered 404 when validating a subject token: invalid, expired or revoked.
    #[error("the token is invalid or has expired")]
    InvalidToken,
    /// 5xx, 408, 429, connection failures and timeouts: safe to retry with backoff.
    #[error("service unavailable: {0}")]
    Transient(String),
    /// A success status with a body or header we could not understand.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// A name matched more than one resource.
    #[error("Multiple {kind}s exist with name {name}. Please use the {kind} id instead.")]
    Ambiguous {
        /// `image`, `flavor`, `network`, `subnet`.
        kind: &'static str,
        /// The name that was looked up.
        name: String,
    },
    /// The service catalog has no endpoint of that type/interface/region.
    #[error("no {interface} endpoint for service type {service_type}{}", region_suffix(.region))]
    NoEndpoint {
        /// e.g. `orchestration`.
        service_type: String,
        /// e.g. `public`.
        interface: String,
        /// The requested region, if any.
        region: Option<String>,
    },
    /// The input cannot be mapped (e.g. a label value of the wrong type). Permanent, user-readable.
    #[error("{0}")]
    InvalidInput(String),
    /// Local misconfiguration (bad URL, TLS setup, ...).
    #[error("configuration error: {0}")]
    Config(String),
}

fn region_suffix(region: &Option<String>) -> String {
    match region {
        Some(r) => format!(" in region {r}"),
        None => String::new(),
    }
}

impl Error {
    /// True when the same call may succeed later (callers retry with backoff).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Transient(_) | Error::InvalidResponse(_))
    }

    /// True when retrying cannot help and the operation should fail with the error's `Display` text as reason.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::BadRequest(_)
                | Error::Forbidden(_)
                | Error::InvalidInput(_)
                | Error::Ambiguous { .. }
        )
    }

    /// Maps a non-success HTTP status and the service's error message to a variant.
    pub(crate) fn from_status(status: u16, message: String) -> Error {
        match status {
            401 => Error::Unauthorized(message),
            403 => Error::Forbidden(message),
            404 => Error::NotFound(message),
            409 => Error::Conflict(message),
            408 | 429 => Error::Transient(message),
            400..=499 => Error::BadRequest(message),
            500..=599 => Error::Transient(message),
            _ => Error::InvalidResponse(format!("unexpected status {status}: {message}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        assert_eq!(
            Error::from_status(409, "x".into()),
            Error::Conflict("x".into())
        );
        assert_eq!(
            Error::from_status(404, "x".into()),
            Error::NotFound("x".into())
        );
        assert_eq!(
            Error::from_status(400, "x".into()),
            Error::BadRequest("x".into())
        );
        assert_eq!(
            Error::from_status(405, "x".into()),
            Error::BadRequest("x".into())
        );
        assert_eq!(
            Error::from_status(401, "x".into()),
            Error::Unauthorized("x".into())
        );
        assert_eq!(
            Error::from_status(403, "x".into()),
            Error::Forbidden("x".into())
        );
        assert!(Error::from_status(503, "x".into()).is_retryable());
        assert!(Error::from_status(429, "x".into()).is_retryable());
        assert!(Error::from_status(302, "x".into()).is_retryable());
        assert!(Error::from_status(400, "x".into()).is_permanent());
    }

    #[test]
    fn bad_request_displays_the_service_message_verbatim() {
        let e = Error::BadRequest("The Parameter (external_network) was not provided.".into());
        assert_eq!(
            e.to_string(),
            "The Parameter (external_network) was not provided."
        );
        let e = Error::Ambiguous {
            kind: "image",
            name: "fedora".into(),
        };
        assert_eq!(
            e.to_string(),
            "Multiple images exist with name fedora. Please use the image id instead."
        );
    }
}
