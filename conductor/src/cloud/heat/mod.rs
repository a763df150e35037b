//! `Cloud` on real OpenStack APIs: Keystone service session + Heat, through magnum-drivers. The
//! conductor acts with its service credentials (admin) on each cluster's project's Heat endpoint.
use crate::cloud::{Cloud, CloudError, StackHandle, StackState, TrusteeUser};
use async_trait::async_trait;
use magnum_drivers::openstack::{
    heat_url_for_project, Domain, HeatClient, HttpClient, Interface, KeystoneClient,
    PasswordCredentials, ServiceSession, StackRef, TokenProvider, UpdateStack,
};
use magnum_drivers::{
    driver_for, ClusterSpec, Driver, NodeGroupSpec, NodeTaint, OutputOptions, ScaleSpec,
    TemplateKey, Trustee, UpgradeSpec,
};
use magnum_proto::{ClusterView, NodeGroup, OpKind, Operation, ProjectId, StackOutputs, Trustor};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    http: HttpClient,
    session: Arc<ServiceSession>,
    /// The trustee domain's id, looked up once.
    trustee_domain_id: tokio::sync::OnceCell<String>,
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
        Ok(Self {
            auth,
            http,
            session: Arc::new(ServiceSession::new(keystone, creds)),
            trustee_domain_id: tokio::sync::OnceCell::new(),
        })
    }

    async fn heat(&self, project: &ProjectId) -> Result<HeatClient, CloudError> {
        let endpoint = self
            .session
            .endpoint(
                "orchestration",
                Interface::Public,
                self.auth.region.as_deref(),
            )
            .await
            .map_err(classify)?;
        let url = heat_url_for_project(&endpoint, &project.0).map_err(classify)?;
        let tokens: Arc<dyn TokenProvider> = self.session.clone();
        Ok(HeatClient::new(self.http.clone(), url, tokens))
    }

    fn driver(op: &Operation) -> Result<&'static dyn Driver, CloudError> {
        let t = &op.template;
        let key = TemplateKey {
            driver: t.driver.as_deref(),
            server_type: t.server_type.as_deref(),
            cluster_distro: t.cluster_distro.as_deref(),
            coe: t.coe.as_deref(),
        };
        let (server_type, distro, coe) = key.triple();
        driver_for(&key).ok_or_else(|| {
            CloudError::Permanent(format!(
                "Cluster type ({server_type}, {distro}, {coe}) not supported."
            ))
        })
    }

    async fn spec(&self, op: &Operation, view: &ClusterView) -> ClusterSpec {
        let t = &op.template;
        let c = &view.cluster;
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
            cluster_uuid: c.uuid.0,
            name: c.name.clone(),
            project_id: c.project_id.0.clone(),
            username: None,
            coe: t.coe.clone().unwrap_or_default(),
            server_type: t.server_type.clone().unwrap_or_else(|| "vm".into()),
            cluster_distro: t.cluster_distro.clone().unwrap_or_default(),
            image_id: t.image_id.clone().unwrap_or_default(),
            flavor_id: c.flavor_id.clone().or_else(|| t.flavor_id.clone()),
            master_flavor_id: c
                .master_flavor_id
                .clone()
                .or_else(|| t.master_flavor_id.clone()),
            keypair: c.keypair.clone().or_else(|| t.keypair_id.clone()),
            external_network_id: t.external_network_id.clone(),
            fixed_network: c.fixed_network.clone().or_else(|| t.fixed_network.clone()),
            fixed_subnet: c.fixed_subnet.clone().or_else(|| t.fixed_subnet.clone()),
            dns_nameserver: t.dns_nameserver.clone(),
            network_driver: t.network_driver.clone(),
            volume_driver: t.volume_driver.clone(),
            tls_disabled: t.tls_disabled,
            registry_enabled: t.registry_enabled,
            insecure_registry: t.insecure_registry.clone(),
            docker_volume_size: c
                .docker_volume_size
                .or(t.docker_volume_size)
                .and_then(|v| u32::try_from(v).ok()),
            docker_storage_driver: t.docker_storage_driver.clone(),
            http_proxy: t.http_proxy.clone(),
            https_proxy: t.https_proxy.clone(),
            no_proxy: t.no_proxy.clone(),
            labels: c.labels.clone(),
            floating_ip_enabled: c.floating_ip_enabled,
            master_lb_enabled: c.master_lb_enabled,
            node_count: view.node_count(),
            master_count: view.master_count(),
            create_timeout: u32::try_from(c.create_timeout).unwrap_or(60),
            discovery_url: c.discovery_url.clone(),
            magnum_url,
            auth_url: self.auth.auth_url.clone(),
            region_name: self.auth.region.clone(),
            trustee: view.trustee.as_ref().map(|t| Trustee {
                domain_id: t.domain_id.clone(),
                user_id: t.user_id.clone(),
                username: t.username.clone(),
                password: t.password.clone(),
                trust_id: t.trust_id.clone(),
            }),
            ..ClusterSpec::default()
        }
    }
}

#[async_trait]
impl Cloud for HeatCloud {
    fn stack_name(&self, cluster: &ClusterView) -> String {
        magnum_drivers::stack_name(&cluster.cluster.name, cluster.cluster.uuid.0)
    }

    async fn create_stack(
        &self,
        op: &Operation,
        view: &ClusterView,
    ) -> Result<StackHandle, CloudError> {
        let driver = Self::driver(op)?;
        let spec = self.spec(op, view).await;
        let req = driver.create_stack_request(&spec).map_err(classify)?;
        let heat = self.heat(&view.cluster.project_id).await?;
        let r = heat.create_stack(&req).await.map_err(classify)?;
        Ok(StackHandle {
            name: r.name,
            id: r.id,
        })
    }

    async fn create_nodegroup_stack(
        &self,
        op: &Operation,
        view: &ClusterView,
        ng: &NodeGroup,
    ) -> Result<StackHandle, CloudError> {
        let driver = Self::driver(op)?;
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
        let spec = self.spec(op, view).await;
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
        project: &ProjectId,
        stack: &StackHandle,
        op: &Operation,
        view: &ClusterView,
        with_outputs: bool,
    ) -> Result<Option<StackState>, CloudError> {
        let heat = self.heat(project).await?;
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
        let outputs = if with_outputs {
            let opts = OutputOptions {
                tls_disabled: op.template.tls_disabled,
                floating_ip_enabled: view.cluster.floating_ip_enabled,
            };
            let o = Self::driver(op)?.map_outputs(&opts, &s);
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
            status: s.status,
            reason,
            outputs,
        }))
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
        op: &Operation,
        view: &ClusterView,
        stack: &StackHandle,
    ) -> Result<(), CloudError> {
        let driver = Self::driver(op)?;
        let req = match (&op.upgrade, op.kind) {
            (Some(up), OpKind::Upgrade) => driver
                .upgrade_request(&UpgradeSpec {
                    kube_tag: up.kube_tag.clone(),
                    max_batch_size: up.max_batch_size,
                })
                .map_err(classify)?,
            _ => {
                // The operation's nodegroup, or the default worker (operations from before
                // `nodegroup` existed).
                let ng = view
                    .nodegroups
                    .iter()
                    .find(|n| Some(n.uuid) == op.nodegroup)
                    .or_else(|| {
                        view.nodegroups
                            .iter()
                            .find(|n| n.is_default && !n.is_master())
                    });
                driver.scale_request(&ScaleSpec {
                    node_count: ng.map_or(0, |n| n.node_count),
                    nodes_to_remove: op.nodes_to_remove.clone(),
                    rollback: op.rollback,
                })
            }
        };
        let heat = self.heat(&view.cluster.project_id).await?;
        let sref = StackRef {
            id: stack.id.clone(),
            name: stack.name.clone(),
        };
        heat.update_stack_patch(&sref, &req).await.map_err(classify)
    }

    async fn patch_parameters(
        &self,
        op: &Operation,
        view: &ClusterView,
        stack: &StackHandle,
        parameters: BTreeMap<String, serde_json::Value>,
    ) -> Result<(), CloudError> {
        let req = UpdateStack {
            parameters,
            disable_rollback: Some(!op.rollback),
            ..UpdateStack::default()
        };
        let heat = self.heat(&view.cluster.project_id).await?;
        let sref = StackRef {
            id: stack.id.clone(),
            name: stack.name.clone(),
        };
        heat.update_stack_patch(&sref, &req).await.map_err(classify)
    }

    fn trusts(&self) -> bool {
        self.auth.trustee_domain.is_some()
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
