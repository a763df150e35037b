//! Magnum's user-visible messages, in one place so wording stays identical to upstream.
use magnum_proto::{ClusterId, FederationId, ProjectId, TemplateId};

pub fn template_not_found(ident: &str) -> String {
    format!("ClusterTemplate {ident} could not be found.")
}

pub fn template_exists(id: TemplateId) -> String {
    format!("A ClusterTemplate with UUID {id} already exists.")
}

pub fn template_referenced(id: TemplateId) -> String {
    format!("ClusterTemplate {id} is referenced by one or multiple clusters.")
}

pub fn template_concurrent_update(id: TemplateId) -> String {
    format!("ClusterTemplate {id} was updated concurrently; retry the request.")
}

pub fn cluster_not_found(ident: &str) -> String {
    format!("Cluster {ident} could not be found.")
}

pub fn cluster_exists(id: ClusterId) -> String {
    format!("A cluster with UUID {id} already exists.")
}

pub fn quota_exceeded(limit: u32) -> String {
    format!(
        "Resource limit exceeded: You have reached the maximum clusters per project, {limit}. You may delete a cluster to make room for a new one."
    )
}

/// Worded like [`quota_exceeded`]; upstream has no such bound (see DIFFERENCES.md).
pub fn template_limit(limit: u32) -> String {
    format!(
        "Resource limit exceeded: You have reached the maximum cluster templates per project, {limit}. You may delete a cluster template to make room for a new one."
    )
}

pub fn quota_exists(project: &ProjectId, resource: &str) -> String {
    format!("Quota for project {project} already exists for resource {resource}.")
}

pub fn quota_not_found(project: &ProjectId, resource: &str) -> String {
    format!("Quota could not be found: project_id {project} resource {resource}.")
}

pub fn federation_not_found(ident: &str) -> String {
    format!("Federation {ident} could not be found.")
}

pub fn federation_exists(id: FederationId) -> String {
    format!("A federation with UUID {id} already exists.")
}

pub fn member_exists(member: &str, federation: &str) -> String {
    format!("A cluster with UUID {member} is already a member of the federation {federation}.")
}

pub fn not_a_member(member: &str, federation: &str) -> String {
    format!("Cluster {member} is not a member of the federation {federation}.")
}

pub const FEDERATION_NO_DNS_ZONE: &str = "No DNS zone specified.";
pub fn nodegroup_not_found(ident: &str) -> String {
    format!("Nodegroup {ident} could not be found.")
}

pub fn nodegroup_exists(name: &str, cluster: ClusterId) -> String {
    format!("A node group with name {name} already exists in the cluster {cluster}.")
}

pub fn nodegroup_invalid(attr: &str, nodegroup: &str, expl: &str) -> String {
    format!("{attr} for {nodegroup} is invalid ({expl}).")
}

pub fn api_address_unavailable() -> String {
    "The cluster API address is not available yet. Retry after the cluster was created.".into()
}

pub fn cluster_busy(id: ClusterId, what: &str) -> String {
    format!("Cluster {id} has an operation ({what}) in progress; retry when it has finished.")
}

pub fn template_invalid_for_upgrade(reason: &str) -> String {
    format!("ClusterTemplate is not valid for upgrade: {reason}")
}

pub fn invalid_version(label: &str, tag: &str) -> String {
    format!("Invalid version: a downgrade of {label} to {tag} is not supported.")
}
