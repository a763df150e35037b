//! Rows for tests of the crates that use this protocol (feature `fixtures`).
use crate::*;

/// A kubernetes template owned by `project`.
pub fn template(project: &ProjectId) -> ClusterTemplate {
    ClusterTemplate {
        uuid: Some(TemplateId::new_v4()),
        name: Some("t".into()),
        project_id: Some(project.clone()),
        coe: Some("kubernetes".into()),
        image_id: Some("fedora-coreos-40".into()),
        server_type: Some("vm".into()),
        cluster_distro: Some("fedora-coreos".into()),
        ..Default::default()
    }
}

/// A cluster in `CREATE_IN_PROGRESS` using `t`, its two default nodegroups and the request
/// of its create operation, as the API builds them.
pub fn cluster_rows(
    t: &ClusterTemplate,
    name: &str,
    masters: u32,
    workers: u32,
) -> (Cluster, Vec<NodeGroup>, OperationRequest) {
    let id = ClusterId::new_v4();
    let now = Timestamp::now();
    let project = t.project_id.clone().unwrap_or_else(|| ProjectId::from("p"));
    let cluster = Cluster {
        uuid: id,
        name: name.into(),
        project_id: project.clone(),
        user_id: UserId::from("u"),
        cluster_template_id: t.uuid.unwrap_or(TemplateId(uuid::Uuid::nil())),
        keypair: None,
        docker_volume_size: None,
        labels: Default::default(),
        master_flavor_id: None,
        flavor_id: None,
        fixed_network: None,
        fixed_subnet: None,
        floating_ip_enabled: true,
        master_lb_enabled: false,
        create_timeout: 60,
        discovery_url: None,
        status: ClusterStatus::CREATE_IN_PROGRESS,
        status_reason: None,
        health_status: None,
        health_status_reason: None,
        api_address: None,
        stack_id: None,
        coe_version: None,
        container_version: None,
        created_at: now,
        updated_at: None,
    };
    let ng = |name: &str, role: &str, count| NodeGroup {
        id: 0,
        uuid: NodeGroupId::new_v4(),
        name: name.into(),
        cluster_id: id,
        project_id: project.clone(),
        docker_volume_size: None,
        labels: Default::default(),
        flavor_id: None,
        image_id: None,
        node_addresses: vec![],
        node_count: count,
        role: role.into(),
        min_node_count: 0,
        max_node_count: None,
        is_default: true,
        stack_id: None,
        status: None,
        status_reason: None,
        version: None,
        created_at: now,
        updated_at: None,
        node_labels: Default::default(),
        node_taints: Vec::new(),
    };
    let op = OperationRequest {
        id: OpId::new_v4(),
        started_at: now,
        deadline: now.plus_secs(3600),
        template: t.clone(),
        trustor: None,
        legacy: None,
    };
    (
        cluster,
        vec![
            ng("default-master", "master", masters),
            ng("default-worker", "worker", workers),
        ],
        op,
    )
}

/// Placeholder PEM material for state tests (nothing parses it).
pub fn certs() -> ClusterCerts {
    ClusterCerts {
        ca_cert: "c".into(),
        ca_key: "k".into(),
        client_cert: "cc".into(),
        client_key: "ck".into(),
        etcd_ca_cert: None,
        etcd_ca_key: None,
        front_proxy_ca_cert: None,
        front_proxy_ca_key: None,
        service_account_key: None,
        service_account_private_key: None,
    }
}
