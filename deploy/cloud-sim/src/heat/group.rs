//! `OS::Heat::ResourceGroup`: members `"0"`, `"1"`, … in a nested stack whose template is
//! generated from `count` and `resource_def`; `removal_policies` feed a persistent skiplist of
//! names that are never reused; aggregate attributes are lists in member order.

use serde_json::{json, Map, Value};

use super::context::StackCtx;
use super::intrinsics::{traverse, Ctx};
use super::Resource;

/// The group's properties, resolved.
#[derive(Debug, Clone)]
pub(crate) struct GroupSpec {
    pub count: usize,
    pub resource_def: Value,
    pub removal: Vec<String>,
    pub mode_update: bool,
    pub index_var: String,
}

fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Read `count`, `resource_def`, `removal_policies`, `removal_policies_mode`, `index_var`.
pub(crate) fn parse(props: &Value) -> Result<GroupSpec, String> {
    let count = match props.get("count") {
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| format!("Property error: count: {n} is not a valid count"))?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("Property error: count: Value '{s}' is not an integer"))?,
        Some(other) => {
            return Err(format!(
                "Property error: count: Value '{other}' is not an integer"
            ))
        }
    };
    let count =
        usize::try_from(count).map_err(|_| "Property error: count: too large".to_string())?;
    let resource_def = props
        .get("resource_def")
        .filter(|d| d.is_object())
        .cloned()
        .ok_or_else(|| {
            "Property error: resource_def: Property resource_def not assigned".to_string()
        })?;
    if resource_def.get("type").and_then(Value::as_str).is_none() {
        return Err("Property error: resource_def: Property type not assigned".to_string());
    }
    let mut removal = Vec::new();
    if let Some(Value::Array(policies)) = props.get("removal_policies") {
        for p in policies {
            if let Some(Value::Array(list)) = p.get("resource_list") {
                removal.extend(list.iter().filter(|v| !v.is_null()).map(as_string));
            }
        }
    }
    let mode_update = props.get("removal_policies_mode").and_then(Value::as_str) == Some("update");
    let index_var = props
        .get("index_var")
        .and_then(Value::as_str)
        .unwrap_or("%index%")
        .to_string();
    Ok(GroupSpec {
        count,
        resource_def,
        removal,
        mode_update,
        index_var,
    })
}

/// Member names ordered like Heat (numerically, then lexically).
pub(crate) fn sorted_names<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = names.cloned().collect();
    v.sort_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    });
    v
}

/// The new skiplist: the old one (unless mode `update`) plus every removal entry that names a
/// current member or equals a current member's reference id. `members` is `(name, ref)`.
pub(crate) fn new_skiplist(
    old: &[String],
    spec: &GroupSpec,
    members: &[(String, String)],
) -> Vec<String> {
    let mut out: Vec<String> = if spec.mode_update {
        Vec::new()
    } else {
        old.to_vec()
    };
    for entry in &spec.removal {
        let name = if old.contains(entry) || members.iter().any(|(n, _)| n == entry) {
            Some(entry.clone())
        } else {
            members
                .iter()
                .find(|(_, r)| r == entry)
                .map(|(n, _)| n.clone())
        };
        if let Some(n) = name {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The first `count` names of `0, 1, 2, …` that are not in the skiplist.
pub(crate) fn member_names(count: usize, skiplist: &[String]) -> Vec<String> {
    (0u64..)
        .map(|i| i.to_string())
        .filter(|n| !skiplist.contains(n))
        .take(count)
        .collect()
}

fn replace_index(v: &Value, var: &str, index: &str) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace(var, index)),
        Value::Array(a) => Value::Array(a.iter().map(|x| replace_index(x, var, index)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), replace_index(x, var, index)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The definition of member `name`: `resource_def` with `%index%` substituted.
pub(crate) fn member_def(spec: &GroupSpec, name: &str) -> Value {
    let mut def = Map::new();
    def.insert(
        "type".into(),
        spec.resource_def
            .get("type")
            .cloned()
            .unwrap_or(Value::Null),
    );
    if let Some(p) = spec.resource_def.get("properties") {
        def.insert("properties".into(), replace_index(p, &spec.index_var, name));
    }
    if let Some(m) = spec.resource_def.get("metadata") {
        def.insert("metadata".into(), replace_index(m, &spec.index_var, name));
    }
    Value::Object(def)
}

/// The nested stack's template: one resource per member, `%index%` substituted.
pub(crate) fn template(names: &[String], spec: &GroupSpec) -> Value {
    let resources: Map<String, Value> = names
        .iter()
        .map(|n| (n.clone(), member_def(spec, n)))
        .collect();
    json!({"heat_template_version": "2015-04-30", "resources": resources})
}

/// Member names of a group's nested stack, in order.
pub(crate) fn members(nested: &StackCtx<'_>) -> Vec<String> {
    match nested
        .stack
        .def
        .template
        .get("resources")
        .and_then(Value::as_object)
    {
        Some(r) => sorted_names(r.keys()),
        None => Vec::new(),
    }
}

/// `get_attr` on a group.
pub(crate) fn attr(res: &Resource, nested: &StackCtx<'_>, attr: &str, rest: &[Value]) -> Value {
    let names = members(nested);
    match attr {
        "refs" => traverse(
            Value::Array(names.iter().map(|n| nested.resource_ref(n)).collect()),
            rest,
        ),
        "refs_map" => traverse(
            Value::Object(
                names
                    .iter()
                    .map(|n| (n.clone(), nested.resource_ref(n)))
                    .collect(),
            ),
            rest,
        ),
        "removed_rsrc_list" => traverse(json!(res.skiplist), rest),
        "attributes" => Value::Object(
            names
                .iter()
                .map(|n| (n.clone(), nested.resource_attr(n, rest)))
                .collect(),
        ),
        a if a.starts_with("resource.") => {
            let inner = &a["resource.".len()..];
            let (member, mattr) = match inner.split_once('.') {
                Some((m, x)) => (m, Some(x)),
                None => (inner, None),
            };
            let mut p: Vec<Value> = mattr.map(|x| Value::String(x.into())).into_iter().collect();
            p.extend_from_slice(rest);
            if p.is_empty() {
                nested.resource_ref(member)
            } else {
                nested.resource_attr(member, &p)
            }
        }
        a => {
            let mut p = vec![Value::String(a.to_string())];
            p.extend_from_slice(rest);
            Value::Array(names.iter().map(|n| nested.resource_attr(n, &p)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_skiplist() {
        let spec = parse(&json!({
            "count": 2,
            "resource_def": {"type": "OS::Heat::None", "properties": {"name": "n-%index%"}},
            "removal_policies": [{"resource_list": ["uuid-1"]}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let members = vec![
            ("0".to_string(), "uuid-0".to_string()),
            ("1".to_string(), "uuid-1".to_string()),
            ("2".to_string(), "uuid-2".to_string()),
        ];
        let sl = new_skiplist(&[], &spec, &members);
        assert_eq!(sl, vec!["1".to_string()]);
        assert_eq!(member_names(2, &sl), vec!["0".to_string(), "2".to_string()]);
        assert_eq!(
            member_names(3, &sl),
            vec!["0".to_string(), "2".to_string(), "3".to_string()]
        );
        let t = template(&["0".to_string()], &spec);
        assert_eq!(t["resources"]["0"]["properties"]["name"], json!("n-0"));
        assert_eq!(
            sorted_names(
                ["10", "2", "1"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .iter()
            ),
            vec!["1", "2", "10"]
        );
    }
}
