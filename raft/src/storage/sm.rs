//! openraft state machine on a [`KvEngine`](super::engine::KvEngine): the app's
//! `StateMachineLogic` in memory, its `WriteSet`s and `last_applied` persisted together in one
//! atomic `WriteBatch` per `apply` call. Snapshots are files (`snapshot.rs`, `snapfile.rs`).

use std::io;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};

use super::engine::{BatchOp, KvTree, WriteBatch};
use super::snapfile::{self, SnapshotFile};
use super::snapshot::{self, SmSnapshotBuilder, SnapshotSlot};
use super::{GroupTrees, Store};
use crate::codec;
use crate::error::RaftError;
use crate::group::Halt;
use crate::logic::{StateMachineLogic, StoredRows, WriteSet};
use crate::metrics::GroupMetrics;
use crate::types::{
    GroupId, LogId, Response, Snapshot, SnapshotMeta, StoredMembership, TypeConfig,
};

/// App keys live under this prefix in the sm tree; reserved keys start with 0x00.
pub(crate) const APP_PREFIX: u8 = 0x01;
pub(crate) const KEY_LAST_APPLIED: &[u8] = b"\x00last_applied";
pub(crate) const KEY_MEMBERSHIP: &[u8] = b"\x00membership";

pub(crate) fn app_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(APP_PREFIX);
    k.extend_from_slice(key);
    k
}

/// The app's key if `raw` is an app key.
pub(crate) fn strip_app_key(raw: &[u8]) -> Option<&[u8]> {
    match raw.split_first() {
        Some((&APP_PREFIX, rest)) => Some(rest),
        _ => None,
    }
}

pub(crate) fn read_lock<L>(l: &RwLock<L>) -> RwLockReadGuard<'_, L> {
    // A panic in app logic poisons the lock; the state is still the last consistent one the
    // app left, and openraft stops the group on that panic anyway.
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write_lock<L>(l: &RwLock<L>) -> RwLockWriteGuard<'_, L> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn io_err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// State machine of one group, owned by openraft's state machine worker.
pub(crate) struct SmStore<L> {
    pub(crate) store: Arc<Store>,
    pub(crate) gid: GroupId,
    pub(crate) sm: Arc<dyn KvTree>,
    pub(crate) meta: Arc<dyn KvTree>,
    pub(crate) snap_dir: PathBuf,
    pub(crate) logic: Arc<RwLock<L>>,
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
    pub(crate) slot: Arc<SnapshotSlot>,
    pub(crate) metrics: GroupMetrics,
    /// Why and where this replica stopped applying; set once, read by `Group::status`.
    pub(crate) halt: Arc<OnceLock<Halt>>,
    /// Held while the sm tree changes (an apply's batch, a snapshot install), so that a reader
    /// of the whole tree (`Group::scan_applied`) sees app keys and `last_applied` agree.
    pub(crate) apply_lock: Arc<tokio::sync::Mutex<()>>,
}

/// Feeds `pairs` to `logic.load`, stopping at the first read error (returned).
pub(crate) fn load_from<L: StateMachineLogic>(
    logic: &mut L,
    pairs: impl Iterator<Item = io::Result<(Vec<u8>, Vec<u8>)>>,
) -> io::Result<()> {
    let mut failed = None;
    let mut app = pairs
        .map_while(|p| p.map_err(|e| failed = Some(e)).ok())
        .filter_map(|(k, v)| strip_app_key(&k).map(|k| (k.to_vec(), v)));
    let loaded = logic.load(&mut app).map_err(io_err);
    drop(app);
    match failed {
        Some(e) => Err(e),
        None => loaded,
    }
}

/// The app pairs of `sm` in key order, the keys under the app prefixes `skip` left unread.
fn app_pairs<'a>(
    sm: &'a dyn KvTree,
    skip: &[Vec<u8>],
) -> impl Iterator<Item = io::Result<(Vec<u8>, Vec<u8>)>> + 'a {
    let mut skip: Vec<&Vec<u8>> = skip.iter().collect();
    skip.sort();
    let end = vec![APP_PREFIX + 1];
    let mut ranges = Vec::new();
    let mut from = vec![APP_PREFIX];
    for p in skip {
        let start = app_key(p);
        if from < start {
            ranges.push(sm.range(Bound::Included(&from), Bound::Excluded(&start)));
        }
        // Past every key that starts with `p` (an app key always has a successor).
        from = successor(&start).unwrap_or_else(|| end.clone()).max(from);
    }
    if from < end {
        ranges.push(sm.range(Bound::Included(&from), Bound::Excluded(&end)));
    }
    ranges.into_iter().flatten()
}

/// The least key greater than every key starting with `prefix`, if any.
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut k = prefix.to_vec();
    while let Some(last) = k.pop() {
        if last < u8::MAX {
            k.push(last + 1);
            return Some(k);
        }
    }
    None
}

impl<L: StateMachineLogic> SmStore<L> {
    /// Finishes a snapshot install a crash interrupted, reads the persisted state and hands the
    /// app keys to `logic.load`.
    pub(crate) async fn open(
        store: Arc<Store>,
        gid: GroupId,
        trees: &GroupTrees,
        mut logic: L,
        metrics: GroupMetrics,
    ) -> Result<Self, RaftError> {
        let storage = |e: codec::CodecError| RaftError::Storage(format!("group {gid}: {e}"));
        snapshot::resume_install(&store, trees).await?;
        let current = snapshot::read_ref(&*trees.meta)?;
        // Leftovers of interrupted builds and transfers.
        let keep: Vec<&str> = current.iter().map(|r| r.file.as_str()).collect();
        snapfile::remove_others(&trees.snap_dir, &keep, true)?;
        let last_applied: Option<LogId> = match trees.sm.get(KEY_LAST_APPLIED)? {
            Some(v) => codec::decode_record(&v).map_err(storage)?,
            None => None,
        };
        let membership: StoredMembership = match trees.sm.get(KEY_MEMBERSHIP)? {
            Some(v) => codec::decode_record(&v).map_err(storage)?,
            None => StoredMembership::default(),
        };
        let skip: Vec<Vec<u8>> = logic.stored_only().iter().map(|p| p.to_vec()).collect();
        load_from(&mut logic, app_pairs(&*trees.sm, &skip))
            .map_err(|e| RaftError::Load(e.to_string()))?;
        Ok(Self {
            store,
            gid,
            sm: trees.sm.clone(),
            meta: trees.meta.clone(),
            snap_dir: trees.snap_dir.clone(),
            logic: Arc::new(RwLock::new(logic)),
            last_applied,
            membership,
            slot: Arc::new(SnapshotSlot::new(current.as_ref())),
            metrics,
            halt: Arc::new(OnceLock::new()),
            apply_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub(crate) fn last_applied_index(&self) -> Option<u64> {
        self.last_applied.map(|l| l.index())
    }

    /// What the group handle keeps of the store once openraft owns it.
    pub(crate) fn handles(&self) -> SmHandles<L> {
        SmHandles {
            logic: self.logic.clone(),
            halt: self.halt.clone(),
            tree: TreeReader {
                sm: self.sm.clone(),
                lock: self.apply_lock.clone(),
            },
        }
    }
}

/// The app rows as `apply` sees them: the batch being built (earlier entries of this `apply`
/// call) over the tree.
struct Pending<'a> {
    batch: &'a WriteBatch,
    sm: &'a dyn KvTree,
}

impl StoredRows for Pending<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let key = app_key(key);
        let latest = self.batch.ops.iter().rev().find_map(|op| match op {
            BatchOp::Put(k, v) if *k == key => Some(Some(v.clone())),
            BatchOp::Delete(k) if *k == key => Some(None),
            _ => None,
        });
        match latest {
            Some(v) => Ok(v),
            None => self.sm.get(&key).map_err(|e| e.to_string()),
        }
    }
}

/// Shared parts of an [`SmStore`]: the app's state, the halt record, the tree reader.
pub(crate) struct SmHandles<L> {
    pub(crate) logic: Arc<RwLock<L>>,
    pub(crate) halt: Arc<OnceLock<Halt>>,
    pub(crate) tree: TreeReader,
}

/// Reads a group's persisted state machine consistently with its `last_applied`.
#[derive(Clone)]
pub(crate) struct TreeReader {
    sm: Arc<dyn KvTree>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

/// The app rows as last written (see [`StoredRows`] for how far they may trail the logic).
impl StoredRows for TreeReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.sm.get(&app_key(key)).map_err(|e| e.to_string())
    }
}

impl TreeReader {
    /// Runs `f` on the applied index and the app pairs (key order), with applies held off.
    pub(crate) async fn scan<R>(
        &self,
        f: impl FnOnce(Option<u64>, &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> R,
    ) -> io::Result<R> {
        let _held = self.lock.lock().await;
        let applied: Option<LogId> = match self.sm.get(KEY_LAST_APPLIED)? {
            Some(v) => codec::decode_record(&v)?,
            None => None,
        };
        let mut failed = None;
        let mut app = self
            .sm
            .scan_prefix(&[APP_PREFIX])
            .map_while(|p| p.map_err(|e| failed = Some(e)).ok())
            .filter_map(|(k, v)| strip_app_key(&k).map(|k| (k.to_vec(), v)));
        let out = f(applied.map(|l| l.index()), &mut app);
        drop(app);
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Test hook: overwrites an app key behind the state machine's back (a corrupt replica).
    #[cfg(feature = "testing")]
    pub(crate) async fn corrupt(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let _held = self.lock.lock().await;
        self.sm.insert(&app_key(key), value)
    }
}

impl<L: StateMachineLogic> RaftStateMachine<TypeConfig> for SmStore<L> {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SmSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.membership.clone()))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(gid = self.gid))]
    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let items: Vec<EntryResponder<TypeConfig>> = entries.try_collect().await?;
        if items.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        let mut replies = Vec::with_capacity(items.len());
        let mut last = self.last_applied;
        let mut membership = None;
        {
            // Never held across an await.
            let mut logic = write_lock(&self.logic);
            for (entry, responder) in items {
                let log_id = entry.log_id();
                let resp = match &entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(p) => {
                        let mut ws = WriteSet::new();
                        let stored = Pending {
                            batch: &batch,
                            sm: &*self.sm,
                        };
                        let r = match logic.apply(log_id.index(), &p.0, &mut ws, &stored) {
                            Ok(r) => r,
                            // Fail-stop: nothing of this batch is written, `last_applied` stays
                            // behind, and openraft stops the group on the storage error.
                            Err(e) => {
                                tracing::error!(
                                    gid = self.gid,
                                    index = log_id.index(),
                                    reason = %e,
                                    "state machine apply failed; this replica halts the group"
                                );
                                let _ = self.halt.set(Halt {
                                    index: Some(log_id.index()),
                                    reason: e.clone(),
                                });
                                return Err(io_err(format!(
                                    "group {} apply of index {}: {e}",
                                    self.gid,
                                    log_id.index()
                                )));
                            }
                        };
                        for (k, v) in ws.ops {
                            match v {
                                Some(v) => batch.put(app_key(&k), v),
                                None => batch.delete(app_key(&k)),
                            }
                        }
                        r
                    }
                    EntryPayload::Membership(m) => {
                        membership = Some(StoredMembership::new(Some(log_id), m.clone()));
                        Vec::new()
                    }
                };
                last = Some(log_id);
                replies.push((responder, Response(resp)));
            }
        }
        // last_applied goes into the same batch as the app's writes: after a crash either both
        // are there or neither, so no entry is applied twice or lost.
        batch.put(KEY_LAST_APPLIED, codec::encode_record(&last)?);
        if let Some(m) = &membership {
            batch.put(KEY_MEMBERSHIP, codec::encode_record(m)?);
        }
        // No flush of its own: the entries are durable in the log, and a state machine that
        // lost its tail in a crash is behind `last_applied` on disk, so openraft re-applies the
        // tail from the log (apply is deterministic) or restores the (flushed) snapshot first.
        // The next log flush makes this batch durable anyway (sled flushes every tree).
        {
            let _held = self.apply_lock.clone().lock_owned().await;
            self.sm.apply_batch(batch).await?;
        }
        self.last_applied = last;
        if let Some(m) = membership {
            self.membership = m;
        }
        for (responder, resp) in replies {
            if let Some(r) = responder {
                r.send(resp);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SmSnapshotBuilder::start(self)
    }

    #[tracing::instrument(level = "info", skip_all, fields(gid = self.gid))]
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let lock = self.apply_lock.clone();
        let _held = lock.lock().await;
        snapshot::install(self, meta, snapshot).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        snapshot::current(&*self.meta, &self.snap_dir)
    }
}
