//! openraft log storage (log entries + vote) on a [`KvEngine`](super::engine::KvEngine).
//!
//! Durability: `save_vote`, `truncate_after` and `purge` return only after an engine flush;
//! `append` writes the entries (readable at once) and reports them flushed from a task that
//! awaits the flush, so RaftCore can pipeline the next append meanwhile.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Instant;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use tracing::Instrument;

use super::engine::{KvIter, KvTree, WriteBatch};
use super::{meta_keys, GroupTrees, Store};
use crate::codec;
use crate::metrics::GroupMetrics;
use crate::types::{Entry, GroupId, LogId, TypeConfig, Vote};
use crate::vote_audit::{Event, VoteAudit};

/// Log store of one group; cheap to clone (also serves as its own log reader).
#[derive(Clone)]
pub(crate) struct LogStore {
    store: Arc<Store>,
    gid: GroupId,
    log: Arc<dyn KvTree>,
    meta: Arc<dyn KvTree>,
    metrics: GroupMetrics,
    audit: Option<Arc<VoteAudit>>,
}

/// Log entries removed per engine batch (purge, truncate).
const REMOVE_BATCH: u64 = 1000;

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> io::Result<u64> {
    let arr: [u8; 8] = key
        .try_into()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad log key"))?;
    Ok(u64::from_be_bytes(arr))
}

/// `[start, end)` of a u64 range; `end == None` means unbounded. `None` for an empty range.
fn to_span<RB: RangeBounds<u64>>(range: &RB) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    match end {
        Some(e) if e <= start => None,
        _ => Some((start, end)),
    }
}

impl LogStore {
    pub(crate) fn new(
        store: Arc<Store>,
        gid: GroupId,
        trees: &GroupTrees,
        metrics: GroupMetrics,
        audit: Option<Arc<VoteAudit>>,
    ) -> Self {
        Self {
            store,
            gid,
            log: trees.log.clone(),
            meta: trees.meta.clone(),
            metrics,
            audit,
        }
    }

    /// Records the vote this group starts with in the vote audit, if there is one.
    pub(crate) async fn audit_boot(&self) -> io::Result<()> {
        if let Some(a) = &self.audit {
            let vote: Option<Vote> = self.get_meta(meta_keys::VOTE)?;
            a.record(Event::Boot, self.gid, vote.as_ref()).await?;
        }
        Ok(())
    }

    async fn flush(&self) -> io::Result<()> {
        self.metrics.flush(self.store.flush()).await
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.meta.get(key)? {
            None => Ok(None),
            Some(v) => Ok(Some(codec::decode_record(&v)?)),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], v: &T) -> io::Result<()> {
        self.meta.insert(key, &codec::encode_record(v)?)
    }

    fn scan(&self, start: u64, end: Option<u64>) -> KvIter<'_> {
        let from = index_key(start);
        match end {
            Some(e) => self
                .log
                .range(Bound::Included(&from), Bound::Excluded(&index_key(e))),
            None => self.log.range(Bound::Included(&from), Bound::Unbounded),
        }
    }

    /// Index of the first stored entry at or after `from`, and of the last one.
    fn stored_bounds(&self, from: u64) -> io::Result<Option<(u64, u64)>> {
        let first = match self
            .log
            .range(Bound::Included(&index_key(from)), Bound::Unbounded)
            .next()
        {
            Some(kv) => key_index(&kv?.0)?,
            None => return Ok(None),
        };
        match self.log.last()? {
            Some((k, _)) => Ok(Some((first, key_index(&k)?))),
            None => Ok(None),
        }
    }

    /// Removes the stored entries with an index in `[start, end]`, `REMOVE_BATCH` keys per
    /// batch: one batch for ~100,000 entries made sled hold several times their size (README,
    /// Benchmarks). Keys are computed, never read. `descending` removes from the top, so a
    /// crash in between leaves a shorter log, never a hole; ascending (purge) leaves entries
    /// below the purge point, which are never read.
    async fn remove_range(&self, start: u64, end: u64, descending: bool) -> io::Result<()> {
        let Some((first, last)) = self.stored_bounds(start)? else {
            return Ok(());
        };
        let (lo, hi) = (first.max(start), last.min(end));
        if lo > hi {
            return Ok(());
        }
        let chunks = (hi - lo) / REMOVE_BATCH + 1;
        for c in 0..chunks {
            let c = if descending { chunks - 1 - c } else { c };
            let from = lo + c * REMOVE_BATCH;
            let to = (from + REMOVE_BATCH - 1).min(hi);
            let mut batch = WriteBatch::default();
            (from..=to).for_each(|i| batch.delete(index_key(i)));
            self.log.apply_batch(batch).await?;
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let Some((start, end)) = to_span(&range) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Entry> = Vec::new();
        for kv in self.scan(start, end) {
            let (k, v) = kv?;
            let index = key_index(&k)?;
            let entry: Entry = codec::decode_record(&v)?;
            if entry.index() != index {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("log key {index} holds entry {}", entry.index()),
                ));
            }
            // A hole inside the range would break Raft's log matching; report, don't skip.
            if let Some(prev) = out.last() {
                if prev.index() + 1 != index {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("hole in log between {} and {index}", prev.index()),
                    ));
                }
            }
            out.push(entry);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(meta_keys::VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.get_meta(meta_keys::PURGED)?;
        let last = match self.log.last()? {
            Some((_, v)) => Some(codec::decode_record::<Entry>(&v)?.log_id()),
            None => None,
        };
        let last_log_id = match last {
            Some(l) => Some(l),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(gid = self.gid))]
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        if let Some(a) = &self.audit {
            a.record(Event::Intent, self.gid, Some(vote)).await?;
        }
        self.put_meta(meta_keys::VOTE, vote)?;
        // A vote must never be forgotten after a crash, or a node could vote twice in a term.
        self.flush().await?;
        if let Some(a) = &self.audit {
            a.record(Event::Saved, self.gid, Some(vote)).await?;
        }
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not flushed: it rides on the next flush. The state machine persists its own
        // last_applied, so a stale `committed` only delays re-applying, never repeats an apply.
        self.put_meta(meta_keys::COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self
            .get_meta::<Option<LogId>>(meta_keys::COMMITTED)?
            .flatten())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(gid = self.gid))]
    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let start = Instant::now();
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put(index_key(entry.index()), codec::encode_record(&entry)?);
        }
        // Readable now; durable after the flush below.
        self.log.apply_batch(batch).await?;
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(
            async move {
                let res = metrics.flush(store.flush()).await;
                metrics.append.observe(start.elapsed().as_secs_f64());
                callback.io_completed(res);
            }
            .in_current_span(),
        );
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(gid = self.gid))]
    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = match last_log_id {
            Some(l) => l.index() + 1,
            None => 0,
        };
        self.remove_range(from, u64::MAX, true).await?;
        self.flush().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(gid = self.gid))]
    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // Record the purge point first: a crash in between leaves extra entries below it,
        // which are never read and are removed by the next purge; never a hole.
        self.put_meta(meta_keys::PURGED, &log_id)?;
        self.remove_range(0, log_id.index(), false).await?;
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_conversion() {
        assert_eq!(to_span(&(3..7)), Some((3, Some(7))));
        assert_eq!(to_span(&(3..=7)), Some((3, Some(8))));
        assert_eq!(to_span(&(3..)), Some((3, None)));
        assert_eq!(to_span(&(..)), Some((0, None)));
        assert_eq!(to_span(&(5..5)), None);
        assert_eq!(to_span(&(5..=u64::MAX)), Some((5, None)));
        let (lo, hi) = (7u64, 3u64);
        assert_eq!(to_span(&(lo..hi)), None);
    }
}
