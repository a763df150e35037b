//! A burst of cluster creates against the multi-process topology (3 conductors, 16 shards, one
//! API node, cloud-sim at real-ish latencies): `--creates` clusters from `--clients` concurrent
//! clients into one project. Reports whether any Raft term moved, read latency before and during
//! the burst, accept latency, and time until every cluster is CREATE_COMPLETE.
//!
//! cargo build --release -p magnum-deploy && \
//! MAGNUM_BIN=target/release/magnum cargo run --release -p magnum-benches --bin burst -- --creates 1000 --clients 8
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use magnum_chaos_tests::burst::{self, quantile, Burst, Phase, Read};
use magnum_chaos_tests::{Deployment, Options};
use std::time::Duration;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    creates: usize,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    #[arg(long, default_value_t = 16)]
    shards: u32,
    /// cloud-sim's latency multiplier (local-cluster.sh's default is 1.0).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Give up waiting for CREATE_COMPLETE after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let d = Deployment::up(
        "bench-burst",
        Options {
            shards: a.shards,
            poll_ms: 1000,
            time_scale: a.time_scale,
            sim_args: format!("--max-stacks-per-tenant {}", a.creates + 100),
            ..Options::default()
        },
    );
    let r = burst::run(
        &d,
        &Burst {
            creates: a.creates,
            clients: a.clients,
            timeout: Duration::from_secs(a.timeout_secs),
        },
    )
    .await;
    println!("{}", r.summary());
    let row = |name: &str, v: &[f64]| {
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} |",
            v.len(),
            quantile(v, 0.5),
            quantile(v, 0.99),
            quantile(v, 1.0)
        )
    };
    println!(
        "\n{} creates from {} clients, {} shards, binary {}",
        a.creates,
        a.clients,
        a.shards,
        d.bin.display()
    );
    println!("| latency | samples | p50 ms | p99 ms | max ms |\n|---|--:|--:|--:|--:|");
    for ((phase, read), v) in &r.reads {
        let what = match read {
            Read::List => "GET /v1/clusters?limit=50",
            Read::Show => "GET /v1/clusters/{id}",
        };
        let when = match phase {
            Phase::Before => "before the burst (1 cluster)",
            Phase::During => "during the burst",
            Phase::After => "after it (all clusters, idle)",
        };
        row(&format!("{what}, {when}"), v);
    }
    row("POST /v1/clusters → 202", &r.accept_ms);
    println!(
        "\nall submitted after {:.1} s, all finished after {:.1} s ({:.2} creates/s); final statuses {:?}; \
         stacks {}, duplicates {}; shed 503s {}; other errors {:?}; failed reads {}; Raft terms moved: {:?}; \
         failed Raft RPCs during the burst: {:?}",
        r.submit.as_secs_f64(),
        r.complete.as_secs_f64(),
        r.accepted as f64 / r.complete.as_secs_f64(),
        r.statuses,
        r.stacks,
        r.duplicate_stacks,
        r.shed,
        r.errors,
        r.failed_reads,
        r.moved_terms(),
        r.rpc_errors
    );
    d.down();
}
