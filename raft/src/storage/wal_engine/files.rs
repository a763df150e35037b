//! The wal engine's files: segments, checkpoints and the lock, and recovery from them (the rules
//! are in the parent module's doc).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::*;
use super::value::*;
use super::{apply_ops, Map, MemTree, ROOT};
use crate::storage::engine::BatchOp;

/// How long `open` waits for a previous instance to release the lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);

pub(super) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:016x}.wal"))
}

pub(super) fn checkpoint_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("ckpt-{n:016x}"))
}

/// The numbered files of `dir` whose names are `{prefix}{n:016x}{suffix}`, ascending.
pub(super) fn numbered(dir: &Path, prefix: &str, suffix: &str) -> io::Result<Vec<u64>> {
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

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(super) fn create_segment(dir: &Path, n: u64) -> io::Result<File> {
    let f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, n))?;
    sync_dir(dir)?;
    Ok(f)
}

pub(super) fn lock_dir(dir: &Path) -> io::Result<File> {
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
pub(super) struct Recovered {
    pub(super) names: HashMap<u32, String>,
    pub(super) maps: HashMap<u32, Map>,
}

impl Recovered {
    fn map(&mut self, id: u32) -> io::Result<&mut Map> {
        self.maps
            .get_mut(&id)
            .ok_or_else(|| corrupt(format!("a write to unknown tree {id}")))
    }

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
            Record::Batch(id, ops) => apply_ops(self.map(id)?, ops),
            Record::End => return Err(corrupt("an end record inside a log segment")),
        }
        Ok(())
    }
}

pub(super) fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads checkpoint `path` into `into`, one record at a time (never the whole file at once),
/// leaving its large values in the file (`value.rs`).
pub(super) fn load_checkpoint(path: &Path, into: &mut Recovered) -> io::Result<()> {
    let damaged = || corrupt(format!("{} is damaged", path.display()));
    let file = Arc::new(File::open(path)?);
    let size = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file.as_ref());
    let (mut at, mut payload) = (0u64, Vec::new());
    loop {
        let mut head = [0u8; 8];
        r.read_exact(&mut head).map_err(|_| damaged())?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        // A damaged length must not allocate past what the file holds.
        if len > MAX_RECORD || at + 8 + u64::from(len) > size {
            return Err(damaged());
        }
        payload.resize(len as usize, 0);
        r.read_exact(&mut payload).map_err(|_| damaged())?;
        if crc32fast::hash(&payload) != crc {
            return Err(damaged());
        }
        let frame_len = 8 + payload.len();
        match decode(&payload)? {
            Record::End => {
                // Nothing may follow the end record.
                return match r.read(&mut head)? {
                    0 => Ok(()),
                    _ => Err(damaged()),
                };
            }
            Record::Batch(id, ops) => match spilled_in(ops, &file, at, frame_len) {
                Ok((k, v)) => {
                    into.map(id)?.insert(k, v);
                }
                Err(ops) => apply_ops(into.map(id)?, ops),
            },
            other => into.apply(other)?,
        }
        at += frame_len as u64;
    }
}

/// A large value a checkpoint wrote as a record of its own: its tree, its key, the value it
/// copied, and the record's offset and length in the checkpoint.
type Written = (Arc<MemTree>, Vec<u8>, Val, u64, usize);

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
///
/// Each large value goes in a record of its own, and once the checkpoint is in place the trees
/// point at those records instead of holding the values (`value.rs`).
pub(super) fn write_checkpoint(
    dir: &Path,
    n: u64,
    trees: Vec<(String, Arc<MemTree>)>,
    chunk: usize,
    flush: impl Fn() -> io::Result<()>,
) -> io::Result<()> {
    let tmp = dir.join(format!("ckpt-{n:016x}.tmp"));
    let mut spills: Vec<Written> = Vec::new();
    {
        let mut w = io::BufWriter::new(File::create(&tmp)?);
        let (mut buf, mut at) = (Vec::new(), 0u64);
        let mut put = |record: &[u8], w: &mut io::BufWriter<File>| {
            buf.clear();
            frame(record, &mut buf);
            w.write_all(&buf)?;
            let start = at;
            at += buf.len() as u64;
            Ok::<_, io::Error>((start, buf.len()))
        };
        for (name, tree) in trees {
            put(&encode_create(tree.id, &name), &mut w)?;
            let mut after: Option<Vec<u8>> = None;
            loop {
                let pairs = tree.chunk_after(after.as_deref(), chunk);
                let Some((last, _)) = pairs.last() else {
                    break;
                };
                after = Some(last.clone());
                let mut small = Vec::new();
                for (k, v) in pairs {
                    if !v.spills() {
                        let bytes = v.into_bytes(&k)?;
                        small.push(BatchOp::Put(k, bytes));
                        continue;
                    }
                    let op = BatchOp::Put(k.clone(), v.bytes(&k)?);
                    let (start, len) = put(&encode_batch(tree.id, &[op]), &mut w)?;
                    spills.push((tree.clone(), k, v, start, len));
                }
                if !small.is_empty() {
                    put(&encode_batch(tree.id, &small), &mut w)?;
                }
            }
        }
        put(&[TAG_END], &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    flush()?;
    let path = checkpoint_path(dir, n);
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    swing(&path, spills)?;
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

/// Points the values checkpoint `path` holds as records of their own at those records.
fn swing(path: &Path, spills: Vec<Written>) -> io::Result<()> {
    let file = Arc::new(File::open(path)?);
    // One write lock per run of a tree's values, not one per value.
    let mut run: Vec<(Vec<u8>, Val, Spill)> = Vec::new();
    let mut spills = spills.into_iter().peekable();
    while let Some((tree, k, v, at, len)) = spills.next() {
        let len = u32::try_from(len).map_err(|_| corrupt("a spilled record past 4 GiB"))?;
        run.push((k, v, Spill::new(file.clone(), at, len)));
        let same_tree = spills.peek().is_some_and(|(t, ..)| Arc::ptr_eq(t, &tree));
        if run.len() >= 1024 || !same_tree {
            tree.swing(std::mem::take(&mut run));
        }
    }
    Ok(())
}

/// Rebuilds the trees from the newest checkpoint and the segments after it, cuts a torn tail,
/// and removes what a crash left behind. Returns the trees, the last segment number and the
/// log bytes since the checkpoint.
pub(super) fn recover(dir: &Path) -> io::Result<(Recovered, u64, u64)> {
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
