//! Cluster create rules (reference §6.1) and the rows a create commits: the cluster, its two
//! default nodegroups (§6.3) and its create operation.
use super::fields::{self, field, mandatory, parse_object, Kind, Spec, STR255};
use crate::auth::Identity;
use crate::coe::{check_devicemapper_size, resolve_driver};
use crate::error::ApiError;
use crate::lookups;
use crate::names;
use crate::policy::{self, Action};
use crate::state::AppState;
use crate::store::Store;
use crate::version::ApiVersion;
use magnum_proto::{
    Cluster, ClusterId, ClusterStatus, NodeGroup, NodeGroupId, OpId, OpKind, OperationRequest,
    Timestamp, Trustor,
};
use serde_json::Value;

const STATUSES: &[&str] = &[
    "CREATE_IN_PROGRESS",
    "CREATE_FAILED",
    "CREATE_COMPLETE",
    "UPDATE_IN_PROGRESS",
    "UPDATE_FAILED",
    "UPDATE_COMPLETE",
    "DELETE_IN_PROGRESS",
    "DELETE_FAILED",
    "DELETE_COMPLETE",
    "RESUME_COMPLETE",
    "RESUME_FAILED",
    "RESTORE_COMPLETE",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_FAILED",
    "ROLLBACK_COMPLETE",
    "SNAPSHOT_COMPLETE",
    "CHECK_COMPLETE",
    "ADOPT_COMPLETE",
];
const HEALTH: &[&str] = &["HEALTHY", "UNHEALTHY", "UNKNOWN"];
const MAX_COUNT: i64 = i32::MAX as i64;

/// The API type `Cluster`, in declaration order.
pub const FIELDS: &[Spec] = &[
    field("uuid", Kind::Uuid),
    field("name", Kind::ClusterName),
    mandatory("cluster_template_id", Kind::Text),
    field("keypair", STR255),
    field(
        "node_count",
        Kind::Int {
            min: Some(0),
            max: Some(MAX_COUNT),
        },
    ),
    field(
        "master_count",
        Kind::Int {
            min: Some(1),
            max: Some(MAX_COUNT),
        },
    ),
    field(
        "docker_volume_size",
        Kind::Int {
            min: Some(1),
            max: Some(MAX_COUNT),
        },
    ),
    field("labels", Kind::Labels),
    field("master_flavor_id", STR255),
    field("flavor_id", STR255),
    field(
        "create_timeout",
        Kind::Int {
            min: Some(0),
            max: Some(MAX_COUNT),
        },
    ),
    field("links", Kind::ReadOnly),
    field("stack_id", Kind::ReadOnly),
    field("status", Kind::Enum(STATUSES)),
    field("status_reason", Kind::Text),
    field("health_status", Kind::Enum(HEALTH)),
    field("health_status_reason", Kind::StrDict),
    field("discovery_url", Kind::Text),
    field("api_address", Kind::ReadOnly),
    field("coe_version", Kind::ReadOnly),
    field("container_version", Kind::ReadOnly),
    field("project_id", Kind::ReadOnly),
    field("user_id", Kind::ReadOnly),
    field("node_addresses", Kind::ReadOnly),
    field("master_addresses", Kind::ReadOnly),
    field("faults", Kind::StrDict),
    field("fixed_network", STR255),
    field("fixed_subnet", STR255),
    field("floating_ip_enabled", Kind::Bool),
    field("merge_labels", Kind::Bool),
    field("labels_overridden", Kind::Labels),
    field("labels_added", Kind::Labels),
    field("labels_skipped", Kind::Labels),
    field("master_lb_enabled", Kind::Bool),
    field("created_at", Kind::ReadOnly),
    field("updated_at", Kind::ReadOnly),
];

/// What a cluster create commits in one shard command.
pub struct NewCluster {
    pub cluster: Cluster,
    pub nodegroups: Vec<NodeGroup>,
    pub operation: OperationRequest,
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// `POST /clusters`: validates in Magnum's order and builds the rows.
pub async fn validate_create(
    state: &AppState,
    who: &Identity,
    version: ApiVersion,
    body: &Value,
) -> Result<NewCluster, ApiError> {
    let f = parse_object("cluster", body, FIELDS)?;
    let v = &state.settings.validation;
    let Some(ct_ident) = f.str("cluster_template_id") else {
        return Err(fields::invalid(
            "cluster_template_id",
            &Value::Null,
            "Mandatory field missing.",
        ));
    };
    // ClusterTemplate.get uses the caller's project scope even for admins (own ∪ public).
    // Not found is 400 up to 1.9 (ct_not_found_to_bad_request) and 404 from 1.10 on, as
    // upstream Magnum 23 answers (chaos-tests/tests/differential.rs).
    let store = Store::new(state, who);
    let ct = match store.find_template(who, &ct_ident, false).await {
        Err(ApiError::NotFound(m)) if !version.at_least(1, 10) => {
            return Err(ApiError::BadRequest(m))
        }
        other => other?,
    };
    resolve_driver(
        &v.drivers,
        ct.server_type.as_deref(),
        ct.cluster_distro.as_deref(),
        ct.coe.as_deref(),
        None,
    )?;
    let docker_volume_size = f
        .int("docker_volume_size")
        .filter(|s| *s > 0)
        .or(ct.docker_volume_size);
    check_devicemapper_size(ct.docker_storage_driver.as_deref(), docker_volume_size)?;
    let master_count = f.int("master_count").unwrap_or(1);
    if master_count % 2 == 0 {
        return Err(ApiError::BadRequest(format!(
            "master nodegroup size of {master_count} is invalid, size cannot be an even number."
        )));
    }
    fields::check_count("master_count", master_count, v.max_master_count)?;
    let node_count = f.int("node_count").unwrap_or(1);
    fields::check_count("node_count", node_count, v.max_node_count)?;
    if node_count == 0 && !version.at_least(1, 10) {
        return Err(ApiError::bad_request(
            "Resizing a nodegroup to zero is not supported in the provided microversion.",
        ));
    }
    policy::enforce(who, Action::ClusterCreate, None)?;

    // Inherit from the template what the request left unset or empty.
    let keypair = f.str("keypair").or(ct.keypair_id.clone());
    let given_labels = f.map("labels").filter(|l| !l.is_empty());
    let labels = match given_labels {
        None => ct.labels.clone(),
        Some(given) if f.bool("merge_labels").unwrap_or(false) => {
            let mut merged = ct.labels.clone();
            merged.extend(given);
            merged
        }
        Some(given) => given,
    };
    let floating_ip_enabled = f
        .bool("floating_ip_enabled")
        .unwrap_or(ct.floating_ip_enabled);
    let master_lb_enabled = f.bool("master_lb_enabled").unwrap_or(ct.master_lb_enabled);
    let master_flavor_id = nonempty(f.str("master_flavor_id")).or(ct.master_flavor_id.clone());
    let flavor_id = nonempty(f.str("flavor_id")).or(ct.flavor_id.clone());
    let fixed_network = nonempty(f.str("fixed_network")).or(ct.fixed_network.clone());
    let fixed_subnet = nonempty(f.str("fixed_subnet")).or(ct.fixed_subnet.clone());

    let l = state.lookups.as_ref();
    super::check_root_volume(
        l,
        who,
        &labels,
        v.default_boot_volume_size,
        &[flavor_id.as_deref(), master_flavor_id.as_deref()],
    )
    .await?;
    if let Some(image) = &ct.image_id {
        let img = lookups::image(l, who, image).await?;
        if img.os_distro.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::BadRequest(format!(
                "Image {image} doesn't contain os_distro field."
            )));
        }
    }
    for fl in [&flavor_id, &master_flavor_id].into_iter().flatten() {
        lookups::flavor(l, who, fl).await?;
    }
    if let Some(n) = &ct.external_network_id {
        lookups::external_network(l, who, n).await?;
    }
    if let Some(n) = &fixed_network {
        lookups::fixed_network(l, who, n).await?;
    }
    if let Some(s) = &fixed_subnet {
        lookups::fixed_subnet(l, who, s).await?;
    }
    if let Some(k) = &keypair {
        lookups::keypair(l, who, k).await?;
    }
    if master_count > 1 && !master_lb_enabled {
        return Err(ApiError::bad_request(
            "master_count must be 1 when master_lb_enabled is False",
        ));
    }
    let min_node_count = match labels.get("min_node_count") {
        None => 0,
        Some(s) => s.trim().parse::<u32>().map_err(|_| {
            ApiError::BadRequest(format!(
                "Invalid input for field/attribute min_node_count. Value: '{s}'. \
                 Value should be a non-negative integer"
            ))
        })?,
    };

    let now = Timestamp::now();
    let project = who.project();
    let id = ClusterId::in_shard(Store::new(state, who).shard_of(&project).await?);
    let name = nonempty(f.str("name")).unwrap_or_else(|| names::random_name("cluster"));
    let create_timeout = f.int("create_timeout").unwrap_or(v.default_create_timeout);
    let Some(ct_id) = ct.uuid else {
        return Err(ApiError::Internal("template without uuid".into()));
    };
    let cluster = Cluster {
        uuid: id,
        name: name.clone(),
        project_id: project.clone(),
        user_id: who.user(),
        cluster_template_id: ct_id,
        keypair,
        docker_volume_size,
        labels: labels.clone(),
        master_flavor_id: master_flavor_id.clone(),
        flavor_id: flavor_id.clone(),
        fixed_network,
        fixed_subnet,
        floating_ip_enabled,
        master_lb_enabled,
        create_timeout,
        discovery_url: f.str("discovery_url"),
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
    let ng = |role: &str, count: i64, flavor: Option<String>, min: u32| NodeGroup {
        id: 0,
        uuid: NodeGroupId::new_v4(),
        name: format!("default-{role}"),
        cluster_id: id,
        project_id: project.clone(),
        docker_volume_size,
        labels: labels.clone(),
        flavor_id: flavor,
        image_id: ct.image_id.clone(),
        node_addresses: Vec::new(),
        node_count: u32::try_from(count).unwrap_or(u32::MAX),
        role: role.to_string(),
        min_node_count: min,
        max_node_count: None,
        is_default: true,
        stack_id: None,
        status: Some(ClusterStatus::CREATE_IN_PROGRESS),
        status_reason: None,
        version: None,
        created_at: now,
        updated_at: None,
        node_labels: Default::default(),
        node_taints: Vec::new(),
    };
    let nodegroups = vec![
        ng("master", master_count, master_flavor_id, 0),
        ng("worker", node_count, flavor_id, min_node_count),
    ];
    // 0 means the driver's default of 60 minutes.
    let timeout_min = if create_timeout == 0 {
        60
    } else {
        create_timeout
    };
    let slack = i64::try_from(v.deadline_slack.as_secs()).unwrap_or(600);
    let operation = OperationRequest {
        id: OpId::new_v4(),
        started_at: now,
        deadline: now.plus_secs(timeout_min.saturating_mul(60).saturating_add(slack)),
        template: ct.clone(),
        trustor: Some(Trustor {
            user_id: who.user_id.clone(),
            roles: who.roles.clone(),
            token: who.token.clone(),
        }),
        legacy: None,
    }
    .readable_by_v1(OpKind::Create, id, magnum_drivers::stack_name(&name, id.0));
    Ok(NewCluster {
        cluster,
        nodegroups,
        operation,
    })
}
