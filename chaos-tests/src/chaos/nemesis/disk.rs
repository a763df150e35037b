//! Disk faults: each conductor's data dir on a filesystem of its own (tmpfs), filled by a
//! ballast file.
use super::procs::{fill, path, pid_of, run};
use super::{Nemesis, CONDUCTORS};
use crate::Deployment;
use magnum_proto::{NodeId, ShardId};
use std::time::{Duration, Instant};

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
    pub(super) async fn disk_full_leader(&mut self) -> (String, String) {
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
}
