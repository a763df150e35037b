//! Magnum's default policies (2023.2+ scoped defaults, reference §10), as code.
//!
//! Reads need admin or a reader (member implies reader) of the target project; writes need
//! admin or a member of it. The trustee-domain exclusions (`deny_cluster_user`) do not apply:
//! this service creates no trustee users.
use crate::auth::Identity;
use crate::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `role:admin`.
    Admin,
    /// `role:admin or (role:reader and project_id:%(project_id)s)`.
    AdminOrReader,
    /// `role:admin or (role:member and project_id:%(project_id)s)`.
    AdminOrMember,
    /// `role:member and project_id:%(project_id)s` (the admin role alone does not pass).
    Member,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    TemplateCreate,
    TemplateDelete,
    TemplateDeleteAllProjects,
    TemplateDetail,
    TemplateDetailAllProjects,
    TemplateGet,
    TemplateGetOneAllProjects,
    TemplateGetAll,
    TemplateGetAllAllProjects,
    TemplateUpdate,
    TemplateUpdateAllProjects,
    TemplatePublish,
    ClusterCreate,
    ClusterDelete,
    ClusterDeleteAllProjects,
    ClusterDetail,
    ClusterDetailAllProjects,
    ClusterGet,
    ClusterGetOneAllProjects,
    ClusterGetAll,
    ClusterGetAllAllProjects,
    ServiceGetAll,
    QuotaCreate,
    QuotaDelete,
    QuotaGet,
    QuotaGetAll,
    QuotaUpdate,
    StatsGetAll,
    CertificateGet,
    CertificateCreate,
    ClusterResize,
    ClusterUpdate,
    ClusterUpdateAllProjects,
    ClusterUpdateHealthStatus,
    NodegroupGet,
    NodegroupGetAll,
    NodegroupGetAllAllProjects,
    NodegroupGetOneAllProjects,
    FederationCreate,
    FederationDelete,
    FederationDetail,
    FederationGet,
    FederationGetAll,
    FederationUpdate,
    NodegroupCreate,
    NodegroupUpdate,
    NodegroupDelete,
    ClusterUpgrade,
    CertificateRotateCa,
    CredentialRotate,
}

impl Action {
    pub fn name(self) -> &'static str {
        use Action::*;
        match self {
            TemplateCreate => "clustertemplate:create",
            TemplateDelete => "clustertemplate:delete",
            TemplateDeleteAllProjects => "clustertemplate:delete_all_projects",
            TemplateDetail => "clustertemplate:detail",
            TemplateDetailAllProjects => "clustertemplate:detail_all_projects",
            TemplateGet => "clustertemplate:get",
            TemplateGetOneAllProjects => "clustertemplate:get_one_all_projects",
            TemplateGetAll => "clustertemplate:get_all",
            TemplateGetAllAllProjects => "clustertemplate:get_all_all_projects",
            TemplateUpdate => "clustertemplate:update",
            TemplateUpdateAllProjects => "clustertemplate:update_all_projects",
            TemplatePublish => "clustertemplate:publish",
            ClusterCreate => "cluster:create",
            ClusterDelete => "cluster:delete",
            ClusterDeleteAllProjects => "cluster:delete_all_projects",
            ClusterDetail => "cluster:detail",
            ClusterDetailAllProjects => "cluster:detail_all_projects",
            ClusterGet => "cluster:get",
            ClusterGetOneAllProjects => "cluster:get_one_all_projects",
            ClusterGetAll => "cluster:get_all",
            ClusterGetAllAllProjects => "cluster:get_all_all_projects",
            ServiceGetAll => "magnum-service:get_all",
            QuotaCreate => "quota:create",
            QuotaDelete => "quota:delete",
            QuotaGet => "quota:get",
            QuotaGetAll => "quota:get_all",
            QuotaUpdate => "quota:update",
            StatsGetAll => "stats:get_all",
            CertificateGet => "certificate:get",
            CertificateCreate => "certificate:create",
            ClusterResize => "cluster:resize",
            ClusterUpdate => "cluster:update",
            ClusterUpdateAllProjects => "cluster:update_all_projects",
            ClusterUpdateHealthStatus => "cluster:update_health_status",
            NodegroupGet => "nodegroup:get",
            NodegroupGetAll => "nodegroup:get_all",
            NodegroupGetAllAllProjects => "nodegroup:get_all_all_projects",
            NodegroupGetOneAllProjects => "nodegroup:get_one_all_projects",
            FederationCreate => "federation:create",
            FederationDelete => "federation:delete",
            FederationDetail => "federation:detail",
            FederationGet => "federation:get",
            FederationGetAll => "federation:get_all",
            FederationUpdate => "federation:update",
            NodegroupCreate => "nodegroup:create",
            NodegroupUpdate => "nodegroup:update",
            NodegroupDelete => "nodegroup:delete",
            ClusterUpgrade => "cluster:upgrade",
            CertificateRotateCa => "certificate:rotate_ca",
            CredentialRotate => "credential:rotate",
        }
    }

    pub fn rule(self) -> Rule {
        use Action::*;
        match self {
            TemplateDeleteAllProjects
            | TemplateDetailAllProjects
            | TemplateGetOneAllProjects
            | TemplateGetAllAllProjects
            | TemplateUpdateAllProjects
            | TemplatePublish
            | ClusterDeleteAllProjects
            | ClusterDetailAllProjects
            | ClusterGetOneAllProjects
            | ClusterGetAllAllProjects
            | ServiceGetAll
            | QuotaCreate
            | QuotaDelete
            | QuotaGetAll
            | QuotaUpdate
            | ClusterUpdateAllProjects
            | NodegroupGetAllAllProjects
            | NodegroupGetOneAllProjects => Rule::Admin,
            TemplateDetail | TemplateGet | TemplateGetAll | ClusterDetail | ClusterGet
            | ClusterGetAll | QuotaGet | StatsGetAll | CertificateGet | NodegroupGet
            | NodegroupGetAll | FederationDetail | FederationGet | FederationGetAll => {
                Rule::AdminOrReader
            }
            TemplateCreate
            | TemplateDelete
            | TemplateUpdate
            | ClusterCreate
            | ClusterDelete
            | CertificateCreate
            | ClusterUpdate
            | ClusterUpdateHealthStatus
            | ClusterResize
            | FederationCreate
            | FederationDelete
            | FederationUpdate
            | NodegroupCreate
            | NodegroupUpdate
            | NodegroupDelete
            | ClusterUpgrade
            | CertificateRotateCa => Rule::AdminOrMember,
            CredentialRotate => Rule::Member,
        }
    }
}

/// Whether `who` passes `action` on a resource of `target_project` (the caller's own project
/// when the action has no target, as oslo.policy's default target does).
pub fn allowed(who: &Identity, action: Action, target_project: Option<&str>) -> bool {
    let target = target_project.unwrap_or(&who.project_id);
    let in_project = !who.project_id.is_empty() && who.project_id == target;
    if action.rule() == Rule::Member {
        return in_project && who.has_role("member");
    }
    if who.is_admin() {
        return true;
    }
    match action.rule() {
        Rule::Member => in_project && who.has_role("member"),
        Rule::Admin => false,
        Rule::AdminOrReader => in_project && (who.has_role("reader") || who.has_role("member")),
        Rule::AdminOrMember => in_project && who.has_role("member"),
    }
}

/// `policy.enforce(...)`: 403 `Policy doesn't allow <action> to be performed.`
pub fn enforce(
    who: &Identity,
    action: Action,
    target_project: Option<&str>,
) -> Result<(), ApiError> {
    if allowed(who, action, target_project) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "Policy doesn't allow {} to be performed.",
            action.name()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(project: &str, roles: &[&str]) -> Identity {
        Identity {
            project_id: project.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn roles_and_projects() {
        let reader = who("a", &["reader"]);
        let member = who("a", &["Member"]);
        let admin = who("x", &["admin"]);
        assert!(allowed(&reader, Action::ClusterGet, Some("a")));
        assert!(!allowed(&reader, Action::ClusterCreate, None));
        assert!(allowed(&member, Action::ClusterCreate, None));
        assert!(allowed(&member, Action::ClusterGet, None));
        assert!(!allowed(&member, Action::TemplateDelete, Some("b")));
        assert!(!allowed(&member, Action::TemplatePublish, None));
        assert!(allowed(&admin, Action::TemplateDelete, Some("b")));
        assert_eq!(
            enforce(&reader, Action::TemplateCreate, None)
                .unwrap_err()
                .to_string(),
            "Policy doesn't allow clustertemplate:create to be performed."
        );
    }
}
