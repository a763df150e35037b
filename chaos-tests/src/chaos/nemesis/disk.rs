//! Disk faults: each conductor's data dir on a filesystem of its own (tmpfs), filled by a
//! ballast file; and slow or stalled flushes (`slowsync.c`, loaded into every process of a run).
use super::procs::{fill, path, pid_of, run};
use super::{Nemesis, CONDUCTORS};
use crate::{repo_root, Deployment};
use magnum_proto::{NodeId, RequestId, ShardCommand, ShardId, ShardRequest};
use rand::Rng;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Builds the slow-flush shim into `out` and makes an empty control file beside it: the
/// values of `LD_PRELOAD` and `MAGNUM_SLOW_SYNC` for the run's processes.
pub fn build_slow_sync(out: &Path) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let shim = out.join("slowsync.so");
    let src = repo_root().join("chaos-tests/slowsync.c");
    run(
        "gcc",
        &[
            "-shared",
            "-fPIC",
            "-O2",
            "-o",
            &path(&shim),
            &path(&src),
            "-ldl",
        ],
    )?;
    let control = out.join(crate::chaos::SLOW_SYNC_CONTROL);
    std::fs::write(&control, "").map_err(|e| e.to_string())?;
    Ok((shim, control))
}

/// Each conductor's data dir is its own filesystem of this size (tmpfs), so one can fill up.
const DATA_FS: &str = "size=256m";

impl Nemesis {
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
    pub(super) async fn disk_full(&mut self, hold: Duration) -> (String, String) {
        if let Some(skipped) = self.no_disks() {
            return skipped;
        }
        let n = self.pick_target().await;
        let (size, note) = fill(&self.d, n);
        tokio::time::sleep(hold).await;
        let _ = std::fs::remove_file(self.d.conductor_dir(n).join("ballast"));
        (format!("conductor-{n} ({size} bytes taken)"), note)
    }

    /// Without private hosts the data dirs are not the run's own: no disk fault.
    fn no_disks(&self) -> Option<(String, String)> {
        self.d.opts.netns.is_none().then(|| {
            (
                "none".into(),
                "no private hosts: disk faults skipped".into(),
            )
        })
    }

    /// Every flush under conductor `n`'s data dir takes `ms`, until `flushes_back`.
    fn slow_flushes(&self, n: u64, ms: u64) {
        let line = format!("{}/ {ms}\n", path(&self.d.conductor_dir(n)));
        let _ = std::fs::write(&self.shared.slow_sync, line);
    }

    /// Clears any slowed flushes (healing).
    pub(super) fn flushes_back(&self) {
        let _ = std::fs::write(&self.shared.slow_sync, "");
    }

    /// A conductor's disk turns slow: each flush (fsync, fdatasync, sync_file_range) under its
    /// data dir takes 0.2–2 s, for the hold.
    pub(super) async fn disk_slow(&mut self, hold: Duration) -> (String, String) {
        if let Some(skipped) = self.no_disks() {
            return skipped;
        }
        let n = self.pick_target().await;
        let ms = self.rng.gen_range(200..2000);
        self.slow_flushes(n, ms);
        tokio::time::sleep(hold).await;
        self.flushes_back();
        (format!("conductor-{n} ({ms} ms a flush)"), String::new())
    }

    /// A shard leader's disk stalls (a flush takes a minute) while a write goes to it: its
    /// disk-stall detection must end the process within 20 s of watching the flush, for its
    /// supervisor to restart it. A conductor still running after 40 s is a violation: it would
    /// hold its groups back for as long as the disk stays stalled.
    pub(super) async fn disk_stall(&mut self) -> (String, String) {
        if let Some(skipped) = self.no_disks() {
            return skipped;
        }
        let shard = ShardId(self.rng.gen_range(0..self.shared.shards));
        let Ok(Some(NodeId(n))) = self.shared.client.leader_of(shard).await else {
            return ("none".into(), "no leader found".into());
        };
        let pid = pid_of(&self.d, n);
        self.slow_flushes(n, 60_000);
        let lives_on = self
            .write_and_await_exit(shard, n, pid, "disk-stall", Duration::from_secs(40))
            .await;
        self.flushes_back();
        let target = format!("conductor-{n}, leader of shard {}", shard.0);
        if lives_on {
            let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.violations.push(format!(
                "{target}: still running 40 s after its flushes stalled (no stall detection)"
            ));
            return (
                target,
                "still running 40 s after its flushes stalled".into(),
            );
        }
        (target, String::new())
    }

    /// A shard leader's disk fills while a write goes to it: the conductor must exit (its
    /// supervisor restarts it), not live on with a halted replica (which the replica check at
    /// the end would find).
    pub(super) async fn disk_full_leader(&mut self) -> (String, String) {
        if let Some(skipped) = self.no_disks() {
            return skipped;
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
        let lives_on = self
            .write_and_await_exit(shard, n, pid, "disk-full", Duration::from_secs(10))
            .await;
        // A replica halted in a live process shows in the end check of the replicas.
        if lives_on {
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

    /// Writes a canary to `shard` (led by conductor `n`, process `pid`), so that its leader
    /// has a flush to do, and waits up to `wait` for that process to end; true if it lives on.
    async fn write_and_await_exit(
        &self,
        shard: ShardId,
        n: u64,
        pid: Option<u32>,
        key: &str,
        wait: Duration,
    ) -> bool {
        let write = ShardRequest {
            request_id: Some(RequestId::new_v4()),
            command: ShardCommand::Canary {
                key: key.into(),
                value: self.shared.rec.now().to_string(),
            },
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.shared.client.command(shard, &write),
        )
        .await;
        let deadline = Instant::now() + wait;
        while pid.is_some() && pid_of(&self.d, n) == pid && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pid.is_some() && pid_of(&self.d, n) == pid
    }
}
