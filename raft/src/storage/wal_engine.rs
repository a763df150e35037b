//! [`KvEngine`] as memory plus a write-ahead log ("wal"). Every tree lives in memory, its large
//! values only until a checkpoint holds them (`value.rs`); every write is appended, framed and
//! checksummed, to an in-memory buffer that a flush writes to the log file and fdatasyncs on
//! one thread of its own. The appends of every group of the node
//! therefore share one `write` and one `fdatasync` per flush (group commit), with no IO pool
//! woken per write and no page cache of trees: what made sled cost ~40% of a conductor's CPU
//! under all-shards writes (`benches/results/profile-all-shards-64.md`). The log grows until a
//! checkpoint (every tree written to one file, `write_checkpoint`) lets the segments before it
//! go.
//!
//! Files in the engine's dir:
//! - `seg-{n:016x}.wal`: records, each `[payload length u32 LE][crc32 u32 LE][payload]`;
//! - `ckpt-{n:016x}`: the same records making up every tree, each pair as of some instant after
//!   segment `n` began (replaying segment `n` on makes it exact), ended by an end record,
//!   written to `.tmp` and renamed into place;
//! - `LOCK`: held (flock) while a process has the engine open.
//!
//! The rules, each with its reason:
//! - a write changes memory and appends its record under one lock: the log's order is the
//!   order in which readers saw the writes, so a replay rebuilds exactly what they saw;
//! - a flush writes the buffer as it is when the flush thread picks the flush up, which is
//!   after the call: every write that returned before the call is in it (the trait's contract);
//! - a segment is synced whole before the next one gets a byte, so only the last segment can
//!   end in a torn record; recovery cuts it there, and anywhere else a bad record is corruption;
//! - a checkpoint is renamed into place only once complete and synced and once a flush made
//!   every write it copied durable, and only then are the segments before it removed: at every
//!   instant some checkpoint plus the segments after it hold every flushed write and nothing
//!   that a crash could lose half of;
//! - after a failed write or sync nothing more is written and every later flush fails: what the
//!   page cache holds after a failed fsync is unknown, so the node exits on the storage failure
//!   (`group.rs`) and recovery reads what the disk has.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, ErrorKind, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;

use super::engine::{BatchOp, KvEngine, KvIter, KvPair, KvTree, WriteBatch};
use super::stall;

mod files;
mod record;
mod value;

use self::files::*;
use self::record::*;
use self::value::*;

/// The root tree's name (it always exists, with id 0).
const ROOT: &str = "__root__";
/// Log bytes after which a checkpoint starts (and the segments before it can go).
const CHECKPOINT_AFTER: u64 = 64 * 1024 * 1024;
/// About how many bytes of a tree a checkpoint copies at a time (under the tree's read lock).
const CHECKPOINT_CHUNK: usize = 1 << 20;

type Map = BTreeMap<Vec<u8>, Val>;
type FlushResult = Result<(), (ErrorKind, String)>;
type Waiter = Box<dyn FnOnce(FlushResult) + Send>;

/// What the flush thread writes, in order.
enum Chunk {
    Bytes(Vec<u8>),
    /// Sync the current segment and go on in segment `n`.
    Rotate(u64),
}

/// The unwritten log and the counters that go with it; its lock also orders every write.
struct LogState {
    pending: Vec<Chunk>,
    /// Log bytes appended since the last checkpoint began.
    since_checkpoint: u64,
    /// The number the next segment gets.
    next_segment: u64,
}

struct Log {
    state: Mutex<LogState>,
    /// Set by a checkpoint while it runs.
    checkpointing: AtomicBool,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding it left memory and the buffer as they were before the write
        // that panicked (both change after every fallible step): keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LogState {
    /// Appends a record framed by [`framed`] (done before taking the lock, which this keeps
    /// to a copy).
    fn append(&mut self, framed: Vec<u8>) {
        self.since_checkpoint += framed.len() as u64;
        match self.pending.last_mut() {
            Some(Chunk::Bytes(b)) => b.extend_from_slice(&framed),
            _ => self.pending.push(Chunk::Bytes(framed)),
        }
    }
}

/// The process's engine: its trees, its log, and the thread that writes the log.
pub(crate) struct WalEngine {
    dir: PathBuf,
    trees: Mutex<HashMap<String, Arc<MemTree>>>,
    next_id: Mutex<u32>,
    log: Arc<Log>,
    flusher: mpsc::Sender<Waiter>,
    busy: stall::Busy,
    /// Log bytes after which a checkpoint starts.
    checkpoint_after: u64,
    checkpoint_chunk: usize,
    /// The `LOCK` file, locked while this engine lives.
    _lock: File,
}

/// One tree: its map, and the log its writes go to.
pub(crate) struct MemTree {
    id: u32,
    map: RwLock<Map>,
    log: Arc<Log>,
    /// Set by `drop_tree`: a later write through a stale handle is refused, not logged.
    dropped: AtomicBool,
}

impl MemTree {
    fn new(id: u32, map: Map, log: Arc<Log>) -> Arc<Self> {
        Arc::new(Self {
            id,
            map: RwLock::new(map),
            log,
            dropped: AtomicBool::new(false),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_batch(&self, ops: Vec<BatchOp>) -> io::Result<()> {
        let record = framed(&encode_batch(self.id, &ops))?;
        let mut log = self.log.lock();
        if self.dropped.load(Ordering::SeqCst) {
            return Err(io::Error::other("write to a dropped tree"));
        }
        log.append(record);
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        apply_ops(&mut map, ops);
        Ok(())
    }
}

impl MemTree {
    /// Up to about `max_bytes` of pairs after `after` (from the first without).
    fn chunk_after(&self, after: Option<&[u8]>, max_bytes: usize) -> Vec<(Vec<u8>, Val)> {
        let map = self.read();
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut size = 0;
        let mut out = Vec::new();
        for (k, v) in map.range::<[u8], _>((lower, Bound::Unbounded)) {
            if size >= max_bytes {
                break;
            }
            size += k.len() + v.len() + 8;
            out.push((k.clone(), v.clone()));
        }
        out
    }

    /// Points the values a checkpoint spilled at their records, each only if the tree still
    /// holds the value the checkpoint copied (`value.rs`).
    fn swing(&self, spilled: Vec<(Vec<u8>, Val, Spill)>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for (k, copied, to) in spilled {
            if let Some(v) = map.get_mut(&k) {
                if v.same(&copied) {
                    *v = Val::Spilled(to);
                }
            }
        }
    }

    /// The pairs in `range`, copied out under the read lock (a reader never holds writers back
    /// for longer) and read from their files after it.
    fn pairs<'a>(&self, range: impl Iterator<Item = (&'a Vec<u8>, &'a Val)>) -> KvIter<'static> {
        let vals: Vec<(Vec<u8>, Val)> = range.map(|(k, v)| (k.clone(), v.clone())).collect();
        Box::new(vals.into_iter().map(|(k, v)| {
            let bytes = v.into_bytes(&k)?;
            Ok((k, bytes))
        }))
    }

    /// How many values are spilled (tests).
    #[cfg(test)]
    fn spilled(&self) -> usize {
        self.read()
            .values()
            .filter(|v| matches!(v, Val::Spilled(_)))
            .count()
    }
}

fn apply_ops(map: &mut Map, ops: Vec<BatchOp>) {
    for op in ops {
        match op {
            BatchOp::Put(k, v) => {
                map.insert(k, Val::new(v));
            }
            BatchOp::Delete(k) => {
                map.remove(&k);
            }
        }
    }
}

// --- The flush thread ----------------------------------------------------------------------

/// Writes the log on a thread of its own: every flush queued while one runs shares the next
/// write and fdatasync.
struct Writer {
    dir: PathBuf,
    file: File,
    log: Arc<Log>,
    busy: stall::Busy,
    /// The first failure: nothing is written after it.
    failed: Option<(ErrorKind, String)>,
    /// Bytes written since the last fdatasync.
    dirty: bool,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Waiter>) {
        // Ends when the engine (the only sender) is dropped.
        while let Ok(first) = rx.recv() {
            let mut waiters = vec![first];
            waiters.extend(rx.try_iter());
            let res = self.flush();
            for w in waiters {
                w(res.clone());
            }
        }
    }

    fn flush(&mut self) -> FlushResult {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let chunks = std::mem::take(&mut self.log.lock().pending);
        let busy = self.busy.clone();
        let running = stall::Running::start(&busy);
        let res = self.write(chunks);
        drop(running);
        if let Err(e) = &res {
            tracing::error!(error = %e, "writing the Raft log failed; the store accepts no more flushes");
            self.failed = Some((e.kind(), e.to_string()));
        }
        res.map_err(|e| (e.kind(), e.to_string()))
    }

    fn write(&mut self, chunks: Vec<Chunk>) -> io::Result<()> {
        for chunk in chunks {
            match chunk {
                Chunk::Bytes(b) => {
                    self.file.write_all(&b)?;
                    self.dirty = true;
                }
                Chunk::Rotate(n) => {
                    self.file.sync_data()?;
                    self.file = create_segment(&self.dir, n)?;
                    self.dirty = false;
                }
            }
        }
        // A flush with nothing new (a vote saved twice, a group with nothing appended) costs
        // no fdatasync.
        if std::mem::take(&mut self.dirty) {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

impl WalEngine {
    /// Opens (or creates) the engine in `dir`.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        Self::open_with(dir, CHECKPOINT_AFTER, CHECKPOINT_CHUNK)
    }

    /// [`Self::open`] with another checkpoint threshold and chunk size (tests).
    pub(crate) fn open_with(dir: &Path, checkpoint_after: u64, chunk: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        let (rec, last, bytes) = recover(dir)?;
        let n = last + 1;
        let file = create_segment(dir, n)?;
        let log = Arc::new(Log {
            state: Mutex::new(LogState {
                pending: Vec::new(),
                since_checkpoint: bytes,
                next_segment: n + 1,
            }),
            checkpointing: AtomicBool::new(false),
        });
        let next_id = rec.names.keys().max().map_or(1, |m| m + 1);
        let mut maps = rec.maps;
        let trees = rec
            .names
            .into_iter()
            .map(|(id, name)| {
                let map = maps.remove(&id).unwrap_or_default();
                (name, MemTree::new(id, map, log.clone()))
            })
            .collect();
        let busy = stall::Busy::default();
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            file,
            log: log.clone(),
            busy: busy.clone(),
            failed: None,
            dirty: false,
        };
        std::thread::Builder::new()
            .name("raft-wal".into())
            .spawn(move || writer.run(rx))?;
        let engine = Self {
            dir: dir.to_path_buf(),
            trees: Mutex::new(trees),
            next_id: Mutex::new(next_id),
            log,
            flusher: tx,
            busy,
            checkpoint_after,
            checkpoint_chunk: chunk,
            _lock: lock,
        };
        // The root tree exists from the start, in every checkpoint and every replay.
        engine.open_tree(ROOT)?;
        Ok(engine)
    }

    fn trees(&self) -> MutexGuard<'_, HashMap<String, Arc<MemTree>>> {
        self.trees.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self, waiter: Waiter) -> io::Result<()> {
        self.maybe_checkpoint();
        self.flusher
            .send(waiter)
            .map_err(|_| io::Error::other("flush thread stopped"))
    }

    /// Starts a checkpoint on a thread of its own when the log has grown past the threshold
    /// since the last.
    fn maybe_checkpoint(&self) {
        if self.log.checkpointing.load(Ordering::SeqCst)
            || self.log.lock().since_checkpoint < self.checkpoint_after
        {
            return;
        }
        let Some(ckpt) = self.begin_checkpoint(false) else {
            return;
        };
        let state = self.log.clone();
        let spawned = std::thread::Builder::new()
            .name("raft-wal-checkpoint".into())
            .spawn(move || {
                if let Err(e) = ckpt.run() {
                    // Tried again once the log has grown by the threshold once more, not at
                    // the next flush: a failing disk would otherwise be retried thousands of
                    // times a second, each time with a new segment.
                    tracing::warn!(error = %e, "Raft log checkpoint failed; the segments stay until one succeeds");
                }
                state.checkpointing.store(false, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.log.checkpointing.store(false, Ordering::SeqCst);
        }
    }

    /// Moves the log on to a new segment `n` (unless a checkpoint runs, or, without `force`,
    /// the log has not grown past the threshold) and returns what writes checkpoint `n`.
    fn begin_checkpoint(&self, force: bool) -> Option<Checkpoint> {
        // Trees before the log, as everywhere.
        let trees = self.trees();
        let mut log = self.log.lock();
        if (!force && log.since_checkpoint < self.checkpoint_after)
            || self.log.checkpointing.swap(true, Ordering::SeqCst)
        {
            return None;
        }
        let n = log.next_segment;
        log.next_segment += 1;
        log.since_checkpoint = 0;
        log.pending.push(Chunk::Rotate(n));
        Some(Checkpoint {
            n,
            trees: trees.iter().map(|(n, t)| (n.clone(), t.clone())).collect(),
            dir: self.dir.clone(),
            flusher: self.flusher.clone(),
            chunk: self.checkpoint_chunk,
        })
    }
}

/// A checkpoint begun by [`WalEngine::begin_checkpoint`].
struct Checkpoint {
    n: u64,
    trees: Vec<(String, Arc<MemTree>)>,
    dir: PathBuf,
    flusher: mpsc::Sender<Waiter>,
    chunk: usize,
}

impl Checkpoint {
    fn run(self) -> io::Result<()> {
        let flusher = self.flusher;
        let flush = || flush_waiting(&flusher);
        // The rotation is written (and the segments before it synced) first, so that nothing
        // the checkpoint covers is still on its way to a segment it removes.
        flush()?;
        write_checkpoint(&self.dir, self.n, self.trees, self.chunk, flush)
    }
}

impl KvEngine for WalEngine {
    fn root(&self) -> Arc<dyn KvTree> {
        match self.trees().get(ROOT) {
            Some(t) => t.clone(),
            // `open` created it and `drop_tree` refuses it.
            None => MemTree::new(0, Map::new(), self.log.clone()),
        }
    }

    fn tree_names(&self) -> io::Result<Vec<String>> {
        Ok(self.trees().keys().cloned().collect())
    }

    fn open_tree(&self, name: &str) -> io::Result<Arc<dyn KvTree>> {
        let mut trees = self.trees();
        if let Some(t) = trees.get(name) {
            return Ok(t.clone());
        }
        let id = if name == ROOT {
            0
        } else {
            let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            let id = *next;
            *next = next
                .checked_add(1)
                .ok_or_else(|| io::Error::other("tree ids exhausted"))?;
            id
        };
        let tree = MemTree::new(id, Map::new(), self.log.clone());
        let record = framed(&encode_create(id, name))?;
        self.log.lock().append(record);
        trees.insert(name.to_string(), tree.clone());
        Ok(tree)
    }

    fn drop_tree(&self, name: &str) -> io::Result<()> {
        if name == ROOT {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "the root tree cannot be dropped",
            ));
        }
        let mut trees = self.trees();
        let Some(tree) = trees.remove(name) else {
            return Ok(());
        };
        let record = framed(&encode_drop(tree.id))?;
        let mut log = self.log.lock();
        tree.dropped.store(true, Ordering::SeqCst);
        log.append(record);
        Ok(())
    }

    fn flush(&self) -> BoxFuture<'static, io::Result<()>> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let queued = self.queue(Box::new(move |r| {
            // A waiter that gave up (its future dropped) needs no answer.
            let _ = done.send(r);
        }));
        Box::pin(async move {
            queued?;
            match wait.await {
                Ok(res) => res.map_err(|(kind, msg)| io::Error::new(kind, msg)),
                Err(_) => Err(io::Error::other("flush thread stopped")),
            }
        })
    }

    fn exit_on_stall(&self, limit: Duration) -> io::Result<()> {
        stall::exit_on_stall(&self.busy, limit)
    }

    fn flush_blocking(&self) -> io::Result<()> {
        self.maybe_checkpoint();
        flush_waiting(&self.flusher)
    }
}

/// Queues a flush on the flush thread and blocks until it answers.
fn flush_waiting(flusher: &mpsc::Sender<Waiter>) -> io::Result<()> {
    let (done, wait) = mpsc::sync_channel(1);
    flusher
        .send(Box::new(move |r| {
            let _ = done.send(r);
        }))
        .map_err(|_| io::Error::other("flush thread stopped"))?;
    match wait.recv() {
        Ok(res) => res.map_err(|(kind, msg)| io::Error::new(kind, msg)),
        Err(_) => Err(io::Error::other("flush thread stopped")),
    }
}

impl KvTree for MemTree {
    fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let v = self.read().get(key).cloned();
        v.map(|v| v.bytes(key)).transpose()
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.write_batch(vec![BatchOp::Put(key.to_vec(), value.to_vec())])
    }

    fn range<'a>(&'a self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> KvIter<'a> {
        self.pairs(self.read().range::<[u8], _>((lower, upper)))
    }

    fn scan_prefix<'a>(&'a self, prefix: &[u8]) -> KvIter<'a> {
        self.pairs(
            self.read()
                .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix)),
        )
    }

    fn last(&self) -> io::Result<Option<KvPair>> {
        self.pairs(self.read().last_key_value().into_iter())
            .next()
            .transpose()
    }

    fn apply_batch(&self, batch: WriteBatch) -> BoxFuture<'_, io::Result<()>> {
        let res = if batch.ops.is_empty() {
            Ok(())
        } else {
            self.write_batch(batch.ops)
        };
        Box::pin(std::future::ready(res))
    }
}

#[cfg(test)]
mod tests;
