//! Sealing-key rotation, the shard leader's side: while this conductor holds previous sealing
//! keys (`--previous-cert-key-file`), find the shard's values that only a previous key opens
//! and propose them sealed under the primary key (`ShardCommand::Reseal`, applied by
//! `shard/reseal.rs` as a compare and swap). What is left is published per shard
//! ([`ResealStatus`], `magnum_sealed_under_previous_key` on `/metrics`): once it reads 0 on
//! every shard, the previous key can go.
use crate::pki::sealing::{CertKey, Sealing};
use crate::propose::{ProposeError, ShardLeader};
use crate::shard::persist::stored_certs;
use crate::shard::reseal::{sealed_cert_values, sealed_row_values};
use magnum_proto::version::{min_version, Kind};
use magnum_proto::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Pause between passes (a value a conductor not restarted yet seals under a previous key
/// meanwhile is found by the next one).
const PASS_EVERY: Duration = Duration::from_secs(30);
/// Clusters read per lock of the shard state: the scan never holds it for long.
const SCAN_PAGE: usize = 256;
/// Values per proposal: sealed RSA keys are ~2–3 KiB each.
const BATCH: usize = 64;

/// Sealed values copied out of the state (read under its lock, checked after it).
fn owned(values: Vec<(SealedField, &str)>) -> Vec<(SealedField, String)> {
    values
        .into_iter()
        .map(|(f, v)| (f, v.to_string()))
        .collect()
}

/// What each shard this node leads has left to re-seal, for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct ResealStatus(Arc<Mutex<BTreeMap<u64, Pass>>>);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Values only a previous key opens.
    pub previous: usize,
    /// Values no key of this conductor opens (sealed under a key it was never given).
    pub unopenable: usize,
}

impl ResealStatus {
    fn set(&self, group: u64, p: Option<Pass>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match p {
            Some(p) => m.insert(group, p),
            None => m.remove(&group),
        };
    }

    /// Per Raft group (shard group id) this node leads and has scanned.
    pub fn get(&self) -> BTreeMap<u64, Pass> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Prometheus text.
    pub fn text(&self) -> String {
        type Gauge = (&'static str, &'static str, fn(&Pass) -> usize);
        const GAUGES: [Gauge; 2] = [
            (
                "magnum_sealed_under_previous_key",
                "Sealed values of a shard this conductor leads that only a previous sealing key opens.",
                |p| p.previous,
            ),
            (
                "magnum_sealed_unopenable",
                "Sealed values of a shard this conductor leads that none of its sealing keys opens.",
                |p| p.unopenable,
            ),
        ];
        let mut out = String::new();
        let passes = self.get();
        if passes.is_empty() {
            return out;
        }
        for (name, help, value) in GAUGES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (g, p) in &passes {
                let _ = writeln!(out, "{name}{{group=\"{g}\"}} {}", value(p));
            }
        }
        out
    }
}

/// Runs while this node leads the shard (`cancel`); only if it holds previous keys.
pub async fn run(
    leader: ShardLeader,
    key: CertKey,
    status: ResealStatus,
    epoch: u64,
    cancel: CancellationToken,
) {
    if !key.has_previous() {
        return;
    }
    let group = leader.group().id();
    let needs = min_version(Kind::Shard(&ShardCommand::Reseal {
        epoch,
        secrets: Vec::new(),
    }));
    loop {
        if leader.active().get() >= needs {
            match pass(&leader, &key, epoch).await {
                Ok((found, resealed)) => {
                    // What is left: what the pass found, less what it re-sealed (a value a
                    // conductor not restarted yet seals under a previous key meanwhile is
                    // found by the next pass).
                    let left = Pass {
                        previous: found.previous - resealed,
                        unopenable: found.unopenable,
                    };
                    status.set(group, Some(left));
                    if resealed > 0 {
                        info!(
                            group,
                            values = resealed,
                            "re-sealed under the primary sealing key"
                        );
                    }
                    if found.unopenable > 0 {
                        warn!(
                            group,
                            values = found.unopenable,
                            "sealed values that no configured sealing key opens"
                        );
                    }
                }
                Err(Stop) => break,
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(PASS_EVERY) => {}
        }
    }
    status.set(group, None);
}

/// Leadership is gone: stop.
struct Stop;

/// One pass over the shard, a page of clusters at a time: read the page's sealed values (the
/// state locked only for that), re-seal those only a previous key opens, propose them, go on.
/// Memory stays one page whatever the shard's size. Returns what it found and how many values
/// it re-sealed (a failed proposal is left to the next pass).
async fn pass(leader: &ShardLeader, key: &CertKey, epoch: u64) -> Result<(Pass, usize), Stop> {
    let mut found = Pass::default();
    let mut resealed = 0;
    let mut after: Option<ClusterId> = None;
    let stored = leader.group().stored();
    loop {
        // Rows in memory under the lock, certificates (stored rows) read after it.
        let mut page: Vec<(ClusterId, Vec<(SealedField, String)>)> =
            leader.group().read_local(|l| {
                let rows = l.state.rows();
                let from = after.map_or(Bound::Unbounded, Bound::Excluded);
                rows.clusters()
                    .range((from, Bound::Unbounded))
                    .take(SCAN_PAGE)
                    .map(|(id, _)| (*id, owned(sealed_row_values(rows, *id))))
                    .collect()
            });
        let Some((last, _)) = page.last() else {
            return Ok((found, resealed));
        };
        after = Some(*last);
        for (cluster, values) in &mut page {
            match stored_certs(&stored, *cluster) {
                Ok(c) => values.extend(owned(sealed_cert_values(c.as_ref()))),
                // Counted as unopenable: the previous key must not look safe to drop.
                Err(e) => {
                    found.unopenable += 1;
                    warn!(%cluster, error = %e, "certificates unreadable; not re-sealed");
                }
            }
        }
        let mut todo = Vec::new();
        for (cluster, values) in page {
            for (field, from) in values {
                match key.sealing(&from) {
                    Sealing::Current => {}
                    Sealing::Unopenable => found.unopenable += 1,
                    Sealing::Previous => {
                        if let Some(to) = key.reseal(&from) {
                            found.previous += 1;
                            todo.push(Resealed {
                                cluster,
                                field,
                                from,
                                to,
                            });
                        }
                    }
                }
            }
        }
        for chunk in todo.chunks(BATCH) {
            let cmd = ShardCommand::Reseal {
                epoch,
                secrets: chunk.to_vec(),
            };
            match leader.propose(cmd).await {
                Ok(_) => resealed += chunk.len(),
                Err(ProposeError::NotLeader { .. })
                | Err(ProposeError::Rejected(CommandError::StaleEpoch { .. })) => return Err(Stop),
                Err(e) => warn!(error = %e, "re-seal not recorded; the next pass retries"),
            }
        }
    }
}
