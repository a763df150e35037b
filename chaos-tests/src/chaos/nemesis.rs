//! The nemesis: faults injected into the running deployment, one process-level fault at a time
//! (so a majority is usually up and the workload keeps going) plus Heat faults alongside. Each
//! kind has its own code path and its own counter; every fault is logged with when it started
//! and ended, so a violation can be lined up with what was happening.
use super::Shared;
use crate::Deployment;
use magnum_proto::{NodeId, ShardId};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
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
pub const PROCESS_FAULTS: [(&str, u32); 11] = [
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
];

/// Each conductor's data dir is its own filesystem of this size (tmpfs), so one can fill up.
const DATA_FS: &str = "size=256m";

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
        let kinds: Vec<(&str, u32)> = PROCESS_FAULTS
            .iter()
            .filter(|(k, _)| only.as_ref().is_none_or(|o| o.split(',').any(|x| x == *k)))
            .copied()
            .collect();
        let mut first: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
        first.shuffle(&mut self.rng);
        let total: u32 = kinds.iter().map(|(_, w)| w).sum();
        let mut regressions_done = only.is_some();
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

    /// Heat faults through cloud-sim, one every `period` on average, until `stop`.
    pub async fn run_heat_faults(&mut self, stop: Arc<AtomicBool>, period: Duration) {
        let off = std::env::var("MAGNUM_CHAOS_HEAT").is_ok_and(|v| v == "0");
        while !stop.load(Ordering::SeqCst) && !off {
            let (kind, spec) = self.heat_fault();
            let start = self.shared.rec.now();
            let ok = self
                .d
                .http
                .post(format!("{}/sim/heat/faults", self.d.sim))
                .json(&spec)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                self.heat_posted += 1;
                self.record(kind, spec.to_string(), start, String::new());
            }
            let ms = self.rng.gen_range(0..2 * period.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// The Heat fault kinds `heat_fault` draws from.
    pub const HEAT_FAULTS: [&'static str; 5] = [
        "heat_5xx",
        "heat_409",
        "heat_lost_response",
        "heat_slow",
        "heat_resource_failure",
    ];

    fn heat_fault(&mut self) -> (&'static str, Value) {
        let writes = [
            ("POST", "*/stacks"),
            ("PATCH", "*/stacks/*"),
            ("DELETE", "*/stacks/*"),
        ];
        let (m, p) = *writes.choose(&mut self.rng).unwrap_or(&writes[0]);
        match self.rng.gen_range(0..6) {
            0 => (
                "heat_5xx",
                json!({"kind": "api_error", "method": m, "path_glob": p, "status": 503}),
            ),
            1 => (
                "heat_5xx",
                json!({"kind": "api_error", "method": "GET", "path_glob": "*/stacks/*", "status": 500}),
            ),
            2 => (
                "heat_409",
                json!({"kind": "api_error", "method": "PATCH", "path_glob": "*/stacks/*", "status": 409,
                       "message": "Stack is in progress"}),
            ),
            3 => (
                "heat_lost_response",
                json!({"kind": "lost_response", "method": m, "path_glob": p}),
            ),
            4 => (
                "heat_slow",
                json!({"kind": "response_delay", "method": "*", "path_glob": "*/stacks*",
                       "seconds": self.rng.gen_range(1.0..6.0)}),
            ),
            _ => {
                let action = if self.rng.gen_bool(0.5) {
                    "CREATE"
                } else {
                    "UPDATE"
                };
                (
                    "heat_resource_failure",
                    json!({"kind": "resource_fail", "resource_type": "OS::Nova::Server",
                           "action": action, "message": "No valid host was found"}),
                )
            }
        }
    }

    /// Heat faults that fired: posted minus those still waiting (cleared at the end).
    pub async fn heat_fired(&self) -> u64 {
        let left = self
            .d
            .http
            .get(format!("{}/sim/heat/faults", self.d.sim))
            .send()
            .await;
        let left = match left {
            Ok(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["faults"].as_array().map(|a| a.len() as u64))
                .unwrap_or(0),
            Err(_) => 0,
        };
        self.heat_posted.saturating_sub(left)
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

    /// Moves every conductor's data dir onto a filesystem of its own (stopping and starting
    /// it), so that `disk_full` can fill one. Only on private hosts: the mounts live in the
    /// run's own mount namespace and go away with it.
    pub async fn own_filesystems(&self) -> Result<(), String> {
        if self.d.opts.netns.is_none() {
            return Ok(());
        }
        for n in CONDUCTORS {
            let d = self.d.clone();
            let r = tokio::task::spawn_blocking(move || -> Result<(), String> {
                let dir = d.conductor_dir(n);
                let old = dir.with_extension("disk");
                d.script(&["stop", "conductor", &n.to_string()]);
                std::fs::rename(&dir, &old).map_err(|e| e.to_string())?;
                std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
                run(
                    "mount",
                    &["-t", "tmpfs", "-o", DATA_FS, "tmpfs", &path(&dir)],
                )?;
                run("cp", &["-a", &format!("{}/.", path(&old)), &path(&dir)])?;
                std::fs::remove_dir_all(&old).map_err(|e| e.to_string())?;
                d.start("conductor", Some(n));
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?;
            r?;
            self.await_all_up().await;
        }
        Ok(())
    }

    /// Unmounts what `own_filesystems` mounted (the processes are gone by then).
    pub fn release_filesystems(d: &Deployment) {
        if d.opts.netns.is_some() {
            for n in CONDUCTORS {
                let _ = run("umount", &["-l", &path(&d.conductor_dir(n))]);
            }
        }
    }

    /// A conductor's filesystem fills up (a ballast file takes every free byte), then frees.
    async fn disk_full(&mut self, hold: Duration) -> (String, String) {
        if self.d.opts.netns.is_none() {
            return (
                "none".into(),
                "no private hosts: disk faults skipped".into(),
            );
        }
        let n = self.pick_target().await;
        let (size, note) = fill(&self.d, n);
        tokio::time::sleep(hold).await;
        let _ = std::fs::remove_file(self.d.conductor_dir(n).join("ballast"));
        (format!("conductor-{n} ({size} bytes taken)"), note)
    }

    /// A shard leader's disk fills while a write goes to it: the conductor must exit (its
    /// supervisor restarts it), not live on with a halted replica (which the replica check at
    /// the end would find).
    async fn disk_full_leader(&mut self) -> (String, String) {
        use magnum_proto::{RequestId, ShardCommand, ShardRequest};
        if self.d.opts.netns.is_none() {
            return (
                "none".into(),
                "no private hosts: disk faults skipped".into(),
            );
        }
        // The busiest shard: its followers hold entries the leader has not flushed yet.
        let busiest = self
            .shared
            .client
            .refresh_topology()
            .await
            .ok()
            .and_then(|t| {
                t.groups
                    .iter()
                    .filter(|g| g.group != magnum_proto::wire::META_GROUP)
                    .max_by_key(|g| g.last_applied)
                    .map(|g| ShardId(u32::try_from(g.group - 1).unwrap_or(0)))
            });
        let shard = busiest.unwrap_or(ShardId(0));
        let Ok(Some(NodeId(n))) = self.shared.client.leader_of(shard).await else {
            return ("none".into(), "no leader found".into());
        };
        let pid = pid_of(&self.d, n);
        let (size, mut note) = fill(&self.d, n);
        let write = ShardRequest {
            request_id: Some(RequestId::new_v4()),
            command: ShardCommand::Canary {
                key: "disk-full".into(),
                value: self.shared.rec.now().to_string(),
            },
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.shared.client.command(shard, &write),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid.is_some() && pid_of(&self.d, n) == pid && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A replica halted in a live process shows in the end check of the replicas.
        if pid.is_some() && pid_of(&self.d, n) == pid {
            note = "still running 10 s after its disk filled".into();
        }
        let _ = std::fs::remove_file(self.d.conductor_dir(n).join("ballast"));
        (
            format!(
                "conductor-{n}, leader of shard {} ({size} bytes taken)",
                shard.0
            ),
            note,
        )
    }

    /// Network faults on the conductors' own hosts, made with nftables in their namespaces.
    async fn partition(&mut self, kind: &str, hold: Duration) -> (String, String) {
        let Some(ns) = self.d.opts.netns.clone() else {
            return ("none".into(), "no private hosts: partitions skipped".into());
        };
        let n = self.pick_target().await;
        let others: Vec<String> = CONDUCTORS
            .iter()
            .filter(|&&o| o != n)
            .map(|&o| ns.conductor(o))
            .collect();
        let set = format!("{{ {} }}", others.join(", "));
        let hub = ns.hub();
        let svc = self.d.port_base + 200 + n as u16;
        let sim = self.d.port_base;
        let (rules, target): (Vec<String>, String) = match kind {
            "partition_isolate" => (
                vec![
                    format!("add rule inet chaos input ip saddr {set} drop"),
                    format!("add rule inet chaos output ip daddr {set} drop"),
                ],
                format!("conductor-{n} cut from its peers"),
            ),
            "partition_bridge" => {
                // n loses one peer; the other peer still hears both (the bridge).
                let lost = others[self.rng.gen_range(0..others.len())].clone();
                (
                    vec![
                        format!("add rule inet chaos input ip saddr {lost} drop"),
                        format!("add rule inet chaos output ip daddr {lost} drop"),
                    ],
                    format!("conductor-{n} cut from {lost}"),
                )
            }
            "partition_one_way" => (
                vec![format!("add rule inet chaos output ip daddr {set} drop")],
                format!("conductor-{n} hears its peers, they do not hear it"),
            ),
            "partition_lossy" => {
                let pct = self.rng.gen_range(20..60);
                (
                    vec![
                        format!("add rule inet chaos input ip saddr {set} numgen random mod 100 < {pct} drop"),
                        format!("add rule inet chaos output ip daddr {set} numgen random mod 100 < {pct} drop"),
                    ],
                    format!("conductor-{n} loses {pct}% of packets to and from its peers"),
                )
            }
            "partition_api" => (
                vec![
                    format!("add rule inet chaos input ip saddr {hub} tcp dport {svc} drop"),
                    format!("add rule inet chaos output ip daddr {hub} tcp sport {svc} drop"),
                ],
                format!("the API node cut from conductor-{n}"),
            ),
            _ => (
                vec![format!(
                    "add rule inet chaos output ip daddr {hub} tcp dport {sim} drop"
                )],
                format!("conductor-{n} cut from Heat and Keystone"),
            ),
        };
        let namespace = ns.namespace(n);
        let mut note = String::new();
        for r in &rules {
            if let Err(e) = nft(&namespace, r) {
                note = e;
            }
        }
        // Past every lease the isolated node held, it must serve neither writes nor reads.
        let probe_after = Duration::from_millis(1200);
        if kind == "partition_isolate" && hold > probe_after + Duration::from_millis(500) {
            tokio::time::sleep(probe_after).await;
            self.probe_minority(n).await;
            tokio::time::sleep(hold - probe_after).await;
        } else {
            tokio::time::sleep(hold).await;
        }
        if let Err(e) = nft(&namespace, "flush table inet chaos") {
            note = e;
        }
        (target, note)
    }

    /// Sends a canary write and a linearizable read of every shard straight to conductor `n`
    /// (cut from its peers), as a client that reached only the minority would.
    async fn probe_minority(&self, n: u64) {
        use magnum_proto::wire::{command_path, query_path, Envelope};
        use magnum_proto::{RequestId, ShardCommand, ShardQuery, ShardRequest};
        let http = self.d.internal_http();
        let addr = self.d.conductor_service(n);
        for shard in 0..self.shared.shards {
            let shard = ShardId(shard);
            let write = ShardRequest {
                request_id: Some(RequestId::new_v4()),
                command: ShardCommand::Canary {
                    key: format!("minority/{n}"),
                    value: self.shared.rec.now().to_string(),
                },
            };
            let read = ShardQuery::Canaries {
                prefix: "minority/".into(),
            };
            let (write, read) = (Envelope::new(&write), Envelope::new(&read));
            let timeout = Duration::from_millis(1500);
            let w = http
                .send(&addr, &command_path(shard), |h, u| {
                    h.post(u).json(&write).timeout(timeout)
                })
                .await;
            let r = http
                .send(&addr, &query_path(shard), |h, u| {
                    h.post(u).json(&read).timeout(timeout)
                })
                .await;
            let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.minority_probes += 2;
            for (what, res) in [("write", w), ("linearizable read", r)] {
                let answer = res
                    .as_ref()
                    .map_or("no answer".into(), |r| r.status().as_u16().to_string());
                *l.minority_answers.entry(answer).or_default() += 1;
                if let Ok(resp) = res {
                    // A probe the node could not even parse proves nothing.
                    if matches!(resp.status().as_u16(), 400 | 404 | 405 | 415 | 422) {
                        l.violations.push(format!(
                            "minority probe refused as malformed ({}): the check is broken",
                            resp.status()
                        ));
                    }
                    if resp.status().is_success() {
                        l.violations.push(format!(
                            "conductor-{n}, cut from its peers, served a {what} of shard {}",
                            shard.0
                        ));
                    }
                }
            }
        }
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

/// Restarts any conductor that is not running, every half second, until `stop`: what systemd's
/// `Restart=on-failure` does for a conductor that exits on its own (a full or stalled disk)
/// while the checks run.
pub async fn supervise(d: Arc<Deployment>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        for n in CONDUCTORS {
            if pid_of(&d, n).is_none() {
                let d = d.clone();
                blocking(move || d.start("conductor", Some(n))).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn blocking(f: impl FnOnce() + Send + 'static) {
    let _ = tokio::task::spawn_blocking(f).await;
}

fn pid_of_name(d: &Deployment, name: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(d.dir.join(format!("{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // A zombie or a reused pid of another program is not ours.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    (!stat.contains(") Z ")).then_some(pid)
}

fn pid_of(d: &Deployment, n: u64) -> Option<u32> {
    pid_of_name(d, &format!("conductor-{n}"))
}

/// The state letter of a process (`T` = stopped), from /proc.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Sends `sig` to conductor `n` if it runs; after KILL, waits until it is gone.
fn signal(d: &Deployment, n: u64, sig: &str) {
    let Some(pid) = pid_of(d, n) else { return };
    let _ = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status();
    if sig == "KILL" {
        wait_gone(pid);
        let _ = std::fs::remove_file(d.dir.join(format!("conductor-{n}.pid")));
    }
}

fn kill_pid_file(d: &Deployment, name: &str) {
    if let Some(pid) = pid_of_name(d, name) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        wait_gone(pid);
        let _ = std::fs::remove_file(d.dir.join(format!("{name}.pid")));
    }
}

fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(s) if !s.contains(") Z ") => std::thread::sleep(Duration::from_millis(20)),
            _ => return,
        }
    }
}

/// Writes zeros into conductor `n`'s filesystem until it refuses (dd's failure is the point):
/// the ballast's size, and a note if nothing could be written.
fn fill(d: &Deployment, n: u64) -> (u64, String) {
    let ballast = d.conductor_dir(n).join("ballast");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", path(&ballast)), "bs=1M"])
        .output();
    let size = std::fs::metadata(&ballast).map_or(0, |m| m.len());
    let note = match size {
        0 => "no ballast written".to_string(),
        _ => String::new(),
    };
    (size, note)
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One nft command in namespace `ns`.
fn nft(ns: &str, rule: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(rule.split_whitespace())
        .output()
        .map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft {rule}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
