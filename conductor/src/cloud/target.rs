//! What a cluster's stack calls act on, resolved once per reconciler step or sync round: the
//! cluster, its driver and the spec the driver renders. Built from the template snapshot and the
//! view; the cloud adds only its own endpoints.
use crate::cloud::CloudError;
use magnum_drivers::{ClusterSpec, Driver, Trustee};
use magnum_proto::{ClusterTemplate, ClusterView, OpKind, Operation, ProjectId, TrusteeRecord};

#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub view: &'a ClusterView,
    /// Without the cloud's endpoints (`auth_url`, `region_name`, `magnum_url`): the cloud's own.
    pub spec: ClusterSpec,
    /// The operation the calls serve (`None`: a status read); failpoint sites are named by it.
    pub op: Option<OpTag<'a>>,
    /// Kept as the error's reason: it surfaces only in calls that need the driver, as before.
    driver: Result<&'static dyn Driver, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpTag<'a> {
    pub kind: OpKind,
    pub stack_name: &'a str,
}

impl<'a> Target<'a> {
    /// `trustee` with its password opened (the view's is sealed).
    pub fn new(
        template: &ClusterTemplate,
        view: &'a ClusterView,
        trustee: Option<&TrusteeRecord>,
    ) -> Self {
        Self {
            view,
            spec: spec(template, view, trustee),
            op: None,
            driver: resolve(template),
        }
    }

    /// For reading a stack's status when the template is not at hand (it may live in another
    /// shard): no driver, so outputs cannot be mapped.
    pub fn status_only(view: &'a ClusterView) -> Self {
        Self {
            view,
            spec: spec(&ClusterTemplate::default(), view, None),
            op: None,
            driver: Err("The cluster's template is not available.".into()),
        }
    }

    pub fn serving(self, op: &'a Operation) -> Self {
        Self {
            op: Some(OpTag {
                kind: op.kind,
                stack_name: &op.stack_name,
            }),
            ..self
        }
    }

    pub fn project(&self) -> &'a ProjectId {
        &self.view.cluster.project_id
    }

    /// The template's driver; an unsupported one fails the call for good.
    pub fn driver(&self) -> Result<&'static dyn Driver, CloudError> {
        self.driver.clone().map_err(CloudError::Permanent)
    }
}

/// The template's named driver, else the one serving its (server_type, distro, coe).
fn resolve(t: &ClusterTemplate) -> Result<&'static dyn Driver, String> {
    let key = magnum_drivers::TemplateKey {
        driver: t.driver.as_deref(),
        server_type: t.server_type.as_deref(),
        cluster_distro: t.cluster_distro.as_deref(),
        coe: t.coe.as_deref(),
    };
    magnum_drivers::driver_for(&key).ok_or_else(|| {
        let (server_type, distro, coe) = key.triple();
        format!("Cluster type ({server_type}, {distro}, {coe}) not supported.")
    })
}

/// Cluster values override the template's.
fn spec(t: &ClusterTemplate, view: &ClusterView, trustee: Option<&TrusteeRecord>) -> ClusterSpec {
    let c = &view.cluster;
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
        trustee: trustee.map(|t| Trustee {
            domain_id: t.domain_id.clone(),
            user_id: t.user_id.clone(),
            username: t.username.clone(),
            password: t.password.clone(),
            trust_id: t.trust_id.clone(),
        }),
        ..ClusterSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_proto::fixtures;

    fn view(t: &ClusterTemplate) -> ClusterView {
        let (cluster, nodegroups, _) = fixtures::cluster_rows(t, "c", 1, 2);
        ClusterView {
            cluster,
            nodegroups,
            trustee: None,
            template_labels: None,
        }
    }

    #[test]
    fn driver_by_name_then_by_triple_else_unsupported() {
        let mut t = fixtures::template(&ProjectId::from("p"));
        let v = view(&t);
        assert!(Target::new(&t, &v, None).driver().is_ok());
        t.coe = Some("nomad".into());
        t.driver = None;
        let e = Target::new(&t, &v, None).driver().unwrap_err();
        let want = format!(
            "Cluster type ({}, {}, nomad) not supported.",
            t.server_type.as_deref().unwrap_or("vm"),
            t.cluster_distro.as_deref().unwrap_or("")
        );
        assert_eq!(e.to_string(), want);
        assert!(matches!(e, CloudError::Permanent(_)));
        assert!(Target::status_only(&v).driver().is_err());
    }

    #[test]
    fn spec_takes_cluster_values_over_the_template() {
        let t = fixtures::template(&ProjectId::from("p"));
        let mut v = view(&t);
        v.cluster.flavor_id = Some("cluster-flavor".into());
        let s = Target::new(&t, &v, None).spec;
        assert_eq!(s.flavor_id.as_deref(), Some("cluster-flavor"));
        assert_eq!((s.node_count, s.master_count), (2, 1));
        assert_eq!(s.name, "c");
        assert!(s.trustee.is_none());
    }
}
