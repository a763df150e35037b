//! `GET /v1/mservices` (reference §4.8): admin-only, conductor registry rendered like Magnum.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_proto::{ServiceRecord, Timestamp};
use serde_json::json;

fn record(id: u64, created: Timestamp, updated: Timestamp) -> ServiceRecord {
    ServiceRecord {
        id,
        host: format!("10.0.0.{id}:9512"),
        binary: "magnum-conductor".into(),
        report_count: 7,
        created_at: created,
        updated_at: updated,
        version: "0.1.0".into(),
        feature_version: 1,
        api_nodes: Vec::new(),
    }
}

#[tokio::test]
async fn admin_lists_conductors_with_state() {
    let h = harness();
    let now = Timestamp::now();
    let fresh = Timestamp(now.0 - 5_000_000);
    let stale = Timestamp(now.0 - 600_000_000);
    *h.backend.services.lock().unwrap() = vec![
        record(1, Timestamp(1_472_453_491_000_000), fresh),
        record(2, stale, stale),
    ];
    let r = h.get("/v1/mservices", "admin-token").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let list = r.body["mservices"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0],
        json!({
            "id": 1,
            "host": "10.0.0.1:9512",
            "binary": "magnum-conductor",
            "state": "up",
            "report_count": 7,
            "disabled": false,
            "disabled_reason": null,
            "created_at": "2016-08-29T06:51:31+00:00",
            "updated_at": fresh.to_magnum(),
        })
    );
    assert_eq!(list[1]["state"], "down");
    assert_eq!(list[1]["id"], 2);
}

#[tokio::test]
async fn empty_registry_is_an_empty_list() {
    let h = harness();
    let r = h.get("/v1/mservices", "admin-token").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body, json!({"mservices": []}));
}

#[tokio::test]
async fn non_admins_are_forbidden() {
    let h = harness();
    for token in ["member-a", "reader-a"] {
        let r = h.get("/v1/mservices", token).await;
        assert_error(
            &r,
            403,
            "Policy doesn't allow magnum-service:get_all to be performed.",
        );
    }
}
