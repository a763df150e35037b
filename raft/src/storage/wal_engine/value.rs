//! Values as the wal engine's trees hold them. A small value stays in memory. A large one (a
//! cluster's certificates, a remembered answer) is in memory only from its write to the next
//! checkpoint: the checkpoint writes it as a record of its own and the tree then keeps only
//! where that record is ([`Spill`]), reading it back with `pread` when asked. Memory then holds
//! the keys and the small rows, and the page cache the rest.
//!
//! The rules, each with its reason:
//! - a spill is a whole record (length, crc32, a batch of this one put), so a read checks the
//!   checksum and the key: a damaged or misplaced record is an error, never some other bytes;
//! - a tree's value is swung to its spill only while it is still the value the checkpoint
//!   copied (the same allocation or the same record, which the checkpoint holds, so neither
//!   can be reused): a write that raced the checkpoint always wins;
//! - every spill holds its file open: a checkpoint replaced, and so unlinked, stays readable
//!   until the last value pointing into it is swung or overwritten.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::record::*;
use crate::storage::engine::BatchOp;

/// Values of at least this many bytes are spilled by a checkpoint: a shard's cluster and
/// nodegroup rows, certificates and remembered answers, not its small bookkeeping rows. A
/// spilled value costs 32 bytes of memory and a `pread` from the page cache when read.
pub(super) const SPILL_AT: usize = 512;

#[derive(Clone, Debug)]
pub(super) enum Val {
    Small(Vec<u8>),
    /// Large, in memory until the next checkpoint (shared, so that the checkpoint can tell it
    /// is still the same value when it swings it).
    Large(Arc<Vec<u8>>),
    Spilled(Spill),
}

/// Where a spilled value's record is: `len` bytes (frame included) at `at` in `file`. No two
/// values share one while the file is open, which is what makes it an identity.
#[derive(Clone, Debug)]
pub(super) struct Spill {
    file: Arc<File>,
    at: u64,
    len: u32,
}

impl Val {
    pub(super) fn new(v: Vec<u8>) -> Self {
        if v.len() >= SPILL_AT {
            Val::Large(Arc::new(v))
        } else {
            Val::Small(v)
        }
    }

    /// About the bytes it stands for (the whole record when spilled): a checkpoint's chunks are
    /// sized by it.
    pub(super) fn len(&self) -> usize {
        match self {
            Val::Small(v) => v.len(),
            Val::Large(v) => v.len(),
            Val::Spilled(s) => s.len as usize,
        }
    }

    /// Whether a checkpoint writes it as a record of its own and spills it.
    pub(super) fn spills(&self) -> bool {
        !matches!(self, Val::Small(_))
    }

    /// The bytes of the value of `key` (read from the file when spilled).
    pub(super) fn bytes(&self, key: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Val::Small(v) => Ok(v.clone()),
            Val::Large(v) => Ok(v.as_ref().clone()),
            Val::Spilled(s) => s.read(key),
        }
    }

    /// [`Self::bytes`] without a copy of a small value.
    pub(super) fn into_bytes(self, key: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Val::Small(v) => Ok(v),
            other => other.bytes(key),
        }
    }

    /// The same value, not only the same bytes: the checkpoint's test before it swings one.
    pub(super) fn same(&self, other: &Val) -> bool {
        match (self, other) {
            (Val::Large(a), Val::Large(b)) => Arc::ptr_eq(a, b),
            (Val::Spilled(a), Val::Spilled(b)) => Arc::ptr_eq(&a.file, &b.file) && a.at == b.at,
            _ => false,
        }
    }
}

impl Spill {
    pub(super) fn new(file: Arc<File>, at: u64, len: u32) -> Self {
        Self { file, at, len }
    }

    fn read(&self, key: &[u8]) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; self.len as usize];
        self.file.read_exact_at(&mut buf, self.at)?;
        let (frames, end) = read_frames(&buf);
        let payload = match frames.as_slice() {
            [one] if end == buf.len() => one,
            _ => {
                return Err(corrupt(format!(
                    "a spilled value at byte {} is damaged",
                    self.at
                )))
            }
        };
        match decode(payload)? {
            Record::Batch(_, ops) => match <[BatchOp; 1]>::try_from(ops) {
                Ok([BatchOp::Put(k, v)]) if k == key => Ok(v),
                _ => Err(corrupt(format!(
                    "the record at byte {} is not the spilled value",
                    self.at
                ))),
            },
            _ => Err(corrupt(format!(
                "the record at byte {} is not a spilled value",
                self.at
            ))),
        }
    }
}

/// What a checkpoint's batch record recovers: a batch of one large put is left in the
/// checkpoint file (`file`, the record `len` bytes at `at`) and comes back as its key and
/// spill; any other batch comes back as it is, to be read into memory.
pub(super) fn spilled_in(
    ops: Vec<BatchOp>,
    file: &Arc<File>,
    at: u64,
    len: usize,
) -> Result<(Vec<u8>, Val), Vec<BatchOp>> {
    let Ok(len) = u32::try_from(len) else {
        return Err(ops);
    };
    match <[BatchOp; 1]>::try_from(ops) {
        Ok([BatchOp::Put(k, v)]) if v.len() >= SPILL_AT => {
            Ok((k, Val::Spilled(Spill::new(file.clone(), at, len))))
        }
        Ok([op]) => Err(vec![op]),
        Err(ops) => Err(ops),
    }
}
