//! Nova's per-project compute quotas. `instances` and `cores` are enforced (Heat meets them
//! when it creates `OS::Nova::Server` resources, see `heat::engine::quota`); the other keys of
//! a quota set are stored and shown like Nova's but not enforced.
//!
//! Limits set with `PUT os-quota-sets` live in [`HeatState`] beside the stacks that use them,
//! so that a stack action checks and claims its servers under one lock (and both persist in
//! the state file).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Add;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::heat::{HeatState, ResKind, Stack};

/// Default `instances` quota of a project (Nova's own default is 10; ours leaves room for
/// big test clusters).
pub const DEFAULT_QUOTA_INSTANCES: i64 = 1000;
/// Default `cores` quota of a project.
pub const DEFAULT_QUOTA_CORES: i64 = 4000;

/// The limits every project starts with (Nova's `[quota] instances` / `cores`); -1 means
/// unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NovaQuotas {
    pub instances: i64,
    pub cores: i64,
}

impl Default for NovaQuotas {
    fn default() -> Self {
        NovaQuotas {
            instances: DEFAULT_QUOTA_INSTANCES,
            cores: DEFAULT_QUOTA_CORES,
        }
    }
}

pub(crate) const SERVER_TYPE: &str = "OS::Nova::Server";

/// Keys of a compute quota set (API 2.57+) with Nova's defaults; `cores` and `instances` take
/// [`NovaQuotas`] instead.
pub(crate) const KEYS: &[(&str, i64)] = &[
    ("cores", DEFAULT_QUOTA_CORES),
    ("instances", DEFAULT_QUOTA_INSTANCES),
    ("key_pairs", 100),
    ("metadata_items", 128),
    ("ram", 51200),
    ("server_group_members", 10),
    ("server_groups", 10),
];

/// Per-project limits set through the API: project id → key → limit.
pub(crate) type Overrides = BTreeMap<String, BTreeMap<String, i64>>;

/// Servers and their vCPUs, as Nova counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub instances: u64,
    pub cores: u64,
}

impl Usage {
    pub(crate) fn is_zero(self) -> bool {
        self.instances == 0 && self.cores == 0
    }

    /// `n` times this (saturating: a group count of 10^12 must not wrap).
    pub(crate) fn times(self, n: u64) -> Usage {
        Usage {
            instances: self.instances.saturating_mul(n),
            cores: self.cores.saturating_mul(n),
        }
    }

    pub(crate) fn max(self, o: Usage) -> Usage {
        Usage {
            instances: self.instances.max(o.instances),
            cores: self.cores.max(o.cores),
        }
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            instances: self.instances.saturating_add(o.instances),
            cores: self.cores.saturating_add(o.cores),
        }
    }
}

/// The enforced limits of one project (-1 = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub instances: i64,
    pub cores: i64,
}

/// Default of quota `key` (`None` for a key Nova does not have).
pub(crate) fn default_of(defaults: &NovaQuotas, key: &str) -> Option<i64> {
    match key {
        "instances" => Some(defaults.instances),
        "cores" => Some(defaults.cores),
        k => KEYS.iter().find(|(n, _)| *n == k).map(|(_, v)| *v),
    }
}

/// Limit of `key` for `project`: its own if set, else the default.
pub(crate) fn limit_of(st: &HeatState, defaults: &NovaQuotas, project: &str, key: &str) -> i64 {
    st.nova_quotas
        .get(project)
        .and_then(|m| m.get(key).copied())
        .or_else(|| default_of(defaults, key))
        .unwrap_or(-1)
}

pub(crate) fn limits(st: &HeatState, defaults: &NovaQuotas, project: &str) -> Limits {
    Limits {
        instances: limit_of(st, defaults, project, "instances"),
        cores: limit_of(st, defaults, project, "cores"),
    }
}

/// vCPUs of a server's `flavor` property (a seeded flavor's id or name; anything else counts
/// as one, where real Nova would refuse the flavor).
pub(crate) fn flavor_vcpus(flavor: Option<&Value>) -> u64 {
    flavor
        .and_then(Value::as_str)
        .and_then(crate::lookups::flavor_vcpus)
        .unwrap_or(1)
}

/// Servers that exist in one stack (created, i.e. with a physical id; a server whose create
/// failed does not count, as in Nova).
fn servers_of(s: &Stack) -> Usage {
    s.resources
        .values()
        .filter(|r| r.kind == ResKind::Leaf && r.impl_type == SERVER_TYPE)
        .filter(|r| !r.physical_id.is_empty())
        .fold(Usage::default(), |u, r| {
            u + Usage {
                instances: 1,
                cores: flavor_vcpus(r.props.get("flavor")),
            }
        })
}

/// What `project` uses, leaving out root stack `except` (whose definition is being checked).
/// A root stack with an action running counts what it claimed for its whole definition (or
/// its existing servers if more); any other counts the servers that exist in its tree, so
/// nothing a failed or cancelled action never created stays charged.
pub(crate) fn in_use(st: &HeatState, project: &str, except: Option<Uuid>) -> Usage {
    let roots: Vec<&Stack> = st
        .of_project(project)
        .filter(|s| s.parent.is_none() && !s.is_deleted())
        .filter(|s| Some(s.id) != except)
        .collect();
    // Servers only of this project's trees (nested stacks belong to their root's project):
    // every stack's resources were walked on every create, which made seeding 100,000 stacks
    // quadratic.
    let ours: BTreeSet<Uuid> = roots.iter().map(|s| s.id).collect();
    let mut existing: BTreeMap<Uuid, Usage> = BTreeMap::new();
    for s in st.of_project(project) {
        if !ours.contains(&s.root) || s.is_deleted() {
            continue;
        }
        let servers = servers_of(s);
        if !servers.is_zero() {
            let e = existing.entry(s.root).or_default();
            *e = *e + servers;
        }
    }
    roots.into_iter().fold(Usage::default(), |total, s| {
        let servers = existing.get(&s.id).copied().unwrap_or_default();
        let charged = if s.in_progress() {
            servers.max(s.nova_claim)
        } else {
            servers
        };
        total + charged
    })
}

/// Nova's `TooManyInstances` text for a request of `req` on top of `used`, or `None` when it
/// fits: `Quota exceeded for cores, instances: Requested 2, 1, but already used 4000, 1000 of
/// 4000, 1000 cores, instances` (over resources in sorted order, lists joined with ", ").
pub(crate) fn over_quota_message(limits: Limits, used: Usage, req: Usage) -> Option<String> {
    let checks = [
        ("cores", limits.cores, used.cores, req.cores),
        ("instances", limits.instances, used.instances, req.instances),
    ];
    let (mut overs, mut reqs, mut useds, mut alloweds) = (vec![], vec![], vec![], vec![]);
    for (name, limit, u, r) in checks {
        if exceeds(limit, u, r) {
            overs.push(name.to_string());
            reqs.push(r.to_string());
            useds.push(u.to_string());
            alloweds.push(limit.to_string());
        }
    }
    if overs.is_empty() {
        return None;
    }
    let overs = overs.join(", ");
    Some(format!(
        "Quota exceeded for {overs}: Requested {}, but already used {} of {} {overs}",
        reqs.join(", "),
        useds.join(", "),
        alloweds.join(", "),
    ))
}

/// Whether `used + req` goes over `limit` (-1 = unlimited).
pub(crate) fn exceeds(limit: i64, used: u64, req: u64) -> bool {
    match u64::try_from(limit) {
        Ok(l) => used.saturating_add(req) > l,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_message_shapes() {
        let limits = Limits {
            instances: 1000,
            cores: 4000,
        };
        let used = Usage {
            instances: 1000,
            cores: 1000,
        };
        let one = Usage {
            instances: 1,
            cores: 1,
        };
        assert_eq!(
            over_quota_message(limits, used, one).as_deref(),
            Some("Quota exceeded for instances: Requested 1, but already used 1000 of 1000 instances")
        );
        let used = Usage {
            instances: 1000,
            cores: 3999,
        };
        let two = Usage {
            instances: 1,
            cores: 2,
        };
        assert_eq!(
            over_quota_message(limits, used, two).as_deref(),
            Some("Quota exceeded for cores, instances: Requested 2, 1, but already used 3999, 1000 of 4000, 1000 cores, instances")
        );
        assert_eq!(over_quota_message(limits, Usage::default(), two), None);
        let unlimited = Limits {
            instances: -1,
            cores: -1,
        };
        assert_eq!(
            over_quota_message(unlimited, used.times(u64::MAX), two),
            None
        );
    }
}
