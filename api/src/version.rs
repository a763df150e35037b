//! Microversion negotiation (`OpenStack-API-Version: container-infra X.Y`), reference §1.
use crate::error::ApiError;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::fmt;

/// Name the server uses in its response headers.
pub const SERVICE: &str = "container-infrastructure-management";
/// Service tokens accepted in requests.
pub const SERVICES: [&str; 3] = [
    "container-infrastructure-management",
    "container-infrastructure",
    "container-infra",
];
pub const HEADER: &str = "openstack-api-version";
pub const MIN_HEADER: &str = "openstack-api-minimum-version";
pub const MAX_HEADER: &str = "openstack-api-maximum-version";

/// A microversion. Signed because Magnum parses with Python `int()`, so `1.-1` is a
/// well-formed (and unsupported) version rather than a malformed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: i64,
    pub minor: i64,
}

impl ApiVersion {
    pub const fn new(major: i64, minor: i64) -> Self {
        Self { major, minor }
    }

    /// `"1.10"` → 1.10; anything else → None.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('.');
        let (a, b) = (it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        Some(Self::new(a.parse().ok()?, b.parse().ok()?))
    }

    pub fn at_least(self, major: i64, minor: i64) -> bool {
        self >= Self::new(major, minor)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Minimum (and default) microversion.
pub const MIN_VERSION: ApiVersion = ApiVersion::new(1, 1);
/// Maximum of Magnum 2026.1, the baseline.
pub const DEFAULT_MAX_VERSION: ApiVersion = ApiVersion::new(1, 14);

/// Picks the version a request asked for, in Magnum's order of checks
/// (`Version.parse_headers`, then `Controller._check_version`).
pub fn negotiate(headers: &HeaderMap, max: ApiVersion) -> Result<ApiVersion, ApiError> {
    let values: Vec<&HeaderValue> = headers.get_all(HEADER).iter().collect();
    if values.is_empty() {
        return Ok(MIN_VERSION);
    }
    // A repeated header reaches WSGI joined with ", ", which then fails to split in two.
    let mut joined = String::new();
    for (i, v) in values.iter().enumerate() {
        let Ok(s) = v.to_str() else {
            return Err(malformed_service());
        };
        if i > 0 {
            joined.push_str(", ");
        }
        joined.push_str(s);
    }
    let parts: Vec<&str> = joined.split_whitespace().collect();
    let [service, ver] = parts.as_slice() else {
        return Err(malformed_service());
    };
    let requested = if ver.eq_ignore_ascii_case("latest") {
        // Magnum substitutes its own "<service> <max>" string, whatever service was named.
        max
    } else {
        if !SERVICES.contains(service) {
            return Err(malformed_service());
        }
        ApiVersion::parse(ver).ok_or_else(|| {
            ApiError::NotAcceptable(format!(
                "Invalid value for {} header",
                "OpenStack-API-Version"
            ))
        })?
    };
    check(requested, max)?;
    Ok(requested)
}

fn malformed_service() -> ApiError {
    ApiError::NotAcceptable("Invalid service type for OpenStack-API-Version header".into())
}

fn check(v: ApiVersion, max: ApiVersion) -> Result<(), ApiError> {
    let (min_s, max_s) = (
        format!("{SERVICE} {MIN_VERSION}"),
        format!("{SERVICE} {max}"),
    );
    if v.major != 1 {
        // Magnum's text really lacks the space after "service.".
        return Err(ApiError::VersionUnsupported {
            description: format!(
                "Mutually exclusive versions requested. Version {v} requested but not supported \
                 by this service.The supported version range is: [{min_s}, {max_s}]."
            ),
            requested: v,
            max,
        });
    }
    if v < MIN_VERSION || v > max {
        return Err(ApiError::VersionUnsupported {
            description: format!(
                "Version {v} was requested but the minor version is not supported by this \
                 service. The supported version range is: [{min_s}, {max_s}]."
            ),
            requested: v,
            max,
        });
    }
    Ok(())
}

/// The headers every `/v1` response carries once the version was parsed.
pub fn apply_headers(headers: &mut HeaderMap, requested: ApiVersion, max: ApiVersion) {
    let pairs = [
        (MIN_HEADER, format!("{SERVICE} {MIN_VERSION}")),
        (MAX_HEADER, format!("{SERVICE} {max}")),
        (HEADER, format!("{SERVICE} {requested}")),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    headers.insert(
        axum::http::header::VARY,
        HeaderValue::from_static("OpenStack-API-Version"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn default_and_latest() {
        let max = DEFAULT_MAX_VERSION;
        assert_eq!(negotiate(&HeaderMap::new(), max).unwrap(), MIN_VERSION);
        assert_eq!(negotiate(&hdr("container-infra latest"), max).unwrap(), max);
        assert_eq!(negotiate(&hdr("whatever LATEST"), max).unwrap(), max);
        assert_eq!(
            negotiate(&hdr("container-infrastructure 1.10"), max).unwrap(),
            ApiVersion::new(1, 10)
        );
    }

    #[test]
    fn malformed_and_unsupported() {
        let max = DEFAULT_MAX_VERSION;
        for bad in [
            "container-infra",
            "foo 1.2",
            "container-infra 1",
            "container-infra a.b",
        ] {
            assert!(matches!(
                negotiate(&hdr(bad), max),
                Err(ApiError::NotAcceptable(_))
            ));
        }
        for bad in [
            "container-infra 1.99",
            "container-infra 2.0",
            "container-infra 1.0",
        ] {
            assert!(matches!(
                negotiate(&hdr(bad), max),
                Err(ApiError::VersionUnsupported { .. })
            ));
        }
        assert!(ApiVersion::new(1, 10) > ApiVersion::new(1, 9));
    }
}
