//! Production [`Lookups`]: Glance, Nova and Neutron through magnum-drivers' clients, with the
//! caller's token and the endpoints of the caller's catalog (as Magnum's `OpenStackClients`).
use crate::auth::Identity;
use crate::lookups::*;
use async_trait::async_trait;
use magnum_drivers::openstack::{
    ComputeClient, HttpClient, HttpConfig, ImageClient, Interface, KeystoneClient, NetworkClient,
    StaticToken,
};
use magnum_drivers::Error;
use std::sync::Arc;
use std::time::Duration;

pub struct OpenStackLookups {
    http: HttpClient,
    interface: Interface,
    region: Option<String>,
}

impl OpenStackLookups {
    pub fn new(interface: &str, region: Option<String>, timeout: Duration) -> Result<Self, String> {
        let http = HttpClient::new(&HttpConfig {
            request_timeout: timeout,
            ..HttpConfig::default()
        })
        .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            interface: interface.parse().map_err(|e: Error| e.to_string())?,
            region,
        })
    }

    fn endpoint(&self, who: &Identity, service: &str) -> Result<reqwest::Url, LookupError> {
        who.catalog
            .require_endpoint(service, self.interface, self.region.as_deref())
            .map_err(|e| LookupError::Unavailable(e.to_string()))
    }

    fn token(who: &Identity) -> Arc<StaticToken> {
        Arc::new(StaticToken::new(who.token.clone()))
    }
}

/// `Ok(None)` → not found; ambiguous names and 403s keep their meaning; everything else means
/// the service could not answer.
fn outcome<T, U>(
    r: Result<Option<T>, Error>,
    f: impl FnOnce(T) -> U,
) -> Result<Lookup<U>, LookupError> {
    match r {
        Ok(Some(t)) => Ok(Lookup::Found(f(t))),
        Ok(None) | Err(Error::NotFound(_)) => Ok(Lookup::NotFound),
        Err(Error::Ambiguous { .. }) => Ok(Lookup::Ambiguous),
        Err(Error::Forbidden(_)) => Err(LookupError::Forbidden),
        Err(e) => Err(LookupError::Unavailable(e.to_string())),
    }
}

#[async_trait]
impl Lookups for OpenStackLookups {
    async fn find_image(&self, who: &Identity, id: &str) -> Result<Lookup<Image>, LookupError> {
        let client = ImageClient::new(
            self.http.clone(),
            self.endpoint(who, "image")?,
            Self::token(who),
        );
        outcome(client.find(id).await, |i| Image {
            magnum_driver: i.magnum_driver().map(str::to_string),
            id: i.id,
            name: i.name.unwrap_or_default(),
            os_distro: i.os_distro,
        })
    }

    async fn find_flavor(&self, who: &Identity, id: &str) -> Result<Lookup<Flavor>, LookupError> {
        let client = ComputeClient::new(
            self.http.clone(),
            self.endpoint(who, "compute")?,
            Self::token(who),
        );
        outcome(client.find_flavor(id).await, |f| Flavor {
            id: f.id,
            name: f.name,
            disk: i64::try_from(f.disk).unwrap_or(i64::MAX),
        })
    }

    async fn get_keypair(
        &self,
        who: &Identity,
        name: &str,
    ) -> Result<Lookup<Keypair>, LookupError> {
        let client = ComputeClient::new(
            self.http.clone(),
            self.endpoint(who, "compute")?,
            Self::token(who),
        );
        outcome(client.get_keypair(name).await, |k| Keypair { name: k.name })
    }

    async fn find_network(
        &self,
        who: &Identity,
        id: &str,
        external: bool,
    ) -> Result<Lookup<Network>, LookupError> {
        let client = NetworkClient::new(
            self.http.clone(),
            self.endpoint(who, "network")?,
            Self::token(who),
        );
        let found = outcome(client.find_network(id).await, |n| Network {
            id: n.id,
            name: n.name,
            external: n.external,
        })?;
        // Magnum looks external networks up among `router:external` ones only.
        Ok(match found {
            Lookup::Found(n) if external && !n.external => Lookup::NotFound,
            other => other,
        })
    }

    async fn find_subnet(&self, who: &Identity, id: &str) -> Result<Lookup<Subnet>, LookupError> {
        let client = NetworkClient::new(
            self.http.clone(),
            self.endpoint(who, "network")?,
            Self::token(who),
        );
        outcome(client.find_subnet(id).await, |s| Subnet {
            id: s.id,
            name: s.name,
        })
    }

    async fn get_project(&self, who: &Identity, id: &str) -> Result<Lookup<()>, LookupError> {
        let endpoint = self.endpoint(who, "identity")?;
        let base = crate::keystone::v3_base(endpoint.as_str());
        let client = KeystoneClient::new(self.http.clone(), &base)
            .map_err(|e| LookupError::Unavailable(e.to_string()))?;
        match client.project_exists(&who.token, id).await {
            Ok(true) => Ok(Lookup::Found(())),
            Ok(false) => Ok(Lookup::NotFound),
            Err(Error::Forbidden(_)) => Err(LookupError::Forbidden),
            Err(e) => Err(LookupError::Unavailable(e.to_string())),
        }
    }
}
