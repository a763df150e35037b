//! Neutron look-ups for template validation: networks and subnets.

use std::fmt;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use super::http::{self, HttpClient, TokenProvider};
use crate::error::{Error, Result};

const SERVICE: &str = "neutron";

/// A Neutron network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Network {
    /// Network id.
    pub id: String,
    /// Network name.
    #[serde(default)]
    pub name: String,
    /// `router:external`: usable for floating IPs and router gateways.
    #[serde(default, rename = "router:external")]
    pub external: bool,
    /// Subnet ids.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// `ACTIVE`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// Owning project.
    #[serde(default)]
    pub project_id: Option<String>,
}

/// A Neutron subnet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subnet {
    /// Subnet id.
    pub id: String,
    /// Subnet name.
    #[serde(default)]
    pub name: String,
    /// The network it belongs to.
    #[serde(default)]
    pub network_id: String,
    /// e.g. `10.0.0.0/24`.
    #[serde(default)]
    pub cidr: String,
    /// 4 or 6.
    #[serde(default)]
    pub ip_version: Option<u8>,
    /// Gateway address.
    #[serde(default)]
    pub gateway_ip: Option<String>,
}

#[derive(Deserialize)]
struct NetworkEnvelope {
    network: Network,
}

#[derive(Deserialize)]
struct NetworkList {
    networks: Vec<Network>,
}

#[derive(Deserialize)]
struct SubnetEnvelope {
    subnet: Subnet,
}

#[derive(Deserialize)]
struct SubnetList {
    subnets: Vec<Subnet>,
}

/// Client of the `network` endpoint, e.g. `http://host/networking` (requests go to `/v2.0/...`).
#[derive(Clone)]
pub struct NetworkClient {
    http: HttpClient,
    base: Url,
    tokens: Arc<dyn TokenProvider>,
}

impl fmt::Debug for NetworkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl NetworkClient {
    /// `base` is the catalog URL of the `network` service.
    pub fn new(http: HttpClient, base: Url, tokens: Arc<dyn TokenProvider>) -> Self {
        NetworkClient { http, base, tokens }
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<Option<T>> {
        let response = http::send_authed(SERVICE, self.tokens.as_ref(), || {
            self.http.request(Method::GET, url.clone())
        })
        .await?;
        match response.status() {
            s if s.is_success() => Ok(Some(http::read_json(SERVICE, response).await?)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(http::error_from_response(SERVICE, response).await),
        }
    }

    fn by_name_url(&self, collection: &str, name: &str) -> Result<Url> {
        let mut url = http::join(&self.base, &["v2.0", collection])?;
        url.query_pairs_mut().append_pair("name", name);
        Ok(url)
    }

    /// By id (`GET /v2.0/networks/{id}`) when it looks like a UUID, else by name
    /// (`GET /v2.0/networks?name=`). [`Error::Ambiguous`] for a name shared by 2+ networks.
    #[tracing::instrument(name = "neutron.find_network", skip_all, fields(network = %name_or_id))]
    pub async fn find_network(&self, name_or_id: &str) -> Result<Option<Network>> {
        if uuid::Uuid::parse_str(name_or_id).is_ok() {
            let url = http::join(&self.base, &["v2.0", "networks", name_or_id])?;
            if let Some(env) = self.get_json::<NetworkEnvelope>(url).await? {
                return Ok(Some(env.network));
            }
        }
        let list: NetworkList = self
            .get_json(self.by_name_url("networks", name_or_id)?)
            .await?
            .ok_or_else(|| Error::InvalidResponse("neutron: network list answered 404".into()))?;
        single(
            "network",
            name_or_id,
            list.networks
                .into_iter()
                .filter(|n| n.name == name_or_id)
                .collect(),
        )
    }

    /// Like [`NetworkClient::find_network`] for subnets.
    #[tracing::instrument(name = "neutron.find_subnet", skip_all, fields(subnet = %name_or_id))]
    pub async fn find_subnet(&self, name_or_id: &str) -> Result<Option<Subnet>> {
        if uuid::Uuid::parse_str(name_or_id).is_ok() {
            let url = http::join(&self.base, &["v2.0", "subnets", name_or_id])?;
            if let Some(env) = self.get_json::<SubnetEnvelope>(url).await? {
                return Ok(Some(env.subnet));
            }
        }
        let list: SubnetList = self
            .get_json(self.by_name_url("subnets", name_or_id)?)
            .await?
            .ok_or_else(|| Error::InvalidResponse("neutron: subnet list answered 404".into()))?;
        single(
            "subnet",
            name_or_id,
            list.subnets
                .into_iter()
                .filter(|s| s.name == name_or_id)
                .collect(),
        )
    }
}

fn single<T>(kind: &'static str, name: &str, mut matches: Vec<T>) -> Result<Option<T>> {
    match matches.len() {
        0 => Ok(None),
        1 => Ok(matches.pop()),
        _ => Err(Error::Ambiguous {
            kind,
            name: name.to_string(),
        }),
    }
}
