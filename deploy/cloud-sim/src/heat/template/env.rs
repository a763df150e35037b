//! Stack environments: parsing and merging.

use serde_json::{Map, Value};

use super::parse::parse_yaml_str;
use crate::error::SimError;
use crate::heat::Env;

/// Parse an environment (object or YAML string).
pub(crate) fn parse_env(v: &Value) -> Result<Env, SimError> {
    let v = match v {
        Value::String(s) => parse_yaml_str(s)
            .map_err(|e| SimError::heat_bad(format!("Error parsing environment: {e}")))?,
        Value::Null => return Ok(Env::default()),
        other => other.clone(),
    };
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(Env::default()),
        _ => {
            return Err(SimError::heat_bad(
                "The environment is not a valid YAML mapping data type.",
            ))
        }
    };
    let mut env = Env::default();
    for (k, v) in obj {
        match k.as_str() {
            "parameters" => env.parameters = as_map(v, "parameters")?,
            "parameter_defaults" => env.parameter_defaults = as_map(v, "parameter_defaults")?,
            "resource_registry" => {
                for (ty, target) in as_map(v, "resource_registry")? {
                    if let Value::String(t) = target {
                        env.resource_registry.insert(ty, t);
                    }
                }
            }
            "event_sinks" | "encrypted_param_names" | "parameter_merge_strategies" => {}
            other => {
                return Err(SimError::heat_bad(format!(
                    "environment has wrong section \"{other}\""
                )))
            }
        }
    }
    Ok(env)
}

fn as_map(v: Value, what: &str) -> Result<Map<String, Value>, SimError> {
    match v {
        Value::Object(o) => Ok(o),
        Value::Null => Ok(Map::new()),
        _ => Err(SimError::heat_bad(format!(
            "The {what} section must be a mapping."
        ))),
    }
}

/// Merge `over` into `base` (later environments win).
pub(crate) fn merge_env(base: &mut Env, over: Env) {
    base.parameters.extend(over.parameters);
    base.parameter_defaults.extend(over.parameter_defaults);
    base.resource_registry.extend(over.resource_registry);
}
