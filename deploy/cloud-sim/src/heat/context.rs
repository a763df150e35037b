//! Evaluating a stack's intrinsics against the live state: parameters, resource references,
//! attributes (through nested stacks and groups) and outputs.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::intrinsics::{self, traverse, Ctx};
use super::template::resolve_params;
use super::{group, HeatState, ResKind, Stack};

const MAX_NESTING: usize = 12;

/// Evaluation context of one stack.
pub(crate) struct StackCtx<'a> {
    pub st: &'a HeatState,
    pub stack: &'a Stack,
    params: Map<String, Value>,
    depth: usize,
}

/// Typed parameters of a stack (lenient) plus the pseudo parameters.
pub(crate) fn stack_params(stack: &Stack) -> Map<String, Value> {
    let mut params = resolve_params(&stack.def.template, &stack.def.env, true).unwrap_or_default();
    add_pseudo(stack, &mut params);
    params
}

pub(crate) fn add_pseudo(stack: &Stack, params: &mut Map<String, Value>) {
    params.insert("OS::stack_id".into(), Value::String(stack.id.to_string()));
    params.insert("OS::stack_name".into(), Value::String(stack.name.clone()));
    params.insert(
        "OS::project_id".into(),
        Value::String(stack.project_id.clone()),
    );
}

impl<'a> StackCtx<'a> {
    pub(crate) fn new(st: &'a HeatState, stack: &'a Stack) -> Self {
        Self::at_depth(st, stack, 0)
    }

    fn at_depth(st: &'a HeatState, stack: &'a Stack, depth: usize) -> Self {
        StackCtx {
            st,
            stack,
            params: stack_params(stack),
            depth,
        }
    }

    /// Context with already resolved (strict) parameters.
    pub(crate) fn with_params(
        st: &'a HeatState,
        stack: &'a Stack,
        mut params: Map<String, Value>,
    ) -> Self {
        add_pseudo(stack, &mut params);
        StackCtx {
            st,
            stack,
            params,
            depth: 0,
        }
    }

    /// Context of a nested stack.
    pub(crate) fn nested(&self, id: Option<Uuid>) -> Option<StackCtx<'a>> {
        if self.depth >= MAX_NESTING {
            return None;
        }
        let stack = self.st.stacks.get(&id?)?;
        Some(Self::at_depth(self.st, stack, self.depth + 1))
    }

    fn outputs_section(&self) -> Option<&'a Map<String, Value>> {
        self.stack.def.template.get("outputs")?.as_object()
    }

    /// Evaluate one output (`None` when the template has no such output).
    pub(crate) fn output(&self, key: &str) -> Option<Value> {
        let o = self.outputs_section()?.get(key)?;
        if let Some(c) = o.get("condition") {
            if !intrinsics::eval_condition(c, self, 0) {
                return Some(Value::Null);
            }
        }
        Some(
            o.get("value")
                .map(|v| intrinsics::eval(v, self))
                .unwrap_or(Value::Null),
        )
    }

    /// `(key, description)` of every output.
    pub(crate) fn output_keys(&self) -> Vec<(String, String)> {
        self.outputs_section()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        let d = v
                            .get("description")
                            .and_then(Value::as_str)
                            .unwrap_or("No description given");
                        (k.clone(), d.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Ctx for StackCtx<'_> {
    fn param(&self, name: &str) -> Option<Value> {
        self.params.get(name).cloned()
    }

    fn resource_ref(&self, name: &str) -> Value {
        let Some(res) = self.stack.resources.get(name) else {
            return Value::Null;
        };
        match res.kind {
            ResKind::Leaf if res.physical_id.is_empty() => Value::Null,
            ResKind::Leaf => Value::String(res.physical_id.clone()),
            ResKind::Template => {
                let Some(n) = self.nested(res.nested) else {
                    return Value::Null;
                };
                // Without an `OS::stack_id` output Heat's reference is the nested stack's ARN.
                match n.output("OS::stack_id") {
                    Some(v) => v,
                    None => Value::String(format!(
                        "arn:openstack:heat::{}:stacks/{}/{}",
                        n.stack.project_id, n.stack.name, n.stack.id
                    )),
                }
            }
            ResKind::Group => res
                .nested
                .map(|id| Value::String(id.to_string()))
                .unwrap_or(Value::Null),
        }
    }

    fn resource_attr(&self, name: &str, path: &[Value]) -> Value {
        let Some(res) = self.stack.resources.get(name) else {
            return Value::Null;
        };
        let Some(attr) = path.first() else {
            return Value::Null;
        };
        let attr = match attr {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match res.kind {
            ResKind::Leaf => {
                if res.physical_id.is_empty() {
                    return Value::Null;
                }
                let v = match attr.as_str() {
                    "show" => res.attrs.get("show").cloned().unwrap_or_else(|| {
                        let mut m = res.props.as_object().cloned().unwrap_or_default();
                        m.insert("id".into(), Value::String(res.physical_id.clone()));
                        Value::Object(m)
                    }),
                    a => res.attrs.get(a).cloned().unwrap_or(Value::Null),
                };
                traverse(v, &path[1..])
            }
            ResKind::Template => {
                let Some(n) = self.nested(res.nested) else {
                    return Value::Null;
                };
                if let Some(inner) = attr.strip_prefix("resource.") {
                    let (rname, rattr) = match inner.split_once('.') {
                        Some((r, a)) => (r, Some(a)),
                        None => (inner, None),
                    };
                    let mut p: Vec<Value> =
                        rattr.map(|a| Value::String(a.into())).into_iter().collect();
                    p.extend_from_slice(&path[1..]);
                    return if p.is_empty() {
                        n.resource_ref(rname)
                    } else {
                        n.resource_attr(rname, &p)
                    };
                }
                traverse(n.output(&attr).unwrap_or(Value::Null), &path[1..])
            }
            ResKind::Group => match self.nested(res.nested) {
                Some(n) => group::attr(res, &n, &attr, &path[1..]),
                None => {
                    // Not created yet: aggregates are empty lists.
                    if attr.starts_with("resource.") {
                        Value::Null
                    } else if attr == "refs_map" || attr == "attributes" {
                        Value::Object(Map::new())
                    } else {
                        Value::Array(Vec::new())
                    }
                }
            },
        }
    }

    fn file(&self, key: &str) -> Option<String> {
        self.stack.def.files.get(key).cloned()
    }

    fn condition(&self, name: &str, depth: usize) -> bool {
        match self
            .stack
            .def
            .template
            .get("conditions")
            .and_then(|c| c.get(name))
        {
            Some(expr) => intrinsics::eval_condition(expr, self, depth),
            None => false,
        }
    }
}
