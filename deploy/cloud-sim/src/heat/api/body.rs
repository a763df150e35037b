//! Request bodies of stack create, update and validate (Heat's `InstantiationData`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use serde_json::{Map, Value};

use super::bad_request;
use crate::error::SimError;
use crate::heat::template::{merge_env, param_schemas, parse_env, parse_template};
use crate::heat::{Definition, Env};

/// A JSON object body (an empty or `null` body is an empty object).
pub(super) fn parse_body(body: &Bytes) -> Result<Map<String, Value>, SimError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(bad_request("The request body must be a JSON object.")),
        Err(e) => Err(bad_request(format!(
            "The request body could not be parsed: {e}"
        ))),
    }
}

/// What a create/update request asks for. `None` = not given (keep the current value on
/// update); `Some(None)` = explicitly cleared.
pub(super) struct Inst {
    template: Option<Value>,
    files: Option<BTreeMap<String, String>>,
    env: Option<Env>,
    env_files: Option<Vec<String>>,
    params: Map<String, Value>,
    clear: Vec<String>,
    pub(super) timeout_mins: Option<Option<u64>>,
    pub(super) disable_rollback: Option<bool>,
    pub(super) tags: Option<Option<Vec<String>>>,
    pub(super) existing: bool,
}

fn as_bool(v: &Value, what: &str) -> Result<bool, SimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
            _ => Err(bad_request(format!(
                "Unrecognized value \"{s}\" for \"{what}\", acceptable values are: true, false"
            ))),
        },
        other => Err(bad_request(format!(
            "Unrecognized value \"{other}\" for \"{what}\", acceptable values are: true, false"
        ))),
    }
}

pub(super) fn parse_inst(b: &Map<String, Value>) -> Result<Inst, SimError> {
    let template = match b.get("template") {
        None | Some(Value::Null) => {
            if b.get("template_url").is_some_and(|u| !u.is_null()) {
                return Err(bad_request(
                    "Could not retrieve template: template_url is not supported by cloud-sim; send the template inline",
                ));
            }
            None
        }
        Some(t) => Some(parse_template(t)?),
    };
    let files = match b.get("files") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(
            o.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect(),
        ),
        Some(_) => return Err(bad_request("The \"files\" parameter must be a mapping.")),
    };
    let env_files = match b.get("environment_files") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad_request("environment_files must be a list of strings"))?,
        ),
        Some(_) => return Err(bad_request("environment_files must be a list of strings")),
    };
    let env = match b.get("environment") {
        None | Some(Value::Null) => None,
        Some(e) => Some(parse_env(e)?),
    };
    let params = match b.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            return Err(bad_request(
                "The \"parameters\" parameter must be a mapping.",
            ))
        }
    };
    let clear = match b.get("clear_parameters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
        Some(_) => return Err(bad_request("clear_parameters must be a list")),
    };
    let timeout_mins = match b.get("timeout_mins") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(0) => Some(None),
                Some(n) if n > 0 => Some(Some(n as u64)),
                _ => return Err(bad_request(format!("Invalid timeout value {v}"))),
            }
        }
    };
    let disable_rollback = match b.get("disable_rollback") {
        None | Some(Value::Null) => None,
        Some(v) => Some(as_bool(v, "disable_rollback")?),
    };
    let tags = match b.get("tags") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Array(a)) => Some(Some(
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect(),
        )),
        Some(Value::String(s)) if s.is_empty() => Some(None),
        Some(Value::String(s)) => Some(Some(s.split(',').map(|x| x.trim().to_string()).collect())),
        Some(_) => {
            return Err(bad_request(
                "tags must be a list or a comma-separated string",
            ))
        }
    };
    let existing = match b.get("existing") {
        None | Some(Value::Null) => false,
        Some(v) => as_bool(v, "existing")?,
    };
    Ok(Inst {
        template,
        files,
        env,
        env_files,
        params,
        clear,
        timeout_mins,
        disable_rollback,
        tags,
        existing,
    })
}

impl Inst {
    /// The definition the request describes: from scratch (create, PUT, validate) or, given
    /// the stack's current definition `base` (PATCH / `existing`), on top of it: missing parts
    /// kept, files and environment merged, cleared and undeclared parameters dropped.
    pub(super) fn definition(&self, base: Option<&Definition>) -> Result<Definition, SimError> {
        let template = match (&self.template, base) {
            (Some(t), _) => t.clone(),
            (None, Some(b)) => b.template.clone(),
            (None, None) => return Err(bad_request("No template specified")),
        };
        let files = match (&self.files, base) {
            (Some(f), Some(b)) => {
                let mut merged = b.files.clone();
                merged.extend(f.clone());
                merged
            }
            (Some(f), None) => f.clone(),
            (None, Some(b)) => b.files.clone(),
            (None, None) => BTreeMap::new(),
        };
        let req_env = self.request_env(&files)?;
        let env = match base {
            Some(b) => {
                let mut env = b.env.clone();
                if let Some(e) = req_env {
                    merge_env(&mut env, e);
                }
                env.parameters.extend(self.params.clone());
                for c in &self.clear {
                    env.parameters.remove(c);
                }
                let schemas = param_schemas(&template)?;
                env.parameters.retain(|k, _| schemas.contains_key(k));
                env
            }
            None => {
                let mut env = req_env.unwrap_or_default();
                env.parameters.extend(self.params.clone());
                env
            }
        };
        Ok(Definition {
            template,
            files,
            env,
        })
    }

    /// The environment the request describes: its `environment_files` (merged in order) or
    /// else its inline `environment`.
    fn request_env(&self, files: &BTreeMap<String, String>) -> Result<Option<Env>, SimError> {
        if let Some(keys) = &self.env_files {
            let mut env = Env::default();
            for k in keys {
                let text = files.get(k).ok_or_else(|| {
                    bad_request(format!(
                        "Could not fetch environment file {k}: not in files"
                    ))
                })?;
                merge_env(&mut env, parse_env(&Value::String(text.clone()))?);
            }
            return Ok(Some(env));
        }
        Ok(self.env.clone())
    }
}
