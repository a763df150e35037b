//! Parameter constraints (`allowed_values`, `range`, `length`, `allowed_pattern`) with
//! Heat's (Python-formatted) messages.

use serde_json::Value;

use super::params::{python_str, ParamSchema};

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Check `constraints` (allowed_values, range, length, allowed_pattern) against a typed value.
pub(super) fn check_constraints(schema: &ParamSchema, v: &Value) -> Result<(), String> {
    for c in &schema.constraints {
        let Some(c) = c.as_object() else { continue };
        let desc = c.get("description").and_then(Value::as_str);
        let fail =
            |msg: String| -> Result<(), String> { Err(desc.map(str::to_string).unwrap_or(msg)) };
        if let Some(allowed) = c.get("allowed_values").and_then(Value::as_array) {
            let values: Vec<&Value> = match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let ok = values
                .iter()
                .all(|item| allowed.iter().any(|a| python_str(a) == python_str(item)));
            if !ok {
                let shown = match v {
                    Value::String(s) => format!("\"{s}\""),
                    other => py_json(other),
                };
                return fail(format!(
                    "{shown} is not an allowed value {}",
                    py_json(&Value::Array(allowed.clone()))
                ));
            }
        }
        if let Some(r) = c.get("range").and_then(Value::as_object) {
            let (min, max) = (num(r.get("min")), num(r.get("max")));
            if let Some(x) = num(Some(v)) {
                if min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m) {
                    return fail(format!(
                        "{} is out of range (min: {}, max: {})",
                        py_num(v),
                        bound(r.get("min")),
                        bound(r.get("max"))
                    ));
                }
            }
        }
        if let Some(l) = c.get("length").and_then(Value::as_object) {
            let (min, max) = (num(l.get("min")), num(l.get("max")));
            let len = match v {
                Value::String(s) => Some(s.chars().count()),
                Value::Array(a) => Some(a.len()),
                Value::Object(o) => Some(o.len()),
                _ => None,
            };
            if let Some(len) = len {
                let f = len as f64;
                if min.is_some_and(|m| f < m) || max.is_some_and(|m| f > m) {
                    return fail(format!(
                        "length ({len}) is out of range (min: {}, max: {})",
                        bound(l.get("min")),
                        bound(l.get("max"))
                    ));
                }
            }
        }
        if let Some(p) = c.get("allowed_pattern").and_then(Value::as_str) {
            // Python's re.match + full-length check == an anchored match. Patterns Rust's regex
            // cannot compile are not checked.
            if let (Ok(re), Value::String(s)) = (regex::Regex::new(&format!("^(?:{p})$")), v) {
                if !re.is_match(s) {
                    return fail(format!("\"{s}\" does not match pattern \"{p}\""));
                }
            }
        }
    }
    Ok(())
}

/// Python's `json.dumps` spacing (`["a", "b"]`).
fn py_json(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(py_json).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, x)| format!("{}: {}", Value::String(k.clone()), py_json(x)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn py_num(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn bound(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "None".to_string(),
        Some(x) => py_num(x),
    }
}
