//! The API nodes this conductor hears from, for `magnum manage version show` and finalize: an
//! API node of this release says who it is on every call (`wire::CALLER_HEADER`), and one before
//! cluster versions is recognised by calling the API-only paths without the header. Kept in
//! memory and reported with the conductor's heartbeat (`ServiceRecord::api_nodes`).
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use magnum_proto::meta::{ApiNodeSeen, API_NODE_WINDOW_SECS};
use magnum_proto::version::BASE_VERSION;
use magnum_proto::wire::{self, Caller};
use magnum_proto::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Key of the entry for API nodes before cluster versions (they do not say who they are).
pub const UNVERSIONED: &str = "";

#[derive(Clone, Default)]
pub struct ApiNodes(Arc<Mutex<HashMap<String, ApiNodeSeen>>>);

impl ApiNodes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ApiNodeSeen>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, url: String, feature_version: u32, version: String) {
        let seen = ApiNodeSeen {
            url: url.clone(),
            feature_version,
            version,
            last_seen: Timestamp::now(),
        };
        self.lock().insert(url, seen);
    }

    /// The API nodes heard from within [`API_NODE_WINDOW_SECS`]; older entries are dropped.
    pub fn recent(&self) -> Vec<ApiNodeSeen> {
        let cutoff = Timestamp::now().plus_secs(-API_NODE_WINDOW_SECS);
        let mut map = self.lock();
        map.retain(|_, s| s.last_seen >= cutoff);
        let mut v: Vec<ApiNodeSeen> = map.values().cloned().collect();
        v.sort_by(|a, b| a.url.cmp(&b.url));
        v
    }
}

/// Only API nodes call these (conductors reach their own shards locally, tools through
/// a client that sends the header).
fn api_only(path: &str) -> bool {
    path.starts_with("/internal/v1/shards/") || path == wire::MULTI_QUERY_PATH
}

/// Middleware: records the caller, then serves the request.
pub async fn record(State(nodes): State<ApiNodes>, req: Request, next: Next) -> Response {
    match req.headers().get(wire::CALLER_HEADER) {
        Some(v) => {
            if let Some((url, fv, cv)) = v.to_str().ok().and_then(Caller::parse_api) {
                nodes.record(url, fv, cv);
            }
        }
        None if api_only(req.uri().path()) => {
            nodes.record(UNVERSIONED.into(), BASE_VERSION, String::new());
        }
        None => {}
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_entries_expire() {
        let c = ApiNodes::default();
        c.record("http://a".into(), 2, "0.1.0".into());
        c.record(UNVERSIONED.into(), 1, String::new());
        assert_eq!(c.recent().len(), 2);
        if let Some(s) = c.lock().get_mut("http://a") {
            s.last_seen = Timestamp::now().plus_secs(-API_NODE_WINDOW_SECS - 1);
        }
        let left = c.recent();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].url, UNVERSIONED);
    }
}
