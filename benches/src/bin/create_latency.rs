//! Time from `POST /v1/clusters` (202) to `CREATE_COMPLETE` on the multi-process topology with
//! the default dev settings (cloud-sim latencies ×1.0, Heat poll 1 s, 16 shards).
//!
//! cargo run -p magnum-benches --bin create_latency -- [N]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_chaos_tests::{Deployment, Options};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let d = Deployment::up(
        "bench-create",
        Options {
            shards: 16,
            poll_ms: 1000,
            time_scale: 1.0,
            ..Options::default()
        },
    );
    let tok = d.token("admin", "admin").await;
    let body = json!({"name": "bench", "coe": "kubernetes", "image_id": "fedora-coreos-40", "external_network_id": "public",
        "flavor_id": "m1.small", "master_flavor_id": "m1.small", "keypair_id": "default"});
    let (s, t) = d
        .call(Method::POST, "/clustertemplates", Some(&tok), Some(body))
        .await;
    assert_eq!(s, 201, "{t}");
    let tpl = t["uuid"].as_str().unwrap().to_string();
    let mut accept_ms = Vec::new();
    let mut complete_ms = Vec::new();
    for i in 0..n {
        let start = Instant::now();
        let body = json!({"name": format!("bench-{i}"), "cluster_template_id": tpl, "master_count": 1, "node_count": 2});
        let (s, v) = d
            .call(Method::POST, "/clusters", Some(&tok), Some(body))
            .await;
        assert_eq!(s, 202, "{v}");
        accept_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let id = v["uuid"].as_str().unwrap().to_string();
        let (_, c) = d
            .wait_cluster(&tok, &id, Duration::from_secs(120), |_, c| {
                c["status"] != "CREATE_IN_PROGRESS"
            })
            .await;
        assert_eq!(c["status"], "CREATE_COMPLETE", "{c}");
        complete_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    println!("| metric (n={n}) | median ms | min ms | max ms |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("POST /v1/clusters → 202", accept_ms),
        ("POST → CREATE_COMPLETE", complete_ms),
    ] {
        let (min, max) = (
            v.iter().copied().fold(f64::MAX, f64::min),
            v.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "| {name} | {:.0} | {min:.0} | {max:.0} |",
            magnum_benches::median(v)
        );
    }
    println!("(cloud-sim: server create 2 s, neutron 0.2 s, ×1.0; Heat poll 1 s; 3 conductors, 16 shards, loopback)");
    println!("reproduce: cargo run -p magnum-benches --bin create_latency -- {n}");
}
