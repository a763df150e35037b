//! Prometheus metrics of one node's groups (text format 0.0.4). This crate only collects and
//! renders them ([`crate::RaftNode::metrics_text`]); the application serves the page.
//!
//! Gauges describing a group's Raft state are read from openraft's own metrics at scrape time;
//! latencies and counters are recorded where the work happens (storage, network).

use std::future::Future;
use std::time::Instant;

use openraft::errors::Fatal;
use openraft::{RaftMetrics, ServerState};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::error::RaftError;
use crate::types::{GroupId, NodeId, TypeConfig};

/// Content type of [`crate::RaftNode::metrics_text`].
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Storage latencies: a local fsync is ~0.1–20 ms; seconds mean trouble.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5,
];

/// All metric families of a node, registered in its own registry (not the global one), so
/// several nodes in one process (tests) do not mix.
pub(crate) struct Metrics {
    registry: Registry,
    term: IntGaugeVec,
    leader: IntGaugeVec,
    is_leader: IntGaugeVec,
    commit_index: IntGaugeVec,
    applied_index: IntGaugeVec,
    apply_lag: IntGaugeVec,
    last_log_index: IntGaugeVec,
    snapshot_index: IntGaugeVec,
    purged_index: IntGaugeVec,
    halted: IntGaugeVec,
    snapshot_bytes: IntGaugeVec,
    append_seconds: HistogramVec,
    flush_seconds: HistogramVec,
    snapshots_built: IntCounterVec,
    snapshots_installed: IntCounterVec,
    snapshots_sent: IntCounterVec,
    rpc_errors: IntCounterVec,
    prompt_elections: IntCounterVec,
    batches: IntCounterVec,
    batched_rpcs: IntCounterVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGaugeVec, prometheus::Error> {
    let g = IntGaugeVec::new(Opts::new(name, help), &["group"])?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
) -> Result<HistogramVec, prometheus::Error> {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let h = HistogramVec::new(opts, &["group"])?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    pub(crate) fn new() -> Result<Self, RaftError> {
        Self::build().map_err(|e| RaftError::Config(format!("metrics: {e}")))
    }

    fn build() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        Ok(Self {
            term: gauge(&r, "magnum_raft_term", "Current term of this replica.")?,
            leader: gauge(
                &r,
                "magnum_raft_leader",
                "Node id of the leader this replica knows, -1 if none.",
            )?,
            is_leader: gauge(&r, "magnum_raft_is_leader", "1 if this replica leads.")?,
            commit_index: gauge(
                &r,
                "magnum_raft_commit_index",
                "Last log index known committed here.",
            )?,
            applied_index: gauge(
                &r,
                "magnum_raft_applied_index",
                "Last log index applied to the state machine.",
            )?,
            apply_lag: gauge(
                &r,
                "magnum_raft_apply_lag",
                "Committed but not yet applied entries (commit - applied).",
            )?,
            last_log_index: gauge(&r, "magnum_raft_last_log_index", "Last log index stored.")?,
            snapshot_index: gauge(
                &r,
                "magnum_raft_snapshot_index",
                "Last log index covered by the current snapshot, -1 if none.",
            )?,
            purged_index: gauge(
                &r,
                "magnum_raft_purged_index",
                "Last purged log index, -1 if none.",
            )?,
            halted: gauge(
                &r,
                "magnum_raft_group_halted",
                "1 if this replica stopped on a fatal error (the reason is in its log and status).",
            )?,
            snapshot_bytes: gauge(
                &r,
                "magnum_raft_snapshot_bytes",
                "Size of the last snapshot built or installed here.",
            )?,
            append_seconds: histogram(
                &r,
                "magnum_raft_append_seconds",
                "Log append, from the call until the entries are durable.",
            )?,
            flush_seconds: histogram(
                &r,
                "magnum_raft_flush_seconds",
                "One durable flush of the storage engine.",
            )?,
            snapshots_built: counter(
                &r,
                "magnum_raft_snapshots_built_total",
                "Snapshots built by this replica.",
                &["group"],
            )?,
            snapshots_installed: counter(
                &r,
                "magnum_raft_snapshots_installed_total",
                "Snapshots received from a leader and installed by this replica.",
                &["group"],
            )?,
            snapshots_sent: counter(
                &r,
                "magnum_raft_snapshots_sent_total",
                "Snapshots this replica sent to a follower as leader.",
                &["group"],
            )?,
            rpc_errors: counter(
                &r,
                "magnum_raft_rpc_errors_total",
                "Raft RPCs to a peer that failed (reason: unreachable, network, timeout).",
                &["peer", "rpc", "reason"],
            )?,
            prompt_elections: counter(
                &r,
                "magnum_raft_prompt_elections_total",
                "Pre-votes this replica asked for because its leader was silent past its lease.",
                &["group"],
            )?,
            batches: counter(
                &r,
                "magnum_raft_batches_total",
                "Batches of Raft RPCs (every group's) sent to a peer in one request.",
                &["peer"],
            )?,
            batched_rpcs: counter(
                &r,
                "magnum_raft_batched_rpcs_total",
                "Raft RPCs sent to a peer inside batches.",
                &["peer"],
            )?,
            registry: r,
        })
    }

    /// The handles one group records into.
    pub(crate) fn group(&self, gid: GroupId) -> GroupMetrics {
        let g = gid.to_string();
        let l = [g.as_str()];
        GroupMetrics {
            append: self.append_seconds.with_label_values(&l),
            flush: self.flush_seconds.with_label_values(&l),
            built: self.snapshots_built.with_label_values(&l),
            installed: self.snapshots_installed.with_label_values(&l),
            sent: self.snapshots_sent.with_label_values(&l),
            snapshot_bytes: self.snapshot_bytes.with_label_values(&l),
        }
    }

    pub(crate) fn prompt_election(&self, gid: GroupId) {
        self.prompt_elections
            .with_label_values(&[gid.to_string().as_str()])
            .inc();
    }

    pub(crate) fn batch_sent(&self, peer: NodeId, rpcs: usize) {
        let l = [peer.to_string()];
        let l = [l[0].as_str()];
        self.batches.with_label_values(&l).inc();
        self.batched_rpcs
            .with_label_values(&l)
            .inc_by(u64::try_from(rpcs).unwrap_or(u64::MAX));
    }

    pub(crate) fn rpc_error(&self, peer: NodeId, rpc: &str, reason: &str) {
        self.rpc_errors
            .with_label_values(&[peer.to_string().as_str(), rpc, reason])
            .inc();
    }

    /// Sets the state gauges from the open groups' openraft metrics and renders everything.
    pub(crate) fn render(
        &self,
        groups: &[(GroupId, RaftMetrics<TypeConfig>)],
    ) -> Result<String, RaftError> {
        // Closed groups disappear instead of showing their last values forever.
        for g in [
            &self.term,
            &self.leader,
            &self.is_leader,
            &self.commit_index,
            &self.applied_index,
            &self.apply_lag,
            &self.last_log_index,
            &self.snapshot_index,
            &self.purged_index,
            &self.halted,
        ] {
            g.reset();
        }
        let idx = |i: Option<u64>| i.map_or(-1, to_i64);
        for (gid, m) in groups {
            let g = gid.to_string();
            let l = [g.as_str()];
            let committed = m.local_committed.as_ref().map(|l| l.index());
            let applied = m.last_applied.as_ref().map(|l| l.index());
            self.term.with_label_values(&l).set(to_i64(m.current_term));
            self.leader
                .with_label_values(&l)
                .set(m.current_leader.map_or(-1, to_i64));
            self.is_leader
                .with_label_values(&l)
                .set(i64::from(m.state == ServerState::Leader));
            self.commit_index.with_label_values(&l).set(idx(committed));
            self.applied_index.with_label_values(&l).set(idx(applied));
            let lag = committed.unwrap_or(0).saturating_sub(applied.unwrap_or(0));
            self.apply_lag.with_label_values(&l).set(to_i64(lag));
            self.last_log_index
                .with_label_values(&l)
                .set(idx(m.last_log_index));
            self.snapshot_index
                .with_label_values(&l)
                .set(idx(m.snapshot.as_ref().map(|l| l.index())));
            self.purged_index
                .with_label_values(&l)
                .set(idx(m.purged.as_ref().map(|l| l.index())));
            let halted = matches!(&m.running_state, Err(f) if !matches!(f, Fatal::Stopped));
            self.halted.with_label_values(&l).set(i64::from(halted));
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .map_err(|e| RaftError::Storage(format!("metrics: {e}")))
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Snapshot counters of one replica since its process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    pub built: u64,
    pub installed: u64,
    pub sent: u64,
}

/// Metric handles of one group (label values resolved once).
#[derive(Clone)]
pub(crate) struct GroupMetrics {
    pub(crate) append: Histogram,
    pub(crate) flush: Histogram,
    pub(crate) built: IntCounter,
    pub(crate) installed: IntCounter,
    pub(crate) sent: IntCounter,
    pub(crate) snapshot_bytes: IntGauge,
}

impl GroupMetrics {
    pub(crate) fn snapshot_counts(&self) -> SnapshotCounts {
        SnapshotCounts {
            built: self.built.get(),
            installed: self.installed.get(),
            sent: self.sent.get(),
        }
    }

    /// Awaits a flush and records how long it took.
    pub(crate) async fn flush<F, T>(&self, f: F) -> T
    where
        F: Future<Output = T>,
    {
        let start = Instant::now();
        let out = f.await;
        self.flush.observe(start.elapsed().as_secs_f64());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_state_gauges() {
        let m = Metrics::new().unwrap();
        let g = m.group(3);
        g.built.inc();
        g.append.observe(0.003);
        m.rpc_error(2, "append", "unreachable");
        let text = m.render(&[]).unwrap();
        for want in [
            "magnum_raft_snapshots_built_total{group=\"3\"} 1",
            "magnum_raft_append_seconds_bucket{group=\"3\",le=\"0.005\"} 1",
            "magnum_raft_rpc_errors_total{peer=\"2\",reason=\"unreachable\",rpc=\"append\"} 1",
        ] {
            assert!(text.contains(want), "missing {want} in:\n{text}");
        }
        assert_eq!(g.snapshot_counts().built, 1);
    }
}
