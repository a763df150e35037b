//! Per-process Raft timing and snapshot settings, mapped onto openraft's `Config`.

use std::sync::Arc;

use openraft::SnapshotPolicy;

use crate::error::RaftError;
use crate::types::GroupId;

/// Timing and compaction settings shared by all groups of a node.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// Leader heartbeat interval. Also bounds one append RPC (openraft uses it as the RPC TTL).
    pub heartbeat_ms: u64,
    /// Lower bound of the randomized election timeout.
    pub election_min_ms: u64,
    /// Upper bound of the randomized election timeout; also the leader lease.
    pub election_max_ms: u64,
    /// Build a snapshot once this many entries were applied since the last one. Entries already
    /// in a snapshot are purged, keeping `min(this, 1000)` of them for slightly lagging followers.
    pub snapshot_logs_since_last: u64,
    /// Record every vote change in `vote-audit.log` in the data dir, fsynced before the vote is
    /// stored (crash tests check it with [`crate::vote_audit::check`]). Costs one extra fsync
    /// per vote change.
    pub vote_audit: bool,
    /// Mutual TLS of the Raft listener and of RPCs to peers.
    pub tls: magnum_net::Tls,
    /// Worker threads of the node's Raft runtime (`runtime.rs`).
    pub threads: usize,
    /// A follower whose leader is silent past its lease asks for a pre-vote at once, in its
    /// turn (`failover.rs`); off leaves it to openraft's random election timeout on top of
    /// the lease.
    pub prompt_elections: bool,
    /// A group with nothing to replicate stops heartbeating and ticking on every replica, and
    /// one ping per peer pair carries the leaders' liveness instead (`quiesce.rs`).
    pub quiesce: bool,
    /// A replica whose log or state-machine storage fails to write (disk full, I/O error) ends
    /// the process (exit status [`crate::EXIT_STORAGE_FAILURE`]) instead of halting alone: the
    /// supervisor restarts it and, once the disk takes writes again, it catches up. A halted
    /// replica in a live process would leave its group one failure from unavailable with
    /// nothing to restart it. An apply that the state machine refuses still halts the group
    /// only (a restart would fail at the same index). A flush that has not returned after 20 s
    /// (a stalled disk) ends the process the same way.
    pub exit_on_storage_failure: bool,
    /// The appends, votes and pre-votes of all groups bound for one peer travel in one request
    /// per batch (`network/batch.rs`); off sends each on its own request.
    pub batch: bool,
    /// The batches bound for one peer travel on one long-lived request (`network/stream.rs`)
    /// instead of a request each; only with `batch`.
    pub stream: bool,
    /// The storage engine of a new data dir (one that holds Raft data keeps the engine it
    /// was written with).
    pub engine: Engine,
}

/// A data dir's storage engine (`storage/`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// sled 0.34 (`storage/sled_engine.rs`), in `raft.sled/`: every data dir written before
    /// the wal engine.
    Sled,
    /// Memory plus a write-ahead log with group commit (`storage/wal_engine.rs`), in
    /// `raft.wal/`. The default: all-shards writes 0.53× → 0.75× etcd at 64 clients, 0.37× →
    /// 0.55× at 16 (`benches/results/engine-ab.md`).
    #[default]
    Wal,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sled" => Ok(Self::Sled),
            "wal" => Ok(Self::Wal),
            other => Err(format!("unknown storage engine {other:?} (sled, wal)")),
        }
    }
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            // A follower campaigns only once the dead leader's lease (`election_max`) ran out
            // and then its own timeout fired: 750–900 ms, 7–9 missed heartbeats, after the last
            // contact. Measured over 20 SIGKILLs of a shard leader under load (benches/
            // raft-vs-etcd.sh): unavailability p50 0.9 s, max 1.39 s; 500–700 ms gave p50 1.3 s,
            // max 2.0 s (a second election round), 800–1600 ms ~3 s.
            election_min_ms: 300,
            election_max_ms: 450,
            snapshot_logs_since_last: 5000,
            vote_audit: false,
            tls: magnum_net::Tls::plain(),
            threads: crate::runtime::DEFAULT_RAFT_THREADS,
            prompt_elections: true,
            quiesce: true,
            exit_on_storage_failure: true,
            batch: true,
            stream: true,
            engine: Engine::default(),
        }
    }
}

/// Deadline for sending plus installing one full snapshot.
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 10_000;

impl RaftConfig {
    pub(crate) fn validate(&self) -> Result<(), RaftError> {
        self.to_openraft(0).map(|_| ())
    }

    pub(crate) fn to_openraft(&self, gid: GroupId) -> Result<Arc<openraft::Config>, RaftError> {
        if self.threads == 0 {
            return Err(RaftError::Config("the Raft runtime needs a thread".into()));
        }
        if self.snapshot_logs_since_last == 0 {
            return Err(RaftError::Config(
                "snapshot_logs_since_last must be > 0".into(),
            ));
        }
        let cfg = openraft::Config {
            cluster_name: format!("magnum-raft-g{gid}"),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            // Without this, the 0.10 default (1000) would keep tiny test snapshots from ever
            // purging anything; in production (5000) it is the openraft default.
            max_in_snapshot_log_to_keep: self.snapshot_logs_since_last.min(1000),
            // A follower cut off from its leader (a partition, a pause) asks whether it could
            // win before it raises its term, so rejoining does not depose a healthy leader (as
            // etcd does by default). Every release speaks the pre-vote RPC (protocol v1).
            enable_pre_vote: Some(true),
            // openraft's default `enable_leader_restore` lets a restarted leader resume its
            // old term. Unsafe here: a leader that crashed before flushing entries it had sent
            // to its followers would write others under the same (term, index), and a replica
            // diverges (the chaos suite, seed 540609 with disk faults). Off, a restarted
            // leader is a follower until a new term is won; quiet followers wake for that when
            // its pings stop listing their group (`quiesce::on_ping`).
            enable_leader_restore: Some(false),
            ..Default::default()
        };
        let cfg = cfg
            .validate()
            .map_err(|e| RaftError::Config(e.to_string()))?;
        Ok(Arc::new(cfg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_rejected() {
        RaftConfig::default().validate().unwrap();
        let bad = RaftConfig {
            election_min_ms: 500,
            election_max_ms: 400,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let bad = RaftConfig {
            snapshot_logs_since_last: 0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
