//! The wal engine's files: segments, checkpoints and the lock, and recovery from them (the rules
//! are in the parent module's doc).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::*;
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

pub(super) fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.read_to_end(&mut buf)?;
    Ok(buf)
}

pub(super) fn load_checkpoint(path: &Path, into: &mut Recovered) -> io::Result<()> {
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
pub(super) fn write_checkpoint(
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
