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
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            // Measured on 3 local conductors: SIGKILL of a shard leader → first committed write
            // ~1.3 s with 500–700 ms (followers also wait out the dead leader's lease, which is
            // `election_max`), ~3 s with 800–1600 ms. Five to seven missed heartbeats still
            // separate a slow follower from a dead leader.
            election_min_ms: 500,
            election_max_ms: 700,
            snapshot_logs_since_last: 5000,
            vote_audit: false,
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
