//! Trustees and trusts on Keystone (reference §7, Magnum's `trust_manager`): the user
//! `<cluster_uuid>_<project_id>` in the trustee domain, and a trust from the creating user to it.
//! Every call here finds before it creates, so a repeat after a failover adopts the first
//! attempt's user and trust.
use super::{classify, HeatCloud};
use crate::cloud::{CloudError, TokenUser, TrusteeUser};
use magnum_drivers::openstack::TokenProvider;
use magnum_drivers::Error;
use magnum_proto::{ClusterView, Trustor};

/// Magnum's trustee user name.
pub(crate) fn trustee_name(view: &ClusterView) -> String {
    format!("{}_{}", view.cluster.uuid, view.cluster.project_id.0)
}

impl HeatCloud {
    async fn service_token(&self) -> Result<String, CloudError> {
        TokenProvider::token(self.session.as_ref())
            .await
            .map_err(classify)
    }

    /// `GET /v3/auth/tokens` for a user's token, with the service token (cached).
    pub(super) async fn validate_user_token(
        &self,
        token: &str,
    ) -> Result<Option<TokenUser>, CloudError> {
        match self.users.validate(token).await {
            Ok(t) => Ok(Some(TokenUser {
                user_id: t.user_id.clone(),
                project_id: t.project_id.clone(),
                roles: t.roles.clone(),
            })),
            Err(Error::InvalidToken) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    async fn trustee_domain(&self, token: &str) -> Result<&str, CloudError> {
        let Some(name) = self.auth.trustee_domain.as_deref() else {
            return Err(CloudError::Permanent(
                "No trustee domain is configured.".into(),
            ));
        };
        let id = self
            .trustee_domain_id
            .get_or_try_init(|| async {
                match self.session.keystone().find_domain(token, name).await {
                    Ok(Some(id)) => Ok(id),
                    Ok(None) => Err(CloudError::Permanent(format!(
                        "The trustee domain {name} does not exist in Keystone."
                    ))),
                    Err(e) => Err(classify(e)),
                }
            })
            .await?;
        Ok(id.as_str())
    }

    pub(super) async fn find_or_create_trustee(
        &self,
        view: &ClusterView,
        password: &str,
    ) -> Result<TrusteeUser, CloudError> {
        let token = self.service_token().await?;
        let domain = self.trustee_domain(&token).await?;
        let ks = self.session.keystone();
        let name = trustee_name(view);
        let user = match ks
            .find_user(&token, domain, &name)
            .await
            .map_err(classify)?
        {
            Some(u) => {
                ks.set_user_password(&token, &u.id, password)
                    .await
                    .map_err(classify)?;
                u
            }
            None => match ks.create_user(&token, domain, &name, password).await {
                Ok(u) => u,
                // Made between our look-up and our create: a retry takes the adopt path.
                Err(Error::Conflict(m)) => return Err(CloudError::Transient(m)),
                Err(e) => return Err(classify(e)),
            },
        };
        Ok(TrusteeUser {
            id: user.id,
            name: user.name,
            domain_id: user.domain_id,
        })
    }

    pub(super) async fn find_or_create_trust(
        &self,
        view: &ClusterView,
        trustee_user_id: &str,
        trustor: &Trustor,
    ) -> Result<String, CloudError> {
        let token = self.service_token().await?;
        let ks = self.session.keystone();
        let project = &view.cluster.project_id.0;
        let existing = ks
            .trusts_of_trustee(&token, trustee_user_id)
            .await
            .map_err(classify)?;
        if let Some(t) = existing.into_iter().find(|t| {
            t.trustor_user_id == trustor.user_id && t.project_id.as_deref() == Some(project)
        }) {
            return Ok(t.id);
        }
        match ks
            .create_trust(
                &trustor.token,
                &trustor.user_id,
                trustee_user_id,
                project,
                &trustor.roles,
            )
            .await
        {
            Ok(t) => Ok(t.id),
            // Only the trustor may create the trust, so its token having lapsed (it is the
            // token of the create request) is final.
            Err(Error::Unauthorized(_)) => Err(CloudError::Permanent(
                "The trust could not be created: the requesting user's token is no longer valid."
                    .into(),
            )),
            Err(e) => Err(classify(e)),
        }
    }

    pub(super) async fn set_password(
        &self,
        user_id: &str,
        password: &str,
    ) -> Result<(), CloudError> {
        let token = self.service_token().await?;
        self.session
            .keystone()
            .set_user_password(&token, user_id, password)
            .await
            .map_err(classify)
    }

    pub(super) async fn remove_trustee(&self, view: &ClusterView) -> Result<(), CloudError> {
        let token = self.service_token().await?;
        let domain = self.trustee_domain(&token).await?;
        let ks = self.session.keystone();
        let name = trustee_name(view);
        if let Some(u) = ks
            .find_user(&token, domain, &name)
            .await
            .map_err(classify)?
        {
            ks.delete_user(&token, &u.id).await.map_err(classify)?;
        }
        Ok(())
    }
}
