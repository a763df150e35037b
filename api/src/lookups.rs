//! The `Lookups` seam: name-or-id resolution against Glance, Nova and Neutron, used by template
//! and cluster validation (Magnum's `attr_validator`), and the errors Magnum turns them into.
use crate::auth::Identity;
use crate::error::ApiError;
use async_trait::async_trait;

/// Outcome of a look-up that reached the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    NotFound,
    /// More than one match for a name.
    Ambiguous,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: String,
    /// Glance property `os_distro` (becomes the template's `cluster_distro`).
    pub os_distro: Option<String>,
    /// Glance property `magnum_driver` (becomes the template's `driver`).
    pub magnum_driver: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    /// Root disk in GB; 0 needs a `boot_volume_size` label.
    pub disk: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keypair {
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub external: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The service said 403 for this object.
    #[error("forbidden")]
    Forbidden,
    /// Service missing from the catalog, unreachable, or answering garbage: 503.
    #[error("{0}")]
    Unavailable(String),
}

/// Look-ups run with the caller's token and catalog (`who`), as Magnum's clients do.
#[async_trait]
pub trait Lookups: Send + Sync {
    async fn find_image(
        &self,
        who: &Identity,
        name_or_id: &str,
    ) -> Result<Lookup<Image>, LookupError>;
    /// Matches name or id; the first match wins (Magnum iterates `flavors.list()`).
    async fn find_flavor(
        &self,
        who: &Identity,
        name_or_id: &str,
    ) -> Result<Lookup<Flavor>, LookupError>;
    async fn get_keypair(&self, who: &Identity, name: &str)
        -> Result<Lookup<Keypair>, LookupError>;
    /// `external` restricts to `router:external` networks.
    async fn find_network(
        &self,
        who: &Identity,
        name_or_id: &str,
        external: bool,
    ) -> Result<Lookup<Network>, LookupError>;
    async fn find_subnet(
        &self,
        who: &Identity,
        name_or_id: &str,
    ) -> Result<Lookup<Subnet>, LookupError>;
    /// A Keystone project by id (quota create checks it exists).
    async fn get_project(&self, who: &Identity, id: &str) -> Result<Lookup<()>, LookupError>;
}

pub fn unavailable(e: LookupError) -> ApiError {
    match e {
        LookupError::Unavailable(m) => ApiError::Unavailable(m),
        LookupError::Forbidden => ApiError::Forbidden("Not authorized.".into()),
    }
}

/// `validate_image`: exists (400/403/409); the os_distro check is the caller's.
pub async fn image(l: &dyn Lookups, who: &Identity, id: &str) -> Result<Image, ApiError> {
    match l.find_image(who, id).await {
        Ok(Lookup::Found(i)) => Ok(i),
        Ok(Lookup::NotFound) => Err(ApiError::BadRequest(format!(
            "Image {id} could not be found."
        ))),
        Ok(Lookup::Ambiguous) => Err(ApiError::Conflict(format!(
            "Multiple images exist with same name {id}. Please use the resource id instead."
        ))),
        Err(LookupError::Forbidden) => Err(ApiError::Forbidden(format!(
            "Not authorized for image {id}."
        ))),
        Err(e) => Err(unavailable(e)),
    }
}

/// `validate_flavor`.
pub async fn flavor(l: &dyn Lookups, who: &Identity, id: &str) -> Result<Flavor, ApiError> {
    match l.find_flavor(who, id).await.map_err(unavailable)? {
        Lookup::Found(f) => Ok(f),
        Lookup::NotFound | Lookup::Ambiguous => {
            Err(ApiError::BadRequest(format!("Unable to find flavor {id}.")))
        }
    }
}

/// `validate_keypair` (404, unlike the other look-ups).
pub async fn keypair(l: &dyn Lookups, who: &Identity, name: &str) -> Result<Keypair, ApiError> {
    match l.get_keypair(who, name).await.map_err(unavailable)? {
        Lookup::Found(k) => Ok(k),
        Lookup::NotFound | Lookup::Ambiguous => Err(ApiError::NotFound(format!(
            "Unable to find keypair {name}."
        ))),
    }
}

/// `validate_external_network`.
pub async fn external_network(
    l: &dyn Lookups,
    who: &Identity,
    id: &str,
) -> Result<Network, ApiError> {
    match l.find_network(who, id, true).await.map_err(unavailable)? {
        Lookup::Found(n) => Ok(n),
        Lookup::NotFound => Err(ApiError::BadRequest(format!(
            "Unable to find external network {id}."
        ))),
        Lookup::Ambiguous => Err(ApiError::Conflict(format!(
            "Multiple external networks exist with same name '{id}'. Please use the external \
             network ID instead."
        ))),
    }
}

/// `validate_fixed_network`.
pub async fn fixed_network(l: &dyn Lookups, who: &Identity, id: &str) -> Result<Network, ApiError> {
    match l.find_network(who, id, false).await.map_err(unavailable)? {
        Lookup::Found(n) => Ok(n),
        Lookup::NotFound => Err(ApiError::BadRequest(format!(
            "Unable to find fixed network {id}."
        ))),
        Lookup::Ambiguous => Err(ApiError::Conflict(format!(
            "Multiple networks exist with same name '{id}'. Please use the network ID instead."
        ))),
    }
}

/// `validate_fixed_subnet`.
pub async fn fixed_subnet(l: &dyn Lookups, who: &Identity, id: &str) -> Result<Subnet, ApiError> {
    match l.find_subnet(who, id).await.map_err(unavailable)? {
        Lookup::Found(s) => Ok(s),
        Lookup::NotFound => Err(ApiError::BadRequest(format!(
            "Unable to find fixed subnet {id}."
        ))),
        Lookup::Ambiguous => Err(ApiError::Conflict(format!(
            "Multiple subnets exist with same name '{id}'. Please use the subnet ID instead."
        ))),
    }
}
