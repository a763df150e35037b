//! The Keystone v3 service catalog carried in a token.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};

/// Which endpoint of a service to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interface {
    /// `public` (the default everywhere in OpenStack clients).
    #[default]
    Public,
    /// `internal`.
    Internal,
    /// `admin`.
    Admin,
}

impl Interface {
    /// The catalog spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interface {
    type Err = Error;

    /// Accepts `public`/`internal`/`admin` and the keystoneauth spellings `publicURL` etc.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        match lower.trim_end_matches("url") {
            "public" => Ok(Interface::Public),
            "internal" => Ok(Interface::Internal),
            "admin" => Ok(Interface::Admin),
            _ => Err(Error::Config(format!("unknown endpoint interface {s:?}"))),
        }
    }
}

/// One endpoint of a catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEndpoint {
    /// Endpoint id.
    #[serde(default)]
    pub id: String,
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// Region name (legacy field).
    #[serde(default)]
    pub region: Option<String>,
    /// Region id.
    #[serde(default)]
    pub region_id: Option<String>,
    /// Base URL of the service.
    pub url: String,
}

/// One service of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogService {
    /// Service id.
    #[serde(default)]
    pub id: String,
    /// Service type, e.g. `orchestration`, `image`, `compute`, `network`, `identity`.
    #[serde(rename = "type")]
    pub service_type: String,
    /// Service name, e.g. `heat`.
    #[serde(default)]
    pub name: String,
    /// Its endpoints.
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

/// The `catalog` list of a Keystone v3 token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Catalog {
    /// The services, in Keystone's order.
    pub services: Vec<CatalogService>,
}

impl Catalog {
    /// The URL of the first endpoint with this service type and interface, in `region` when given
    /// (matching either `region_id` or `region`). Endpoints whose URL does not parse are skipped.
    pub fn endpoint(
        &self,
        service_type: &str,
        interface: Interface,
        region: Option<&str>,
    ) -> Option<Url> {
        self.services
            .iter()
            .filter(|s| s.service_type == service_type)
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.interface.eq_ignore_ascii_case(interface.as_str()))
            .filter(|e| match region {
                None => true,
                Some(r) => e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r),
            })
            .find_map(|e| Url::parse(&e.url).ok())
    }

    /// Like [`Catalog::endpoint`], but a missing endpoint is an [`Error::NoEndpoint`].
    pub fn require_endpoint(
        &self,
        service_type: &str,
        interface: Interface,
        region: Option<&str>,
    ) -> Result<Url> {
        self.endpoint(service_type, interface, region)
            .ok_or_else(|| Error::NoEndpoint {
                service_type: service_type.to_string(),
                interface: interface.as_str().to_string(),
                region: region.map(str::to_string),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        serde_json::from_value(serde_json::json!([
            {"id": "1", "type": "orchestration", "name": "heat", "endpoints": [
                {"id": "a", "interface": "internal", "region": "RegionOne", "region_id": "RegionOne", "url": "http://internal/heat-api/v1/p"},
                {"id": "b", "interface": "public", "region": "RegionTwo", "region_id": "RegionTwo", "url": "http://two/heat-api/v1/p"},
                {"id": "c", "interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://one/heat-api/v1/p"}
            ]},
            {"id": "2", "type": "image", "name": "glance", "endpoints": [
                {"id": "d", "interface": "public", "region_id": "RegionOne", "url": "http://host/image"}
            ]}
        ]))
        .unwrap()
    }

    #[test]
    fn selects_by_type_interface_and_region() {
        let c = catalog();
        assert_eq!(
            c.endpoint("orchestration", Interface::Public, Some("RegionOne"))
                .unwrap()
                .as_str(),
            "http://one/heat-api/v1/p"
        );
        assert_eq!(
            c.endpoint("orchestration", Interface::Public, None)
                .unwrap()
                .as_str(),
            "http://two/heat-api/v1/p"
        );
        assert_eq!(
            c.endpoint("orchestration", Interface::Internal, None)
                .unwrap()
                .as_str(),
            "http://internal/heat-api/v1/p"
        );
        assert!(c
            .endpoint("orchestration", Interface::Admin, None)
            .is_none());
        assert!(c.endpoint("compute", Interface::Public, None).is_none());
        assert!(matches!(
            c.require_endpoint("compute", Interface::Public, Some("R")),
            Err(Error::NoEndpoint { .. })
        ));
    }

    #[test]
    fn interface_parsing() {
        assert_eq!("publicURL".parse::<Interface>().unwrap(), Interface::Public);
        assert_eq!(
            "internal".parse::<Interface>().unwrap(),
            Interface::Internal
        );
        assert!("private".parse::<Interface>().is_err());
    }
}
