//! Glance v2 image look-up for template validation.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::http::{self, HttpClient, TokenProvider};
use crate::error::{Error, Result};

const SERVICE: &str = "glance";

/// A Glance image. Glance v2 puts custom properties (such as `os_distro`) at the top level of the
/// image; those not named here are kept in `properties`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Image {
    /// Image id.
    pub id: String,
    /// Image name (may be null in Glance).
    #[serde(default)]
    pub name: Option<String>,
    /// `active`, `queued`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// `public`, `private`, `shared`, `community`.
    #[serde(default)]
    pub visibility: Option<String>,
    /// The distro property Magnum selects drivers by, e.g. `fedora-coreos`.
    #[serde(default)]
    pub os_distro: Option<String>,
    /// Minimum disk in GB.
    #[serde(default)]
    pub min_disk: Option<u64>,
    /// Minimum RAM in MB.
    #[serde(default)]
    pub min_ram: Option<u64>,
    /// Every other field of the image.
    #[serde(flatten)]
    pub properties: BTreeMap<String, Value>,
}

impl Image {
    /// The `magnum_driver` image property, if set.
    pub fn magnum_driver(&self) -> Option<&str> {
        self.properties.get("magnum_driver").and_then(Value::as_str)
    }
}

#[derive(Deserialize)]
struct ImageList {
    images: Vec<Image>,
}

/// Client of the `image` endpoint, e.g. `http://host/image` (requests go to `{endpoint}/v2/...`).
#[derive(Clone)]
pub struct ImageClient {
    http: HttpClient,
    base: Url,
    tokens: Arc<dyn TokenProvider>,
}

impl fmt::Debug for ImageClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl ImageClient {
    /// `base` is the catalog URL of the `image` service.
    pub fn new(http: HttpClient, base: Url, tokens: Arc<dyn TokenProvider>) -> Self {
        ImageClient { http, base, tokens }
    }

    /// Finds an image by id (`GET /v2/images/{id}`) or name (`GET /v2/images?name=`). `None` when
    /// nothing matches; [`Error::Ambiguous`] when 2+ images carry the name.
    #[tracing::instrument(name = "glance.find_image", skip_all, fields(image = %name_or_id))]
    pub async fn find(&self, name_or_id: &str) -> Result<Option<Image>> {
        if uuid::Uuid::parse_str(name_or_id).is_ok() {
            let url = http::join(&self.base, &["v2", "images", name_or_id])?;
            let response = http::send_authed(SERVICE, self.tokens.as_ref(), || {
                self.http.request(Method::GET, url.clone())
            })
            .await?;
            match response.status() {
                s if s.is_success() => return Ok(Some(http::read_json(SERVICE, response).await?)),
                StatusCode::NOT_FOUND => {}
                _ => return Err(http::error_from_response(SERVICE, response).await),
            }
        }
        let mut url = http::join(&self.base, &["v2", "images"])?;
        url.query_pairs_mut().append_pair("name", name_or_id);
        let response = http::send_authed(SERVICE, self.tokens.as_ref(), || {
            self.http.request(Method::GET, url.clone())
        })
        .await?;
        if !response.status().is_success() {
            return Err(http::error_from_response(SERVICE, response).await);
        }
        let list: ImageList = http::read_json(SERVICE, response).await?;
        let mut matches: Vec<Image> = list
            .images
            .into_iter()
            .filter(|i| i.name.as_deref() == Some(name_or_id))
            .collect();
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.pop()),
            _ => Err(Error::Ambiguous {
                kind: "image",
                name: name_or_id.to_string(),
            }),
        }
    }
}
