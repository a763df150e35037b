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
