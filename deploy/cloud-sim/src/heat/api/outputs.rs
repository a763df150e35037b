//! `GET /stacks/{name}/{id}/outputs[/{key}]`, evaluated against the live state.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{not_found, with_stack, Req};
use crate::error::{json_response, SimError};
use crate::heat::context::StackCtx;

pub(super) fn list(req: &Req<'_>, name: &str, id: &str) -> Result<Response, SimError> {
    with_stack(req, name, id, |st, s| {
        let ctx = StackCtx::new(st, s);
        let list: Vec<Value> = ctx
            .output_keys()
            .into_iter()
            .map(|(k, d)| json!({"output_key": k, "description": d}))
            .collect();
        Ok(json_response(StatusCode::OK, &json!({"outputs": list})))
    })
}

pub(super) fn show(req: &Req<'_>, name: &str, id: &str, key: &str) -> Result<Response, SimError> {
    with_stack(req, name, id, |st, s| {
        let ctx = StackCtx::new(st, s);
        let (k, d) = ctx
            .output_keys()
            .into_iter()
            .find(|(k, _)| k == key)
            .ok_or_else(|| not_found(format!("Specified output key {key} not found.")))?;
        let v = ctx.output(&k).unwrap_or(Value::Null);
        Ok(json_response(
            StatusCode::OK,
            &json!({"output": {"output_key": k, "output_value": v, "description": d}}),
        ))
    })
}
