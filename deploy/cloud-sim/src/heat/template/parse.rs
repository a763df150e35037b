//! YAML/JSON documents and the template envelope.

use serde_json::{Map, Number, Value};

use crate::error::SimError;

/// Convert a YAML value to JSON (non-string keys are stringified, tags dropped).
fn yaml_to_json(y: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                n.as_f64()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_string(),
                    other => serde_yaml::to_string(&other)
                        .map(|s| s.trim().to_string())
                        .unwrap_or_default(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

/// Parse a YAML (or JSON) document.
pub(super) fn parse_yaml_str(s: &str) -> Result<Value, String> {
    serde_yaml::from_str::<serde_yaml::Value>(s)
        .map(yaml_to_json)
        .map_err(|e| e.to_string())
}

/// A template given as an object or as a YAML/JSON string.
pub(crate) fn parse_template(v: &Value) -> Result<Value, SimError> {
    let invalid = |inner: String| {
        SimError::heat(
            400,
            "HTTPBadRequest",
            format!("Template not in valid format: {inner}"),
        )
    };
    let t = match v {
        Value::String(s) => parse_yaml_str(s).map_err(invalid)?,
        other => other.clone(),
    };
    let Some(obj) = t.as_object() else {
        return Err(invalid(
            "The template is not a JSON object or YAML mapping.".into(),
        ));
    };
    if ![
        "heat_template_version",
        "HeatTemplateFormatVersion",
        "AWSTemplateFormatVersion",
    ]
    .iter()
    .any(|k| obj.contains_key(*k))
    {
        return Err(invalid("Template format version not found.".into()));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_dates_and_keys() {
        let v = parse_yaml_str("heat_template_version: 2018-08-31\n1: x\n").unwrap_or_default();
        assert_eq!(v["heat_template_version"], json!("2018-08-31"));
        assert_eq!(v["1"], json!("x"));
    }
}
