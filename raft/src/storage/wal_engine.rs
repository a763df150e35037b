//! [`KvEngine`] as memory plus a write-ahead log ("wal"). Every tree lives in memory; every
//! write is appended, framed and checksummed, to an in-memory buffer that a flush writes to the
//! log file and fdatasyncs on one thread of its own. The appends of every group of the node
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
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::engine::{BatchOp, KvEngine, KvIter, KvPair, KvTree, WriteBatch};
use super::stall;

/// The root tree's name (it always exists, with id 0).
const ROOT: &str = "__root__";
/// Log bytes after which a checkpoint starts (and the segments before it can go).
const CHECKPOINT_AFTER: u64 = 64 * 1024 * 1024;
/// About how many bytes of a tree a checkpoint copies at a time (under the tree's read lock).
const CHECKPOINT_CHUNK: usize = 1 << 20;
/// A record longer than this is a corrupt length, not a record (the largest real ones are
/// snapshot-install batches of a few MiB).
const MAX_RECORD: u32 = 1 << 30;
/// How long `open` waits for a previous instance to release the lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);

const TAG_CREATE: u8 = 1;
const TAG_DROP: u8 = 2;
const TAG_BATCH: u8 = 3;
const TAG_END: u8 = 4;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;
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

fn frame(record: &[u8], out: &mut Vec<u8>) {
    // `framed` refuses records past `MAX_RECORD`; a checkpoint's are smaller by construction.
    let len = u32::try_from(record.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
    out.extend_from_slice(record);
}

/// `record` with its frame, or an error if it is too long to read back.
fn framed(record: &[u8]) -> io::Result<Vec<u8>> {
    if record.len() > MAX_RECORD as usize {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!(
                "a write of {} bytes is past the log's record limit",
                record.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(record.len() + 8);
    frame(record, &mut out);
    Ok(out)
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
    /// Up to about `max_bytes` of pairs after `after` (from the first without), as puts.
    fn chunk_after(&self, after: Option<&[u8]>, max_bytes: usize) -> Vec<BatchOp> {
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
            out.push(BatchOp::Put(k.clone(), v.clone()));
        }
        out
    }
}

fn apply_ops(map: &mut Map, ops: Vec<BatchOp>) {
    for op in ops {
        match op {
            BatchOp::Put(k, v) => {
                map.insert(k, v);
            }
            BatchOp::Delete(k) => {
                map.remove(&k);
            }
        }
    }
}

fn corrupt(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg.into())
}

// --- Records -------------------------------------------------------------------------------

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, u32::try_from(b.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(b);
}

fn encode_create(id: u32, name: &str) -> Vec<u8> {
    let mut out = vec![TAG_CREATE];
    put_u32(&mut out, id);
    put_bytes(&mut out, name.as_bytes());
    out
}

fn encode_drop(id: u32) -> Vec<u8> {
    let mut out = vec![TAG_DROP];
    put_u32(&mut out, id);
    out
}

fn encode_batch(id: u32, ops: &[BatchOp]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|op| match op {
            BatchOp::Put(k, v) => 9 + k.len() + v.len(),
            BatchOp::Delete(k) => 5 + k.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(9 + size);
    out.push(TAG_BATCH);
    put_u32(&mut out, id);
    put_u32(&mut out, u32::try_from(ops.len()).unwrap_or(u32::MAX));
    for op in ops {
        match op {
            BatchOp::Put(k, v) => {
                out.push(0);
                put_bytes(&mut out, k);
                put_bytes(&mut out, v);
            }
            BatchOp::Delete(k) => {
                out.push(1);
                put_bytes(&mut out, k);
            }
        }
    }
    out
}

/// One decoded record.
#[derive(Debug, PartialEq)]
enum Record {
    Create(u32, String),
    Drop(u32),
    Batch(u32, Vec<BatchOp>),
    End,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt("record shorter than its fields"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

fn decode(payload: &[u8]) -> io::Result<Record> {
    let mut c = Cursor(payload);
    let record = match c.u8()? {
        TAG_CREATE => {
            let id = c.u32()?;
            let name = String::from_utf8(c.bytes()?).map_err(|_| corrupt("tree name not UTF-8"))?;
            Record::Create(id, name)
        }
        TAG_DROP => Record::Drop(c.u32()?),
        TAG_BATCH => {
            let id = c.u32()?;
            let n = c.u32()?;
            let mut ops = Vec::new();
            for _ in 0..n {
                ops.push(match c.u8()? {
                    0 => BatchOp::Put(c.bytes()?, c.bytes()?),
                    1 => BatchOp::Delete(c.bytes()?),
                    t => return Err(corrupt(format!("unknown batch op {t}"))),
                });
            }
            Record::Batch(id, ops)
        }
        TAG_END => Record::End,
        t => return Err(corrupt(format!("unknown record tag {t}"))),
    };
    if !c.0.is_empty() {
        return Err(corrupt("bytes after a record's fields"));
    }
    Ok(record)
}

/// The records of `buf` up to the first frame that is torn or fails its checksum, and the
/// offset where the good ones end.
fn read_frames(buf: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while buf.len() - at >= 8 {
        let len = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let crc = u32::from_le_bytes([buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]]);
        let end = at + 8 + len as usize;
        if len > MAX_RECORD || end > buf.len() {
            break;
        }
        let payload = &buf[at + 8..end];
        if crc32fast::hash(payload) != crc {
            break;
        }
        out.push(payload);
        at = end;
    }
    (out, at)
}

// --- Files ---------------------------------------------------------------------------------

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:016x}.wal"))
}

fn checkpoint_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("ckpt-{n:016x}"))
}

/// The numbered files of `dir` whose names are `{prefix}{n:016x}{suffix}`, ascending.
fn numbered(dir: &Path, prefix: &str, suffix: &str) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(hex) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
        else {
            continue;
        };
        if let Ok(n) = u64::from_str_radix(hex, 16) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn create_segment(dir: &Path, n: u64) -> io::Result<File> {
    let f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, n))?;
    sync_dir(dir)?;
    Ok(f)
}

fn lock_dir(dir: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    // A previous instance may still be exiting (a thread in an fsync keeps its files open):
    // a supervisor that restarts at once must wait for it, not fail.
    let deadline = Instant::now() + LOCK_WAIT;
    let mut warned = false;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                if !warned {
                    tracing::warn!(path = %dir.display(), "data dir locked by a previous instance; waiting for it to exit");
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    ErrorKind::WouldBlock,
                    format!("{} is locked by another process", dir.display()),
                ))
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// The trees as recovery rebuilds them.
#[derive(Default)]
struct Recovered {
    names: HashMap<u32, String>,
    maps: HashMap<u32, Map>,
}

impl Recovered {
    fn apply(&mut self, record: Record) -> io::Result<()> {
        match record {
            Record::Create(id, name) => {
                self.names.insert(id, name);
                self.maps.entry(id).or_default();
            }
            Record::Drop(id) => {
                self.names.remove(&id);
                self.maps.remove(&id);
            }
            Record::Batch(id, ops) => {
                let map = self
                    .maps
                    .get_mut(&id)
                    .ok_or_else(|| corrupt(format!("a write to unknown tree {id}")))?;
                apply_ops(map, ops);
            }
            Record::End => return Err(corrupt("an end record inside a log segment")),
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.read_to_end(&mut buf)?;
    Ok(buf)
}

fn load_checkpoint(path: &Path, into: &mut Recovered) -> io::Result<()> {
    let buf = read_file(path)?;
    let (frames, end) = read_frames(&buf);
    let complete = end == buf.len() && frames.last().is_some_and(|f| f == &[TAG_END]);
    if !complete {
        return Err(corrupt(format!("{} is damaged", path.display())));
    }
    for f in &frames[..frames.len() - 1] {
        into.apply(decode(f)?)?;
    }
    Ok(())
}

/// Writes checkpoint `n` from the trees as they are now, then removes what it makes redundant.
/// `flush` makes every write so far durable (through the flush thread).
///
/// The checkpoint is fuzzy: each tree is copied `chunk` bytes at a time, so no copy of the whole
/// state is ever held and a writer waits at most for one chunk, and each key holds its value at
/// some instant after the segment `n` began. That is enough because recovery replays segment
/// `n` on from its start and every write is a blind put or delete: a key written since is set
/// by its last write again, a key not written since had the same value throughout. And because a
/// chunk may hold half of a batch that no segment has yet, the checkpoint is renamed into place
/// only after a flush: every write it holds is then in the segments replayed after it.
fn write_checkpoint(
    dir: &Path,
    n: u64,
    trees: Vec<(String, Arc<MemTree>)>,
    chunk: usize,
    flush: impl Fn() -> io::Result<()>,
) -> io::Result<()> {
    let tmp = dir.join(format!("ckpt-{n:016x}.tmp"));
    {
        let mut w = io::BufWriter::new(File::create(&tmp)?);
        let mut buf = Vec::new();
        let mut put = |record: &[u8], w: &mut io::BufWriter<File>| {
            buf.clear();
            frame(record, &mut buf);
            w.write_all(&buf)
        };
        for (name, tree) in trees {
            put(&encode_create(tree.id, &name), &mut w)?;
            let mut after: Option<Vec<u8>> = None;
            loop {
                let ops = tree.chunk_after(after.as_deref(), chunk);
                let Some(BatchOp::Put(last, _)) = ops.last() else {
                    break;
                };
                after = Some(last.clone());
                put(&encode_batch(tree.id, &ops), &mut w)?;
            }
        }
        put(&[TAG_END], &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    flush()?;
    fs::rename(&tmp, checkpoint_path(dir, n))?;
    sync_dir(dir)?;
    for old in numbered(dir, "seg-", ".wal")?
        .into_iter()
        .filter(|s| *s < n)
    {
        fs::remove_file(segment_path(dir, old))?;
    }
    for old in numbered(dir, "ckpt-", "")?.into_iter().filter(|c| *c < n) {
        fs::remove_file(checkpoint_path(dir, old))?;
    }
    Ok(())
}

/// Rebuilds the trees from the newest checkpoint and the segments after it, cuts a torn tail,
/// and removes what a crash left behind. Returns the trees, the last segment number and the
/// log bytes since the checkpoint.
fn recover(dir: &Path) -> io::Result<(Recovered, u64, u64)> {
    for tmp in fs::read_dir(dir)? {
        let path = tmp?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            fs::remove_file(path)?;
        }
    }
    let mut rec = Recovered::default();
    rec.names.insert(0, ROOT.to_string());
    rec.maps.insert(0, Map::new());
    let checkpoints = numbered(dir, "ckpt-", "")?;
    let base = match checkpoints.last() {
        Some(&n) => {
            rec = Recovered::default();
            load_checkpoint(&checkpoint_path(dir, n), &mut rec)?;
            n
        }
        None => 1,
    };
    let segments: Vec<u64> = numbered(dir, "seg-", ".wal")?
        .into_iter()
        .filter(|s| *s >= base)
        .collect();
    for (i, s) in segments.iter().enumerate() {
        if *s != base + i as u64 {
            return Err(corrupt(format!(
                "log segment {:016x} missing (found {s:016x})",
                base + i as u64
            )));
        }
    }
    if !checkpoints.is_empty() && segments.is_empty() {
        return Err(corrupt(format!("log segment {base:016x} missing")));
    }
    let mut bytes = 0;
    for (i, s) in segments.iter().enumerate() {
        let path = segment_path(dir, *s);
        let buf = read_file(&path)?;
        let (frames, end) = read_frames(&buf);
        for f in frames {
            rec.apply(decode(f)?)?;
        }
        if end < buf.len() {
            if i + 1 < segments.len() {
                return Err(corrupt(format!(
                    "{} is damaged at byte {end}",
                    path.display()
                )));
            }
            tracing::warn!(segment = %path.display(), at = end, dropped = buf.len() - end, "cutting a torn tail off the Raft log (a write that was never flushed)");
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(end as u64)?;
            f.sync_all()?;
        }
        bytes += end as u64;
    }
    for old in numbered(dir, "seg-", ".wal")?
        .into_iter()
        .filter(|s| *s < base)
    {
        fs::remove_file(segment_path(dir, old))?;
    }
    for old in checkpoints.iter().filter(|c| **c < base) {
        fs::remove_file(checkpoint_path(dir, *old))?;
    }
    let last = segments.last().copied().unwrap_or(base - 1);
    Ok((rec, last, bytes))
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
        let flush = || {
            let (done, wait) = mpsc::sync_channel(1);
            flusher
                .send(Box::new(move |r| {
                    let _ = done.send(r);
                }))
                .map_err(|_| io::Error::other("flush thread stopped"))?;
            match wait.recv() {
                Ok(r) => r.map_err(|(kind, msg)| io::Error::new(kind, msg)),
                Err(_) => Err(io::Error::other("flush thread stopped")),
            }
        };
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
        let (done, wait) = mpsc::sync_channel(1);
        self.queue(Box::new(move |r| {
            let _ = done.send(r);
        }))?;
        match wait.recv() {
            Ok(res) => res.map_err(|(kind, msg)| io::Error::new(kind, msg)),
            Err(_) => Err(io::Error::other("flush thread stopped")),
        }
    }
}

impl KvTree for MemTree {
    fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.read().get(key).cloned())
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.write_batch(vec![BatchOp::Put(key.to_vec(), value.to_vec())])
    }

    fn range<'a>(&'a self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> KvIter<'a> {
        // Copied out under the read lock: a reader never holds writers back for longer.
        let pairs: Vec<io::Result<KvPair>> = self
            .read()
            .range::<[u8], _>((lower, upper))
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Box::new(pairs.into_iter())
    }

    fn scan_prefix<'a>(&'a self, prefix: &[u8]) -> KvIter<'a> {
        let pairs: Vec<io::Result<KvPair>> = self
            .read()
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Box::new(pairs.into_iter())
    }

    fn last(&self) -> io::Result<Option<KvPair>> {
        Ok(self
            .read()
            .last_key_value()
            .map(|(k, v)| (k.clone(), v.clone())))
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
#[path = "wal_engine_tests.rs"]
mod tests;
