//! HOT intrinsic functions. Evaluation is pure over a [`Ctx`] that supplies parameters,
//! resource references/attributes, files and conditions. Functions Heat knows but we do not
//! implement (`yaql`, `digest`, …) evaluate to `null` with a warning.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// What evaluation needs from the stack.
pub(crate) trait Ctx {
    /// A typed parameter value (including `OS::stack_id`, `OS::stack_name`, `OS::project_id`).
    fn param(&self, name: &str) -> Option<Value>;
    /// `get_resource`: the resource's reference id (`null` until created).
    fn resource_ref(&self, name: &str) -> Value;
    /// `get_attr`: `path[0]` is the attribute name, the rest a path into its value.
    fn resource_attr(&self, name: &str, path: &[Value]) -> Value;
    /// `get_file`.
    fn file(&self, key: &str) -> Option<String>;
    /// A named condition of the `conditions` section.
    fn condition(&self, name: &str, depth: usize) -> bool;
}

/// Every HOT function name (a single-key mapping with one of these keys is a function call).
const FUNCTIONS: &[&str] = &[
    "get_param",
    "get_resource",
    "get_attr",
    "get_file",
    "list_join",
    "str_replace",
    "str_replace_strict",
    "str_replace_vstrict",
    "str_split",
    "if",
    "equals",
    "not",
    "and",
    "or",
    "contains",
    "list_concat",
    "list_concat_unique",
    "map_merge",
    "map_replace",
    "repeat",
    "filter",
    "yaql",
    "digest",
    "resource_facade",
    "make_url",
];

const MAX_DEPTH: usize = 64;

/// Is `name` a HOT function name?
pub(crate) fn is_function(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

fn as_function(v: &Value) -> Option<(&str, &Value)> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    let (k, arg) = o.iter().next()?;
    FUNCTIONS.contains(&k.as_str()).then_some((k.as_str(), arg))
}

/// Evaluate all intrinsic functions in `v`.
pub(crate) fn eval(v: &Value, ctx: &dyn Ctx) -> Value {
    eval_d(v, ctx, 0)
}

fn eval_d(v: &Value, ctx: &dyn Ctx, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    if let Some((name, arg)) = as_function(v) {
        return call(name, arg, ctx, depth + 1);
    }
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), eval_d(v, ctx, depth + 1)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| eval_d(v, ctx, depth + 1)).collect()),
        other => other.clone(),
    }
}

/// Evaluate a condition expression: a bool, a condition name, or a function.
pub(crate) fn eval_condition(v: &Value, ctx: &dyn Ctx, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => match s.as_str() {
            "true" | "True" => true,
            "false" | "False" => false,
            name => ctx.condition(name, depth + 1),
        },
        Value::Null => false,
        other => truthy(&eval_d(other, ctx, depth + 1)),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Follow a `get_attr`/`get_param` path (keys into maps, indexes into lists).
pub(crate) fn traverse(mut v: Value, path: &[Value]) -> Value {
    for p in path {
        v = match v {
            Value::Object(mut o) => {
                let key = match p {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                o.remove(&key).unwrap_or(Value::Null)
            }
            Value::Array(mut a) => {
                let idx = match p {
                    Value::Number(n) => n.as_u64().map(|u| u as usize),
                    Value::String(s) => s.parse::<usize>().ok(),
                    _ => None,
                };
                match idx {
                    Some(i) if i < a.len() => a.swap_remove(i),
                    _ => Value::Null,
                }
            }
            _ => Value::Null,
        };
    }
    v
}

/// The text form of a value inside `list_join`/`str_replace` (JSON for structures).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `equals`: JSON equality with numbers compared numerically.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| loose_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| loose_eq(v, w)))
        }
        _ => a == b,
    }
}

fn args(arg: &Value) -> &[Value] {
    arg.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Replace every key of `params` in `template` in one left-to-right pass, longest key first
/// (so replaced text is never replaced again).
fn replace_all(template: &str, params: &[(String, String)]) -> String {
    let mut keys: Vec<&(String, String)> = params.iter().filter(|(k, _)| !k.is_empty()).collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.0.len()));
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'outer: while !rest.is_empty() {
        for (k, v) in &keys {
            if rest.starts_with(k.as_str()) {
                out.push_str(v);
                rest = &rest[k.len()..];
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

fn substitute(v: &Value, params: &[(String, String)]) -> Value {
    match v {
        Value::String(s) => Value::String(replace_all(s, params)),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, params)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (replace_all(k, params), substitute(x, params)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn call(name: &str, arg: &Value, ctx: &dyn Ctx, depth: usize) -> Value {
    let ev = |v: &Value| eval_d(v, ctx, depth + 1);
    match name {
        "get_param" => match arg {
            Value::String(p) => ctx.param(p).unwrap_or(Value::Null),
            Value::Array(a) if !a.is_empty() => {
                let p = text(&ev(&a[0]));
                let path: Vec<Value> = a[1..].iter().map(ev).collect();
                traverse(ctx.param(&p).unwrap_or(Value::Null), &path)
            }
            _ => Value::Null,
        },
        "get_resource" => match ev(arg) {
            Value::String(r) => ctx.resource_ref(&r),
            _ => Value::Null,
        },
        "get_attr" => {
            let a = args(arg);
            if a.len() < 2 {
                return Value::Null;
            }
            let r = text(&ev(&a[0]));
            let path: Vec<Value> = a[1..].iter().map(ev).collect();
            ctx.resource_attr(&r, &path)
        }
        "get_file" => match ev(arg) {
            Value::String(k) => ctx.file(&k).map(Value::String).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "list_join" => {
            let a = args(arg);
            let Some(delim) = a.first().map(|d| text(&ev(d))) else {
                return Value::Null;
            };
            let mut items = Vec::new();
            for l in &a[1..] {
                match ev(l) {
                    Value::Array(xs) => items.extend(xs.iter().map(text)),
                    Value::Null => {}
                    other => items.push(text(&other)),
                }
            }
            Value::String(items.join(&delim))
        }
        "str_replace" | "str_replace_strict" | "str_replace_vstrict" => {
            let template = match arg.get("template").map(ev) {
                Some(Value::String(s)) => s,
                Some(Value::Null) | None => return Value::Null,
                Some(other) => text(&other),
            };
            let params: Vec<(String, String)> = match arg.get("params").map(ev) {
                Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
                _ => Vec::new(),
            };
            Value::String(replace_all(&template, &params))
        }
        "str_split" => {
            let a = args(arg);
            let (Some(d), Some(s)) = (
                a.first().map(|x| text(&ev(x))),
                a.get(1).map(|x| text(&ev(x))),
            ) else {
                return Value::Null;
            };
            let parts: Vec<Value> = if d.is_empty() {
                vec![Value::String(s)]
            } else {
                s.split(d.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            match a.get(2).map(ev) {
                Some(idx) => traverse(Value::Array(parts), &[idx]),
                None => Value::Array(parts),
            }
        }
        "if" => {
            let a = args(arg);
            if a.len() != 3 {
                return Value::Null;
            }
            if eval_condition(&a[0], ctx, depth + 1) {
                ev(&a[1])
            } else {
                ev(&a[2])
            }
        }
        "equals" => {
            let a = args(arg);
            if a.len() != 2 {
                return Value::Null;
            }
            Value::Bool(loose_eq(&ev(&a[0]), &ev(&a[1])))
        }
        "not" => Value::Bool(!eval_condition(arg, ctx, depth + 1)),
        "and" => Value::Bool(args(arg).iter().all(|c| eval_condition(c, ctx, depth + 1))),
        "or" => Value::Bool(args(arg).iter().any(|c| eval_condition(c, ctx, depth + 1))),
        "contains" => {
            let a = args(arg);
            if a.len() != 2 {
                return Value::Null;
            }
            let needle = ev(&a[0]);
            Value::Bool(match ev(&a[1]) {
                Value::Array(xs) => xs.iter().any(|x| loose_eq(x, &needle)),
                Value::String(s) => s.contains(&text(&needle)),
                Value::Object(o) => o.contains_key(&text(&needle)),
                _ => false,
            })
        }
        "list_concat" | "list_concat_unique" => {
            let mut out: Vec<Value> = Vec::new();
            for l in args(arg) {
                if let Value::Array(xs) = ev(l) {
                    for x in xs {
                        if name == "list_concat" || !out.iter().any(|o| loose_eq(o, &x)) {
                            out.push(x);
                        }
                    }
                }
            }
            Value::Array(out)
        }
        "map_merge" => {
            let mut out = Map::new();
            for m in args(arg) {
                if let Value::Object(o) = ev(m) {
                    out.extend(o);
                }
            }
            Value::Object(out)
        }
        "map_replace" => {
            let a = args(arg);
            let Some(Value::Object(m)) = a.first().map(ev) else {
                return Value::Null;
            };
            let spec = a.get(1).map(ev).unwrap_or(Value::Null);
            let keys = spec
                .get("keys")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let values = spec
                .get("values")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            Value::Object(
                m.into_iter()
                    .map(|(k, v)| {
                        let k = keys.get(&k).map(text).unwrap_or(k);
                        let v = match &v {
                            Value::String(s) => values.get(s).cloned().unwrap_or(v),
                            _ => v,
                        };
                        (k, v)
                    })
                    .collect(),
            )
        }
        "repeat" => {
            let Some(for_each) = arg.get("for_each").map(ev) else {
                return Value::Null;
            };
            let template = arg.get("template").cloned().unwrap_or(Value::Null);
            let permutations = arg
                .get("permutations")
                .map(|p| p != &Value::Bool(false))
                .unwrap_or(true);
            let vars: Vec<(String, Vec<String>)> = for_each
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            let vals = v
                                .as_array()
                                .map(|a| a.iter().map(text).collect())
                                .unwrap_or_default();
                            (k.clone(), vals)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
            if permutations {
                for (k, vals) in &vars {
                    combos = combos
                        .into_iter()
                        .flat_map(|c| {
                            vals.iter().map(move |v| {
                                let mut c = c.clone();
                                c.push((k.clone(), v.clone()));
                                c
                            })
                        })
                        .collect();
                }
            } else {
                let n = vars.iter().map(|(_, v)| v.len()).min().unwrap_or(0);
                combos = (0..n)
                    .map(|i| {
                        vars.iter()
                            .map(|(k, v)| (k.clone(), v[i].clone()))
                            .collect()
                    })
                    .collect();
            }
            Value::Array(
                combos
                    .iter()
                    .map(|c| ev(&substitute(&template, c)))
                    .collect(),
            )
        }
        "filter" => {
            let a = args(arg);
            let remove = a.first().map(ev).unwrap_or(Value::Null);
            let remove = remove.as_array().cloned().unwrap_or_default();
            match a.get(1).map(ev) {
                Some(Value::Array(xs)) => Value::Array(
                    xs.into_iter()
                        .filter(|x| !remove.iter().any(|r| loose_eq(r, x)))
                        .collect(),
                ),
                _ => Value::Null,
            }
        }
        other => {
            tracing::warn!(
                function = other,
                "unsupported intrinsic function evaluates to null"
            );
            Value::Null
        }
    }
}

/// Names referenced by `get_resource`/`get_attr` (resources) and `get_param` (parameters).
#[derive(Debug, Default)]
pub(crate) struct Refs {
    pub resources: BTreeSet<String>,
    pub params: BTreeSet<String>,
}

/// Collect the references in `v` (without evaluating anything).
pub(crate) fn refs(v: &Value, out: &mut Refs) {
    refs_d(v, out, 0);
}

fn refs_d(v: &Value, out: &mut Refs, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Some((name, arg)) = as_function(v) {
        match (name, arg) {
            ("get_resource", Value::String(r)) => {
                out.resources.insert(r.clone());
            }
            ("get_attr", Value::Array(a)) => {
                if let Some(Value::String(r)) = a.first() {
                    out.resources.insert(r.clone());
                }
            }
            ("get_param", Value::String(p)) => {
                out.params.insert(p.clone());
            }
            ("get_param", Value::Array(a)) => {
                if let Some(Value::String(p)) = a.first() {
                    out.params.insert(p.clone());
                }
            }
            _ => {}
        }
    }
    match v {
        Value::Object(o) => o.values().for_each(|x| refs_d(x, out, depth + 1)),
        Value::Array(a) => a.iter().for_each(|x| refs_d(x, out, depth + 1)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct T;
    impl Ctx for T {
        fn param(&self, name: &str) -> Option<Value> {
            match name {
                "n" => Some(json!(3)),
                "flag" => Some(json!(true)),
                "list" => Some(json!(["a", "b"])),
                "obj" => Some(json!({"k": {"x": 1}})),
                _ => None,
            }
        }
        fn resource_ref(&self, name: &str) -> Value {
            json!(format!("id-{name}"))
        }
        fn resource_attr(&self, name: &str, path: &[Value]) -> Value {
            json!(format!(
                "{name}.{}",
                path.iter().map(text).collect::<Vec<_>>().join(".")
            ))
        }
        fn file(&self, key: &str) -> Option<String> {
            (key == "f").then(|| "content".to_string())
        }
        fn condition(&self, name: &str, _depth: usize) -> bool {
            name == "yes"
        }
    }

    #[test]
    fn functions() {
        let c = T;
        assert_eq!(eval(&json!({"get_param": "n"}), &c), json!(3));
        assert_eq!(eval(&json!({"get_param": ["obj", "k", "x"]}), &c), json!(1));
        assert_eq!(eval(&json!({"get_resource": "r"}), &c), json!("id-r"));
        assert_eq!(
            eval(&json!({"get_attr": ["r", "a", 0]}), &c),
            json!("r.a.0")
        );
        assert_eq!(eval(&json!({"get_file": "f"}), &c), json!("content"));
        assert_eq!(
            eval(
                &json!({"list_join": [",", {"get_param": "list"}, ["c"]]}),
                &c
            ),
            json!("a,b,c")
        );
        assert_eq!(
            eval(
                &json!({"str_replace": {"template": "$a-$ab", "params": {"$a": "1", "$ab": 2}}}),
                &c
            ),
            json!("1-2")
        );
        assert_eq!(eval(&json!({"if": ["yes", 1, 2]}), &c), json!(1));
        assert_eq!(eval(&json!({"if": [{"not": "yes"}, 1, 2]}), &c), json!(2));
        assert_eq!(
            eval(&json!({"equals": [{"get_param": "n"}, 3.0]}), &c),
            json!(true)
        );
        assert_eq!(
            eval(&json!({"and": ["yes", {"equals": [1, 1]}]}), &c),
            json!(true)
        );
        assert_eq!(eval(&json!({"or": ["no", false]}), &c), json!(false));
        assert_eq!(eval(&json!({"yaql": {"expression": "1"}}), &c), Value::Null);
        assert_eq!(
            eval(
                &json!({"repeat": {"for_each": {"%i%": ["a", "b"]}, "template": {"n": "%i%"}}}),
                &c
            ),
            json!([{"n": "a"}, {"n": "b"}])
        );
        // Not a function: a plain single-key mapping.
        assert_eq!(
            eval(&json!({"foo": {"get_param": "n"}}), &c),
            json!({"foo": 3})
        );
    }

    #[test]
    fn reference_scan() {
        let mut r = Refs::default();
        refs(
            &json!({"a": {"get_resource": "x"}, "b": [{"get_attr": ["y", "z"]}], "c": {"get_param": ["p", 0]}}),
            &mut r,
        );
        assert_eq!(
            r.resources,
            BTreeSet::from(["x".to_string(), "y".to_string()])
        );
        assert_eq!(r.params, BTreeSet::from(["p".to_string()]));
    }
}
