//! Nova's quota as Heat meets it. Real Nova refuses each server over quota when Heat creates
//! it; here, before a root stack's create or update expands anything, the servers its
//! definition needs are counted (a `ResourceGroup`'s member once, times its count, so a count
//! of 10^7 costs what a count of 1 does) and checked against what the project has left. When
//! they fit they are claimed for the action; when they do not the action fails at once, with
//! the reason real Heat gives for the first server over quota in creation order.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::decide::kind_of;
use super::failure::Failure;
use super::{stack_of, stack_of_mut};
use crate::heat::context::add_pseudo;
use crate::heat::intrinsics::{self, Ctx, Refs};
use crate::heat::template::{self, resolve_params, TypeImpl};
use crate::heat::{group, Action, Env, HeatState, Resource, Stack, Status};
use crate::quota::{self, Limits, NovaQuotas, Usage, SERVER_TYPE};
use crate::util::Ts;

/// Nested templates deeper than this are not looked into (a template that includes itself).
const MAX_NESTING: usize = 12;

/// Check that the servers root stack `root`'s definition needs fit in what its project has
/// left and claim them for the action. Otherwise record the failure on the top-level resource
/// holding the first server over quota and return it.
pub(super) fn admit(
    st: &mut HeatState,
    root: Uuid,
    action: Action,
    defaults: &NovaQuotas,
) -> Result<(), Failure> {
    let stack = stack_of(st, root, action)?;
    let plan = plan_root(st, stack);
    let need = total(&plan);
    let project = stack.project_id.clone();
    let mut budget = Budget {
        limits: quota::limits(st, defaults, &project),
        used: quota::in_use(st, &project, Some(root)),
    };
    if !budget.fits(need) {
        for (name, node) in &plan {
            if budget.fits(node.need) {
                budget.take(node.need);
                continue;
            }
            let f = budget.locate(name, node, action);
            let stack = stack_of_mut(st, root, action)?;
            stack.nova_claim = Usage::default();
            record_failure(stack, name, node, &f);
            tracing::info!(%project, ?need, "stack refused: over Nova quota");
            return Err(f);
        }
    }
    stack_of_mut(st, root, action)?.nova_claim = need;
    Ok(())
}

/// Claim what root stack `root`'s definition needs without checking (a rollback returns to a
/// definition that fitted).
pub(super) fn claim(st: &mut HeatState, root: Uuid) {
    let need = st
        .stacks
        .get(&root)
        .map(|s| total(&plan_root(st, s)))
        .unwrap_or_default();
    if let Some(s) = st.stacks.get_mut(&root) {
        s.nova_claim = need;
    }
}

/// Claim nothing for root stack `root` (a delete creates no server).
pub(super) fn release(st: &mut HeatState, root: Uuid) {
    if let Some(s) = st.stacks.get_mut(&root) {
        s.nova_claim = Usage::default();
    }
}

/// Servers a resource needs, and where they are.
struct Node {
    need: Usage,
    rtype: String,
    imp: TypeImpl,
    kind: Kind,
}

enum Kind {
    Server,
    /// A nested stack: its resources that need servers, in creation order.
    Stack(Vec<(String, Node)>),
    /// `count` members like `member`; `skip` = member numbers never reused (sorted).
    Group {
        count: u64,
        skip: Vec<u64>,
        member: Box<Node>,
    },
}

fn total(plan: &[(String, Node)]) -> Usage {
    plan.iter().fold(Usage::default(), |u, (_, n)| u + n.need)
}

/// Evaluation scope of one template while planning: its parameters; resources do not exist
/// yet, so their references and attributes are null.
struct Scope<'a> {
    template: Cow<'a, Value>,
    files: &'a BTreeMap<String, String>,
    env: Env,
    params: Map<String, Value>,
}

impl Ctx for Scope<'_> {
    fn param(&self, name: &str) -> Option<Value> {
        self.params.get(name).cloned()
    }

    fn resource_ref(&self, _name: &str) -> Value {
        Value::Null
    }

    fn resource_attr(&self, _name: &str, _path: &[Value]) -> Value {
        Value::Null
    }

    fn file(&self, key: &str) -> Option<String> {
        self.files.get(key).cloned()
    }

    fn condition(&self, name: &str, depth: usize) -> bool {
        match self.template.get("conditions").and_then(|c| c.get(name)) {
            Some(expr) => intrinsics::eval_condition(expr, self, depth),
            None => false,
        }
    }
}

impl Scope<'_> {
    /// The scope of a nested stack with `template` and `parameters` (the parent's
    /// `parameter_defaults` and registry are inherited, as in `decide`).
    fn nested<'b>(&'b self, template: Value, parameters: Map<String, Value>) -> Scope<'b> {
        let env = Env {
            parameters,
            parameter_defaults: self.env.parameter_defaults.clone(),
            resource_registry: self.env.resource_registry.clone(),
        };
        let mut params = resolve_params(&template, &env, true).unwrap_or_default();
        for k in ["OS::stack_id", "OS::stack_name", "OS::project_id"] {
            if let Some(v) = self.params.get(k) {
                params.insert(k.into(), v.clone());
            }
        }
        Scope {
            template: Cow::Owned(template),
            files: self.files,
            env,
            params,
        }
    }
}

fn plan_root(st: &HeatState, stack: &Stack) -> Vec<(String, Node)> {
    let mut params = resolve_params(&stack.def.template, &stack.def.env, true).unwrap_or_default();
    add_pseudo(stack, &mut params);
    let scope = Scope {
        template: Cow::Borrowed(&stack.def.template),
        files: &stack.def.files,
        env: stack.def.env.clone(),
        params,
    };
    plan_stack(&scope, st, Some(stack), 0)
}

/// The enabled resources of a scope that need servers, in creation order. `live` is the
/// existing stack of this scope, if any (for groups' skiplists).
fn plan_stack(
    scope: &Scope<'_>,
    st: &HeatState,
    live: Option<&Stack>,
    depth: usize,
) -> Vec<(String, Node)> {
    let Some(defs) = scope.template.get("resources").and_then(Value::as_object) else {
        return Vec::new();
    };
    let enabled: BTreeMap<&String, &Value> = defs
        .iter()
        .filter(|(_, d)| {
            d.get("condition")
                .is_none_or(|c| intrinsics::eval_condition(c, scope, 0))
        })
        .collect();
    creation_order(&enabled)
        .into_iter()
        .filter_map(|name| {
            let rdef = enabled.get(&name)?;
            let node = plan_resource(scope, st, &name, rdef, live, depth)?;
            Some((name, node))
        })
        .collect()
}

/// Names in the order the engine starts them: those whose dependencies are done, by name.
fn creation_order(enabled: &BTreeMap<&String, &Value>) -> Vec<String> {
    let deps: BTreeMap<&String, BTreeSet<String>> = enabled
        .iter()
        .map(|(name, rdef)| {
            let mut refs = Refs::default();
            if let Some(p) = rdef.get("properties") {
                intrinsics::refs(p, &mut refs);
            }
            let d = template::depends_on(rdef)
                .into_iter()
                .chain(refs.resources)
                .filter(|d| d != *name && enabled.contains_key(d))
                .collect();
            (*name, d)
        })
        .collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    loop {
        let wave: Vec<String> = deps
            .iter()
            .filter(|(n, d)| !done.contains(n.as_str()) && d.iter().all(|x| done.contains(x)))
            .map(|(n, _)| (*n).clone())
            .collect();
        if wave.is_empty() {
            break;
        }
        done.extend(wave.iter().cloned());
        order.extend(wave);
    }
    // A dependency cycle fails in the engine; its members still count.
    order.extend(
        deps.keys()
            .filter(|n| !done.contains(n.as_str()))
            .map(|n| (*n).clone()),
    );
    order
}

fn plan_resource(
    scope: &Scope<'_>,
    st: &HeatState,
    name: &str,
    rdef: &Value,
    live: Option<&Stack>,
    depth: usize,
) -> Option<Node> {
    let rtype = rdef
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("OS::Heat::None")
        .to_string();
    let props = rdef
        .get("properties")
        .map(|p| intrinsics::eval(p, scope))
        .unwrap_or_else(|| Value::Object(Map::new()));
    // An unresolvable type fails in the engine before any server is made.
    let imp = template::resolve_type(&rtype, &scope.env, scope.files).ok()?;
    let (need, kind) = match &imp {
        TypeImpl::Builtin(t) if t == SERVER_TYPE => {
            let need = Usage {
                instances: 1,
                cores: quota::flavor_vcpus(props.get("flavor")),
            };
            (need, Kind::Server)
        }
        TypeImpl::Builtin(_) => return None,
        TypeImpl::Template(key) => {
            if depth >= MAX_NESTING {
                return None;
            }
            let t = template::nested_template(scope.files, key).ok()?;
            let mut parameters = props.as_object().cloned().unwrap_or_default();
            parameters.retain(|_, v| !v.is_null());
            let nested = scope.nested(t, parameters);
            let nested_live = live
                .and_then(|s| s.resources.get(name))
                .and_then(|r| r.nested)
                .and_then(|id| st.stacks.get(&id))
                .filter(|s| !s.is_deleted());
            let children = plan_stack(&nested, st, nested_live, depth + 1);
            (total(&children), Kind::Stack(children))
        }
        TypeImpl::Group => {
            if depth >= MAX_NESTING {
                return None;
            }
            let spec = group::parse(&props).ok()?;
            let count = u64::try_from(spec.count).unwrap_or(u64::MAX);
            // Members' properties were evaluated here already; they run in the group's
            // generated stack, which has no parameters. One member stands for all of them.
            let members = scope.nested(json!({"resources": {}}), Map::new());
            let member = plan_resource(
                &members,
                st,
                "0",
                &group::member_def(&spec, "0"),
                None,
                depth + 1,
            )?;
            let old_skip = live
                .and_then(|s| s.resources.get(name))
                .map(|r| r.skiplist.as_slice())
                .unwrap_or_default();
            let mut skip: Vec<u64> = old_skip
                .iter()
                .chain(spec.removal.iter())
                .filter_map(|n| n.parse::<u64>().ok())
                .collect();
            skip.sort_unstable();
            skip.dedup();
            let need = member.need.times(count);
            (
                need,
                Kind::Group {
                    count,
                    skip,
                    member: Box::new(member),
                },
            )
        }
    };
    (!need.is_zero()).then_some(Node {
        need,
        rtype,
        imp,
        kind,
    })
}

/// The `k`-th member name (from 0) that is not in the sorted skiplist.
fn nth_member(k: u64, skip: &[u64]) -> u64 {
    let mut idx = k;
    for s in skip {
        if *s <= idx {
            idx = idx.saturating_add(1);
        } else {
            break;
        }
    }
    idx
}

/// What the project has used (other stacks, then this stack's servers in creation order)
/// against its limits.
struct Budget {
    limits: Limits,
    used: Usage,
}

impl Budget {
    fn fits(&self, need: Usage) -> bool {
        !quota::exceeds(self.limits.instances, self.used.instances, need.instances)
            && !quota::exceeds(self.limits.cores, self.used.cores, need.cores)
    }

    fn take(&mut self, need: Usage) {
        self.used = self.used + need;
    }

    /// How many more of `each` fit.
    fn how_many(&self, each: Usage) -> u64 {
        let dim = |limit: i64, used: u64, per: u64| match u64::try_from(limit) {
            Ok(l) if per > 0 => l.saturating_sub(used) / per,
            _ => u64::MAX,
        };
        dim(self.limits.instances, self.used.instances, each.instances).min(dim(
            self.limits.cores,
            self.used.cores,
            each.cores,
        ))
    }

    /// The failure of the first server of `node` (resource `name`) that does not fit, charging
    /// the ones before it.
    fn locate(&mut self, name: &str, node: &Node, action: Action) -> Failure {
        match &node.kind {
            Kind::Server => self.refuse(name, node.need, action),
            Kind::Stack(children) => {
                for (n, child) in children {
                    if self.fits(child.need) {
                        self.take(child.need);
                        continue;
                    }
                    return self.locate(n, child, action).nested_in(name, false);
                }
                // Only if the sum saturated: blame the nested stack itself.
                self.refuse(name, node.need, action)
            }
            Kind::Group {
                count,
                skip,
                member,
            } => {
                let fitting = self.how_many(member.need).min(count.saturating_sub(1));
                self.take(member.need.times(fitting));
                let m = nth_member(fitting, skip).to_string();
                self.locate(&m, member, action).nested_in(name, true)
            }
        }
    }

    /// Nova's 403 for `req` as Heat reports it (novaclient's text, Heat's `Forbidden`).
    fn refuse(&self, name: &str, req: Usage, action: Action) -> Failure {
        let msg = quota::over_quota_message(self.limits, self.used, req)
            .unwrap_or_else(|| "Quota exceeded".to_string());
        Failure::of_resource(
            action,
            name,
            "Forbidden",
            format!("{msg} (HTTP 403) (Request-ID: req-{})", Uuid::new_v4()),
        )
    }
}

/// Mark top-level resource `name` failed, as Heat leaves the resource whose nested server
/// Nova refused (created if the stack did not have it yet, never expanded).
fn record_failure(stack: &mut Stack, name: &str, node: &Node, f: &Failure) {
    let now = Ts::now();
    // As `decide`: a resource that never finished a create is created again.
    let created = stack.resources.get(name).is_some_and(|r| {
        !(matches!(r.action, Action::Init | Action::Delete)
            || (r.action == Action::Create && r.status != Status::Complete))
    });
    let op = if created {
        Action::Update
    } else {
        Action::Create
    };
    let res = stack.resources.entry(name.to_string()).or_insert_with(|| {
        Resource::initial(name, &node.rtype, node.imp.name(), kind_of(&node.imp), now)
    });
    res.action = op;
    res.status = Status::Failed;
    res.reason = f.text();
    let (rtype, pid, reason) = (
        res.rtype.clone(),
        res.physical_id.clone(),
        res.reason.clone(),
    );
    stack.add_event(name, &rtype, &pid, op, Status::InProgress, "state changed");
    stack.add_event(name, &rtype, &pid, op, Status::Failed, &reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_member_skips_removed_names() {
        assert_eq!(nth_member(0, &[]), 0);
        assert_eq!(nth_member(3, &[]), 3);
        assert_eq!(nth_member(0, &[0]), 1);
        assert_eq!(nth_member(2, &[1, 2, 7]), 4);
        assert_eq!(nth_member(6, &[1, 2, 7]), 9);
    }
}
