//! `chaos-tests/run.sh` runs this. See chaos-tests/README.md, "The chaos suite".
//!
//!   chaos --bounded OUTDIR              the CI run (5 minutes of faults, at least 500)
//!   chaos --soak MINUTES OUTDIR         as long as asked
//!   chaos --duration-s S OUTDIR         any length
//!   chaos --check OUTDIR/history.jsonl  re-check a recorded history offline
//! Options: --seed N (default: from the clock), --clients N (default 6), --no-netns (conductors
//! share loopback: no partitions nor disk faults), --no-disk-faults (no full, slow or stalled
//! disks: each data dir is then not its own tmpfs, and no process loads `slowsync.c`). Exit
//! status 1 on any violation, with the replay command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_chaos_tests::chaos::{self, history, linear, Config};
use magnum_chaos_tests::{repo_root, Netns};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

const BOUNDED: Duration = Duration::from_secs(300);
/// Faults a bounded run must inject (issue 13).
const BOUNDED_MIN_FAULTS: u64 = 500;
/// Set in the re-executed child: `PREFIX:SUBNET` of the namespaces its parent made.
const NETNS_ENV: &str = "MAGNUM_CHAOS_NETNS";

fn usage() -> ExitCode {
    eprintln!("usage: chaos (--bounded OUTDIR | --soak MINUTES OUTDIR | --duration-s S OUTDIR | --check HISTORY) [--seed N] [--clients N] [--no-netns] [--no-disk-faults]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seed = None;
    let mut clients = 6;
    let mut netns = true;
    let mut mode: Option<(Duration, PathBuf)> = None;
    let mut min_faults = 0;
    let mut disk_faults = true;
    let mut i = 0;
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    while i < args.len() {
        match args[i].as_str() {
            "--bounded" => {
                mode = Some((BOUNDED, PathBuf::from(arg(i + 1))));
                min_faults = BOUNDED_MIN_FAULTS;
                i += 1;
            }
            "--soak" => {
                let Ok(m) = arg(i + 1).parse::<u64>() else {
                    return usage();
                };
                mode = Some((Duration::from_secs(m * 60), PathBuf::from(arg(i + 2))));
                i += 2;
            }
            "--duration-s" => {
                let Ok(s) = arg(i + 1).parse::<u64>() else {
                    return usage();
                };
                mode = Some((Duration::from_secs(s), PathBuf::from(arg(i + 2))));
                i += 2;
            }
            "--check" => return check(&PathBuf::from(arg(i + 1))),
            "--seed" => {
                let Ok(s) = arg(i + 1).parse() else {
                    return usage();
                };
                seed = Some(s);
                i += 1;
            }
            "--clients" => {
                let Ok(c) = arg(i + 1).parse() else {
                    return usage();
                };
                clients = c;
                i += 1;
            }
            "--no-netns" => netns = false,
            "--no-disk-faults" => disk_faults = false,
            _ => return usage(),
        }
        i += 1;
    }
    let Some((duration, out)) = mode else {
        return usage();
    };
    if out.as_os_str().is_empty() {
        return usage();
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() % 1_000_000)
    });
    match std::env::var(NETNS_ENV) {
        Ok(v) => {
            let (prefix, subnet) = v.split_once(':').expect("PREFIX:SUBNET");
            let ns = Netns {
                prefix: prefix.into(),
                subnet: subnet.into(),
            };
            run(
                seed,
                (duration, min_faults, disk_faults),
                out,
                clients,
                Some(ns),
            )
        }
        Err(_) if netns => in_namespaces(seed),
        Err(_) => run(seed, (duration, min_faults, false), out, clients, None),
    }
}

/// Makes the private hosts, runs this same command inside the hub, and removes them after,
/// whatever the child did.
fn in_namespaces(seed: u64) -> ExitCode {
    let script = repo_root().join("chaos-tests/netns.sh");
    let prefix = format!("mgc{}", std::process::id() % 100_000);
    let subnet = format!("10.{}.{}", 100 + seed % 100, std::process::id() % 250);
    let up = Command::new("bash")
        .arg(&script)
        .args(["up", &prefix, &subnet, "3"])
        .status();
    if !up.is_ok_and(|s| s.success()) {
        let _ = Command::new("bash")
            .arg(&script)
            .args(["down", &prefix])
            .status();
        eprintln!("chaos: could not make network namespaces (root, iproute2 and nftables are needed); --no-netns runs without partitions");
        return ExitCode::from(2);
    }
    let me = std::env::current_exe().expect("own path");
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--seed") {
        args.extend(["--seed".into(), seed.to_string()]);
    }
    let status = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-hub")])
        .arg(me)
        .args(&args)
        .env(NETNS_ENV, format!("{prefix}:{subnet}"))
        .status();
    let _ = Command::new("bash")
        .arg(&script)
        .args(["down", &prefix])
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1)),
        Err(e) => {
            eprintln!("chaos: ip netns exec: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(
    seed: u64,
    (duration, min_faults, disk_faults): (Duration, u64, bool),
    out: PathBuf,
    clients: usize,
    netns: Option<Netns>,
) -> ExitCode {
    let cfg = Config {
        seed,
        duration,
        out: out.clone(),
        clients,
        netns,
        // About 600 Heat faults posted in a bounded run, ~90% of them meeting a Heat call:
        // with ~100 process-level faults, well over the 500 asked for (at 500 ms: 522, seed
        // 540609, too close).
        heat_period: Duration::from_millis(400),
        min_faults,
        disk_faults,
    };
    println!(
        "chaos: seed {seed}, {}s of faults, {clients} clients, private hosts: {}",
        duration.as_secs(),
        cfg.netns.is_some()
    );
    if cfg.disk_faults {
        // Every process of the run (the conductors among them) gets the slow-flush shim,
        // before any thread exists.
        match chaos::nemesis::build_slow_sync(&out) {
            Ok((shim, control)) => {
                std::env::set_var("LD_PRELOAD", shim);
                std::env::set_var("MAGNUM_SLOW_SYNC", control);
            }
            Err(e) => {
                eprintln!("chaos: the slow-disk shim (chaos-tests/slowsync.c): {e}");
                return ExitCode::from(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let summary = rt.block_on(chaos::run(&cfg));
    println!(
        "chaos: {} faults injected {:?}; operations {:?}; {} violations; summary in {}",
        summary.faults_injected,
        summary.faults_by_kind,
        summary.operations,
        summary.violations.len(),
        out.join("summary.json").display()
    );
    if summary.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        for v in &summary.violations {
            println!("VIOLATION {v}");
        }
        println!("chaos: seed {seed}; replay: {}", summary.replay);
        ExitCode::from(1)
    }
}

/// Re-checks a recorded history's linearizability.
fn check(path: &std::path::Path) -> ExitCode {
    let ops = match history::read_jsonl(path) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let mut by_object: std::collections::BTreeMap<String, Vec<history::Op>> = Default::default();
    for op in ops {
        by_object.entry(op.object.clone()).or_default().push(op);
    }
    let mut bad = 0;
    for (object, h) in &by_object {
        match linear::check(h) {
            linear::Verdict::Linearizable => {}
            v => {
                bad += 1;
                println!("{object}: {v:?}");
            }
        }
    }
    println!("{} objects, {bad} not linearizable", by_object.len());
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
