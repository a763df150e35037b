//! The fixed identity directory, seeded like devstack (plus Magnum's trustee domain). Ids are derived from names with
//! SHA-256 so they are the same on every start.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{LazyLock, OnceLock};

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
    /// In seeding order: the first is the user's default project.
    pub assignments: Vec<(&'static str, Vec<&'static str>)>,
    /// Roles by project name, merged from `assignments`: with bench projects the admin holds
    /// thousands, and every project-scoped login and token check asks.
    roles_by_project: HashMap<&'static str, Vec<&'static str>>,
}

/// A seeded role.
pub(crate) struct Role {
    pub id: String,
    pub name: &'static str,
}

/// The fixed identity directory: domain `default`, four projects (plus any bench projects),
/// five users, three roles.
pub(crate) struct Directory {
    /// In listing order: the four devstack projects, then `bench-00000`, ...
    pub projects: Vec<Project>,
    pub users: Vec<User>,
    pub roles: Vec<Role>,
    /// Indexes into `projects`: thousands of bench projects make a scan per token too slow.
    project_by_id: HashMap<String, usize>,
    project_by_name: HashMap<&'static str, usize>,
    /// How many `bench-NNNNN` projects were seeded.
    bench_projects: usize,
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

/// The directory every handler reads: the one [`init`] seeded, else the default (no bench
/// projects). A handle rather than the directory itself so callers keep writing
/// `DIRECTORY.project_by_id(..)` while the contents are chosen at start.
pub(crate) static DIRECTORY: SeededDirectory = SeededDirectory;

static SEEDED: OnceLock<Directory> = OnceLock::new();

/// See [`DIRECTORY`].
pub(crate) struct SeededDirectory;

impl Deref for SeededDirectory {
    type Target = Directory;
    fn deref(&self) -> &Directory {
        SEEDED.get_or_init(|| Directory::new(0))
    }
}

/// Seed the process-wide directory with `bench_projects` bench projects (at start, before any
/// request). The directory is seeded once per process: asking again for the same count is a
/// no-op, for another count an error (two simulators in one process share it).
pub(crate) fn init(bench_projects: usize) -> Result<(), String> {
    let d = SEEDED.get_or_init(|| Directory::new(bench_projects));
    if d.bench_projects == bench_projects {
        Ok(())
    } else {
        Err(format!(
            "bench_projects = {bench_projects}, but this process's Keystone directory was already \
             seeded with {} (it is seeded once per process)",
            d.bench_projects
        ))
    }
}

/// Name of bench project `i`: `bench-00000`, `bench-00001`, ...
pub(crate) fn bench_project_name(i: usize) -> String {
    format!("bench-{i:05}")
}

impl Directory {
    /// The devstack-like directory, plus `bench_projects` projects `bench-00000`, ... on each
    /// of which the user `admin` holds `admin`, `member` and `reader`.
    pub(crate) fn new(bench_projects: usize) -> Directory {
        let project = |name: &'static str, description: &'static str| Project {
            id: project_id(name),
            name,
            description,
        };
        let user = |name: &'static str, assignments: Vec<(&'static str, Vec<&'static str>)>| {
            let mut roles_by_project: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
            for (p, roles) in &assignments {
                roles_by_project
                    .entry(*p)
                    .or_default()
                    .extend(roles.iter().copied());
            }
            User {
                id: user_id(name),
                name,
                password: "secret",
                assignments,
                roles_by_project,
            }
        };
        // Leaked once per directory (the process-wide one is built once, at start) so bench
        // names are `&'static str` like the seeded ones and every field and caller stays as is.
        let bench_names: Vec<&'static str> = (0..bench_projects)
            .map(|i| &*bench_project_name(i).leak())
            .collect();
        let mut projects = vec![
            project("admin", "Bootstrap project for initializing the cloud."),
            project("demo", ""),
            project("alt_demo", ""),
            project("service", ""),
        ];
        projects.extend(
            bench_names
                .iter()
                .map(|n| project(n, "Seeded for the scale benchmark.")),
        );
        let mut admin = vec![("admin", vec!["admin", "member", "reader"])];
        admin.extend(
            bench_names
                .iter()
                .map(|n| (*n, vec!["admin", "member", "reader"])),
        );
        let project_by_id = projects
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        let project_by_name = projects
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name, i))
            .collect();
        Directory {
            projects,
            users: vec![
                user("admin", admin),
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
            project_by_id,
            project_by_name,
            bench_projects,
        }
    }

    pub(crate) fn project_by_id(&self, id: &str) -> Option<&Project> {
        self.project_by_id
            .get(id)
            .and_then(|&i| self.projects.get(i))
    }
    pub(crate) fn project_by_name(&self, name: &str) -> Option<&Project> {
        self.project_by_name
            .get(name)
            .and_then(|&i| self.projects.get(i))
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
        user.roles_by_project
            .get(p.name)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    #[test]
    fn the_default_directory_is_devstacks() {
        let d = Directory::new(0);
        let names: Vec<_> = d.projects.iter().map(|p| p.name).collect();
        assert_eq!(names, ["admin", "demo", "alt_demo", "service"]);
        let users: Vec<_> = d.users.iter().map(|u| u.name).collect();
        assert_eq!(users, ["admin", "demo", "alt_demo", "reader", "magnum"]);
        let admin = d.user_by_name("admin").expect("admin");
        assert_eq!(admin.assignments.len(), 1);
        assert_eq!(
            d.roles_on(admin, &project_id("admin")),
            ["admin", "member", "reader"]
        );
        assert!(d.roles_on(admin, &project_id("demo")).is_empty());
        let demo = d.user_by_name("demo").expect("demo");
        assert_eq!(d.roles_on(demo, &project_id("demo")), ["member", "reader"]);
        assert!(d.project_by_name("bench-00000").is_none());
        // The process-wide directory, never initialised here, is that one.
        assert_eq!(DIRECTORY.projects.len(), 4);
    }

    #[test]
    fn bench_projects_are_the_admins() {
        let d = Directory::new(3);
        let names: Vec<_> = d.projects.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "admin",
                "demo",
                "alt_demo",
                "service",
                "bench-00000",
                "bench-00001",
                "bench-00002"
            ]
        );
        let p = d.project_by_name("bench-00002").expect("bench-00002");
        assert_eq!(p.id, project_id("bench-00002"));
        assert_eq!(
            d.project_by_id(&project_id("bench-00002")).map(|p| p.name),
            Some("bench-00002")
        );
        assert!(d.project_by_name("bench-00003").is_none());
        let admin = d.user_by_name("admin").expect("admin");
        // The default project stays `admin`.
        assert_eq!(admin.assignments.first().map(|(p, _)| *p), Some("admin"));
        for name in ["admin", "bench-00000", "bench-00001", "bench-00002"] {
            assert_eq!(
                d.roles_on(admin, &project_id(name)),
                ["admin", "member", "reader"],
                "{name}"
            );
        }
        for user in ["demo", "alt_demo", "reader", "magnum"] {
            let u = d.user_by_name(user).expect(user);
            assert!(
                d.roles_on(u, &project_id("bench-00000")).is_empty(),
                "{user}"
            );
        }
    }
}
