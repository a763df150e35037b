//! Nova look-ups for template validation: flavors and keypairs.

use std::fmt;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::http::{self, HttpClient, TokenProvider};
use crate::error::{Error, Result};

const SERVICE: &str = "nova";

/// A Nova flavor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Flavor {
    /// Flavor id (not necessarily a UUID).
    pub id: String,
    /// Flavor name.
    pub name: String,
    /// Root disk in GB (0 = image size, which Magnum rejects without a boot volume).
    #[serde(default)]
    pub disk: u64,
    /// RAM in MB.
    #[serde(default)]
    pub ram: u64,
    /// vCPUs.
    #[serde(default)]
    pub vcpus: u32,
}

/// A Nova keypair.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Keypair {
    /// Keypair name.
    pub name: String,
    /// The public key.
    #[serde(default)]
    pub public_key: String,
    /// Fingerprint.
    #[serde(default)]
    pub fingerprint: String,
}

#[derive(Deserialize)]
struct FlavorEnvelope {
    flavor: Flavor,
}

#[derive(Deserialize)]
struct FlavorList {
    flavors: Vec<Flavor>,
}

#[derive(Deserialize)]
struct KeypairEnvelope {
    keypair: Keypair,
}

/// Client of the `compute` endpoint, e.g. `http://host/compute/v2.1`.
#[derive(Clone)]
pub struct ComputeClient {
    http: HttpClient,
    base: Url,
    tokens: Arc<dyn TokenProvider>,
}

impl fmt::Debug for ComputeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComputeClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl ComputeClient {
    /// `base` is the catalog URL of the `compute` service (already ending in `/v2.1`).
    pub fn new(http: HttpClient, base: Url, tokens: Arc<dyn TokenProvider>) -> Self {
        ComputeClient { http, base, tokens }
    }

    async fn get(&self, url: Url) -> Result<reqwest::Response> {
        http::send_authed(SERVICE, self.tokens.as_ref(), || {
            self.http.request(Method::GET, url.clone())
        })
        .await
    }

    /// `GET /flavors/{id}`, then `GET /flavors/detail` filtered by name. `None` when nothing
    /// matches; [`Error::Ambiguous`] for a name shared by 2+ flavors.
    #[tracing::instrument(name = "nova.find_flavor", skip_all, fields(flavor = %name_or_id))]
    pub async fn find_flavor(&self, name_or_id: &str) -> Result<Option<Flavor>> {
        let response = self
            .get(http::join(&self.base, &["flavors", name_or_id])?)
            .await?;
        match response.status() {
            s if s.is_success() => {
                let env: FlavorEnvelope = http::read_json(SERVICE, response).await?;
                return Ok(Some(env.flavor));
            }
            StatusCode::NOT_FOUND => {}
            _ => return Err(http::error_from_response(SERVICE, response).await),
        }
        let response = self
            .get(http::join(&self.base, &["flavors", "detail"])?)
            .await?;
        if !response.status().is_success() {
            return Err(http::error_from_response(SERVICE, response).await);
        }
        let list: FlavorList = http::read_json(SERVICE, response).await?;
        let mut matches: Vec<Flavor> = list
            .flavors
            .into_iter()
            .filter(|f| f.name == name_or_id)
            .collect();
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.pop()),
            _ => Err(Error::Ambiguous {
                kind: "flavor",
                name: name_or_id.to_string(),
            }),
        }
    }

    /// `GET /os-keypairs/{name}` (the token's user's keypairs). 404 → `None`.
    #[tracing::instrument(name = "nova.get_keypair", skip_all, fields(keypair = %name))]
    pub async fn get_keypair(&self, name: &str) -> Result<Option<Keypair>> {
        let response = self
            .get(http::join(&self.base, &["os-keypairs", name])?)
            .await?;
        match response.status() {
            s if s.is_success() => {
                let env: KeypairEnvelope = http::read_json(SERVICE, response).await?;
                Ok(Some(env.keypair))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(http::error_from_response(SERVICE, response).await),
        }
    }
}
