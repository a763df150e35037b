//! What to do with one resource, decided while only reading state: its type and properties
//! now, its nested definition (template resources, groups), and create / update / skip /
//! replace.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::failure::Failure;
use super::stack_of;
use crate::heat::context::StackCtx;
use crate::heat::intrinsics::{self, Ctx};
use crate::heat::template::{self, TypeImpl};
use crate::heat::{group, Action, Definition, Env, HeatState, ResKind, Stack, Status};

/// The decision about one resource.
pub(super) struct Decision {
    pub rtype: String,
    pub imp: TypeImpl,
    pub props: Value,
    /// Identity of the definition; an unchanged one is skipped on update.
    pub fingerprint: String,
    /// `Create` or `Update`; `Init` marks a resource to skip (already up to date).
    pub op: Action,
    pub nested_def: Option<Definition>,
    pub skiplist: Vec<String>,
}

pub(super) fn kind_of(imp: &TypeImpl) -> ResKind {
    match imp {
        TypeImpl::Builtin(_) => ResKind::Leaf,
        TypeImpl::Template(_) => ResKind::Template,
        TypeImpl::Group => ResKind::Group,
    }
}

/// `None` when the resource's implementation changed kind or type (it must be replaced).
pub(super) fn decide(
    st: &HeatState,
    stack_id: Uuid,
    name: &str,
    action: Action,
) -> Result<Option<Decision>, Failure> {
    let fail = |m: String| Failure::of_resource(Action::Create, name, "StackValidationFailed", m);
    let stack = stack_of(st, stack_id, action)?;
    let rdef = stack
        .def
        .template
        .get("resources")
        .and_then(|r| r.get(name))
        .ok_or_else(|| fail("resource definition vanished".into()))?;
    let rtype = rdef
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("OS::Heat::None")
        .to_string();
    let ctx = StackCtx::new(st, stack);
    let props = rdef
        .get("properties")
        .map(|p| intrinsics::eval(p, &ctx))
        .unwrap_or_else(|| Value::Object(Map::new()));
    let files = &stack.def.files;
    let imp = template::resolve_type(&rtype, &stack.def.env, files).map_err(fail)?;
    let existing = stack.resources.get(name);

    let mut nested_def = None;
    let mut skiplist = Vec::new();
    let fingerprint = match &imp {
        TypeImpl::Builtin(_) => props.to_string(),
        TypeImpl::Template(key) => {
            let t = template::nested_template(files, key).map_err(fail)?;
            let mut env = nested_env(stack);
            env.parameters = props.as_object().cloned().unwrap_or_default();
            env.parameters.retain(|_, v| !v.is_null());
            nested_def = Some(Definition {
                template: t,
                files: files.clone(),
                env,
            });
            format!(
                "{props}|{}",
                files.get(key).map(String::as_str).unwrap_or("")
            )
        }
        TypeImpl::Group => {
            let spec = group::parse(&props).map_err(fail)?;
            let (old_skip, members) =
                match existing.and_then(|r| ctx.nested(r.nested).map(|n| (r, n))) {
                    Some((r, n)) => {
                        let names = group::members(&n);
                        let members: Vec<(String, String)> = names
                            .into_iter()
                            .filter(|m| n.stack.resources.contains_key(m))
                            .map(|m| {
                                let rf = match n.resource_ref(&m) {
                                    Value::String(s) => s,
                                    other => other.to_string(),
                                };
                                (m, rf)
                            })
                            .collect();
                        (r.skiplist.clone(), members)
                    }
                    None => (Vec::new(), Vec::new()),
                };
            skiplist = group::new_skiplist(&old_skip, &spec, &members);
            let names = group::member_names(spec.count, &skiplist);
            let member_type = spec
                .resource_def
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("");
            let member_file = match template::resolve_type(member_type, &stack.def.env, files) {
                Ok(TypeImpl::Template(k)) => files.get(&k).cloned().unwrap_or_default(),
                _ => String::new(),
            };
            nested_def = Some(Definition {
                template: group::template(&names, &spec),
                files: files.clone(),
                env: nested_env(stack),
            });
            format!("{props}|{skiplist:?}|{member_file}")
        }
    };
    let kind = kind_of(&imp);
    let op = match existing {
        None => Action::Create,
        Some(r) if r.kind != kind || r.impl_type != imp.name() => {
            return Ok(None);
        }
        Some(r)
            if r.status == Status::Complete
                && !matches!(r.action, Action::Init | Action::Delete)
                && r.fingerprint == fingerprint =>
        {
            return Ok(Some(Decision {
                rtype,
                imp,
                props,
                fingerprint,
                op: Action::Init, // marker: skip
                nested_def: None,
                skiplist,
            }));
        }
        Some(r)
            if matches!(r.action, Action::Init | Action::Delete)
                || (r.action == Action::Create && r.status != Status::Complete) =>
        {
            Action::Create
        }
        Some(_) => Action::Update,
    };
    Ok(Some(Decision {
        rtype,
        imp,
        props,
        fingerprint,
        op,
        nested_def,
        skiplist,
    }))
}

/// The environment a nested stack inherits: the parent's `parameter_defaults` and registry,
/// no parameters.
fn nested_env(parent: &Stack) -> Env {
    Env {
        parameters: Map::new(),
        parameter_defaults: parent.def.env.parameter_defaults.clone(),
        resource_registry: parent.def.env.resource_registry.clone(),
    }
}
