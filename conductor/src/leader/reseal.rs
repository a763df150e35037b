//! Sealing-key rotation, the shard leader's side: while this conductor holds previous sealing
//! keys (`--previous-cert-key-file`), find the shard's values that only a previous key opens
//! and propose them sealed under the primary key (`ShardCommand::Reseal`, applied by
//! `shard/reseal.rs` as a compare and swap). What is left is published per shard
//! ([`ResealStatus`], `magnum_sealed_under_previous_key` on `/metrics`): once it reads 0 on
//! every shard, the previous key can go.
use crate::pki::sealing::{CertKey, Sealing};
use crate::propose::{ProposeError, ShardLeader};
use crate::shard::reseal::sealed_values;
use magnum_proto::version::{min_version, Kind};
use magnum_proto::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Pause between passes once nothing is left (a value written under a previous key by a
/// conductor not restarted yet is found by the next pass).
const PASS_EVERY: Duration = Duration::from_secs(30);
/// Clusters read per lock of the shard state: the scan never holds it for long.
const SCAN_PAGE: usize = 256;
/// Values per proposal: sealed RSA keys are ~2–3 KiB each.
const BATCH: usize = 64;

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
        let mut again = false;
        if leader.active().get() >= needs {
            let (todo, pass) = scan(&leader, &key);
            status.set(group, Some(pass));
            match propose(&leader, epoch, todo).await {
                Ok(0) => {}
                Ok(n) => {
                    info!(group, values = n, "re-sealed under the primary sealing key");
                    // Scan again at once, so the published count reaches 0 without a pause.
                    again = true;
                }
                Err(Stop) => break,
            }
            if pass.unopenable > 0 {
                warn!(
                    group,
                    values = pass.unopenable,
                    "sealed values that no configured sealing key opens"
                );
            }
        }
        if !again {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(PASS_EVERY) => {}
            }
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    status.set(group, None);
}

/// Leadership is gone: stop.
struct Stop;

async fn propose(leader: &ShardLeader, epoch: u64, todo: Vec<Resealed>) -> Result<usize, Stop> {
    let mut done = 0;
    for chunk in todo.chunks(BATCH) {
        let cmd = ShardCommand::Reseal {
            epoch,
            secrets: chunk.to_vec(),
        };
        match leader.propose(cmd).await {
            Ok(_) => done += chunk.len(),
            Err(ProposeError::NotLeader { .. })
            | Err(ProposeError::Rejected(CommandError::StaleEpoch { .. })) => return Err(Stop),
            Err(e) => {
                warn!(error = %e, "re-seal not recorded; the next pass retries");
                break;
            }
        }
    }
    Ok(done)
}

/// Every value of the shard that only a previous key opens, re-sealed; a page of clusters per
/// read of the state, the crypto outside it.
fn scan(leader: &ShardLeader, key: &CertKey) -> (Vec<Resealed>, Pass) {
    let mut todo = Vec::new();
    let mut pass = Pass::default();
    let mut after: Option<ClusterId> = None;
    loop {
        let page: Vec<(ClusterId, Vec<(SealedField, String)>)> = leader.group().read_local(|l| {
            let rows = l.state.rows();
            let from = after.map_or(Bound::Unbounded, Bound::Excluded);
            rows.clusters()
                .range((from, Bound::Unbounded))
                .take(SCAN_PAGE)
                .map(|(id, _)| {
                    let values = sealed_values(rows, *id)
                        .into_iter()
                        .map(|(f, v)| (f, v.to_string()))
                        .collect();
                    (*id, values)
                })
                .collect()
        });
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(*last);
        for (cluster, values) in page {
            for (field, from) in values {
                match key.sealing(&from) {
                    Sealing::Current => {}
                    Sealing::Unopenable => pass.unopenable += 1,
                    Sealing::Previous => {
                        if let Some(to) = key.reseal(&from) {
                            pass.previous += 1;
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
    }
    (todo, pass)
}
