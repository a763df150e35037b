//! Requests received, counted per `METHOD service /path/template?query&keys`, so a benchmark can
//! tell how much load the conductors put on Heat (stack GETs against listings) without parsing
//! logs. `GET /sim/requests` reads the counts, `/sim/reset` clears them; the admin API itself is
//! not counted, the simulated Kubernetes APIs (`/sim/k8s/...`, health polling) are.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::error::json_response;
use crate::util::{lock, parse_query};
use crate::Sim;

/// Collections whose next segment is a name or an id (whatever its characters).
const ID_COLLECTIONS: &[&str] = &[
    "stacks",
    "resources",
    "events",
    "outputs",
    "users",
    "trusts",
    "projects",
    "k8s",
    "images",
    "flavors",
    "os-keypairs",
    "networks",
    "subnets",
    "os-quota-sets",
];

/// `METHOD service /template[?k1&k2]`: ids and names become `{}`, query values are dropped.
pub(crate) fn key(method: &str, path: &str, raw_query: Option<&str>) -> String {
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    let service = segs.next().unwrap_or("");
    let mut out = format!("{method} {service} ");
    let mut prev = "";
    let mut any = false;
    for s in segs {
        let version = s.strip_prefix('v').is_some_and(|v| {
            !v.is_empty() && v.split('.').all(|p| p.chars().all(|c| c.is_ascii_digit()))
        });
        let literal = version || ID_COLLECTIONS.contains(&s);
        let id = !literal
            && (s.chars().any(|c| c.is_ascii_digit())
                || (ID_COLLECTIONS.contains(&prev) && s != "detail"));
        out.push('/');
        out.push_str(if id { "{}" } else { s });
        prev = if id { "" } else { s };
        any = true;
    }
    if !any {
        out.push('/');
    }
    let mut keys: Vec<String> = parse_query(raw_query).into_iter().map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    if !keys.is_empty() {
        out.push('?');
        out.push_str(&keys.join("&"));
    }
    out
}

/// Counts per key.
#[derive(Default)]
pub(crate) struct Requests(HashMap<String, u64>);

impl Requests {
    pub(crate) fn count(&mut self, key: String) {
        *self.0.entry(key).or_default() += 1;
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    fn sorted(&self) -> BTreeMap<&str, u64> {
        self.0.iter().map(|(k, n)| (k.as_str(), *n)).collect()
    }
}

pub(crate) async fn middleware(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/sim/") || path.starts_with("/sim/k8s/") {
        let k = key(req.method().as_str(), path, req.uri().query());
        lock(&sim.requests).count(k);
    }
    next.run(req).await
}

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/sim/requests", get(list))
}

async fn list(State(sim): State<Arc<Sim>>) -> Response {
    let r = lock(&sim.requests);
    json_response(StatusCode::OK, &json!({"requests": r.sorted()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_the_route_and_drop_ids_names_and_values() {
        let t = "76928d4abb6b382e7e076a72f75f2d51";
        let listing = format!("/heat-api/v1/{t}/stacks");
        assert_eq!(
            key("GET", &listing, Some("global_tenant=true&id=a1&id=b2")),
            "GET heat-api /v1/{}/stacks?global_tenant&id"
        );
        assert_eq!(
            key("GET", &format!("{listing}/web-x1/6f1c0d3e-aaaa"), None),
            "GET heat-api /v1/{}/stacks/{}/{}"
        );
        // A stack name without a digit is still a name; `detail` and sub-resources stay.
        assert_eq!(
            key("GET", &format!("{listing}/web/outputs"), None),
            "GET heat-api /v1/{}/stacks/{}/outputs"
        );
        assert_eq!(
            key("GET", &format!("{listing}/detail"), None),
            "GET heat-api /v1/{}/stacks/detail"
        );
        assert_eq!(
            key("POST", "/identity/v3/auth/tokens", None),
            "POST identity /v3/auth/tokens"
        );
        assert_eq!(
            key("GET", "/compute/v2.1/os-keypairs/default", None),
            "GET compute /v2.1/os-keypairs/{}"
        );
        assert_eq!(
            key("GET", "/sim/k8s/0b6a/healthz", None),
            "GET sim /k8s/{}/healthz"
        );
        assert_eq!(key("GET", "/", None), "GET  /");
    }

    #[test]
    fn counts_add_up_per_key() {
        let mut r = Requests::default();
        for q in ["id=1", "id=2&id=3"] {
            r.count(key("GET", "/heat-api/v1/p1/stacks", Some(q)));
        }
        r.count(key("GET", "/heat-api/v1/p1/stacks/s/1", None));
        let s = r.sorted();
        assert_eq!(s["GET heat-api /v1/{}/stacks?id"], 2);
        assert_eq!(s["GET heat-api /v1/{}/stacks/{}/{}"], 1);
        r.clear();
        assert!(r.sorted().is_empty());
    }
}
