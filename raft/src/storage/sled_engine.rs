//! [`KvEngine`] on sled 0.34: the only place of the crate (besides its construction in
//! `node.rs`) that knows sled.
//!
//! One `sled::Db` per process; a [`KvEngine`] tree is a `sled::Tree` of the same name, and
//! [`KvEngine::root`] is sled's default tree, so the on-disk layout is sled's own.

use std::io::{self, ErrorKind};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::engine::{BatchOp, KvEngine, KvIter, KvPair, KvTree, WriteBatch};
use super::stall;

/// How long `open` waits for a previous instance to release the db lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Orders our flushes (shared) against our batch writes (exclusive). sled 0.34 has a
/// process-global RwLock where `apply_batch` is the writer and a flush holds the read side for
/// a whole fsync; taking our async lock first means a batch never blocks a tokio worker thread
/// waiting for an fsync to end.
type IoLock = Arc<tokio::sync::RwLock<()>>;

/// The process's single sled database.
pub(crate) struct SledEngine {
    db: sled::Db,
    io: IoLock,
    flusher: Flusher,
}

/// One waiter of a durable flush.
type FlushWaiter = tokio::sync::oneshot::Sender<Result<(), (ErrorKind, String)>>;

/// Group commit on a thread of its own. Every group of the process flushes the same `Db`, so one
/// fsync serves every waiter queued before it began: under load the appends of all groups share
/// one flush instead of one each. The thread is the engine's, not tokio's blocking pool, so a
/// flush never queues behind application work there (key generation, snapshot files), and it
/// keeps sled's own IO pool free (see `flush`).
struct Flusher {
    tx: std::sync::mpsc::Sender<FlushWaiter>,
    busy_since: stall::Busy,
}

impl Flusher {
    fn start(db: sled::Db) -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<FlushWaiter>();
        let busy_since = stall::Busy::default();
        let busy = busy_since.clone();
        std::thread::Builder::new()
            .name("sled-flush".into())
            .spawn(move || {
                // Ends when the engine (the only sender) is dropped, releasing its `Db` handle.
                while let Ok(first) = rx.recv() {
                    let mut waiters = vec![first];
                    waiters.extend(rx.try_iter());
                    let running = stall::Running::start(&busy);
                    let res = db.flush().map(|_| ()).map_err(|e| {
                        let e = sled_io(e);
                        (e.kind(), e.to_string())
                    });
                    drop(running);
                    for w in waiters {
                        // A waiter that gave up (its future dropped) needs no answer.
                        let _ = w.send(res.clone());
                    }
                }
            })?;
        Ok(Self { tx, busy_since })
    }
}

impl SledEngine {
    /// Opens (or creates) the database at `path`.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let config = sled::Config::new()
            .path(path)
            // sled defaults to a 1 GiB cache; the state per group is small.
            .cache_capacity(128 * 1024 * 1024);
        // The file lock outlives its holder for a while: sled's IO threads finish after the last
        // `Db` handle of a shutdown in this process, and a crashed process keeps its files open
        // until every thread has left the kernel (one may sit in an fsync for seconds). A
        // supervisor that restarts at once must wait for that, not fail.
        let deadline = Instant::now() + LOCK_WAIT;
        let mut warned = false;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e)) if is_lock_taken(&e) && Instant::now() < deadline => {
                    if !warned {
                        tracing::warn!(path = %path.display(), "data dir locked by a previous instance; waiting for it to exit");
                        warned = true;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other.map_err(sled_io)?,
            }
        };
        Self::with_db(db)
    }

    /// A database deleted when dropped.
    #[cfg(test)]
    pub(crate) fn temporary() -> io::Result<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(sled_io)?;
        Self::with_db(db)
    }

    fn with_db(db: sled::Db) -> io::Result<Self> {
        Ok(Self {
            flusher: Flusher::start(db.clone())?,
            db,
            io: Arc::new(tokio::sync::RwLock::new(())),
        })
    }

    fn tree(&self, tree: sled::Tree) -> Arc<dyn KvTree> {
        Arc::new(SledTree {
            tree,
            io: self.io.clone(),
        })
    }
}

impl KvEngine for SledEngine {
    fn root(&self) -> Arc<dyn KvTree> {
        // `Db` derefs to sled's default tree.
        self.tree((*self.db).clone())
    }

    fn tree_names(&self) -> io::Result<Vec<String>> {
        Ok(self
            .db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect())
    }

    fn open_tree(&self, name: &str) -> io::Result<Arc<dyn KvTree>> {
        Ok(self.tree(self.db.open_tree(name).map_err(sled_io)?))
    }

    fn drop_tree(&self, name: &str) -> io::Result<()> {
        self.db.drop_tree(name).map(|_| ()).map_err(sled_io)
    }

    /// sled flushes the whole db, all trees.
    ///
    /// Not `flush_async`: in sled 0.34.7 it runs the flush on sled's own IO thread pool, where
    /// concurrent flushes can occupy every thread while waiting for an IO-buffer write queued
    /// on that same pool; with a pending `apply_batch` holding sled's global lock queue, the
    /// whole process deadlocks (spacejam/sled#1308, fixed only on sled main). A blocking flush
    /// on the engine's flush thread (`Flusher`) leaves sled's pool free for the buffer writes.
    fn flush(&self) -> BoxFuture<'static, io::Result<()>> {
        let io = self.io.clone();
        let tx = self.flusher.tx.clone();
        Box::pin(async move {
            let _shared = io.read().await;
            let (done, wait) = tokio::sync::oneshot::channel();
            if tx.send(done).is_err() {
                return Err(io::Error::other("flush thread stopped"));
            }
            match wait.await {
                Ok(res) => res.map_err(|(kind, msg)| io::Error::new(kind, msg)),
                Err(_) => Err(io::Error::other("flush thread stopped")),
            }
        })
    }

    fn exit_on_stall(&self, limit: Duration) -> io::Result<()> {
        stall::exit_on_stall(&self.flusher.busy_since, limit)
    }

    fn flush_blocking(&self) -> io::Result<()> {
        self.db.flush().map(|_| ()).map_err(sled_io)
    }
}

/// One sled tree plus the engine's batch/flush lock.
struct SledTree {
    tree: sled::Tree,
    io: IoLock,
}

fn pairs<'a>(iter: sled::Iter) -> KvIter<'a> {
    Box::new(iter.map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(sled_io)))
}

impl KvTree for SledTree {
    fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key).map_err(sled_io)?.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.tree.insert(key, value).map_err(sled_io)?;
        Ok(())
    }

    fn range<'a>(&'a self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> KvIter<'a> {
        pairs(self.tree.range::<&[u8], _>((lower, upper)))
    }

    fn scan_prefix<'a>(&'a self, prefix: &[u8]) -> KvIter<'a> {
        pairs(self.tree.scan_prefix(prefix))
    }

    fn last(&self) -> io::Result<Option<KvPair>> {
        Ok(self
            .tree
            .last()
            .map_err(sled_io)?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn apply_batch(&self, mut batch: WriteBatch) -> BoxFuture<'_, io::Result<()>> {
        // A one-op batch is atomic as a plain insert/remove, which skips what makes a sled
        // batch costly: each `apply_batch` seals the current IO buffer twice (one pwrite +
        // sync_file_range and a wake-up of every sled IO thread per seal) and takes sled's
        // global write lock, so it waits for any running flush. Single-entry log appends are
        // the common case when many groups each carry a little load. It takes the shared side
        // of our lock, like a flush: never inside a batch, so it never queues in sled behind one.
        if batch.ops.len() == 1 {
            if let Some(op) = batch.ops.pop() {
                return Box::pin(async move {
                    let _shared = self.io.read().await;
                    match op {
                        BatchOp::Put(k, v) => self.tree.insert(k, v).map(|_| ()),
                        BatchOp::Delete(k) => self.tree.remove(k).map(|_| ()),
                    }
                    .map_err(sled_io)
                });
            }
        }
        let mut sled_batch = sled::Batch::default();
        for op in batch.ops {
            match op {
                BatchOp::Put(k, v) => sled_batch.insert(k, v),
                BatchOp::Delete(k) => sled_batch.remove(k),
            }
        }
        Box::pin(async move {
            let _exclusive = self.io.write().await;
            self.tree.apply_batch(sled_batch).map_err(sled_io)
        })
    }
}

fn sled_io(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => io::Error::other(other.to_string()),
    }
}

/// sled 0.34 reports a taken lock as an `Other` error whose text carries the `WouldBlock` cause.
fn is_lock_taken(e: &io::Error) -> bool {
    e.kind() == ErrorKind::WouldBlock || e.to_string().starts_with("could not acquire lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn meets_the_engine_contract() {
        let engine = SledEngine::temporary().unwrap();
        super::super::engine::check_contract(&engine).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_flushes_all_answer_and_the_engine_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let engine = Arc::new(SledEngine::open(&path).unwrap());
            let t = engine.open_tree("g").unwrap();
            let mut tasks = Vec::new();
            for i in 0..64u32 {
                let (engine, t) = (engine.clone(), t.clone());
                tasks.push(tokio::spawn(async move {
                    let mut b = WriteBatch::default();
                    b.put(i.to_be_bytes(), *b"v");
                    t.apply_batch(b).await.unwrap();
                    engine.flush().await.unwrap();
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
        // The flush thread lets go of the db once the engine is gone.
        let engine = SledEngine::open(&path).unwrap();
        let t = engine.open_tree("g").unwrap();
        for i in 0..64u32 {
            assert_eq!(t.get(&i.to_be_bytes()).unwrap(), Some(b"v".to_vec()));
        }
    }

    #[tokio::test]
    async fn one_op_batches_put_and_delete() {
        let engine = SledEngine::temporary().unwrap();
        let t = engine.open_tree("one").unwrap();
        let mut b = WriteBatch::default();
        b.put(*b"k", *b"v");
        t.apply_batch(b).await.unwrap();
        assert_eq!(t.get(b"k").unwrap(), Some(b"v".to_vec()));
        let mut b = WriteBatch::default();
        b.delete(*b"k");
        t.apply_batch(b).await.unwrap();
        assert_eq!(t.get(b"k").unwrap(), None);
        t.apply_batch(WriteBatch::default()).await.unwrap();
        engine.flush().await.unwrap();
    }

    #[tokio::test]
    async fn reopen_keeps_flushed_data_and_sled_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let engine = SledEngine::open(&path).unwrap();
            engine.root().insert(b"r", b"1").unwrap();
            let mut b = WriteBatch::default();
            b.put(*b"k", *b"v");
            engine
                .open_tree("g1/log")
                .unwrap()
                .apply_batch(b)
                .await
                .unwrap();
            engine.flush().await.unwrap();
        }
        // `open` waits out sled's flusher thread, which may hold the file lock after the drop.
        let reopened = SledEngine::open(&path);
        // Same names and bytes as plain sled: the default tree and a tree of that name.
        let db = reopened.unwrap().db;
        assert_eq!(db.get(b"r").unwrap().unwrap().as_ref(), b"1");
        let tree = db.open_tree("g1/log").unwrap();
        assert_eq!(tree.get(b"k").unwrap().unwrap().as_ref(), b"v");
    }

    #[test]
    fn open_waits_for_the_previous_holder_of_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let first = SledEngine::open(&path).unwrap();
        first.root().insert(b"k", b"v").unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            drop(first);
        });
        let second = SledEngine::open(&path).unwrap();
        holder.join().unwrap();
        assert_eq!(second.db.get(b"k").unwrap().unwrap().as_ref(), b"v");
    }
}
