//! The deployment's processes as the nemesis handles them: pids from `local-cluster.sh`'s pid
//! files, signals, restarts, and the commands that make faults (`nft`, `dd`, `mount`).
use super::CONDUCTORS;
use crate::Deployment;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

pub(super) async fn blocking(f: impl FnOnce() + Send + 'static) {
    let _ = tokio::task::spawn_blocking(f).await;
}

pub(super) fn pid_of_name(d: &Deployment, name: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(d.dir.join(format!("{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // A zombie or a reused pid of another program is not ours.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    (!stat.contains(") Z ")).then_some(pid)
}

pub(super) fn pid_of(d: &Deployment, n: u64) -> Option<u32> {
    pid_of_name(d, &format!("conductor-{n}"))
}

/// The state letter of a process (`T` = stopped), from /proc.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Sends `sig` to conductor `n` if it runs; after KILL, waits until it is gone.
pub(super) fn signal(d: &Deployment, n: u64, sig: &str) {
    let Some(pid) = pid_of(d, n) else { return };
    let _ = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status();
    if sig == "KILL" {
        wait_gone(pid);
        let _ = std::fs::remove_file(d.dir.join(format!("conductor-{n}.pid")));
    }
}

pub(super) fn kill_pid_file(d: &Deployment, name: &str) {
    if let Some(pid) = pid_of_name(d, name) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        wait_gone(pid);
        let _ = std::fs::remove_file(d.dir.join(format!("{name}.pid")));
    }
}

pub(super) fn wait_gone(pid: u32) {
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
pub(super) fn fill(d: &Deployment, n: u64) -> (u64, String) {
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

pub(super) fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

pub(super) fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
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
pub(super) fn nft(ns: &str, rule: &str) -> Result<(), String> {
    let mut args = vec!["netns", "exec", ns, "nft"];
    args.extend(rule.split_whitespace());
    run("ip", &args)
}
