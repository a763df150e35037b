//! Glance (`/image`), Nova (`/compute/v2.1`) and Neutron (`/networking`) look-ups, seeded like
//! devstack plus the images the Magnum drivers expect, and Nova's quota sets. Read-only but
//! for the quota sets; every call needs a token.

mod glance;
mod neutron;
mod nova;
mod quota_sets;

use std::sync::Arc;

use axum::Router;
use serde_json::Value;

pub(crate) use self::neutron::SeedNetworks;
pub use self::neutron::DEFAULT_FLOATING_IP_RANGE;
pub(crate) use self::nova::flavor_vcpus;
use crate::keystone;
use crate::util::parse_query;
use crate::Sim;

/// Creation time of every seeded item.
const SEEDED_AT: &str = "2024-01-01T00:00:00Z";

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .merge(glance::routes())
        .merge(nova::routes())
        .merge(quota_sets::routes())
        .merge(neutron::routes())
}

/// Owner of every seeded item.
fn admin_project() -> String {
    keystone::project_id("admin")
}

/// Keep items whose fields match every filter in the query (ignoring paging/field keys).
fn filter_items(items: Vec<Value>, raw: Option<&str>) -> Vec<Value> {
    let q = parse_query(raw);
    items
        .into_iter()
        .filter(|item| {
            q.iter().all(|(k, v)| {
                if matches!(
                    k.as_str(),
                    "fields" | "limit" | "marker" | "sort_key" | "sort_dir" | "member_status"
                ) {
                    return true;
                }
                let Some(field) = item.get(k) else {
                    // Unknown filters match nothing, except the ones Glance/Neutron ignore.
                    return false;
                };
                let field_s = match field {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                if let Some(list) = v.strip_prefix("in:") {
                    list.split(',').any(|x| x.trim_matches('"') == field_s)
                } else {
                    field_s.eq_ignore_ascii_case(v) && (field.is_boolean() || field_s == *v)
                }
            })
        })
        .collect()
}
