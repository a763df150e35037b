//! The chaos suite (`chaos-tests/run.sh`): a seeded run of a recorded workload against a
//! deployment whose conductors are killed, paused, partitioned and restarted while Heat fails
//! under them, then every checker over the history and the end state. See chaos-tests/README.md.
pub mod checks;
pub mod history;
pub mod linear;
pub mod nemesis;
pub mod workload;

use crate::{Deployment, Netns, Options};
use history::Recorder;
use magnum_proto::ConductorClient;
use nemesis::Nemesis;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workload::{Project, Workload};

/// Shards of the deployment: more than conductors, so leaders spread over all three.
const SHARDS: u32 = 4;
/// How often the projects' tokens are re-issued.
const TOKEN_REFRESH: Duration = Duration::from_secs(15 * 60);
/// `slowsync.c`'s control file in the output dir (`nemesis::build_slow_sync`).
pub const SLOW_SYNC_CONTROL: &str = "slow-sync";
/// Projects the clients work in (cloud-sim's seeded users), so the work spans shards.
const PROJECTS: [(&str, &str); 3] = [
    ("demo", "demo"),
    ("alt_demo", "alt_demo"),
    ("admin", "admin"),
];

#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    pub out: PathBuf,
    pub clients: usize,
    pub netns: Option<Netns>,
    /// Mean time between two Heat faults.
    pub heat_period: Duration,
    /// The run is a violation if fewer faults took effect, or a kind was never drawn.
    pub min_faults: u64,
    /// Full, slow and stalled disks (off with `--no-disk-faults`, or without namespaces).
    pub disk_faults: bool,
}

/// What the nemesis and the checkers share.
#[derive(Clone)]
pub struct Shared {
    pub disk_faults: bool,
    /// The control file of `slowsync.c` (empty: no flush slowed).
    pub slow_sync: PathBuf,
    pub rec: Recorder,
    pub client: ConductorClient,
    pub shards: u32,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub duration_s: u64,
    pub faults_injected: u64,
    pub faults_by_kind: BTreeMap<String, u64>,
    pub operations: BTreeMap<String, BTreeMap<String, u64>>,
    pub checks: BTreeMap<String, Value>,
    pub violations: Vec<String>,
    pub replay: String,
    pub wall_s: u64,
}

pub async fn run(cfg: &Config) -> Summary {
    let began = Instant::now();
    std::fs::create_dir_all(&cfg.out).unwrap_or_default();
    let sink = cfg.out.join("notifications.jsonl");
    let _ = std::fs::remove_file(&sink);
    let opts = Options {
        shards: SHARDS,
        poll_ms: 300,
        time_scale: 0.05,
        failpoint_files: true,
        // Orphans are looked for 3 s after a delete (then at doubling ages), so the end check
        // sees the reaper's work within its wait.
        raft_args: format!(
            "--orphan-stack-grace-secs 3 --notification-sink file:{}",
            sink.display()
        ),
        netns: cfg.netns.clone(),
        ..Options::default()
    };
    let d = Arc::new(tokio::task::block_in_place(|| {
        Deployment::up("chaos", opts)
    }));
    println!("chaos: deployment up in {}", d.dir.display());
    let rec = Recorder::new(Instant::now());
    let shared = Shared {
        disk_faults: cfg.disk_faults,
        slow_sync: cfg.out.join(SLOW_SYNC_CONTROL),
        rec: rec.clone(),
        client: d.conductor_client(),
        shards: SHARDS,
    };
    let mut projects = Vec::new();
    for (user, project) in PROJECTS {
        let token = d.token(user, project).await;
        let (s, v) = d
            .call(
                reqwest::Method::POST,
                "/clustertemplates",
                Some(&token),
                Some(template_body(&format!("chaos-{project}"))),
            )
            .await;
        assert_eq!(s, 201, "template: {v}");
        projects.push(Project {
            name: project.into(),
            user: user.into(),
            token: Arc::new(std::sync::Mutex::new(token)),
            template: v["uuid"].as_str().unwrap_or_default().to_string(),
        });
    }
    // Fresh tokens well before the old ones expire (an hour): a soak outlives them.
    let refresher = {
        let (d, projects) = (d.clone(), projects.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TOKEN_REFRESH).await;
                for p in &projects {
                    let t = d.token(&p.user, &p.name).await;
                    *p.token.lock().unwrap_or_else(|e| e.into_inner()) = t;
                }
            }
        })
    };
    let prefix = format!("c{}", cfg.seed % 100_000);
    let wl = Workload::new(d.api.clone(), rec.clone(), prefix.clone(), projects);

    let mut process = Nemesis::new(d.clone(), shared.clone(), cfg.seed);
    if cfg.disk_faults {
        if let Err(e) = process.own_filesystems().await {
            panic!("could not give the conductors filesystems of their own: {e}");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..cfg.clients)
        .map(|i| tokio::spawn(wl.clone().client(i, cfg.seed, stop.clone())))
        .collect();
    let mut heat = Nemesis::new(d.clone(), shared.clone(), cfg.seed ^ 1);
    heat.ledger = process.ledger.clone();
    let faults_stop = Arc::new(AtomicBool::new(false));
    let p_task = {
        let s = faults_stop.clone();
        tokio::spawn(async move {
            process.run_process_faults(s).await;
            process
        })
    };
    let h_task = {
        let (s, period) = (faults_stop.clone(), cfg.heat_period);
        tokio::spawn(async move {
            heat.run_heat_faults(s, period).await;
            heat
        })
    };
    tokio::time::sleep(cfg.duration).await;
    faults_stop.store(true, Ordering::SeqCst);
    let process = p_task.await.ok();
    let heat = h_task.await.ok();
    let heat_fired = match &heat {
        Some(h) => h.heat_fired().await,
        None => 0,
    };
    if let Some(p) = &process {
        p.heal().await;
    }
    println!("chaos: faults stopped after {:?}; healing", began.elapsed());
    // A little fault-free work, then the clients stop.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        let _ = c.await;
    }

    let supervisor_stop = Arc::new(AtomicBool::new(false));
    let supervisor = tokio::spawn(nemesis::supervise(d.clone(), supervisor_stop.clone()));
    let mut checks = BTreeMap::new();
    let mut violations = Vec::new();
    let ctx = checks::Ctx {
        d: &d,
        wl: &wl,
        sink: &sink,
    };
    ctx.run_all(&mut checks, &mut violations).await;
    supervisor_stop.store(true, Ordering::SeqCst);
    let _ = supervisor.await;

    let ops = rec.ops();
    let _ = history::write_jsonl(&cfg.out.join("history.jsonl"), &ops);
    let (ledger, probes, answers, seen_by_faults) = match &process {
        Some(p) => {
            let l = p.ledger.lock().unwrap_or_else(|e| e.into_inner());
            let a = l.minority_answers.clone();
            (l.events.clone(), l.minority_probes, a, l.violations.clone())
        }
        None => Default::default(),
    };
    checks.insert(
        "minority".into(),
        json!({"probes": probes, "answers": answers,
               "served": seen_by_faults.iter().filter(|v| v.contains("served")).count()}),
    );
    violations.extend(seen_by_faults);
    let _ = std::fs::write(
        cfg.out.join("faults.json"),
        serde_json::to_string_pretty(&ledger).unwrap_or_default(),
    );
    // Counted: process-level faults that took effect, and Heat faults that fired.
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut heat_posted = 0u64;
    for e in &ledger {
        if e.kind.starts_with("heat_") {
            heat_posted += 1;
        } else if !e.note.is_empty() {
            continue;
        }
        *by_kind.entry(e.kind.clone()).or_default() += 1;
    }
    let process_faults: u64 = by_kind
        .iter()
        .filter(|(k, _)| !k.starts_with("heat_"))
        .map(|(_, n)| n)
        .sum();
    let drawn: std::collections::BTreeSet<&str> = ledger.iter().map(|e| e.kind.as_str()).collect();
    let kinds = nemesis::PROCESS_FAULTS
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| cfg.disk_faults || !k.starts_with("disk_"));
    let missing: Vec<&str> = kinds
        .chain(Nemesis::HEAT_FAULTS)
        .filter(|k| !drawn.contains(k))
        .collect();
    let narrowed = std::env::var_os("MAGNUM_CHAOS_FAULTS").is_some()
        || std::env::var("MAGNUM_CHAOS_HEAT").is_ok_and(|v| v == "0");
    if !missing.is_empty() && !narrowed {
        violations.push(format!("fault kinds never injected: {missing:?}"));
    }
    if process_faults + heat_fired < cfg.min_faults {
        violations.push(format!(
            "only {} faults took effect; the run asks for {}",
            process_faults + heat_fired,
            cfg.min_faults
        ));
    }
    checks.insert(
        "faults".into(),
        json!({"heat_posted": heat_posted, "heat_fired": heat_fired, "process_level": process_faults,
               "not_taking_effect": ledger.iter().filter(|e| !e.note.is_empty()).count()}),
    );
    let summary = Summary {
        seed: cfg.seed,
        duration_s: cfg.duration.as_secs(),
        faults_injected: process_faults + heat_fired,
        faults_by_kind: by_kind,
        operations: workload::tally(&ops),
        checks,
        violations,
        replay: format!(
            "chaos-tests/run.sh --seed {} --duration-s {}{} OUTDIR",
            cfg.seed,
            cfg.duration.as_secs(),
            if cfg.disk_faults {
                ""
            } else {
                " --no-disk-faults"
            }
        ),
        wall_s: began.elapsed().as_secs(),
    };
    let _ = std::fs::write(
        cfg.out.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    );
    if !summary.violations.is_empty() {
        // Keep the deployment's logs next to the history for the post-mortem.
        let _ = std::process::Command::new("cp")
            .args(["-r"])
            .arg(d.dir.join("logs"))
            .arg(cfg.out.join("logs"))
            .status();
    }
    tokio::task::block_in_place(|| d.down());
    refresher.abort();
    Nemesis::release_filesystems(&d);
    summary
}

pub fn template_body(name: &str) -> Value {
    json!({
        "name": name, "coe": "kubernetes", "image_id": "fedora-coreos-40",
        "external_network_id": "public", "flavor_id": "m1.small", "master_flavor_id": "m1.small",
        "keypair_id": "default", "network_driver": "flannel"
    })
}
