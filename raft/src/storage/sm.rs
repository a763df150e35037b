//! openraft state machine on a [`KvEngine`](super::engine::KvEngine): the app's
//! `StateMachineLogic` in memory, its `WriteSet`s and `last_applied` persisted together in one
//! atomic `WriteBatch` per `apply` call.

use std::io::{self, Cursor};
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::engine::{KvTree, WriteBatch};
use super::{meta_keys, GroupTrees, Store};
use crate::codec;
use crate::error::RaftError;
use crate::logic::{StateMachineLogic, WriteSet};
use crate::metrics::GroupMetrics;
use crate::types::{
    GroupId, LogId, Response, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig,
};

/// App keys live under this prefix in the sm tree; reserved keys start with 0x00.
const APP_PREFIX: u8 = 0x01;
const KEY_LAST_APPLIED: &[u8] = b"\x00last_applied";
const KEY_MEMBERSHIP: &[u8] = b"\x00membership";

fn app_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(APP_PREFIX);
    k.extend_from_slice(key);
    k
}

/// The app's key if `raw` is an app key.
fn strip_app_key(raw: &[u8]) -> Option<&[u8]> {
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

fn write_lock<L>(l: &RwLock<L>) -> RwLockWriteGuard<'_, L> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn io_err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// Raw `(key, value)` pairs of an sm tree.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Persisted form of the group's last snapshot (meta tree, key `snapshot`).
#[derive(Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta,
    /// `[RECORD_V1] ++ bincode(Vec<(raw sm key, value)>)`.
    data: Vec<u8>,
}

/// Serializes writers of the persisted snapshot: building runs in its own task and may finish
/// after a newer snapshot was installed; it must not overwrite that one.
struct SnapshotSlot {
    current: Mutex<Option<LogId>>,
}

impl SnapshotSlot {
    fn save(
        &self,
        tree: &dyn KvTree,
        meta: &SnapshotMeta,
        data: &[u8],
        force: bool,
    ) -> io::Result<bool> {
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if !force && cur.is_some() && meta.last_log_id <= *cur {
            return Ok(false);
        }
        let rec = SnapshotRecord {
            meta: meta.clone(),
            data: data.to_vec(),
        };
        tree.insert(meta_keys::SNAPSHOT, &codec::encode_record(&rec)?)?;
        *cur = meta.last_log_id;
        Ok(true)
    }
}

fn read_snapshot(tree: &dyn KvTree) -> io::Result<Option<SnapshotRecord>> {
    match tree.get(meta_keys::SNAPSHOT)? {
        None => Ok(None),
        Some(v) => Ok(Some(codec::decode_record(&v)?)),
    }
}

/// State machine of one group, owned by openraft's state machine worker.
pub(crate) struct SmStore<L> {
    store: Arc<Store>,
    gid: GroupId,
    sm: Arc<dyn KvTree>,
    meta: Arc<dyn KvTree>,
    logic: Arc<RwLock<L>>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    slot: Arc<SnapshotSlot>,
    metrics: GroupMetrics,
}

impl<L: StateMachineLogic> SmStore<L> {
    /// Reads the persisted state and hands the app keys to `logic.load`.
    pub(crate) fn open(
        store: Arc<Store>,
        gid: GroupId,
        trees: &GroupTrees,
        mut logic: L,
        metrics: GroupMetrics,
    ) -> Result<Self, RaftError> {
        let storage = |e: codec::CodecError| RaftError::Storage(format!("group {gid}: {e}"));
        let last_applied: Option<LogId> = match trees.sm.get(KEY_LAST_APPLIED)? {
            Some(v) => codec::decode_record(&v).map_err(storage)?,
            None => None,
        };
        let membership: StoredMembership = match trees.sm.get(KEY_MEMBERSHIP)? {
            Some(v) => codec::decode_record(&v).map_err(storage)?,
            None => StoredMembership::default(),
        };
        let mut pairs = Vec::new();
        for kv in trees.sm.scan_prefix(&[APP_PREFIX]) {
            let (k, v) = kv?;
            if let Some(key) = strip_app_key(&k) {
                pairs.push((key.to_vec(), v));
            }
        }
        logic
            .load(&mut pairs.into_iter())
            .map_err(RaftError::Load)?;
        let snap = read_snapshot(&*trees.meta)?.and_then(|r| r.meta.last_log_id);
        Ok(Self {
            store,
            gid,
            sm: trees.sm.clone(),
            meta: trees.meta.clone(),
            logic: Arc::new(RwLock::new(logic)),
            last_applied,
            membership,
            slot: Arc::new(SnapshotSlot {
                current: Mutex::new(snap),
            }),
            metrics,
        })
    }

    pub(crate) fn last_applied_index(&self) -> Option<u64> {
        self.last_applied.map(|l| l.index())
    }

    pub(crate) fn logic(&self) -> Arc<RwLock<L>> {
        self.logic.clone()
    }

    /// All raw pairs of the sm tree (app + reserved keys).
    fn dump(&self) -> io::Result<Pairs> {
        self.sm.range(Bound::Unbounded, Bound::Unbounded).collect()
    }
}

impl<L: StateMachineLogic> RaftStateMachine<TypeConfig> for SmStore<L> {
    type SnapshotData = SnapshotData;
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
                        let r = logic.apply(log_id.index(), &p.0, &mut ws);
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
        self.sm.apply_batch(batch).await?;
        self.metrics.flush(self.store.flush()).await?;
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
        // Copy the state here: this runs on the state machine worker between two applies, so
        // the view is consistent; build_snapshot() then runs in its own task.
        SmSnapshotBuilder {
            store: self.store.clone(),
            meta_tree: self.meta.clone(),
            slot: self.slot.clone(),
            metrics: self.metrics.clone(),
            pairs: self.dump().map_err(|e| e.to_string()),
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
            },
        }
    }

    #[tracing::instrument(level = "info", skip_all, fields(gid = self.gid))]
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let pairs: Pairs = codec::decode_record(&data)?;
        // Replaces the whole tree in one atomic batch: every old key removed, the snapshot's
        // pairs put (a later op on a key wins).
        let mut batch = WriteBatch::default();
        for kv in self.sm.range(Bound::Unbounded, Bound::Unbounded) {
            batch.delete(kv?.0);
        }
        for (k, v) in &pairs {
            batch.put(k.as_slice(), v.as_slice());
        }
        // The meta is authoritative for what the snapshot covers.
        batch.put(KEY_LAST_APPLIED, codec::encode_record(&meta.last_log_id)?);
        batch.put(KEY_MEMBERSHIP, codec::encode_record(&meta.last_membership)?);
        self.sm.apply_batch(batch).await?;
        self.slot.save(&*self.meta, meta, &data, true)?;
        self.metrics.flush(self.store.flush()).await?;
        self.metrics.installed.inc();
        self.metrics.snapshot_bytes.set(data.len() as i64);

        let mut app = pairs
            .into_iter()
            .filter_map(|(k, v)| strip_app_key(&k).map(|k| (k.to_vec(), v)));
        write_lock(&self.logic).load(&mut app).map_err(io_err)?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        tracing::info!(last_log_id = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(read_snapshot(&*self.meta)?.map(|rec| Snapshot {
            meta: rec.meta,
            snapshot: Cursor::new(rec.data),
        }))
    }
}

/// A consistent copy of the state machine, serialized and persisted in `build_snapshot`.
pub(crate) struct SmSnapshotBuilder {
    store: Arc<Store>,
    meta_tree: Arc<dyn KvTree>,
    slot: Arc<SnapshotSlot>,
    metrics: GroupMetrics,
    pairs: Result<Pairs, String>,
    meta: SnapshotMeta,
}

impl RaftSnapshotBuilder<TypeConfig> for SmSnapshotBuilder {
    type SnapshotData = SnapshotData;

    #[tracing::instrument(level = "info", skip_all)]
    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let pairs = std::mem::replace(&mut self.pairs, Err("snapshot already built".into()));
        let pairs = pairs.map_err(io_err)?;
        let data = codec::encode_record(&pairs)?;
        self.slot.save(&*self.meta_tree, &self.meta, &data, false)?;
        // Durable before openraft purges the logs it covers.
        self.metrics.flush(self.store.flush()).await?;
        self.metrics.built.inc();
        self.metrics.snapshot_bytes.set(data.len() as i64);
        tracing::info!(last_log_id = ?self.meta.last_log_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Cursor::new(data),
        })
    }
}
