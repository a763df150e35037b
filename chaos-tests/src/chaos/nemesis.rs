//! The nemesis: faults injected into the running deployment, one process-level fault at a time
//! (so a majority is usually up and the workload keeps going) plus Heat faults alongside. Each
//! kind has its own code path and its own counter; every fault is logged with when it started
//! and ended, so a violation can be lined up with what was happening.
mod disk;
pub use disk::build_slow_sync;
mod heat;
mod net;
mod procs;

pub use procs::{proc_state, supervise};

use super::Shared;
use crate::Deployment;
use magnum_proto::{NodeId, ShardId};
use procs::{blocking, kill_pid_file, nft, pid_of, pid_of_name, signal};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CONDUCTORS: [u64; 3] = [1, 2, 3];

#[derive(Clone, Debug, Serialize)]
pub struct FaultEvent {
    pub kind: String,
    pub target: String,
    pub start_us: u64,
    pub end_us: u64,
    /// What happened, when it did not go as planned (a pause point never reached, say).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Fault counts and the log.
#[derive(Default)]
pub struct Ledger {
    pub events: Vec<FaultEvent>,
    pub by_kind: BTreeMap<String, u64>,
    /// Writes and linearizable reads sent straight to an isolated conductor once its lease
    /// ran out.
    pub minority_probes: u64,
    /// Their answers: HTTP status, or `no answer` (timed out, connection cut).
    pub minority_answers: BTreeMap<String, u64>,
    /// What a fault saw go wrong while it ran (a minority serving).
    pub violations: Vec<String>,
}

/// Faults that once broke an invariant, run in every run (after each kind ran once), with the
/// seeds that found them.
pub const REGRESSIONS: [(&str, &str); 1] = [(
    "disk_full_leader",
    "seed 9 (disk_full drawn often): a shard leader's full disk halted its replica for good \
     while the process lived on; seed 540609 (twice): the leader, restarted, resumed its \
     term without the entries its followers held, and a replica diverged",
)];

/// The process-level fault kinds and how often each is drawn.
pub const PROCESS_FAULTS: [(&str, u32); 13] = [
    ("kill", 14),
    ("pause", 14),
    ("pause_before_heat_call", 6),
    ("partition_isolate", 10),
    ("partition_bridge", 8),
    ("partition_one_way", 8),
    ("partition_lossy", 6),
    ("partition_api", 6),
    ("partition_heat", 6),
    ("restart_all", 2),
    ("disk_full", 6),
    ("disk_slow", 6),
    ("disk_stall", 2),
];

pub struct Nemesis {
    pub d: Arc<Deployment>,
    pub shared: Shared,
    pub rng: StdRng,
    pub ledger: Arc<Mutex<Ledger>>,
    /// Heat faults posted to cloud-sim (the ones left unfired at the end are subtracted).
    pub heat_posted: u64,
}

impl Nemesis {
    pub fn new(d: Arc<Deployment>, shared: Shared, seed: u64) -> Self {
        Self {
            d,
            shared,
            rng: StdRng::seed_from_u64(seed ^ 0x006e_656d_6573_6973),
            ledger: Arc::default(),
            heat_posted: 0,
        }
    }

    fn record(&self, kind: &str, target: String, start_us: u64, note: String) {
        let end_us = self.shared.rec.now();
        let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        *l.by_kind.entry(kind.to_string()).or_default() += 1;
        l.events.push(FaultEvent {
            kind: kind.into(),
            target,
            start_us,
            end_us,
            note,
        });
    }

    /// Runs the regression faults, then process-level faults drawn at random until `stop`.
    pub async fn run_process_faults(&mut self, stop: Arc<AtomicBool>) {
        // Every kind once, in a seeded order, so that even a short run covers them all; then
        // drawn by weight. `MAGNUM_CHAOS_FAULTS=kill,pause` narrows a run (to bisect a failure).
        let only = std::env::var("MAGNUM_CHAOS_FAULTS").ok();
        let disk = self.shared.disk_faults;
        let kinds: Vec<(&str, u32)> = PROCESS_FAULTS
            .iter()
            .filter(|(k, _)| only.as_ref().is_none_or(|o| o.split(',').any(|x| x == *k)))
            .filter(|(k, _)| disk || !k.starts_with("disk_"))
            .copied()
            .collect();
        let mut first: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
        first.shuffle(&mut self.rng);
        let total: u32 = kinds.iter().map(|(_, w)| w).sum();
        // The one regression case is a disk fault.
        let mut regressions_done = only.is_some() || !disk;
        while !stop.load(Ordering::SeqCst) && total > 0 {
            if first.is_empty() && !regressions_done {
                // Once every kind ran once, with load on the shards.
                regressions_done = true;
                self.run_regressions().await;
            }
            let kind = match first.pop() {
                Some(k) => k,
                None => {
                    let mut roll = self.rng.gen_range(0..total);
                    kinds
                        .iter()
                        .find(|(_, w)| {
                            if roll < *w {
                                true
                            } else {
                                roll -= w;
                                false
                            }
                        })
                        .map_or("kill", |(k, _)| *k)
                }
            };
            let hold = Duration::from_millis(self.rng.gen_range(600..3500));
            let start = self.shared.rec.now();
            let (target, note) = match kind {
                "kill" => self.kill(hold).await,
                "pause" => self.pause(hold).await,
                "pause_before_heat_call" => self.pause_before_heat_call(hold).await,
                "restart_all" => self.restart_all().await,
                "disk_full" => self.disk_full(hold).await,
                "disk_slow" => self.disk_slow(hold).await,
                "disk_stall" => self.disk_stall().await,
                partition => self.partition(partition, hold).await,
            };
            self.record(kind, target, start, note);
            // Every conductor back before the next fault: one fault at a time.
            self.await_all_up().await;
            let gap = Duration::from_millis(self.rng.gen_range(100..700));
            tokio::time::sleep(gap).await;
        }
    }

    async fn run_regressions(&mut self) {
        for (kind, _) in REGRESSIONS {
            let start = self.shared.rec.now();
            let (target, note) = match kind {
                "disk_full_leader" => self.disk_full_leader().await,
                _ => continue,
            };
            self.record(kind, target, start, note);
            self.await_all_up().await;
        }
    }

    /// A conductor to hit: the leader of a random shard most of the time, else any.
    async fn pick_target(&mut self) -> u64 {
        if self.rng.gen_bool(0.7) {
            let shard = ShardId(self.rng.gen_range(0..self.shared.shards));
            if let Ok(Some(NodeId(n))) = self.shared.client.leader_of(shard).await {
                if CONDUCTORS.contains(&n) {
                    return n;
                }
            }
        }
        *CONDUCTORS.choose(&mut self.rng).unwrap_or(&1)
    }

    async fn kill(&mut self, hold: Duration) -> (String, String) {
        let n = self.pick_target().await;
        let d = self.d.clone();
        let hold_ms = hold.as_millis() as u64 / 2;
        blocking(move || {
            signal(&d, n, "KILL");
            std::thread::sleep(Duration::from_millis(hold_ms));
            d.start("conductor", Some(n));
        })
        .await;
        (format!("conductor-{n}"), String::new())
    }

    async fn pause(&mut self, hold: Duration) -> (String, String) {
        let n = self.pick_target().await;
        signal(&self.d, n, "STOP");
        tokio::time::sleep(hold).await;
        signal(&self.d, n, "CONT");
        (format!("conductor-{n}"), String::new())
    }

    /// A shard leader stops itself between its leadership check and its next Heat write
    /// (create, update or delete), stays stopped past its lease, then goes on.
    async fn pause_before_heat_call(&mut self, hold: Duration) -> (String, String) {
        let n = self.pick_target().await;
        let spec = [
            "create:heat:create",
            "update:heat:update",
            "delete:heat:delete",
        ]
        .iter()
        .map(|s| format!("pause@{s}:before:1"))
        .collect::<Vec<_>>()
        .join(",");
        self.d.arm_failpoints(n, &spec);
        let deadline = Instant::now() + Duration::from_secs(6);
        let mut stopped = false;
        while Instant::now() < deadline {
            if pid_of(&self.d, n).and_then(proc_state) == Some('T') {
                stopped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.d.disarm_failpoints(n);
        let note = if stopped {
            tokio::time::sleep(hold).await;
            String::new()
        } else {
            "no Heat write came by: not paused".into()
        };
        signal(&self.d, n, "CONT");
        (format!("conductor-{n}"), note)
    }

    async fn restart_all(&mut self) -> (String, String) {
        let d = self.d.clone();
        blocking(move || {
            for n in CONDUCTORS {
                signal(&d, n, "KILL");
            }
            kill_pid_file(&d, "api");
            for n in CONDUCTORS {
                d.start("conductor", Some(n));
            }
            d.start("api", None);
        })
        .await;
        ("every conductor and the API node".into(), String::new())
    }

    /// Waits (bounded) until every conductor answers; one that is not running (killed, or
    /// exited on its own, as on a full disk) is started again, as its supervisor would.
    pub async fn await_all_up(&self) {
        let http = self.d.internal_http();
        for n in CONDUCTORS {
            let addr = self.d.conductor_service(n);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if pid_of(&self.d, n).is_none() {
                    let d = self.d.clone();
                    blocking(move || d.start("conductor", Some(n))).await;
                }
                let r = http
                    .send(&addr, magnum_proto::wire::TOPOLOGY_PATH, |h, u| h.get(u))
                    .await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Undoes every fault: links restored, stopped processes continued, stopped ones started,
    /// failpoints and Heat faults cleared.
    pub async fn heal(&self) {
        if let Some(ns) = &self.d.opts.netns {
            for n in CONDUCTORS {
                let _ = nft(&ns.namespace(n), "flush table inet chaos");
            }
        }
        self.flushes_back();
        for n in CONDUCTORS {
            self.d.disarm_failpoints(n);
            signal(&self.d, n, "CONT");
        }
        let _ = self
            .d
            .http
            .delete(format!("{}/sim/heat/faults", self.d.sim))
            .send()
            .await;
        if pid_of_name(&self.d, "api").is_none() {
            let d = self.d.clone();
            blocking(move || d.start("api", None)).await;
        }
        self.await_all_up().await;
    }
}
