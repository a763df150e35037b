//! The fixed identity directory, seeded like devstack (plus Magnum's trustee domain). Ids are derived from names with
//! SHA-256 so they are the same on every start.

use std::sync::LazyLock;

use crate::util::det_hex;

/// A seeded project.
pub(crate) struct Project {
    pub id: String,
    pub name: &'static str,
    pub description: &'static str,
}

/// A seeded user with its role assignments `(project name, roles)`.
pub(crate) struct User {
    pub id: String,
    pub name: &'static str,
    pub password: &'static str,
    pub assignments: Vec<(&'static str, Vec<&'static str>)>,
}

/// A seeded role.
pub(crate) struct Role {
    pub id: String,
    pub name: &'static str,
}

/// The fixed identity directory: domain `default`, four projects, five users, three roles.
pub(crate) struct Directory {
    pub projects: Vec<Project>,
    pub users: Vec<User>,
    pub roles: Vec<Role>,
}

pub(crate) const DOMAIN_ID: &str = "default";
pub(crate) const DOMAIN_NAME: &str = "Default";
/// The trustee domain Magnum's `[trust] trustee_domain_name` names.
pub(crate) const TRUSTEE_DOMAIN_NAME: &str = "magnum";

/// A seeded domain.
pub(crate) struct Domain {
    pub id: String,
    pub name: &'static str,
    pub description: &'static str,
}

/// The seeded domains: `default` and the trustee domain `magnum` (id `sha256("domain:magnum")`,
/// 32 hex like Keystone's).
pub(crate) static DOMAINS: LazyLock<Vec<Domain>> = LazyLock::new(|| {
    vec![
        Domain {
            id: DOMAIN_ID.to_string(),
            name: DOMAIN_NAME,
            description: "The default domain",
        },
        Domain {
            id: trustee_domain_id(),
            name: TRUSTEE_DOMAIN_NAME,
            description: "Owns users and projects created by magnum",
        },
    ]
});

/// Id of the seeded trustee domain `magnum`.
pub(crate) fn trustee_domain_id() -> String {
    det_hex("domain", TRUSTEE_DOMAIN_NAME)
}

pub(crate) fn domain_by_id(id: &str) -> Option<&'static Domain> {
    DOMAINS.iter().find(|d| d.id == id)
}

pub(crate) fn domain_by_name(name: &str) -> Option<&'static Domain> {
    DOMAINS.iter().find(|d| d.name == name)
}

pub(crate) fn domain_name(id: &str) -> Option<&'static str> {
    domain_by_id(id).map(|d| d.name)
}

/// Project id of a seeded project name (also usable for names that are not seeded).
pub(crate) fn project_id(name: &str) -> String {
    det_hex("project", name)
}

/// User id of a seeded user name.
pub(crate) fn user_id(name: &str) -> String {
    det_hex("user", name)
}

pub(crate) static DIRECTORY: LazyLock<Directory> = LazyLock::new(|| {
    let project = |name: &'static str, description: &'static str| Project {
        id: project_id(name),
        name,
        description,
    };
    let user = |name: &'static str, assignments: Vec<(&'static str, Vec<&'static str>)>| User {
        id: user_id(name),
        name,
        password: "secret",
        assignments,
    };
    Directory {
        projects: vec![
            project("admin", "Bootstrap project for initializing the cloud."),
            project("demo", ""),
            project("alt_demo", ""),
            project("service", ""),
        ],
        users: vec![
            user("admin", vec![("admin", vec!["admin", "member", "reader"])]),
            user("demo", vec![("demo", vec!["member", "reader"])]),
            user("alt_demo", vec![("alt_demo", vec!["member"])]),
            user("reader", vec![("demo", vec!["reader"])]),
            user("magnum", vec![("service", vec!["admin"])]),
        ],
        roles: ["admin", "member", "reader"]
            .into_iter()
            .map(|name| Role {
                id: det_hex("role", name),
                name,
            })
            .collect(),
    }
});

impl Directory {
    pub(crate) fn project_by_id(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }
    pub(crate) fn project_by_name(&self, name: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.name == name)
    }
    pub(crate) fn user_by_id(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }
    pub(crate) fn user_by_name(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
    pub(crate) fn role_by_name(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }
    pub(crate) fn role_by_id(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }
    pub(crate) fn role_id(&self, name: &str) -> String {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.id.clone())
            .unwrap_or_else(|| det_hex("role", name))
    }
    /// Roles of `user` on project `project_id` (empty when none).
    pub(crate) fn roles_on(&self, user: &User, project_id: &str) -> Vec<&'static str> {
        let Some(p) = self.project_by_id(project_id) else {
            return Vec::new();
        };
        user.assignments
            .iter()
            .filter(|(proj, _)| *proj == p.name)
            .flat_map(|(_, roles)| roles.iter().copied())
            .collect()
    }
}
