//! Magnum's JSON patch: `JsonPatchType` validation of each operation, then
//! `api_utils.apply_jsonpatch` (root-`add` rules, Python-literal label strings) and
//! python-jsonpatch's `add`/`replace`/`remove` on a JSON document of the resource.
use crate::error::ApiError;
use crate::pylit::{literal_eval, repr, str_of, str_repr, type_name};
use crate::validate::fields::invalid;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Replace => "replace",
            Op::Remove => "remove",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PatchOp {
    pub op: Op,
    pub path: String,
    pub value: Option<Value>,
}

/// Per-resource path rules (`internal_attrs`, `non_removable_attrs`).
pub struct PatchRules {
    pub internal: &'static [&'static str],
    pub non_removable: &'static [&'static str],
}

pub const BASE_INTERNAL: [&str; 7] = [
    "/created_at",
    "/id",
    "/links",
    "/updated_at",
    "/uuid",
    "/project_id",
    "/user_id",
];

/// Paths whose string value is a Python literal (`ast.literal_eval`) on `replace`.
const LITERAL_PATHS: [&str; 2] = ["/labels", "/health_status_reason"];

fn path_ok(p: &str) -> bool {
    // ^(/[\w-]+)+$ — \w is Unicode-aware in Python 3.
    !p.is_empty()
        && p.starts_with('/')
        && p[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
}

/// Parses and validates a PATCH body (a list of operations).
pub fn parse(body: &Value, rules: &PatchRules) -> Result<Vec<PatchOp>, ApiError> {
    let Value::Array(items) = body else {
        return Err(invalid(
            "patch",
            body,
            &format!("Value not a valid list: {}", str_of(body)),
        ));
    };
    items.iter().map(|item| parse_one(item, rules)).collect()
}

fn parse_one(item: &Value, rules: &PatchRules) -> Result<PatchOp, ApiError> {
    let Value::Object(m) = item else {
        return Err(invalid(
            "patch",
            item,
            &format!("Value not a valid dict: {}", str_of(item)),
        ));
    };
    let mut unknown: Vec<&str> = m
        .keys()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "path" | "op" | "value"))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        let noun = if unknown.len() > 1 {
            "attributes"
        } else {
            "attribute"
        };
        return Err(ApiError::BadRequest(format!(
            "Unknown {noun} for argument patch: {}",
            unknown.join(", ")
        )));
    }
    let path = match m.get("path") {
        None | Some(Value::Null) => {
            return Err(invalid("path", &Value::Null, "Mandatory field missing."))
        }
        Some(Value::String(p)) if path_ok(p) => p.clone(),
        Some(v @ Value::String(_)) => {
            return Err(invalid(
                "path",
                v,
                "Value should match the pattern ^(/[\\w-]+)+$",
            ))
        }
        Some(v) => return Err(invalid("path", v, "Value should be string")),
    };
    let op = match m.get("op") {
        None | Some(Value::Null) => {
            return Err(invalid("op", &Value::Null, "Mandatory field missing."))
        }
        Some(Value::String(s)) if s == "add" => Op::Add,
        Some(Value::String(s)) if s == "replace" => Op::Replace,
        Some(Value::String(s)) if s == "remove" => Op::Remove,
        Some(v) => {
            return Err(invalid(
                "op",
                v,
                "Value should be one of: add, replace, remove",
            ))
        }
    };
    let value = match m.get("value") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::String(_) | Value::Bool(_))) => Some(v.clone()),
        Some(v @ Value::Number(n)) if !n.is_f64() => Some(v.clone()),
        // Magnum only takes str/int here; a JSON object for the two dict-valued paths is
        // accepted too, since apply_jsonpatch handles dicts there anyway.
        Some(v @ Value::Object(_)) if LITERAL_PATHS.contains(&path.as_str()) => Some(v.clone()),
        Some(v) => {
            return Err(invalid(
                "value",
                v,
                &format!(
                    "Wrong type. Expected '(<class 'str'>, <class 'int'>)', got '{}'",
                    type_name(v)
                ),
            ))
        }
    };
    if BASE_INTERNAL.contains(&path.as_str()) || rules.internal.contains(&path.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "'{path}' is an internal attribute and can not be updated"
        )));
    }
    if op == Op::Remove && rules.non_removable.contains(&path.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "'{path}' is a mandatory attribute and can not be removed"
        )));
    }
    if op != Op::Remove && value.is_none() {
        return Err(ApiError::bad_request(
            "'add' and 'replace' operations needs value",
        ));
    }
    Ok(PatchOp { op, path, value })
}

/// Python repr of the patch list, as `PatchError` prints it.
fn patch_repr(ops: &[PatchOp]) -> String {
    let items: Vec<String> = ops
        .iter()
        .map(|p| {
            let mut s = format!(
                "{{'path': {}, 'op': {}",
                str_repr(&p.path),
                str_repr(p.op.as_str())
            );
            if let Some(v) = &p.value {
                s.push_str(&format!(", 'value': {}", repr(v)));
            }
            s.push('}');
            s
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn patch_error(ops: &[PatchOp], reason: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "Couldn't apply patch '{}'. Reason: {reason}",
        patch_repr(ops)
    ))
}

/// `apply_jsonpatch(doc, patch)`.
pub fn apply(doc: &Value, ops: &[PatchOp]) -> Result<Value, ApiError> {
    let mut ops = ops.to_vec();
    for i in 0..ops.len() {
        let p = &ops[i];
        if p.op == Op::Add && p.path.matches('/').count() == 1 {
            let attr = &p.path[1..];
            match doc.get(attr) {
                None => {
                    return Err(ApiError::BadRequest(format!(
                        "Adding a new attribute {} to the root of the resource is not allowed.",
                        p.path
                    )))
                }
                Some(v) if !v.is_null() => {
                    return Err(ApiError::BadRequest(format!(
                        "The attribute {} has existed, please use 'replace' operation instead.",
                        p.path
                    )))
                }
                Some(_) => {}
            }
        }
        if p.op == Op::Replace && LITERAL_PATHS.contains(&p.path.as_str()) {
            if let Some(Value::String(s)) = &p.value {
                match literal_eval(s) {
                    Ok(v) => ops[i].value = Some(v),
                    Err(e) => return Err(patch_error(&ops, &e.0)),
                }
            }
        }
    }
    let mut out = doc.clone();
    for p in &ops {
        apply_one(&mut out, p).map_err(|reason| patch_error(&ops, &reason))?;
    }
    Ok(out)
}

fn apply_one(doc: &mut Value, p: &PatchOp) -> Result<(), String> {
    let parts: Vec<String> = p.path[1..]
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = parts.split_last().ok_or("empty path")?;
    let mut cur = doc;
    for part in parents {
        let shown = repr(cur);
        cur = match cur {
            Value::Object(m) => m
                .get_mut(part)
                .ok_or_else(|| format!("member '{part}' not found in {shown}"))?,
            Value::Array(a) => {
                let idx: usize = part
                    .parse()
                    .map_err(|_| format!("'{part}' is not a valid sequence index"))?;
                a.get_mut(idx)
                    .ok_or_else(|| format!("index '{idx}' is out of bounds"))?
            }
            other => {
                return Err(format!(
                    "Document '{}' does not support indexing, must be mapping/sequence or \
                     support __getitem__",
                    repr(other)
                ))
            }
        };
    }
    match (p.op, cur) {
        (Op::Add, Value::Object(m)) => {
            m.insert(last.clone(), p.value.clone().unwrap_or(Value::Null));
        }
        (Op::Replace, Value::Object(m)) => match m.get_mut(last) {
            Some(slot) => *slot = p.value.clone().unwrap_or(Value::Null),
            None => return Err(format!("can't replace a non-existent object '{last}'")),
        },
        (Op::Remove, Value::Object(m)) => {
            if m.remove(last).is_none() {
                return Err(format!("can't remove a non-existent object '{last}'"));
            }
        }
        (op, Value::Array(a)) => {
            let idx = if op == Op::Add && last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| format!("'{last}' is not a valid sequence index"))?
            };
            let v = p.value.clone().unwrap_or(Value::Null);
            match op {
                Op::Add if idx <= a.len() => a.insert(idx, v),
                Op::Replace if idx < a.len() => a[idx] = v,
                Op::Remove if idx < a.len() => {
                    a.remove(idx);
                }
                _ => return Err("can't replace outside of list".into()),
            }
        }
        (_, other) => return Err(format!("invalid document type {}", type_name(other))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: PatchRules = PatchRules {
        internal: &[],
        non_removable: &["/coe"],
    };

    fn err(body: Value) -> String {
        parse(&body, &RULES).unwrap_err().to_string()
    }

    #[test]
    fn validation_messages() {
        assert_eq!(
            err(json!([{"op": "move", "from": "/uuid", "path": "/id"}])),
            "Unknown attribute for argument patch: from"
        );
        assert_eq!(
            err(json!([{"op": "replace", "path": "/uuid", "value": "x"}])),
            "'/uuid' is an internal attribute and can not be updated"
        );
        assert_eq!(
            err(json!([{"op": "remove", "path": "/coe"}])),
            "'/coe' is a mandatory attribute and can not be removed"
        );
        assert_eq!(
            err(json!([{"op": "replace", "path": "/name"}])),
            "'add' and 'replace' operations needs value"
        );
        assert!(err(json!([{"op": "replace", "path": "name", "value": "x"}])).contains("pattern"));
        assert!(err(json!({"op": "replace"})).contains("Value not a valid list"));
        assert!(err(json!([{"op": "copy", "path": "/a", "value": 1}])).contains("should be one of"));
    }

    #[test]
    fn apply_like_magnum() {
        let doc = json!({"name": "a", "keypair_id": null, "labels": {"x": "1"}});
        let ops = parse(
            &json!([
                {"op": "replace", "path": "/name", "value": "b"},
                {"op": "add", "path": "/keypair_id", "value": "kp"},
                {"op": "add", "path": "/labels/y", "value": "2"},
                {"op": "remove", "path": "/labels/x"}
            ]),
            &RULES,
        )
        .unwrap();
        let out = apply(&doc, &ops).unwrap();
        assert_eq!(
            out,
            json!({"name": "b", "keypair_id": "kp", "labels": {"y": "2"}})
        );

        let ops = parse(
            &json!([{"op": "add", "path": "/name", "value": "c"}]),
            &RULES,
        )
        .unwrap();
        assert_eq!(
            apply(&doc, &ops).unwrap_err().to_string(),
            "The attribute /name has existed, please use 'replace' operation instead."
        );
        let ops = parse(
            &json!([{"op": "add", "path": "/nope", "value": "c"}]),
            &RULES,
        )
        .unwrap();
        assert!(apply(&doc, &ops)
            .unwrap_err()
            .to_string()
            .starts_with("Adding a new attribute /nope"));
        let ops = parse(
            &json!([{"op": "replace", "path": "/nope", "value": "c"}]),
            &RULES,
        )
        .unwrap();
        assert_eq!(
            apply(&doc, &ops).unwrap_err().to_string(),
            "Couldn't apply patch '[{'path': '/nope', 'op': 'replace', 'value': 'c'}]'. Reason: \
             can't replace a non-existent object 'nope'"
        );
        let ops = parse(
            &json!([{"op": "replace", "path": "/labels", "value": "{'kube_tag': 'v1.27.3'}"}]),
            &RULES,
        )
        .unwrap();
        assert_eq!(
            apply(&doc, &ops).unwrap()["labels"],
            json!({"kube_tag": "v1.27.3"})
        );
        let ops = parse(
            &json!([{"op": "replace", "path": "/labels", "value": "{oops"}]),
            &RULES,
        )
        .unwrap();
        assert!(apply(&doc, &ops)
            .unwrap_err()
            .to_string()
            .starts_with("Couldn't apply patch"));
    }
}
