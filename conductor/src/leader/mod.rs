//! What runs on a shard's leader, and only there: the ownership session (`ownership`: commit a
//! new epoch, then run the rest under it), the operations' reconciler, status sync and health
//! polling (`sync`), delivery of the notification outbox (`notify`), the one-time repairs a
//! finalized cluster version brings (`migrate`), re-sealing under a rotated sealing key
//! (`reseal`), and the orphan-stack reaper (`reap`). Each fenced by the epoch, each stopped as soon
//! as leadership is lost.
//!
//! Depends on `shard` (the state it proposes to), `cloud` (Heat and Keystone) and `pki`; nothing
//! here knows membership or the internal service.
use crate::pki::sealing::CertKey;
use notify::Notifier;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub mod migrate;
pub mod notify;
pub(crate) mod ownership;
pub mod reap;
pub mod reconciler;
pub mod reseal;
pub mod sync;

/// How the shard leader's loops pace themselves and where their side effects go.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Heat status poll interval (Magnum: 10 s).
    pub poll: Duration,
    /// How often the shard is scanned for operations without a worker.
    pub scan: Duration,
    pub max_backoff: Duration,
    /// Status sync of clusters with no operation (`sync.rs`; Magnum: 10 s).
    pub sync: Duration,
    /// How often sync looks at a finished cluster's stack that nothing moved lately (rows
    /// unchanged this long, stack settled); zero: every round. Upstream never does.
    pub idle_sync: Duration,
    /// A cluster left `*_IN_PROGRESS` by Heat (no operation) this long is failed by the conductor.
    pub stalled_after: Duration,
    /// Health polling (`health.rs`; Magnum: 60 s). Zero disables it.
    pub health: Duration,
    /// Where a cluster's Kubernetes API is reached, `{stack_id}`/`{cluster_uuid}` substituted
    /// (e.g. cloud-sim's simulated endpoints); `None` uses the cluster's `api_address`.
    pub cluster_api_url: Option<String>,
    /// Seals the private keys the reconciler generates (`--cert-key-file`), and opens what
    /// previous keys sealed (`--previous-cert-key-file`).
    pub cert_key: CertKey,
    /// What the shards this node leads have left to re-seal under the primary key.
    pub reseal: reseal::ResealStatus,
    /// Where the shard's CADF notifications are delivered.
    pub notifier: Notifier,
    /// How long after a cluster's delete the reaper first looks for orphan stacks under its
    /// stack names (`reap.rs`); zero disables the reaper.
    pub reap_grace: Duration,
    /// How long a deleted cluster's stack names are watched.
    pub reap_retention: Duration,
    /// The reaper's counters, for `/metrics`.
    pub reap_stats: reap::ReapStats,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            scan: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            sync: Duration::from_secs(10),
            idle_sync: Duration::from_secs(900),
            stalled_after: Duration::from_secs(3600),
            health: Duration::from_secs(60),
            cluster_api_url: None,
            cert_key: CertKey::process_ephemeral(),
            reseal: Default::default(),
            notifier: Notifier::default(),
            reap_grace: Duration::from_secs(60),
            reap_retention: Duration::from_secs(24 * 3600),
            reap_stats: Default::default(),
        }
    }
}

/// Sleeps `d` unless `cancel` fires first; false when cancelled.
pub(crate) async fn pause(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}
