//! Replication benchmark: committed small writes on 3 local conductors (one shard, and all
//! shards) side by side with a 3-member etcd on loopback, then leader failover under load.
//!
//! Run through `benches/raft-vs-etcd.sh`, which builds in release, starts etcd and the
//! conductors, calls this binary and stops everything. Output: `results.json`, `results.md`,
//! `throughput.png` in `--out`.
mod chart;
mod failover;
mod load;
mod report;

use anyhow::{bail, Context, Result};
use clap::Parser;
use load::{Sample, Target, Value};
use magnum_proto::ShardId;
use report::{Point, Round, System};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Raft (magnum conductors) vs etcd: committed writes/s, latency, failover")]
pub struct Args {
    /// Output directory for results.json, results.md and throughput.png.
    #[arg(long, default_value = "target/bench/raft-vs-etcd")]
    out: PathBuf,
    /// Directory of a running `deploy/local-cluster.sh` deployment (holds cluster.json).
    #[arg(long)]
    cluster_dir: PathBuf,
    /// `deploy/local-cluster.sh`, used to kill and restart conductors.
    #[arg(long)]
    cluster_script: PathBuf,
    /// Client URLs of the etcd members, comma-separated (http://127.0.0.1:PORT,...).
    #[arg(long, value_delimiter = ',', required = true)]
    etcd: Vec<String>,
    /// The client certificate (`node.crt`, `node.key`, `ca.crt`) for etcd members that run
    /// mutual TLS (https URLs), as the conductors do: the like-for-like comparison.
    #[arg(long)]
    etcd_tls_dir: Option<PathBuf>,
    /// Which etcd members the clients talk to: the leader (as our clients do), or all of them.
    #[arg(long, default_value = "leader", value_parser = ["leader", "all"])]
    etcd_target: String,
    /// Systems to measure (etcd is the baseline of the ratios).
    #[arg(long, value_delimiter = ',', default_value = "etcd,magnum-1,magnum-all",
          value_parser = ["etcd", "magnum-1", "magnum-all"])]
    systems: Vec<String>,
    /// Client concurrencies to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Measured seconds per round of a point.
    #[arg(long, default_value_t = 6.0)]
    window_s: f64,
    /// Warm-up seconds before each round (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Rounds per point; rounds of the three systems at one concurrency are interleaved.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Bytes of each written value.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Leader SIGKILLs in the failover phase (0 skips it).
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// How the failover phase stops the leader: `KILL` (a crash) or `TERM` (a graceful stop,
    /// which hands the leaderships off first).
    #[arg(long, default_value = "KILL", value_parser = ["KILL", "TERM"])]
    kill_signal: String,
    /// Concurrent writers on the loaded shard during the failover phase.
    #[arg(long, default_value_t = 16)]
    failover_clients: usize,
    /// TrueType font for the chart's text.
    #[arg(long)]
    font: PathBuf,
    /// Description of the machine, for the report.
    #[arg(long, default_value = "unspecified")]
    machine: String,
    /// The command that reproduces this run, for the report.
    #[arg(long, default_value = "benches/raft-vs-etcd.sh")]
    command: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let cluster = read_cluster(&args)?;
    let seeds: Vec<String> = cluster.conductors.iter().map(|(_, a)| a.clone()).collect();
    let value = Arc::new(Value::new(args.value_bytes));
    let window = Duration::from_secs_f64(args.window_s);
    let warmup = Duration::from_secs_f64(args.warmup_s);

    let etcd_tls = args.etcd_tls_dir.as_deref();
    let etcd_version = load::etcd_version(&args.etcd[0], etcd_tls).await?;
    let etcd_urls = match args.etcd_target.as_str() {
        "leader" => vec![load::etcd_leader(&args.etcd, etcd_tls).await?],
        _ => args.etcd.clone(),
    };
    let put_urls: Vec<String> = etcd_urls.iter().map(|u| format!("{u}/v3/kv/put")).collect();
    let all_shards: Vec<ShardId> = (0..cluster.shards).map(ShardId).collect();
    let mut systems = Vec::new();
    for name in &args.systems {
        systems.push(match name.as_str() {
            "etcd" => (
                System::Etcd,
                Arc::new(Target::etcd(put_urls.clone(), etcd_tls)?),
            ),
            "magnum-1" => (
                System::Magnum { shards: 1 },
                Arc::new(Target::magnum(seeds.clone(), vec![ShardId(0)])?),
            ),
            _ => (
                System::Magnum {
                    shards: cluster.shards,
                },
                Arc::new(Target::magnum(seeds.clone(), all_shards.clone())?),
            ),
        });
    }
    for (_, t) in &systems {
        if let Target::Magnum { client, .. } = t.as_ref() {
            client.refresh_topology().await?;
        }
    }

    let mut points: Vec<Point> = Vec::new();
    for &clients in &args.clients {
        let mut rounds: Vec<Vec<(Round, Sample)>> = systems.iter().map(|_| Vec::new()).collect();
        for r in 0..args.rounds {
            // Rotate the order so that no system always runs right after another's load.
            for k in 0..systems.len() {
                let i = (k + r) % systems.len();
                let (sys, target) = &systems[i];
                let s =
                    load::run_point(target.clone(), value.clone(), clients, warmup, window).await?;
                let round = Round::of(&s);
                eprintln!(
                    "{:<22} clients {clients:>3} round {}: {:>8.0} w/s  p50 {:>6.2} ms  p99 {:>7.2} ms  errors {}",
                    sys.label(),
                    r + 1,
                    round.writes_per_s,
                    round.p50_ms,
                    round.p99_ms,
                    s.errors
                );
                rounds[i].push((round, s));
            }
        }
        for (i, (sys, _)) in systems.iter().enumerate() {
            points.push(Point::new(*sys, clients, std::mem::take(&mut rounds[i])));
        }
    }
    report::add_ratios(&mut points);

    let fo = if args.kills > 0 {
        eprintln!(
            "failover: {} SIG{}s of shard 0's leader under {} writers",
            args.kills, args.kill_signal, args.failover_clients
        );
        let dep = failover::Deployment {
            dir: args.cluster_dir.clone(),
            script: args.cluster_script.clone(),
            conductors: cluster.conductors.clone(),
        };
        Some(
            failover::run(
                &dep,
                ShardId(0),
                args.failover_clients,
                args.kills,
                &args.kill_signal,
                value.clone(),
            )
            .await?,
        )
    } else {
        None
    };

    let timeouts = report::Timeouts::from_cmd(&args.cluster_dir.join("conductor-1.cmd"));
    let rep = report::Report::new(&args, etcd_version, cluster.shards, points, fo, timeouts);
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_vec_pretty(&rep)?,
    )?;
    let md = rep.markdown();
    std::fs::write(args.out.join("results.md"), &md)?;
    chart::draw(
        &args.out.join("throughput.png"),
        &args.font,
        &format!(
            "Committed {}-byte writes, 3 replicas on loopback ({})",
            args.value_bytes, args.machine
        ),
        &rep.series(),
    )?;
    println!("{md}");
    println!(
        "wrote {}/{{results.json,results.md,throughput.png}}",
        args.out.display()
    );
    Ok(())
}

struct Cluster {
    shards: u32,
    conductors: Vec<(u64, String)>,
}

fn read_cluster(args: &Args) -> Result<Cluster> {
    let path = args.cluster_dir.join("cluster.json");
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    let shards = v["shards"].as_u64().context("cluster.json: shards")? as u32;
    let mut conductors = Vec::new();
    for p in v["processes"]
        .as_array()
        .context("cluster.json: processes")?
    {
        if p["role"] == "conductor" {
            let id = p["node_id"].as_u64().context("conductor node_id")?;
            let addr = p["addresses"]["service"]
                .as_str()
                .context("conductor service address")?;
            conductors.push((id, addr.to_string()));
        }
    }
    if conductors.is_empty() || shards == 0 {
        bail!("{}: no conductors or no shards", path.display());
    }
    Ok(Cluster { shards, conductors })
}
