//! Rows → Magnum's JSON. Structs (not maps) so that keys come out in Magnum's order (WSME
//! emits attributes in declaration order); defaulted attributes are always present.
use crate::version::ApiVersion;
use magnum_proto::{ClusterTemplate, ClusterView, Labels, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Link {
    pub href: String,
    pub rel: &'static str,
}

/// `[self, bookmark]` links of a resource (`<url>/v1/<res>/<id>`, `<url>/<res>/<id>`).
pub fn links(base: &str, resource: &str, id: &str) -> Vec<Link> {
    vec![
        Link {
            href: format!("{base}/v1/{resource}/{id}"),
            rel: "self",
        },
        Link {
            href: format!("{base}/{resource}/{id}"),
            rel: "bookmark",
        },
    ]
}

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_magnum)
}

#[derive(Clone, Debug, Serialize)]
pub struct TemplateView {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub coe: Option<String>,
    pub image_id: Option<String>,
    pub flavor_id: Option<String>,
    pub master_flavor_id: Option<String>,
    pub dns_nameserver: Option<String>,
    pub keypair_id: Option<String>,
    pub external_network_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub network_driver: Option<String>,
    pub apiserver_port: Option<i64>,
    pub docker_volume_size: Option<i64>,
    pub cluster_distro: Option<String>,
    pub links: Vec<Link>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub volume_driver: Option<String>,
    pub registry_enabled: bool,
    pub labels: Labels,
    pub tls_disabled: bool,
    pub public: bool,
    pub server_type: Option<String>,
    pub insecure_registry: Option<String>,
    pub docker_storage_driver: Option<String>,
    pub master_lb_enabled: bool,
    pub floating_ip_enabled: bool,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub hidden: bool,
    pub tags: Option<String>,
    pub driver: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

pub fn template(t: &ClusterTemplate, base: &str) -> TemplateView {
    let id = t.uuid.map(|u| u.to_string());
    TemplateView {
        links: links(base, "clustertemplates", id.as_deref().unwrap_or("")),
        uuid: id,
        name: t.name.clone(),
        coe: t.coe.clone(),
        image_id: t.image_id.clone(),
        flavor_id: t.flavor_id.clone(),
        master_flavor_id: t.master_flavor_id.clone(),
        dns_nameserver: t.dns_nameserver.clone(),
        keypair_id: t.keypair_id.clone(),
        external_network_id: t.external_network_id.clone(),
        fixed_network: t.fixed_network.clone(),
        fixed_subnet: t.fixed_subnet.clone(),
        network_driver: t.network_driver.clone(),
        apiserver_port: t.apiserver_port,
        docker_volume_size: t.docker_volume_size,
        cluster_distro: t.cluster_distro.clone(),
        http_proxy: t.http_proxy.clone(),
        https_proxy: t.https_proxy.clone(),
        no_proxy: t.no_proxy.clone(),
        volume_driver: t.volume_driver.clone(),
        registry_enabled: t.registry_enabled,
        labels: t.labels.clone(),
        tls_disabled: t.tls_disabled,
        public: t.public,
        server_type: t.server_type.clone(),
        insecure_registry: t.insecure_registry.clone(),
        docker_storage_driver: t.docker_storage_driver.clone(),
        master_lb_enabled: t.master_lb_enabled,
        floating_ip_enabled: t.floating_ip_enabled,
        project_id: t.project_id.as_ref().map(|p| p.0.clone()),
        user_id: t.user_id.as_ref().map(|u| u.0.clone()),
        hidden: t.hidden,
        tags: t.tags.clone(),
        driver: t.driver.clone(),
        created_at: ts(t.created_at),
        updated_at: ts(t.updated_at),
    }
}

#[derive(Serialize)]
pub struct TemplateList {
    pub clustertemplates: Vec<TemplateView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The Heat stack id of a cluster: `stack_id` up to 1.12, renamed `cluster_id` from 1.13 on
/// (the same column; upstream renamed it when the driver stopped being Heat-only).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub enum StackRef {
    #[serde(rename = "stack_id")]
    StackId(Option<String>),
    #[serde(rename = "cluster_id")]
    ClusterId(Option<String>),
}

impl StackRef {
    fn at_version(self, v: ApiVersion) -> Self {
        match self {
            Self::StackId(id) | Self::ClusterId(id) if v.at_least(1, 13) => Self::ClusterId(id),
            Self::StackId(id) | Self::ClusterId(id) => Self::StackId(id),
        }
    }
}

/// `GET /clusters` items.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterSummary {
    pub uuid: String,
    pub name: String,
    pub cluster_template_id: String,
    pub keypair: Option<String>,
    pub node_count: u32,
    pub master_count: u32,
    pub docker_volume_size: Option<i64>,
    pub labels: Labels,
    pub master_flavor_id: Option<String>,
    pub flavor_id: Option<String>,
    pub create_timeout: i64,
    pub links: Vec<Link>,
    #[serde(flatten)]
    pub stack: StackRef,
    pub status: &'static str,
    pub health_status: Option<String>,
    /// Always `false`: WSME shows the attribute's default, not the stored value.
    pub merge_labels: bool,
}

/// `GET /clusters/{id}` and `/clusters/detail` items.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterFull {
    pub uuid: String,
    pub name: String,
    pub cluster_template_id: String,
    pub keypair: Option<String>,
    pub node_count: u32,
    pub master_count: u32,
    pub docker_volume_size: Option<i64>,
    pub labels: Labels,
    pub master_flavor_id: Option<String>,
    pub flavor_id: Option<String>,
    pub create_timeout: i64,
    pub links: Vec<Link>,
    #[serde(flatten)]
    pub stack: StackRef,
    pub status: &'static str,
    pub status_reason: Option<String>,
    pub health_status: Option<String>,
    pub health_status_reason: BTreeMap<String, String>,
    pub discovery_url: Option<String>,
    pub api_address: Option<String>,
    pub coe_version: Option<String>,
    pub container_version: Option<String>,
    pub project_id: String,
    pub user_id: String,
    pub node_addresses: Vec<String>,
    pub master_addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<BTreeMap<String, Option<String>>>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub floating_ip_enabled: bool,
    pub merge_labels: bool,
    pub labels_overridden: Labels,
    pub labels_added: Labels,
    pub labels_skipped: Labels,
    pub master_lb_enabled: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl ClusterSummary {
    /// The view a client of microversion `v` sees.
    pub fn at_version(mut self, v: ApiVersion) -> Self {
        self.stack = self.stack.at_version(v);
        self
    }
}

impl ClusterFull {
    /// The view a client of microversion `v` sees.
    pub fn at_version(mut self, v: ApiVersion) -> Self {
        self.stack = self.stack.at_version(v);
        self
    }
}

pub fn cluster_summary(v: &ClusterView, base: &str) -> ClusterSummary {
    let c = &v.cluster;
    let id = c.uuid.to_string();
    ClusterSummary {
        links: links(base, "clusters", &id),
        uuid: id,
        name: c.name.clone(),
        cluster_template_id: c.cluster_template_id.to_string(),
        keypair: c.keypair.clone(),
        node_count: v.node_count(),
        master_count: v.master_count(),
        docker_volume_size: c.docker_volume_size,
        labels: c.labels.clone(),
        master_flavor_id: c.master_flavor_id.clone(),
        flavor_id: c.flavor_id.clone(),
        create_timeout: c.create_timeout,
        stack: StackRef::StackId(c.stack_id.clone()),
        status: c.status.as_str(),
        health_status: c.health_status.clone(),
        merge_labels: false,
    }
}

/// `api_utils.get_labels_diff(parent, labels)` → (overridden, added, skipped).
pub fn labels_diff(parent: &Labels, labels: &Labels) -> (Labels, Labels, Labels) {
    let skipped = parent
        .iter()
        .filter(|(k, _)| !labels.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut overridden = Labels::new();
    let mut added = Labels::new();
    for (k, v) in labels {
        match parent.get(k) {
            Some(pv) if pv != v => {
                overridden.insert(k.clone(), pv.clone());
            }
            Some(_) => {}
            None => {
                added.insert(k.clone(), v.clone());
            }
        }
    }
    (overridden, added, skipped)
}

/// Full view; `with_faults` for GET-one (faults only when the cluster failed).
pub fn cluster_full(
    v: &ClusterView,
    parent_labels: &Labels,
    base: &str,
    with_faults: bool,
) -> ClusterFull {
    let c = &v.cluster;
    let id = c.uuid.to_string();
    let (labels_overridden, labels_added, labels_skipped) = labels_diff(parent_labels, &c.labels);
    let faults = (with_faults && c.status.is_failed()).then(|| {
        v.nodegroups
            .iter()
            .filter(|ng| ng.status.is_some_and(|s| s.as_str().ends_with("FAILED")))
            .map(|ng| (ng.name.clone(), ng.status_reason.clone()))
            .collect()
    });
    ClusterFull {
        links: links(base, "clusters", &id),
        uuid: id,
        name: c.name.clone(),
        cluster_template_id: c.cluster_template_id.to_string(),
        keypair: c.keypair.clone(),
        node_count: v.node_count(),
        master_count: v.master_count(),
        docker_volume_size: c.docker_volume_size,
        labels: c.labels.clone(),
        master_flavor_id: c.master_flavor_id.clone(),
        flavor_id: c.flavor_id.clone(),
        create_timeout: c.create_timeout,
        stack: StackRef::StackId(c.stack_id.clone()),
        status: c.status.as_str(),
        status_reason: c.status_reason.clone(),
        health_status: c.health_status.clone(),
        health_status_reason: c.health_status_reason.clone().unwrap_or_default(),
        discovery_url: c.discovery_url.clone(),
        api_address: c.api_address.clone(),
        coe_version: c.coe_version.clone(),
        container_version: c.container_version.clone(),
        project_id: c.project_id.0.clone(),
        user_id: c.user_id.0.clone(),
        node_addresses: v.node_addresses(),
        master_addresses: v.master_addresses(),
        faults,
        fixed_network: c.fixed_network.clone(),
        fixed_subnet: c.fixed_subnet.clone(),
        floating_ip_enabled: c.floating_ip_enabled,
        merge_labels: false,
        labels_overridden,
        labels_added,
        labels_skipped,
        master_lb_enabled: c.master_lb_enabled,
        created_at: c.created_at.to_magnum(),
        updated_at: ts(c.updated_at),
    }
}

#[derive(Serialize)]
pub struct ClusterList<T: Serialize> {
    pub clusters: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Serialize)]
pub struct Uuid {
    pub uuid: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_proto::*;

    fn view(status: ClusterStatus) -> ClusterView {
        let id = ClusterId::new_v4();
        let ng = |name: &str, role: &str, st: ClusterStatus, reason: Option<&str>| NodeGroup {
            id: 0,
            uuid: NodeGroupId::new_v4(),
            name: name.into(),
            cluster_id: id,
            project_id: ProjectId::from("p"),
            docker_volume_size: None,
            labels: Labels::new(),
            flavor_id: None,
            image_id: None,
            node_addresses: vec![format!("10.0.0.{}", name.len())],
            node_count: 3,
            role: role.into(),
            min_node_count: 0,
            max_node_count: None,
            is_default: true,
            stack_id: None,
            status: Some(st),
            status_reason: reason.map(str::to_string),
            version: None,
            created_at: Timestamp(0),
            updated_at: None,
            node_labels: Default::default(),
            node_taints: Vec::new(),
        };
        ClusterView {
            cluster: Cluster {
                uuid: id,
                name: "c".into(),
                project_id: ProjectId::from("p"),
                user_id: UserId::from("u"),
                cluster_template_id: TemplateId::new_v4(),
                keypair: None,
                docker_volume_size: None,
                labels: Labels::new(),
                master_flavor_id: None,
                flavor_id: None,
                fixed_network: None,
                fixed_subnet: None,
                floating_ip_enabled: true,
                master_lb_enabled: false,
                create_timeout: 60,
                discovery_url: None,
                status,
                status_reason: None,
                health_status: None,
                health_status_reason: None,
                api_address: None,
                stack_id: None,
                coe_version: None,
                container_version: None,
                created_at: Timestamp(0),
                updated_at: None,
            },
            nodegroups: vec![
                ng(
                    "default-master",
                    "master",
                    ClusterStatus::CREATE_COMPLETE,
                    None,
                ),
                ng(
                    "default-worker",
                    "worker",
                    ClusterStatus::CREATE_FAILED,
                    Some("boom"),
                ),
            ],
            trustee: None,
            template_labels: None,
        }
    }

    #[test]
    fn faults_only_for_failed_clusters_in_get_one() {
        let failed = view(ClusterStatus::CREATE_FAILED);
        let full = cluster_full(&failed, &Labels::new(), "http://x", true);
        let faults = full.faults.unwrap();
        assert_eq!(faults.len(), 1);
        assert_eq!(faults["default-worker"].as_deref(), Some("boom"));
        assert_eq!((full.node_count, full.master_count), (3, 3));
        assert_eq!(full.master_addresses.len(), 1);
        assert!(cluster_full(&failed, &Labels::new(), "", false)
            .faults
            .is_none());
        let ok = view(ClusterStatus::CREATE_COMPLETE);
        assert!(cluster_full(&ok, &Labels::new(), "", true).faults.is_none());
        let json = serde_json::to_string(&cluster_full(&failed, &Labels::new(), "", true)).unwrap();
        assert!(json.find("\"faults\"").unwrap() > json.find("\"master_addresses\"").unwrap());
    }

    #[test]
    fn diff_like_magnum() {
        let parent: Labels = [("a", "1"), ("b", "2"), ("c", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mine: Labels = [("a", "1"), ("b", "9"), ("x", "y")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (o, a, s) = labels_diff(&parent, &mine);
        assert_eq!(o.get("b").map(String::as_str), Some("2"));
        assert_eq!(a.get("x").map(String::as_str), Some("y"));
        assert_eq!(s.get("c").map(String::as_str), Some("3"));
        assert_eq!((o.len(), a.len(), s.len()), (1, 1, 1));
    }
}
