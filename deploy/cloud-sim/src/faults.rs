//! Fault injection: HTTP faults applied by a middleware in front of every OpenStack route,
//! and resource faults consumed by the Heat engine.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::heat::Action;
use crate::util::{glob_match, lock};
use crate::Sim;

fn one() -> u32 {
    1
}

/// A fault as posted to `POST /sim/heat/faults`. `count` is how many matching calls (or
/// resource actions) it affects; 0 means "until cleared". `method` absent or `*` = any.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum FaultSpec {
    /// Answer `status` (in the service's error envelope) without running the request.
    ApiError {
        #[serde(default)]
        method: Option<String>,
        path_glob: String,
        status: u16,
        #[serde(default)]
        message: Option<String>,
        #[serde(default = "one")]
        count: u32,
    },
    /// Run the request (side effect done), then hold the response for `seconds`.
    ResponseDelay {
        #[serde(default)]
        method: Option<String>,
        path_glob: String,
        seconds: f64,
        #[serde(default = "one")]
        count: u32,
    },
    /// Run the request (side effect done), then answer 500 instead of the real response.
    LostResponse {
        #[serde(default)]
        method: Option<String>,
        path_glob: String,
        #[serde(default = "one")]
        count: u32,
    },
    /// Make the next resource action(s) of this type fail (`resource_type` may be a glob).
    ResourceFail {
        resource_type: String,
        #[serde(default)]
        action: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        error_type: Option<String>,
        #[serde(default = "one")]
        count: u32,
    },
}

impl FaultSpec {
    fn count(&self) -> u32 {
        match self {
            FaultSpec::ApiError { count, .. }
            | FaultSpec::ResponseDelay { count, .. }
            | FaultSpec::LostResponse { count, .. }
            | FaultSpec::ResourceFail { count, .. } => *count,
        }
    }

    fn http_match(&self, m: &str, p: &str) -> bool {
        let (method, glob) = match self {
            FaultSpec::ApiError {
                method, path_glob, ..
            }
            | FaultSpec::ResponseDelay {
                method, path_glob, ..
            }
            | FaultSpec::LostResponse {
                method, path_glob, ..
            } => (method, path_glob),
            FaultSpec::ResourceFail { .. } => return false,
        };
        let method_ok = match method.as_deref() {
            None | Some("*") | Some("") => true,
            Some(x) => x.eq_ignore_ascii_case(m),
        };
        method_ok && glob_match(glob, p)
    }

    /// Reject specs that can never work.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            FaultSpec::ApiError { status, .. } if !(100..=599).contains(status) => {
                return Err(format!("invalid status {status}"));
            }
            FaultSpec::ResponseDelay { seconds, .. } if !seconds.is_finite() || *seconds < 0.0 => {
                return Err("seconds must be a non-negative number".into());
            }
            FaultSpec::ResourceFail {
                action: Some(a), ..
            } if a != "*" && Action::parse(a).is_none() => {
                return Err(format!("unknown action {a}"));
            }
            _ => {}
        }
        Ok(())
    }
}

/// An installed fault.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Fault {
    pub id: u64,
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Remaining uses; `None` = until cleared.
    pub remaining: Option<u32>,
}

/// All installed faults, matched in insertion order.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    pub faults: Vec<Fault>,
    next_id: u64,
}

impl FaultSet {
    pub(crate) fn add(&mut self, spec: FaultSpec) -> Fault {
        self.next_id += 1;
        let remaining = match spec.count() {
            0 => None,
            n => Some(n),
        };
        let f = Fault {
            id: self.next_id,
            spec,
            remaining,
        };
        self.faults.push(f.clone());
        f
    }

    pub(crate) fn clear(&mut self) {
        self.faults.clear();
    }

    fn consume(&mut self, idx: usize) -> FaultSpec {
        let spec = self.faults[idx].spec.clone();
        if let Some(r) = &mut self.faults[idx].remaining {
            *r = r.saturating_sub(1);
            if *r == 0 {
                self.faults.remove(idx);
            }
        }
        spec
    }

    /// The first HTTP fault matching this call (one use consumed).
    pub(crate) fn take_http(&mut self, method: &str, path: &str) -> Option<FaultSpec> {
        let idx = self
            .faults
            .iter()
            .position(|f| f.spec.http_match(method, path))?;
        Some(self.consume(idx))
    }

    /// A resource fault for this type and action: `(error type, message)`.
    pub(crate) fn take_resource(
        &mut self,
        rtype: &str,
        action: Action,
    ) -> Option<(String, String)> {
        let idx = self.faults.iter().position(|f| match &f.spec {
            FaultSpec::ResourceFail {
                resource_type,
                action: a,
                ..
            } => {
                let action_ok = match a.as_deref() {
                    None => action == Action::Create,
                    Some("*") => true,
                    Some(x) => Action::parse(x) == Some(action),
                };
                action_ok && glob_match(resource_type, rtype)
            }
            _ => false,
        })?;
        match self.consume(idx) {
            FaultSpec::ResourceFail {
                message,
                error_type,
                ..
            } => Some((
                error_type.unwrap_or_else(|| "ResourceInError".into()),
                message.unwrap_or_else(|| {
                    "Went to status ERROR due to \"Message: No valid host was found. , Code: 500\"".into()
                }),
            )),
            _ => None,
        }
    }
}

/// Applies HTTP faults to every route except the admin API.
pub(crate) async fn middleware(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/sim/") || path == "/sim" {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_string();
    let fault = lock(&sim.faults).take_http(&method, &path);
    match fault {
        None => next.run(req).await,
        Some(FaultSpec::ApiError {
            status, message, ..
        }) => {
            tracing::info!(%method, %path, status, "injected api_error");
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let message = message.unwrap_or_else(|| "Injected fault (cloud-sim api_error).".into());
            SimError::for_path(&path, status, &message, &sim.identity_uri()).into_response()
        }
        Some(FaultSpec::ResponseDelay { seconds, .. }) => {
            let resp = next.run(req).await;
            tracing::info!(%method, %path, seconds, "injected response_delay");
            tokio::time::sleep(Duration::from_secs_f64(seconds.clamp(0.0, 1.0e6))).await;
            resp
        }
        Some(FaultSpec::LostResponse { .. }) => {
            let resp = next.run(req).await;
            tracing::info!(%method, %path, status = resp.status().as_u16(), "injected lost_response");
            SimError::for_path(
                &path,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Injected fault (cloud-sim lost_response): the request was processed but its response was lost.",
                &sim.identity_uri(),
            )
            .into_response()
        }
        Some(FaultSpec::ResourceFail { .. }) => next.run(req).await,
    }
}
