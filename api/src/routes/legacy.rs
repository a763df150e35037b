//! Shared plumbing of the legacy aliases (`/v1/bays`, `/v1/baymodels`, reference §4.10).
//!
//! They are thin translations: the request is renamed into the cluster/template vocabulary,
//! handed to the very handler that serves `/v1/clusters` or `/v1/clustertemplates`, and the
//! answer is renamed back. No validation, policy or shard logic lives here.
//!
//! Upstream dropped them at microversion 1.11 (17.0.0); this service keeps serving them at
//! every version, with their 1.1 semantics, because old clients (and Horizon panels) still
//! call them and answering 404 would buy nothing.
use crate::error::ApiError;
use axum::body::Bytes;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Largest answer a handler gives (a full page of 1000 templates is ~2 MiB).
const MAX_BODY: usize = 64 << 20;

/// One renaming: a resource collection and its fields, cluster-side name first.
pub struct Names {
    /// (cluster-side, legacy) collection path segment, e.g. ("clusters", "bays").
    pub collection: (&'static str, &'static str),
    /// (cluster-side, legacy) field names.
    pub fields: &'static [(&'static str, &'static str)],
    /// Argument name in WSME messages, e.g. ("cluster", "bay").
    pub argname: (&'static str, &'static str),
}

impl Names {
    /// Legacy request object → cluster-side object. A cluster-side name in a legacy request is
    /// as unknown to the legacy API as any other stray attribute.
    pub fn request_object(&self, body: Value) -> Result<Value, ApiError> {
        let Value::Object(obj) = body else {
            return Ok(body);
        };
        let mut out = serde_json::Map::new();
        for (k, v) in obj {
            if self.fields.iter().any(|(new, _)| *new == k) {
                return Err(ApiError::BadRequest(format!(
                    "Unknown attribute for argument {}: {k}",
                    self.argname.1
                )));
            }
            let key = self
                .fields
                .iter()
                .find(|(_, old)| *old == k)
                .map_or(k, |(new, _)| (*new).to_string());
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }

    /// Legacy JSON-patch → cluster-side patch (only the paths are renamed).
    pub fn request_patch(&self, body: Value) -> Value {
        let Value::Array(ops) = body else {
            return body;
        };
        Value::Array(
            ops.into_iter()
                .map(|mut op| {
                    if let Some(path) = op.get("path").and_then(Value::as_str) {
                        let renamed = self.fields.iter().find_map(|(new, old)| {
                            let rest = path.strip_prefix('/')?.strip_prefix(old)?;
                            (rest.is_empty() || rest.starts_with('/'))
                                .then(|| format!("/{new}{rest}"))
                        });
                        if let Some(p) = renamed {
                            op["path"] = Value::String(p);
                        }
                    }
                    op
                })
                .collect(),
        )
    }

    fn rename_url(&self, s: &str) -> String {
        let (new, old) = self.collection;
        s.replace(&format!("/{new}/"), &format!("/{old}/"))
            .replace(&format!("/{new}?"), &format!("/{old}?"))
    }

    /// One cluster-side resource object → the legacy one (fields and link URLs).
    pub fn resource(&self, v: Value) -> Value {
        let Value::Object(obj) = v else {
            return v;
        };
        let mut out = serde_json::Map::new();
        for (k, v) in obj {
            let key = self
                .fields
                .iter()
                .find(|(new, _)| *new == k)
                .map_or(k.clone(), |(_, old)| (*old).to_string());
            let v = if k == "links" { self.links(v) } else { v };
            out.insert(key, v);
        }
        Value::Object(out)
    }

    fn links(&self, v: Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|mut l| {
                        if let Some(h) = l.get("href").and_then(Value::as_str) {
                            l["href"] = Value::String(self.rename_url(h));
                        }
                        l
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    /// A list answer `{"<collection>": [...], "next"?}` → the legacy one.
    pub fn list(&self, v: Value) -> Value {
        let (new, old) = self.collection;
        let Value::Object(mut obj) = v else {
            return v;
        };
        let mut out = serde_json::Map::new();
        if let Some(Value::Array(items)) = obj.remove(new) {
            out.insert(
                old.to_string(),
                Value::Array(items.into_iter().map(|i| self.resource(i)).collect()),
            );
        }
        if let Some(Value::String(next)) = obj.remove("next") {
            out.insert("next".into(), Value::String(self.rename_url(&next)));
        }
        Value::Object(out)
    }

    /// Error envelopes keep their status and shape; field names in the text are the legacy
    /// ones, so that a message names what the client sent.
    fn error_text(&self, s: &str) -> String {
        let mut s = s.replace(
            &format!("argument {}:", self.argname.0),
            &format!("argument {}:", self.argname.1),
        );
        for (new, old) in self.fields {
            s = s.replace(new, old);
        }
        s
    }

    fn error(&self, mut v: Value) -> Value {
        if let Some(items) = v.get_mut("errors").and_then(Value::as_array_mut) {
            for item in items {
                for key in ["title", "detail"] {
                    if let Some(t) = item.get(key).and_then(Value::as_str) {
                        item[key] = Value::String(self.error_text(t));
                    }
                }
            }
        }
        v
    }
}

/// The JSON of an answer (None for an empty body).
pub async fn body_json(resp: Response) -> Result<(Response<()>, Option<Value>), ApiError> {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::Internal(format!("reading a handler's answer: {e}")))?;
    let json = if bytes.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::Internal(format!("a handler answered non-JSON: {e}")))?,
        )
    };
    Ok((Response::from_parts(parts, ()), json))
}

/// Rewrites a handler's answer: `ok` maps a successful JSON body, errors get the legacy
/// names; the `Location` header follows the collection rename.
pub async fn translate(
    names: &Names,
    result: Result<Response, ApiError>,
    ok: impl FnOnce(Value) -> Value,
) -> Response {
    let resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let (mut parts, json) = match body_json(resp).await {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    if let Some(loc) = parts
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| names.rename_url(l))
        .and_then(|l| HeaderValue::from_str(&l).ok())
    {
        parts.headers_mut().insert(header::LOCATION, loc);
    }
    let Some(json) = json else {
        return parts.map(|()| axum::body::Body::empty());
    };
    let out = if parts.status().is_success() {
        ok(json)
    } else {
        names.error(json)
    };
    parts.headers_mut().remove(header::CONTENT_LENGTH);
    let bytes = Bytes::from(serde_json::to_vec(&out).unwrap_or_default());
    parts.map(|()| axum::body::Body::from(bytes))
}

/// A JSON value back into request bytes for the cluster-side handler.
pub fn to_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}
