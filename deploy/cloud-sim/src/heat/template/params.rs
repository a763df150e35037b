//! Template parameters: schemas, conversion of given values to their type, and the resolved
//! values of a stack.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use super::constraints::check_constraints;
use crate::error::SimError;
use crate::heat::Env;

/// A parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PType {
    String,
    Number,
    Boolean,
    List,
    Json,
}

impl PType {
    fn parse(s: &str) -> Option<PType> {
        Some(match s {
            "string" | "String" => PType::String,
            "number" | "Number" => PType::Number,
            "boolean" | "Boolean" => PType::Boolean,
            "comma_delimited_list" | "CommaDelimitedList" => PType::List,
            "json" | "Json" => PType::Json,
            _ => return None,
        })
    }

    pub(crate) fn cfn_name(self) -> &'static str {
        match self {
            PType::String => "String",
            PType::Number => "Number",
            PType::Boolean => "Boolean",
            PType::List => "CommaDelimitedList",
            PType::Json => "Json",
        }
    }
}

/// One parameter's schema.
#[derive(Debug, Clone)]
pub(crate) struct ParamSchema {
    pub ptype: PType,
    pub default: Option<Value>,
    pub hidden: bool,
    pub constraints: Vec<Value>,
    pub description: String,
    pub label: Option<String>,
}

impl ParamSchema {
    /// `v` converted to the parameter's type, if it also meets the constraints.
    pub(super) fn typed(&self, v: &Value) -> Result<Value, String> {
        let t = convert(self.ptype, v)?;
        check_constraints(self, &t)?;
        Ok(t)
    }
}

/// Heat's error for a parameter value that [`ParamSchema::typed`] rejects.
pub(super) fn invalid_param(name: &str, e: String) -> SimError {
    SimError::heat_bad(format!("Parameter '{name}' is invalid: {e}"))
}

/// The `parameters` section.
pub(crate) fn param_schemas(tmpl: &Value) -> Result<BTreeMap<String, ParamSchema>, SimError> {
    let mut out = BTreeMap::new();
    let Some(params) = tmpl.get("parameters") else {
        return Ok(out);
    };
    let params = match params {
        Value::Null => return Ok(out),
        Value::Object(o) => o,
        _ => {
            return Err(SimError::heat_bad(
                "The parameters section must be a mapping.",
            ))
        }
    };
    for (name, p) in params {
        let p = p.as_object().ok_or_else(|| {
            SimError::heat_bad(format!(
                "Invalid parameter schema for parameter \"{name}\"."
            ))
        })?;
        let ty = p.get("type").and_then(Value::as_str).ok_or_else(|| {
            SimError::heat_bad(format!("Missing parameter type for parameter: {name}"))
        })?;
        let ptype = PType::parse(ty).ok_or_else(|| {
            SimError::heat(400, "InvalidSchemaError", format!("Invalid type ({ty})"))
        })?;
        let hidden = match p.get("hidden") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        out.insert(
            name.clone(),
            ParamSchema {
                ptype,
                default: p.get("default").cloned(),
                hidden,
                constraints: p
                    .get("constraints")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                description: p
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                label: p.get("label").and_then(Value::as_str).map(str::to_string),
            },
        );
    }
    Ok(out)
}

/// Python's `str()` of a value (how Heat compares and shows parameter values).
pub(super) fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "on" | "y" | "yes" | "1" => Some(true),
            "f" | "false" | "off" | "n" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Convert a user or default value to the parameter's type.
fn convert(ptype: PType, v: &Value) -> Result<Value, String> {
    match ptype {
        PType::String => Ok(Value::String(python_str(v))),
        PType::Number => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) => {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Ok(Value::Number(i.into()))
                } else {
                    t.parse::<f64>()
                        .ok()
                        .and_then(Number::from_f64)
                        .map(Value::Number)
                        .ok_or_else(|| format!("could not convert string to float: '{s}'"))
                }
            }
            other => Err(format!("Value '{}' is not a number", python_str(other))),
        },
        PType::Boolean => parse_bool(v).map(Value::Bool).ok_or_else(|| {
            format!(
                "Unrecognized value '{}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'",
                python_str(v)
            )
        }),
        PType::List => match v {
            Value::Array(items) => Ok(Value::Array(
                items.iter().map(|i| Value::String(python_str(i))).collect(),
            )),
            Value::String(s) if s.is_empty() => Ok(Value::Array(Vec::new())),
            Value::String(s) => Ok(Value::Array(
                s.split(',')
                    .map(|x| Value::String(x.trim().to_string()))
                    .collect(),
            )),
            Value::Null => Ok(Value::Array(Vec::new())),
            other => Ok(Value::Array(vec![Value::String(python_str(other))])),
        },
        PType::Json => match v {
            Value::Object(_) | Value::Array(_) => Ok(v.clone()),
            Value::String(s) if s.trim().is_empty() => Ok(Value::Object(Map::new())),
            Value::String(s) => serde_json::from_str(s)
                .map_err(|e| format!("Value must be valid JSON: {e}")),
            Value::Null => Ok(Value::Object(Map::new())),
            other => Err(format!("Value must be valid JSON: {other}")),
        },
    }
}

/// Resolve typed parameter values (user > parameter_defaults > default). `lenient` skips
/// missing or invalid ones instead of failing (used when evaluating at read time).
pub(crate) fn resolve_params(
    tmpl: &Value,
    env: &Env,
    lenient: bool,
) -> Result<Map<String, Value>, SimError> {
    let schemas = match param_schemas(tmpl) {
        Ok(s) => s,
        Err(e) if !lenient => return Err(e),
        Err(_) => BTreeMap::new(),
    };
    let mut out = Map::new();
    for (name, schema) in &schemas {
        if let (Some(d), false) = (&schema.default, lenient) {
            schema.typed(d).map_err(|e| invalid_param(name, e))?;
        }
        let raw = env
            .parameters
            .get(name)
            .or_else(|| env.parameter_defaults.get(name))
            .or(schema.default.as_ref());
        let Some(raw) = raw else {
            if lenient {
                continue;
            }
            return Err(SimError::heat(
                400,
                "UserParameterMissing",
                format!("The Parameter ({name}) was not provided."),
            ));
        };
        let typed = match schema.typed(raw) {
            Ok(t) => t,
            Err(_) if lenient => continue,
            Err(e) => return Err(invalid_param(name, e)),
        };
        out.insert(name.clone(), typed);
    }
    Ok(out)
}

/// How Heat shows a parameter value in `stack show` (always a string).
pub(crate) fn display_param(schema: Option<&ParamSchema>, v: &Value) -> String {
    if schema.is_some_and(|s| s.hidden) {
        return "******".to_string();
    }
    match (schema.map(|s| s.ptype), v) {
        (Some(PType::List), Value::Array(items)) => {
            items.iter().map(python_str).collect::<Vec<_>>().join(",")
        }
        (Some(PType::Json), other) => other.to_string(),
        (_, other) => python_str(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversions() {
        assert_eq!(convert(PType::Number, &json!("3")), Ok(json!(3)));
        assert_eq!(convert(PType::Boolean, &json!("True")), Ok(json!(true)));
        assert_eq!(convert(PType::List, &json!("a, b")), Ok(json!(["a", "b"])));
        assert_eq!(
            convert(PType::Json, &json!("{\"a\":1}")),
            Ok(json!({"a": 1}))
        );
        assert!(convert(PType::Number, &json!("x")).is_err());
    }
}
