//! Heat v1 at `/heat-api/v1/{tenant}`: stacks, resources, events and outputs, with a simulated
//! engine that creates resources in dependency order with per-type latency.
//!
//! * `template`: HOT parsing, parameters, environments, static validation.
//! * `intrinsics`: the intrinsic functions (`get_param`, `get_attr`, `if`, …).
//! * `context`: evaluation of a stack's intrinsics against live state (attributes, outputs).
//! * `engine`: stack actions (create/update/delete/rollback), the resource DAG, timeouts.
//! * `resources`: the simulated resource types and their attributes.
//! * `group`: `OS::Heat::ResourceGroup`.
//! * `api` / `views`: the REST surface and its JSON shapes.

pub(crate) mod api;
pub(crate) mod context;
pub(crate) mod engine;
pub(crate) mod group;
pub(crate) mod intrinsics;
pub(crate) mod resources;
pub(crate) mod template;
pub(crate) mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::task::AbortHandle;
use uuid::Uuid;

use crate::lookups::SeedNetworks;
use crate::quota::{self, Usage};
use crate::util::Ts;

/// Heat's actions (`heat/engine/stack.py`); resources also use `INIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Action {
    Init,
    Create,
    Update,
    Delete,
    Rollback,
    Suspend,
    Resume,
    Check,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Init => "INIT",
            Action::Create => "CREATE",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
            Action::Rollback => "ROLLBACK",
            Action::Suspend => "SUSPEND",
            Action::Resume => "RESUME",
            Action::Check => "CHECK",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Action> {
        Some(match s.to_ascii_uppercase().as_str() {
            "INIT" => Action::Init,
            "CREATE" => Action::Create,
            "UPDATE" => Action::Update,
            "DELETE" => Action::Delete,
            "ROLLBACK" => Action::Rollback,
            "SUSPEND" => Action::Suspend,
            "RESUME" => Action::Resume,
            "CHECK" => Action::Check,
            _ => return None,
        })
    }
}

/// Heat's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Status {
    InProgress,
    Complete,
    Failed,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "IN_PROGRESS",
            Status::Complete => "COMPLETE",
            Status::Failed => "FAILED",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        Some(match s.to_ascii_uppercase().as_str() {
            "IN_PROGRESS" => Status::InProgress,
            "COMPLETE" => Status::Complete,
            "FAILED" => Status::Failed,
            _ => return None,
        })
    }
}

/// `"{ACTION}_{STATUS}"`.
pub(crate) fn status_str(a: Action, s: Status) -> String {
    format!("{}_{}", a.as_str(), s.as_str())
}

/// A stack environment (the parts we honour).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Env {
    /// User parameters (request `parameters` merged into `environment.parameters`).
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub parameter_defaults: Map<String, Value>,
    /// Type → type / files key / `OS::Heat::None`.
    #[serde(default)]
    pub resource_registry: BTreeMap<String, String>,
}

/// What a stack should look like: template, files and environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Definition {
    pub template: Value,
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub env: Env,
}

/// How a resource is realised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ResKind {
    /// A simulated physical resource.
    Leaf,
    /// A nested stack from a template in `files`.
    Template,
    /// `OS::Heat::ResourceGroup` (a nested stack of members).
    Group,
}

/// One resource of a stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Resource {
    pub name: String,
    /// The type as written in the template.
    pub rtype: String,
    /// The type after the environment's registry (a builtin name or a `files` key).
    pub impl_type: String,
    pub kind: ResKind,
    pub action: Action,
    pub status: Status,
    pub reason: String,
    pub physical_id: String,
    pub created: Ts,
    pub updated: Option<Ts>,
    /// Properties as resolved at the last create/update.
    pub props: Value,
    /// Identity of the last applied definition (skip unchanged resources on update).
    pub fingerprint: String,
    pub attrs: Map<String, Value>,
    pub nested: Option<Uuid>,
    /// Resources of the same stack this one depends on.
    pub deps: Vec<String>,
    /// ResourceGroup: names never to reuse (Heat's `name_blacklist`).
    #[serde(default)]
    pub skiplist: Vec<String>,
}

impl Resource {
    /// A resource not acted on yet (`INIT_COMPLETE`), the row an action starts from.
    pub(crate) fn initial(
        name: &str,
        rtype: &str,
        impl_type: &str,
        kind: ResKind,
        now: Ts,
    ) -> Self {
        Resource {
            name: name.to_string(),
            rtype: rtype.to_string(),
            impl_type: impl_type.to_string(),
            kind,
            action: Action::Init,
            status: Status::Complete,
            reason: String::new(),
            physical_id: String::new(),
            created: now,
            updated: None,
            props: Value::Null,
            fingerprint: String::new(),
            attrs: Map::new(),
            nested: None,
            deps: Vec::new(),
            skiplist: Vec::new(),
        }
    }
}

/// One event of a stack (a stack or resource transition).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Event {
    pub id: Uuid,
    pub seq: u64,
    pub time: Ts,
    pub resource_name: String,
    pub resource_type: String,
    pub physical_id: String,
    pub action: Action,
    pub status: Status,
    pub reason: String,
}

/// A stack (top-level or nested).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stack {
    pub id: Uuid,
    pub name: String,
    pub project_id: String,
    pub owner: String,
    pub parent: Option<Uuid>,
    pub parent_resource: Option<String>,
    pub root: Uuid,
    pub seq: u64,
    pub def: Definition,
    pub prev_def: Option<Definition>,
    pub action: Action,
    pub status: Status,
    pub reason: String,
    pub created: Ts,
    pub updated: Option<Ts>,
    pub deleted: Option<Ts>,
    pub timeout_mins: Option<u64>,
    pub disable_rollback: bool,
    pub tags: Option<Vec<String>>,
    pub resources: BTreeMap<String, Resource>,
    pub events: Vec<Event>,
    /// Root stacks: next host index per CIDR for fixed-IP allocation.
    #[serde(default)]
    pub pools: BTreeMap<String, u32>,
    /// Bumped by every new action on a root stack; fences stale engine tasks.
    pub traversal: u64,
    /// The running/last rollback undoes a create (delete everything) rather than an update.
    #[serde(default)]
    pub rollback_create: bool,
    /// Root stacks: the Nova quota the running action claimed for its whole definition (only
    /// charged while the stack is `*_IN_PROGRESS`; afterwards the servers that exist are).
    #[serde(default)]
    pub nova_claim: Usage,
}

/// Heat's `max_events_per_stack`.
const MAX_EVENTS_PER_STACK: usize = 1000;

static SEQ: AtomicU64 = AtomicU64::new(1);

/// A process-wide monotonic sequence number (ordering of stacks and events).
pub(crate) fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Make sure future sequence numbers are above `seen` (after loading a state file).
pub(crate) fn bump_seq(seen: u64) {
    SEQ.fetch_max(seen + 1, Ordering::Relaxed);
}

impl Stack {
    /// A fresh stack in `INIT_COMPLETE`: top-level (its own root), rollback disabled, no
    /// timeout, traversal 0. Callers override what differs with struct update syntax.
    pub(crate) fn new(
        id: Uuid,
        name: String,
        project_id: String,
        owner: String,
        def: Definition,
        created: Ts,
    ) -> Stack {
        Stack {
            id,
            name,
            project_id,
            owner,
            parent: None,
            parent_resource: None,
            root: id,
            seq: next_seq(),
            def,
            prev_def: None,
            action: Action::Init,
            status: Status::Complete,
            reason: String::new(),
            created,
            updated: None,
            deleted: None,
            timeout_mins: None,
            disable_rollback: true,
            tags: None,
            resources: BTreeMap::new(),
            events: Vec::new(),
            pools: BTreeMap::new(),
            traversal: 0,
            rollback_create: false,
            nova_claim: Usage::default(),
        }
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.action == Action::Delete && self.status == Status::Complete
    }

    pub(crate) fn in_progress(&self) -> bool {
        self.status == Status::InProgress
    }

    pub(crate) fn add_event(
        &mut self,
        resource_name: &str,
        resource_type: &str,
        physical_id: &str,
        action: Action,
        status: Status,
        reason: &str,
    ) {
        if self.events.len() >= MAX_EVENTS_PER_STACK {
            // Heat's max_events_per_stack: the oldest events are purged.
            self.events.drain(..self.events.len() / 5);
        }
        self.events.push(Event {
            id: Uuid::new_v4(),
            seq: next_seq(),
            time: Ts::now(),
            resource_name: resource_name.to_string(),
            resource_type: resource_type.to_string(),
            physical_id: physical_id.to_string(),
            action,
            status,
            reason: reason.to_string(),
        });
    }

    /// Change the stack's status and record the stack event.
    pub(crate) fn set_status(&mut self, action: Action, status: Status, reason: &str) {
        self.action = action;
        self.status = status;
        self.reason = reason.to_string();
        let (name, id) = (self.name.clone(), self.id.to_string());
        self.add_event(&name, "OS::Heat::Stack", &id, action, status, reason);
    }
}

/// All Heat state (persisted in the state file).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct HeatState {
    pub stacks: BTreeMap<Uuid, Stack>,
    /// Accepted `POST /stacks` per stack name (top-level stacks).
    pub creates_by_name: BTreeMap<String, u64>,
    pub floating_next: u32,
    /// Nova quota limits set per project (`PUT os-quota-sets`), kept here so that a stack
    /// action checks and claims them under the same lock as the stacks.
    #[serde(default)]
    pub nova_quotas: quota::Overrides,
    /// The seeded networks (configuration, not state: set at start, kept by a reset).
    #[serde(skip)]
    pub networks: Arc<SeedNetworks>,
    /// Ids of each project's stacks (nested ones too), so that per-project lookups on every
    /// create (name taken? quota? stacks per tenant?) do not walk every stack: at 100,000
    /// stacks that made seeding quadratic. Rebuilt by [`HeatState::reindex`] after a load.
    #[serde(skip)]
    pub(crate) by_project: HashMap<String, BTreeSet<Uuid>>,
}

fn index(by_project: &mut HashMap<String, BTreeSet<Uuid>>, s: &Stack) {
    by_project
        .entry(s.project_id.clone())
        .or_default()
        .insert(s.id);
}

impl HeatState {
    /// Adds (or replaces) a stack.
    pub(crate) fn insert_stack(&mut self, s: Stack) {
        index(&mut self.by_project, &s);
        self.stacks.insert(s.id, s);
    }

    /// Removes the nested stacks of root stack `root` (Heat's purge after a delete).
    pub(crate) fn purge_nested(&mut self, root: Uuid) {
        let gone: Vec<(Uuid, String)> = self
            .stacks
            .values()
            .filter(|s| s.root == root && s.id != root)
            .map(|s| (s.id, s.project_id.clone()))
            .collect();
        for (id, project) in gone {
            self.stacks.remove(&id);
            if let Some(ids) = self.by_project.get_mut(&project) {
                ids.remove(&id);
            }
        }
    }

    /// Rebuilds the per-project index (after the stacks were loaded from a state file).
    pub(crate) fn reindex(&mut self) {
        self.by_project.clear();
        for s in self.stacks.values() {
            index(&mut self.by_project, s);
        }
    }

    /// Every stack of `project`, nested ones included.
    pub(crate) fn of_project<'a>(&'a self, project: &str) -> impl Iterator<Item = &'a Stack> {
        self.by_project
            .get(project)
            .into_iter()
            .flatten()
            .filter_map(|id| self.stacks.get(id))
    }

    /// A live (not DELETE_COMPLETE) stack of `project` named `name`.
    pub(crate) fn live_by_name(&self, project: &str, name: &str) -> Option<&Stack> {
        self.of_project(project)
            .find(|s| s.name == name && !s.is_deleted())
    }

    /// Heat's `identify_stack`: a UUID matches any stack (even deleted), a name only live ones.
    pub(crate) fn identify(&self, project: &str, name_or_id: &str) -> Option<&Stack> {
        if let Ok(id) = Uuid::parse_str(name_or_id) {
            if let Some(s) = self.stacks.get(&id).filter(|s| s.project_id == project) {
                return Some(s);
            }
        }
        self.live_by_name(project, name_or_id)
    }

    /// The stack addressed canonically as `{name}/{id}` in `project`.
    pub(crate) fn canonical(&self, project: &str, name: &str, id: &str) -> Option<&Stack> {
        let id = Uuid::parse_str(id).ok()?;
        self.stacks
            .get(&id)
            .filter(|s| s.project_id == project && s.name == name)
    }

    /// [`HeatState::canonical`], for changing the stack.
    pub(crate) fn canonical_mut(
        &mut self,
        project: &str,
        name: &str,
        id: &str,
    ) -> Option<&mut Stack> {
        let id = Uuid::parse_str(id).ok()?;
        self.stacks
            .get_mut(&id)
            .filter(|s| s.project_id == project && s.name == name)
    }
}

/// Runtime-only engine state (not persisted).
#[derive(Debug, Default)]
pub(crate) struct Runtime {
    /// Running action task per root stack: (generation, handle).
    pub tasks: HashMap<Uuid, (u64, AbortHandle)>,
    pub task_gen: u64,
    /// Latency overrides in seconds, by (resource type, ACTION or "*").
    pub latencies: HashMap<(String, String), f64>,
    /// Legacy engine locking: updates of IN_PROGRESS stacks → 409, PATCH of non-COMPLETE → 400.
    pub legacy_locking: bool,
}
