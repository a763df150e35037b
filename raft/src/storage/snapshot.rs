//! Building and installing a group's snapshot as a file (`snapfile.rs`), with only small
//! records in the engine: `snapshot_ref` (meta, file name, size) of the current snapshot and,
//! while one is being installed, `installing` (same shape), so an install a crash interrupted
//! is finished at the next open.

use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use openraft::RaftSnapshotBuilder;
use serde::{Deserialize, Serialize};

use super::engine::{KvTree, WriteBatch};
use super::sm::{io_err, load_from, write_lock, SmStore, KEY_LAST_APPLIED, KEY_MEMBERSHIP};
use super::snapfile::{self, PairWriter, SnapshotFile};
use super::{meta_keys, GroupTrees, Store};
use crate::codec;
use crate::logic::StateMachineLogic;
use crate::metrics::GroupMetrics;
use crate::types::{LogId, Snapshot, SnapshotMeta, TypeConfig};

/// Bytes of state machine pairs per engine batch while installing.
const INSTALL_BATCH_BYTES: usize = 4 << 20;
/// Keys per delete batch while clearing the state machine tree.
const CLEAR_BATCH_KEYS: usize = 10_000;

/// A snapshot file and what it covers (meta tree, keys `snapshot_ref` and `installing`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotRef {
    pub(crate) meta: SnapshotMeta,
    /// File name inside the group's snapshot dir.
    pub(crate) file: String,
    pub(crate) size: u64,
}

fn read_rec(tree: &dyn KvTree, key: &[u8]) -> io::Result<Option<SnapshotRef>> {
    match tree.get(key)? {
        None => Ok(None),
        Some(v) => Ok(Some(codec::decode_record(&v)?)),
    }
}

pub(crate) fn read_ref(tree: &dyn KvTree) -> io::Result<Option<SnapshotRef>> {
    read_rec(tree, meta_keys::SNAPSHOT_REF)
}

/// The current snapshot, opened for reading.
pub(crate) fn current(tree: &dyn KvTree, dir: &Path) -> io::Result<Option<Snapshot>> {
    match read_ref(tree)? {
        None => Ok(None),
        Some(r) => Ok(Some(Snapshot {
            snapshot: SnapshotFile::open(&dir.join(&r.file))?,
            meta: r.meta,
        })),
    }
}

#[derive(Default)]
struct SlotState {
    current: Option<LogId>,
    file: Option<String>,
    installing: Option<String>,
}

/// Serializes the writers of `snapshot_ref` and the removal of stale files: a build runs in its
/// own task and may finish after a newer snapshot was installed; it must neither replace that
/// one nor remove its file.
pub(crate) struct SnapshotSlot {
    state: Mutex<SlotState>,
}

impl SnapshotSlot {
    pub(crate) fn new(current: Option<&SnapshotRef>) -> Self {
        Self {
            state: Mutex::new(SlotState {
                current: current.and_then(|r| r.meta.last_log_id),
                file: current.map(|r| r.file.clone()),
                installing: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `rec` as the current snapshot unless a newer one is (or `force`).
    fn save(&self, tree: &dyn KvTree, rec: &SnapshotRef, force: bool) -> io::Result<bool> {
        let mut s = self.lock();
        if !force && s.file.is_some() && rec.meta.last_log_id <= s.current {
            return Ok(false);
        }
        tree.insert(meta_keys::SNAPSHOT_REF, &codec::encode_record(rec)?)?;
        s.current = rec.meta.last_log_id;
        s.file = Some(rec.file.clone());
        Ok(true)
    }

    fn reserve(&self, file: Option<String>) {
        self.lock().installing = file;
    }

    /// Removes snapshot files that are neither current nor being installed.
    fn cleanup(&self, dir: &Path) -> io::Result<()> {
        let s = self.lock();
        let keep: Vec<&str> = s
            .file
            .iter()
            .chain(&s.installing)
            .map(String::as_str)
            .collect();
        snapfile::remove_others(dir, &keep, false)
    }
}

/// Streams the state machine tree into a temporary file; `build_snapshot` completes it.
pub(crate) struct SmSnapshotBuilder {
    store: Arc<Store>,
    meta_tree: Arc<dyn KvTree>,
    dir: PathBuf,
    slot: Arc<SnapshotSlot>,
    metrics: GroupMetrics,
    written: Option<io::Result<(PathBuf, u64)>>,
    meta: SnapshotMeta,
}

impl SmSnapshotBuilder {
    /// Runs on the state machine worker between two applies, so the tree it reads is a
    /// consistent view; only the write into the page cache happens here (no fsync).
    pub(crate) fn start<L: StateMachineLogic>(sm: &SmStore<L>) -> Self {
        let write = || -> io::Result<(PathBuf, u64)> {
            let mut w = PairWriter::create(&snapfile::tmp_path(&sm.snap_dir))?;
            for kv in sm.sm.range(Bound::Unbounded, Bound::Unbounded) {
                let (k, v) = kv?;
                w.put(&k, &v)?;
            }
            w.finish()
        };
        Self {
            store: sm.store.clone(),
            meta_tree: sm.meta.clone(),
            dir: sm.snap_dir.clone(),
            slot: sm.slot.clone(),
            metrics: sm.metrics.clone(),
            written: Some(write()),
            meta: SnapshotMeta {
                last_log_id: sm.last_applied,
                last_membership: sm.membership.clone(),
            },
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io_err(format!("blocking task: {e}")))?
}

impl RaftSnapshotBuilder<TypeConfig> for SmSnapshotBuilder {
    type SnapshotData = SnapshotFile;

    #[tracing::instrument(level = "info", skip_all)]
    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let written = self.written.take();
        let (tmp, size) = written.unwrap_or_else(|| Err(io_err("snapshot already built")))?;
        let name = snapfile::final_name(self.meta.last_log_id.map(|l| l.index()));
        let path = self.dir.join(&name);
        let (dir, p) = (self.dir.clone(), path.clone());
        blocking(move || {
            snapfile::sync_file(&tmp)?;
            std::fs::rename(&tmp, &p)?;
            snapfile::sync_dir(&dir)
        })
        .await?;
        let snapshot = SnapshotFile::open(&path)?;
        let rec = SnapshotRef {
            meta: self.meta.clone(),
            file: name,
            size,
        };
        if self.slot.save(&*self.meta_tree, &rec, false)? {
            // Durable before openraft purges the logs it covers.
            self.metrics.flush(self.store.flush()).await?;
            self.metrics.snapshot_bytes.set(size as i64);
        }
        self.slot.cleanup(&self.dir)?;
        self.metrics.built.inc();
        tracing::info!(last_log_id = ?self.meta.last_log_id, bytes = size, "built snapshot");
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot,
        })
    }
}

/// Replaces the state machine tree with the file's pairs, in bounded batches, then writes
/// `last_applied` and membership from `meta` (authoritative for what the snapshot covers).
/// Not atomic: callers record `installing` first, so a crash in between is redone at open.
async fn replace_tree(
    store: &Store,
    sm: &dyn KvTree,
    file: &SnapshotFile,
    meta: &SnapshotMeta,
) -> io::Result<()> {
    loop {
        let keys = sm
            .range(Bound::Unbounded, Bound::Unbounded)
            .take(CLEAR_BATCH_KEYS)
            .map(|kv| kv.map(|(k, _)| k))
            .collect::<io::Result<Vec<_>>>()?;
        if keys.is_empty() {
            break;
        }
        let mut batch = WriteBatch::default();
        keys.into_iter().for_each(|k| batch.delete(k));
        sm.apply_batch(batch).await?;
    }
    let mut batch = WriteBatch::default();
    let mut bytes = 0;
    for kv in file.pairs()? {
        let (k, v) = kv?;
        bytes += k.len() + v.len();
        batch.put(k, v);
        if bytes >= INSTALL_BATCH_BYTES {
            sm.apply_batch(std::mem::take(&mut batch)).await?;
            bytes = 0;
        }
    }
    batch.put(KEY_LAST_APPLIED, codec::encode_record(&meta.last_log_id)?);
    batch.put(KEY_MEMBERSHIP, codec::encode_record(&meta.last_membership)?);
    sm.apply_batch(batch).await?;
    store.flush().await
}

/// Finishes an install a crash interrupted (called at open, before anything reads the tree).
pub(crate) async fn resume_install(store: &Store, trees: &GroupTrees) -> io::Result<()> {
    let Some(rec) = read_rec(&*trees.meta, meta_keys::INSTALLING)? else {
        return Ok(());
    };
    tracing::warn!(file = %rec.file, "finishing an interrupted snapshot install");
    let file = SnapshotFile::open(&trees.snap_dir.join(&rec.file))?;
    replace_tree(store, &*trees.sm, &file, &rec.meta).await?;
    let mut batch = WriteBatch::default();
    batch.put(meta_keys::SNAPSHOT_REF, codec::encode_record(&rec)?);
    batch.delete(meta_keys::INSTALLING);
    trees.meta.apply_batch(batch).await?;
    store.flush().await
}

/// Moves (or copies, if it lives elsewhere) a received snapshot file into the group's dir
/// under its final name, durably.
fn adopt(file: &SnapshotFile, dir: &Path, name: &str) -> io::Result<()> {
    let dest = dir.join(name);
    if file.path.parent() == Some(dir) {
        std::fs::rename(&file.path, &dest)?;
    } else {
        let tmp = snapfile::tmp_path(dir);
        let mut src = file.file.try_clone()?;
        io::Seek::seek(&mut src, io::SeekFrom::Start(0))?;
        io::copy(&mut src, &mut std::fs::File::create(&tmp)?)?;
        std::fs::rename(&tmp, &dest)?;
    }
    snapfile::sync_file(&dest)?;
    snapfile::sync_dir(dir)
}

/// Installs a snapshot received from the leader; memory stays bounded by one batch plus
/// whatever the application's `load` keeps.
pub(crate) async fn install<L: StateMachineLogic>(
    sm: &mut SmStore<L>,
    meta: &SnapshotMeta,
    snapshot: SnapshotFile,
) -> io::Result<()> {
    // Check the whole file before touching the state.
    snapshot.pairs()?.try_for_each(|p| p.map(|_| ()))?;
    let name = snapfile::final_name(meta.last_log_id.map(|l| l.index()));
    sm.slot.reserve(Some(name.clone()));
    adopt(&snapshot, &sm.snap_dir, &name)?;
    let file = SnapshotFile::open(&sm.snap_dir.join(&name))?;
    let rec = SnapshotRef {
        meta: meta.clone(),
        file: name,
        size: file.len,
    };
    sm.meta
        .insert(meta_keys::INSTALLING, &codec::encode_record(&rec)?)?;
    sm.metrics.flush(sm.store.flush()).await?;

    replace_tree(&sm.store, &*sm.sm, &file, meta).await?;
    sm.slot.save(&*sm.meta, &rec, true)?;
    sm.meta.apply_batch(delete_installing()).await?;
    sm.metrics.flush(sm.store.flush()).await?;
    sm.slot.reserve(None);
    sm.slot.cleanup(&sm.snap_dir)?;

    load_from(&mut *write_lock(&sm.logic), file.pairs()?)?;
    sm.last_applied = meta.last_log_id;
    sm.membership = meta.last_membership.clone();
    sm.metrics.installed.inc();
    sm.metrics.snapshot_bytes.set(rec.size as i64);
    tracing::info!(last_log_id = ?meta.last_log_id, bytes = rec.size, "installed snapshot");
    Ok(())
}

fn delete_installing() -> WriteBatch {
    let mut b = WriteBatch::default();
    b.delete(meta_keys::INSTALLING);
    b
}
