//! Membership under client load: add two conductors, drain one, undrain it, remove another,
//! all through `magnum manage`, while 6 clients keep writing. No client request may fail, every
//! acknowledged write must be readable at the end, replicas must end evenly spread with every
//! group's voters equal to its placement, and a drain must leave the node leading nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_chaos_tests::load::{quantile_ms, Load, Sample};
use magnum_chaos_tests::{Deployment, Options};
use magnum_proto::{QueryResult, ShardId, ShardQuery};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SHARDS: u32 = 8;

fn node(status: &Value, id: u64) -> Option<&Value> {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
}

/// Every node hosts ⌊R·S/N⌋ or ⌈R·S/N⌉ replicas, and every group's voters are its placement.
fn assert_spread(status: &Value, expect_nodes: &[u64]) {
    let nodes: Vec<u64> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    assert_eq!(nodes, expect_nodes, "{status:#}");
    let total = 3 * SHARDS as usize;
    let lo = total / nodes.len();
    let hi = total.div_ceil(nodes.len());
    for n in status["nodes"].as_array().unwrap() {
        let r = n["replicas"].as_u64().unwrap() as usize;
        assert!(
            lo <= r && r <= hi,
            "node {} hosts {r} replicas: {status:#}",
            n["id"]
        );
        assert_eq!(n["reachable"], true);
    }
    for g in status["groups"].as_array().unwrap().iter().skip(1) {
        assert_eq!(g["voters"], g["placement"], "{g:#}");
        assert_eq!(g["voters"].as_array().unwrap().len(), 3, "{g:#}");
    }
}

/// Waits (bounded) until `manage status` says settled; leaderships may still be moving.
async fn settled(d: &Deployment) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = tokio::task::block_in_place(|| d.status());
        if st["settled"] == true {
            return st;
        }
        assert!(Instant::now() < deadline, "never settled: {st:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A deployment with 6 clients writing canaries under `prefix`.
fn loaded(name: &str, prefix: &str) -> (Deployment, magnum_proto::ConductorClient, Load) {
    let d = Deployment::up(
        name,
        Options {
            shards: SHARDS,
            ..Options::default()
        },
    );
    let client = d.conductor_client();
    let load = Load::start(&client, SHARDS, 6, prefix, Duration::from_millis(20));
    (d, client, load)
}

fn assert_none_failed(samples: &[Sample]) {
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.error.is_some()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failed.len(),
        samples.len(),
        failed.first()
    );
}

fn window(samples: &[Sample], from: Instant, to: Instant) -> Vec<&Sample> {
    samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_drain_remove_under_load_loses_no_request() {
    let (d, client, load) = loaded("membership", "m");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let base_end = Instant::now();

    // Adding conductors: each call returns once replicas are spread over the new node.
    let t = Instant::now();
    tokio::task::block_in_place(|| d.add_conductor(4));
    let add4 = t.elapsed();
    assert_spread(&settled(&d).await, &[1, 2, 3, 4]);
    let t = Instant::now();
    tokio::task::block_in_place(|| d.add_conductor(5));
    let add5 = t.elapsed();
    let st = settled(&d).await;
    assert_spread(&st, &[1, 2, 3, 4, 5]);
    assert_eq!(
        st["groups"][0]["voters"].as_array().unwrap().len(),
        5,
        "{st:#}"
    );

    // Drain: node 1 ends up leading nothing; measure what it costs the clients.
    tokio::time::sleep(Duration::from_secs(4)).await; // leader balance settles
    let drain_start = Instant::now();
    let out = tokio::task::block_in_place(|| d.manage(&["conductor", "drain", "1"]));
    let drain_end = Instant::now();
    assert!(out.contains("done"), "{out}");
    let st = d.status();
    assert_eq!(node(&st, 1).unwrap()["leads"], 0, "{st:#}");
    assert_eq!(node(&st, 1).unwrap()["state"], "draining");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let st = d.status();
    assert_eq!(
        node(&st, 1).unwrap()["leads"],
        0,
        "drained node won leadership back: {st:#}"
    );
    tokio::task::block_in_place(|| d.manage(&["conductor", "undrain", "1"]));

    // Remove node 2: its replicas move away, then it is forgotten.
    let t = Instant::now();
    tokio::task::block_in_place(|| d.manage(&["conductor", "remove", "2"]));
    let remove2 = t.elapsed();
    let st = settled(&d).await;
    assert_spread(&st, &[1, 3, 4, 5]);
    assert!(node(&st, 2).is_none());
    tokio::time::sleep(Duration::from_secs(1)).await;

    let samples = load.stop().await;
    assert_none_failed(&samples);
    assert!(samples.len() > 500, "only {} requests", samples.len());

    // Every acknowledged write is there (linearizable reads on each shard's leader).
    let mut acked: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for s in &samples {
        acked.entry(s.shard).or_default().push(s.key.clone());
    }
    for (shard, keys) in acked {
        let QueryResult::Canaries(rows) = client
            .query(
                ShardId(shard),
                &ShardQuery::Canaries {
                    prefix: "m/".into(),
                },
            )
            .await
            .unwrap()
        else {
            panic!("wrong answer")
        };
        for k in keys {
            assert!(
                rows.contains_key(&k),
                "acknowledged {k} lost on shard {shard}"
            );
        }
    }

    let base = window(
        &samples,
        Instant::now() - Duration::from_secs(3600),
        base_end,
    );
    let drain = window(&samples, drain_start, drain_end);
    let (b50, b99) = (quantile_ms(&base, 0.5), quantile_ms(&base, 0.99));
    let (d50, d99) = (quantile_ms(&drain, 0.5), quantile_ms(&drain, 0.99));
    println!(
        "MEASURE membership: {} requests, 0 failed; add node 4 {:.1} s, add node 5 {:.1} s, \
         remove node 2 {:.1} s; drain of node 1 {:.1} s: write p50/p99 {d50:.0}/{d99:.0} ms \
         during the drain vs {b50:.0}/{b99:.0} ms before (p99 extra {:.0} ms)",
        samples.len(),
        add4.as_secs_f64(),
        add5.as_secs_f64(),
        remove2.as_secs_f64(),
        (drain_end - drain_start).as_secs_f64(),
        d99 - b99
    );
    d.down();
}

/// A conductor replaced in an idle deployment (the lost-disk runbook: add the new one, remove
/// the old one). Every group is quiet by then and its leader's lease has lapsed; openraft
/// refuses membership changes until the group wakes, and the first add waited forever on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conductor_is_replaced_in_an_idle_deployment() {
    let d = Deployment::up(
        "membership-idle",
        Options {
            shards: SHARDS,
            ..Options::default()
        },
    );
    // Idle for longer than quiescence (2 s) plus a lease.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let t = Instant::now();
    tokio::task::block_in_place(|| d.add_conductor(4));
    let add = t.elapsed();
    assert_spread(&settled(&d).await, &[1, 2, 3, 4]);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let t = Instant::now();
    tokio::task::block_in_place(|| d.manage(&["conductor", "remove", "3"]));
    let remove = t.elapsed();
    let st = settled(&d).await;
    assert_spread(&st, &[1, 2, 4]);
    assert!(node(&st, 3).is_none());
    // The manage commands wait up to 300 s; a healthy change takes seconds.
    assert!(
        add < Duration::from_secs(60) && remove < Duration::from_secs(60),
        "add {add:?}, remove {remove:?}"
    );
    println!(
        "MEASURE idle replacement: add node 4 {:.1} s, remove node 3 {:.1} s",
        add.as_secs_f64(),
        remove.as_secs_f64()
    );
    d.down();
}

/// Design §6: a rolling restart (drain, stop, start, undrain each conductor in turn) under
/// client load costs no failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_with_drain_loses_no_request() {
    let (d, _client, load) = loaded("rolling", "r");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Instant::now();
    for n in 1..=3u64 {
        let id = n.to_string();
        tokio::task::block_in_place(|| {
            d.manage(&["conductor", "drain", &id]);
            d.signal("conductor", Some(n), "TERM");
            d.start("conductor", Some(n));
            d.manage(&["conductor", "undrain", &id]);
        });
        settled(&d).await;
    }
    let took = start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = load.stop().await;
    assert_none_failed(&samples);
    let all: Vec<&Sample> = samples.iter().collect();
    println!(
        "MEASURE rolling: 3 conductors drained, restarted and undrained in {:.1} s under load; \
         {} requests, 0 failed, write p50/p99/max {:.0}/{:.0}/{:.0} ms",
        took.as_secs_f64(),
        samples.len(),
        quantile_ms(&all, 0.5),
        quantile_ms(&all, 0.99),
        quantile_ms(&all, 1.0)
    );
    d.down();
}

/// A full stop at once (`systemctl stop` on every conductor together, or `local-cluster.sh
/// down`): each conductor drains itself if it sees another still active, so often every node
/// ends drained (a race: up to 3 rounds are tried to get there). Started again, meta must still
/// elect a leader so that each can lift its own drain, and every shard must get a leader (`up`
/// waits for that and fails after 60 s; before the fix it never came when all three drained).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stop_at_once_starts_again() {
    let d = Deployment::up(
        "full-stop",
        Options {
            shards: SHARDS,
            ..Options::default()
        },
    );
    let lines = |needle: &str| -> usize {
        (1..=3)
            .map(|n| d.log(&format!("conductor-{n}")).matches(needle).count())
            .sum()
    };
    for round in 1..=3 {
        let (drained_before, lifted_before) = (
            lines("drained for the stop"),
            lines("the stop's drain is over"),
        );
        tokio::task::block_in_place(|| d.down());
        let drained = lines("drained for the stop") - drained_before;
        let start = Instant::now();
        tokio::task::block_in_place(|| d.script(&["up"]));
        let up = start.elapsed();
        let deadline = Instant::now() + Duration::from_secs(30);
        while lines("the stop's drain is over") - lifted_before < drained {
            assert!(
                Instant::now() < deadline,
                "a drain the stop made is not lifted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let status = settled(&d).await;
        for n in status["nodes"].as_array().unwrap() {
            assert_eq!(n["state"], "active", "{status:#}");
        }
        println!(
            "MEASURE full stop, round {round}: {drained} of 3 drained themselves; every group led again {:.1} s after the start, drains lifted",
            up.as_secs_f64()
        );
        if drained == 3 {
            break;
        }
    }
}
