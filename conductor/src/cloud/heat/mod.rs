//! `Cloud` on real OpenStack APIs: Keystone service session + Heat, through magnum-drivers. The
//! conductor acts with its service credentials (admin) on each cluster's project's Heat endpoint.
use crate::cloud::{
    feed::{Feed, Lister},
    Cloud, CloudError, Glance, Look, StackHandle, StackState, StackUpdate, Target, TokenUser,
    TrusteeUser,
};
use async_trait::async_trait;
use magnum_drivers::openstack::{
    heat_url_for_project, Domain, HeatClient, HttpClient, Interface, KeystoneClient,
    PasswordCredentials, ServiceSession, StackRef, TokenCache, TokenProvider, TokenValidator,
    UpdateStack,
};
use magnum_drivers::{ClusterSpec, NodeGroupSpec, NodeTaint, OutputOptions};
use magnum_proto::{ClusterView, NodeGroup, ProjectId, StackOutputs, Trustor};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

mod trusts;

#[derive(Clone, Debug)]
pub struct CloudAuth {
    pub auth_url: String,
    pub user: String,
    pub password: String,
    pub project: String,
    pub domain: String,
    pub region: Option<String>,
    /// Name of the Keystone domain of cluster trustees (Magnum's `[trust] trustee_domain_name`);
    /// `None`: clusters get no trustee and no trust.
    pub trustee_domain: Option<String>,
}

pub struct HeatCloud {
    auth: CloudAuth,
    session: Arc<ServiceSession>,
    /// Validates the user tokens API nodes forward, caching successes for a minute (as the API
    /// node does), so reads of one user cost one Keystone call a minute per conductor.
    users: TokenValidator,
    /// The trustee domain's id, looked up once.
    trustee_domain_id: tokio::sync::OnceCell<String>,
    access: HeatAccess,
    /// Batched status looks (`feed.rs`), started on the first look (inside the runtime).
    feed: OnceLock<Feed>,
}

/// What reaching a project's Heat takes; shared with the feed's listings.
#[derive(Clone)]
struct HeatAccess {
    http: HttpClient,
    session: Arc<ServiceSession>,
    region: Option<String>,
}

impl HeatAccess {
    async fn heat(&self, project: &ProjectId) -> Result<HeatClient, CloudError> {
        let endpoint = self
            .session
            .endpoint("orchestration", Interface::Public, self.region.as_deref())
            .await
            .map_err(classify)?;
        let url = heat_url_for_project(&endpoint, &project.0).map_err(classify)?;
        let tokens: Arc<dyn TokenProvider> = self.session.clone();
        Ok(HeatClient::new(self.http.clone(), url, tokens))
    }
}

/// Heat's admin listing across projects, filtered by id. Heat denies it unless its policy
/// allows `stacks:global_index` to the conductor's user: `Ok(None)`.
#[async_trait]
impl Lister for HeatAccess {
    async fn list(
        &self,
        project: &ProjectId,
        ids: &[String],
    ) -> Result<Option<HashMap<String, Glance>>, CloudError> {
        let heat = self.heat(project).await?;
        let stacks = match heat.list_stacks_by_id(ids, true).await {
            Ok(s) => s,
            Err(magnum_drivers::Error::Forbidden(_)) => return Ok(None),
            Err(e) => return Err(classify(e)),
        };
        Ok(Some(
            stacks
                .into_iter()
                .filter_map(|s| {
                    let glance = Glance {
                        status: s.heat_status()?,
                        reason: Some(s.status_reason).filter(|r| !r.is_empty()),
                        updated: s.updated_time,
                    };
                    Some((s.id, glance))
                })
                .collect(),
        ))
    }
}

fn classify(e: magnum_drivers::Error) -> CloudError {
    match e {
        magnum_drivers::Error::Conflict(m) => CloudError::Conflict(m.to_string()),
        e if e.is_permanent() => CloudError::Permanent(e.to_string()),
        e => CloudError::Transient(e.to_string()),
    }
}

impl HeatCloud {
    pub fn new(auth: CloudAuth) -> Result<Self, CloudError> {
        let http = HttpClient::with_defaults().map_err(classify)?;
        let keystone = KeystoneClient::new(http.clone(), &auth.auth_url).map_err(classify)?;
        let creds = PasswordCredentials {
            username: auth.user.clone(),
            password: auth.password.clone(),
            user_domain: Domain::Name(auth.domain.clone()),
            project_name: auth.project.clone(),
            project_domain: Domain::Name(auth.domain.clone()),
        };
        let session = Arc::new(ServiceSession::new(keystone, creds));
        let access = HeatAccess {
            http,
            session: session.clone(),
            region: auth.region.clone(),
        };
        Ok(Self {
            auth,
            users: TokenValidator::new(session.clone(), TokenCache::default()),
            session,
            trustee_domain_id: tokio::sync::OnceCell::new(),
            access,
            feed: OnceLock::new(),
        })
    }

    async fn heat(&self, project: &ProjectId) -> Result<HeatClient, CloudError> {
        self.access.heat(project).await
    }

    /// The target's spec with this cloud's endpoints.
    async fn spec(&self, target: &Target<'_>) -> ClusterSpec {
        let magnum_url = self
            .session
            .endpoint(
                "container-infra",
                Interface::Public,
                self.auth.region.as_deref(),
            )
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        ClusterSpec {
            magnum_url,
            auth_url: self.auth.auth_url.clone(),
            region_name: self.auth.region.clone(),
            ..target.spec.clone()
        }
    }
}

#[async_trait]
impl Cloud for HeatCloud {
    fn stack_name(&self, cluster: &ClusterView) -> String {
        magnum_drivers::stack_name(&cluster.cluster.name, cluster.cluster.uuid.0)
    }

    async fn create_stack(&self, target: &Target<'_>) -> Result<StackHandle, CloudError> {
        let driver = target.driver()?;
        let spec = self.spec(target).await;
        let req = driver.create_stack_request(&spec).map_err(classify)?;
        let heat = self.heat(target.project()).await?;
        let r = heat.create_stack(&req).await.map_err(classify)?;
        Ok(StackHandle {
            name: r.name,
            id: r.id,
        })
    }

    async fn create_nodegroup_stack(
        &self,
        target: &Target<'_>,
        ng: &NodeGroup,
    ) -> Result<StackHandle, CloudError> {
        let driver = target.driver()?;
        let view = target.view;
        let Some(cluster_stack) = view.cluster.stack_id.clone() else {
            return Err(CloudError::Permanent(
                "The cluster has no stack to add a nodegroup to.".into(),
            ));
        };
        let heat = self.heat(&view.cluster.project_id).await?;
        let sref = StackRef {
            id: cluster_stack.clone(),
            name: self.stack_name(view),
        };
        let Some(stack) = heat.get_stack(&sref, true).await.map_err(classify)? else {
            return Err(CloudError::Permanent(format!(
                "Stack with id {cluster_stack} not found in Heat."
            )));
        };
        let spec = self.spec(target).await;
        let ng_spec = NodeGroupSpec {
            uuid: ng.uuid.0,
            name: ng.name.clone(),
            role: ng.role.clone(),
            node_count: ng.node_count,
            min_node_count: ng.min_node_count,
            max_node_count: ng.max_node_count,
            flavor_id: ng.flavor_id.clone(),
            image_id: ng.image_id.clone(),
            docker_volume_size: ng.docker_volume_size.and_then(|v| u32::try_from(v).ok()),
            labels: ng.labels.clone(),
            node_labels: ng.node_labels.clone(),
            node_taints: ng
                .node_taints
                .iter()
                .map(|t| NodeTaint {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: t.effect.clone(),
                })
                .collect(),
        };
        let req = driver
            .nodegroup_stack_request(&spec, &ng_spec, &stack)
            .map_err(classify)?;
        let r = heat.create_stack(&req).await.map_err(classify)?;
        Ok(StackHandle {
            name: r.name,
            id: r.id,
        })
    }

    async fn find_stack(
        &self,
        project: &ProjectId,
        name_or_id: &str,
    ) -> Result<Option<StackHandle>, CloudError> {
        let heat = self.heat(project).await?;
        let r = heat.find_stack(name_or_id).await.map_err(classify)?;
        Ok(r.map(|r| StackHandle {
            name: r.name,
            id: r.id,
        }))
    }

    async fn get_stack(
        &self,
        target: &Target<'_>,
        stack: &StackHandle,
        with_outputs: bool,
    ) -> Result<Option<StackState>, CloudError> {
        let heat = self.heat(target.project()).await?;
        let sref = StackRef {
            id: stack.id.clone(),
            name: stack.name.clone(),
        };
        let Some(s) = heat
            .get_stack(&sref, with_outputs)
            .await
            .map_err(classify)?
        else {
            return Ok(None);
        };
        // Heat sends no other; a garbled answer is retried like any bad response.
        let status = s.heat_status().ok_or_else(|| {
            CloudError::Transient(format!("Heat sent an unknown stack status {:?}.", s.status))
        })?;
        let outputs = if with_outputs {
            let opts = OutputOptions::from(&target.spec);
            let o = target.driver()?.map_outputs(&opts, &s);
            Some(StackOutputs {
                api_address: o.api_address,
                master_addresses: o.master_addresses,
                node_addresses: o.node_addresses,
                coe_version: o.coe_version,
            })
        } else {
            None
        };
        let reason = Some(s.status_reason.clone()).filter(|r| !r.is_empty());
        Ok(Some(StackState {
            status,
            reason,
            outputs,
            parameters: s.parameters,
            updated: s.updated_time,
        }))
    }

    async fn look_stack(&self, project: &ProjectId, stack: &StackHandle) -> Look {
        let feed = self
            .feed
            .get_or_init(|| Feed::spawn(Arc::new(self.access.clone())));
        feed.look(project, stack).await
    }

    async fn delete_stack(
        &self,
        project: &ProjectId,
        stack: &StackHandle,
    ) -> Result<(), CloudError> {
        let heat = self.heat(project).await?;
        let sref = StackRef {
            id: stack.id.clone(),
            name: stack.name.clone(),
        };
        heat.delete_stack(&sref).await.map_err(classify)?;
        Ok(())
    }

    async fn update_stack(
        &self,
        target: &Target<'_>,
        stack: &StackHandle,
        update: &StackUpdate,
    ) -> Result<(), CloudError> {
        let driver = target.driver()?;
        let req = match update {
            StackUpdate::Upgrade(up) => driver.upgrade_request(up).map_err(classify)?,
            StackUpdate::Scale(scale) => driver.scale_request(scale),
        };
        let heat = self.heat(target.project()).await?;
        let sref = StackRef {
            id: stack.id.clone(),
            name: stack.name.clone(),
        };
        heat.update_stack_patch(&sref, &req).await.map_err(classify)
    }

    async fn patch_parameters(
        &self,
        target: &Target<'_>,
        stack: &StackHandle,
        parameters: BTreeMap<String, serde_json::Value>,
        rollback: bool,
    ) -> Result<(), CloudError> {
        let req = UpdateStack {
            parameters,
            disable_rollback: Some(!rollback),
            ..UpdateStack::default()
        };
        let heat = self.heat(target.project()).await?;
        let sref = StackRef {
            id: stack.id.clone(),
            name: stack.name.clone(),
        };
        heat.update_stack_patch(&sref, &req).await.map_err(classify)
    }

    fn trusts(&self) -> bool {
        self.auth.trustee_domain.is_some()
    }

    async fn token_user(&self, token: &str) -> Result<Option<TokenUser>, CloudError> {
        self.validate_user_token(token).await
    }

    async fn ensure_trustee(
        &self,
        view: &ClusterView,
        password: &str,
    ) -> Result<TrusteeUser, CloudError> {
        self.find_or_create_trustee(view, password).await
    }

    async fn ensure_trust(
        &self,
        view: &ClusterView,
        trustee_user_id: &str,
        trustor: &Trustor,
    ) -> Result<String, CloudError> {
        self.find_or_create_trust(view, trustee_user_id, trustor)
            .await
    }

    async fn set_trustee_password(
        &self,
        _view: &ClusterView,
        user_id: &str,
        password: &str,
    ) -> Result<(), CloudError> {
        self.set_password(user_id, password).await
    }

    async fn delete_trustee(&self, view: &ClusterView) -> Result<(), CloudError> {
        self.remove_trustee(view).await
    }
}
