//! Aggregation (medians over rounds, ratios to etcd, failover percentiles) and the JSON and
//! markdown forms of the results.
use crate::chart::Series;
use crate::failover::FailoverResult;
use crate::load::{percentile, Sample, REQUEST_DEADLINE};
use crate::Args;
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "system", rename_all = "lowercase")]
pub enum System {
    /// One Raft group; the baseline of every magnum row.
    Etcd,
    /// Conductors; writes spread over `shards` shards.
    Magnum { shards: u32 },
}

impl System {
    pub fn label(&self) -> String {
        match self {
            System::Etcd => "etcd".into(),
            System::Magnum { shards: 1 } => "magnum, 1 shard".into(),
            System::Magnum { shards } => format!("magnum, {shards} shards"),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Round {
    pub writes_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

impl Round {
    pub fn of(s: &Sample) -> Self {
        let mut l = s.latencies_ms.clone();
        l.sort_by(f64::total_cmp);
        Round {
            writes_per_s: s.writes_per_s,
            p50_ms: percentile(&l, 0.5),
            p99_ms: percentile(&l, 0.99),
            errors: s.errors,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Ratios {
    /// Median over rounds of (our writes/s ÷ etcd's writes/s in the same round).
    pub writes_per_s: f64,
    pub p50: f64,
    pub p99: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Point {
    #[serde(flatten)]
    pub system: System,
    pub clients: usize,
    /// Median of the rounds' writes/s.
    pub writes_per_s: f64,
    /// Percentiles of all rounds' latencies pooled.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub writes: usize,
    pub errors: u64,
    pub first_error: Option<String>,
    pub rounds: Vec<Round>,
    pub vs_etcd: Option<Ratios>,
}

fn median(v: impl IntoIterator<Item = f64>) -> f64 {
    magnum_benches::median(v.into_iter().collect())
}

impl Point {
    pub fn new(system: System, clients: usize, rounds: Vec<(Round, Sample)>) -> Self {
        let mut lat: Vec<f64> = rounds
            .iter()
            .flat_map(|(_, s)| s.latencies_ms.iter().copied())
            .collect();
        lat.sort_by(f64::total_cmp);
        Point {
            system,
            clients,
            writes_per_s: median(rounds.iter().map(|(r, _)| r.writes_per_s)),
            p50_ms: percentile(&lat, 0.5),
            p99_ms: percentile(&lat, 0.99),
            writes: lat.len(),
            errors: rounds.iter().map(|(r, _)| r.errors).sum(),
            first_error: rounds.iter().find_map(|(_, s)| s.first_error.clone()),
            rounds: rounds.into_iter().map(|(r, _)| r).collect(),
            vs_etcd: None,
        }
    }
}

/// Fills `vs_etcd` of every point from the etcd point with the same client count.
pub fn add_ratios(points: &mut [Point]) {
    let base: Vec<Point> = points
        .iter()
        .filter(|p| p.system == System::Etcd)
        .cloned()
        .collect();
    for p in points.iter_mut() {
        let Some(e) = base.iter().find(|e| e.clients == p.clients) else {
            continue;
        };
        p.vs_etcd = Some(Ratios {
            writes_per_s: median(
                p.rounds
                    .iter()
                    .zip(&e.rounds)
                    .map(|(a, b)| a.writes_per_s / b.writes_per_s),
            ),
            p50: p.p50_ms / e.p50_ms,
            p99: p.p99_ms / e.p99_ms,
        });
    }
}

/// Raft timing of the measured conductors and the client's retry policy.
#[derive(Clone, Debug, Serialize)]
pub struct Timeouts {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Followers refuse votes while the leader's lease is live (openraft: election max).
    pub leader_lease_ms: u64,
    /// Survivors ask for a pre-vote in turn once a silent leader's lease is over
    /// (`--no-prompt-elections` turns it off).
    pub prompt_elections: bool,
    pub client_retry: String,
    pub client_deadline_ms: u64,
}

impl Timeouts {
    /// From the conductor's command line as local-cluster.sh recorded it; flags it does not
    /// set take magnum's defaults.
    pub fn from_cmd(cmd_file: &Path) -> Self {
        let d = magnum_raft::RaftConfig::default();
        let cmd = std::fs::read_to_string(cmd_file).unwrap_or_default();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let flag = |name: &str, default: u64| {
            words
                .windows(2)
                .find(|w| w[0] == name)
                .and_then(|w| w[1].parse().ok())
                .unwrap_or(default)
        };
        let election_max_ms = flag("--election-max-ms", d.election_max_ms);
        Timeouts {
            heartbeat_ms: flag("--heartbeat-ms", d.heartbeat_ms),
            election_min_ms: flag("--election-min-ms", d.election_min_ms),
            election_max_ms,
            leader_lease_ms: election_max_ms,
            prompt_elections: !words.contains(&"--no-prompt-elections"),
            client_retry: "ConductorClient: follows 421 hints at once, otherwise retries after \
                           10 ms doubling to 100 ms"
                .into(),
            client_deadline_ms: REQUEST_DEADLINE.as_millis() as u64,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(v: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = v.into_iter().collect();
        v.sort_by(f64::total_cmp);
        Percentiles {
            n: v.len(),
            p50_ms: percentile(&v, 0.5),
            p99_ms: percentile(&v, 0.99),
            max_ms: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Failover {
    /// Last success before the kill → first success after (longest gap, all clients merged).
    pub window: Percentiles,
    pub kill_to_first_success: Percentiles,
    pub catch_up: Percentiles,
    #[serde(flatten)]
    pub run: FailoverResult,
}

#[derive(Debug, Serialize)]
pub struct Config {
    pub machine: String,
    pub command: String,
    pub etcd_version: String,
    pub etcd_target: String,
    /// Whether etcd's members and clients ran mutual TLS (`--etcd-tls-dir`).
    pub etcd_tls: bool,
    /// Whether the conductors and their clients ran mutual TLS (`MAGNUM_TLS_DIR`).
    pub magnum_tls: bool,
    pub shards: u32,
    pub value_bytes: usize,
    pub window_s: f64,
    pub warmup_s: f64,
    pub rounds: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub config: Config,
    pub points: Vec<Point>,
    pub failover: Option<Failover>,
    pub timeouts: Timeouts,
    /// Unix time the report was written.
    pub finished_unix_s: u64,
}

fn tls_words(on: bool) -> &'static str {
    if on {
        "mutual TLS between members and to clients"
    } else {
        "plain HTTP"
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "–".into())
}

impl Report {
    pub fn new(
        args: &Args,
        etcd_version: String,
        shards: u32,
        points: Vec<Point>,
        fo: Option<FailoverResult>,
        timeouts: Timeouts,
    ) -> Self {
        let failover = fo.map(|run| Failover {
            window: Percentiles::of(run.kills.iter().map(|k| k.window_ms)),
            kill_to_first_success: Percentiles::of(
                run.kills.iter().map(|k| k.kill_to_first_success_ms),
            ),
            catch_up: Percentiles::of(run.kills.iter().map(|k| k.catch_up_ms)),
            run,
        });
        Report {
            config: Config {
                machine: args.machine.clone(),
                command: args.command.clone(),
                etcd_version,
                etcd_target: args.etcd_target.clone(),
                etcd_tls: args.etcd_tls_dir.is_some(),
                magnum_tls: std::env::var_os(crate::load::TLS_DIR_ENV).is_some(),
                shards,
                value_bytes: args.value_bytes,
                window_s: args.window_s,
                warmup_s: args.warmup_s,
                rounds: args.rounds,
            },
            points,
            failover,
            timeouts,
            finished_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    pub fn series(&self) -> Vec<Series> {
        let mut systems: Vec<System> = Vec::new();
        for p in &self.points {
            if !systems.contains(&p.system) {
                systems.push(p.system);
            }
        }
        systems
            .into_iter()
            .map(|s| Series {
                label: s.label(),
                points: self
                    .points
                    .iter()
                    .filter(|p| p.system == s)
                    .map(|p| (p.clients as f64, p.writes_per_s))
                    .collect(),
            })
            .collect()
    }

    fn point(&self, system: System, clients: usize) -> Option<&Point> {
        self.points
            .iter()
            .find(|p| p.system == system && p.clients == clients)
    }

    pub fn markdown(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        s.push_str(&format!(
            "Committed {}-byte writes on 3 replicas over loopback; machine: {}.\n\
             etcd {} (3 members, HTTP/JSON gateway `POST /v3/kv/put` to the {}, {}); magnum: 3 \
             conductors, {} shards, `Canary` command through `ConductorClient` (HTTP/JSON to the \
             shard leader, {}). Each point: median writes/s of {} rounds of {} s after {} s of \
             warm-up, the rounds of the three systems interleaved; latency percentiles over all \
             rounds; ratios are ours ÷ etcd's at the same concurrency (writes/s: median of the \
             per-round ratios).\n\n",
            c.value_bytes,
            c.machine,
            c.etcd_version,
            if c.etcd_target == "leader" {
                "leader"
            } else {
                "members round-robin"
            },
            tls_words(c.etcd_tls),
            c.shards,
            tls_words(c.magnum_tls),
            c.rounds,
            c.window_s,
            c.warmup_s
        ));
        s.push_str(
            "| system | clients | writes/s | p50 ms | p99 ms | writes/s vs etcd | p50 vs etcd | p99 vs etcd | errors |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for p in &self.points {
            let r = p.vs_etcd.as_ref();
            s.push_str(&format!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} |\n",
                p.system.label(),
                p.clients,
                p.writes_per_s,
                p.p50_ms,
                p.p99_ms,
                fmt_ratio(r.map(|r| r.writes_per_s)),
                fmt_ratio(r.map(|r| r.p50)),
                fmt_ratio(r.map(|r| r.p99)),
                p.errors
            ));
        }
        s.push('\n');
        let max_clients = self.points.iter().map(|p| p.clients).max().unwrap_or(0);
        let min_clients = self.points.iter().map(|p| p.clients).min().unwrap_or(0);
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        for sys in [
            System::Magnum { shards: 1 },
            System::Magnum { shards: c.shards },
        ] {
            let hi = self
                .point(sys, max_clients)
                .and_then(|p| p.vs_etcd.as_ref());
            let lo = self
                .point(sys, min_clients)
                .and_then(|p| p.vs_etcd.as_ref());
            if let (Some(hi), Some(lo)) = (hi, lo) {
                s.push_str(&format!(
                    "Targets, {}: writes/s at {max_clients} clients ≥ 0.5× etcd: {:.2}× ({}); \
                     p50 at {min_clients} client ≤ 2× etcd: {:.2}× ({}).\n",
                    sys.label(),
                    hi.writes_per_s,
                    verdict(hi.writes_per_s >= 0.5),
                    lo.p50,
                    verdict(lo.p50 <= 2.0)
                ));
            }
        }
        if let Some(f) = &self.failover {
            let t = &self.timeouts;
            s.push_str(&format!(
                "\nFailover: {} SIG{}s of shard {}'s leader under {} writers (each stopped \
                 conductor restarted, writes paused until it caught up, then 1 s of load before the next one). Unavailability window \
                 (last success before → first success after, as clients saw it): p50 {:.0} ms, \
                 p99 {:.0} ms, max {:.0} ms (nearest rank: below 100 kills p99 is the max) (target p99 ≤ 1000 ms: {}). SIG{} → first success: \
                 p50 {:.0} ms, p99 {:.0} ms. Failed writes: {}. Timeouts: heartbeat {} ms, \
                 election {}–{} ms (leader lease {} ms), prompt elections {}; client deadline \
                 {} ms, {}.\n",
                f.window.n,
                f.run.signal,
                f.run.shard,
                f.run.clients,
                f.window.p50_ms,
                f.window.p99_ms,
                f.window.max_ms,
                verdict(f.window.p99_ms <= 1000.0),
                f.run.signal,
                f.kill_to_first_success.p50_ms,
                f.kill_to_first_success.p99_ms,
                f.run.failed_writes,
                t.heartbeat_ms,
                t.election_min_ms,
                t.election_max_ms,
                t.leader_lease_ms,
                if t.prompt_elections { "on" } else { "off" },
                t.client_deadline_ms,
                t.client_retry
            ));
        }
        s.push_str(&format!("\nReproduce: `{}`\n", c.command));
        s
    }
}
