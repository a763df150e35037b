//! The wal engine's record format: each record is `[payload length u32 LE][crc32 u32 LE]
//! [payload]`; a payload is a tree's creation, its drop, a batch of puts and deletes, or (in a
//! checkpoint) the end.

use std::io::{self, ErrorKind};

use crate::storage::engine::BatchOp;

/// A record longer than this is a corrupt length, not a record (the largest real ones are
/// snapshot-install batches of a few MiB).
pub(super) const MAX_RECORD: u32 = 1 << 30;

pub(super) const TAG_CREATE: u8 = 1;
pub(super) const TAG_DROP: u8 = 2;
pub(super) const TAG_BATCH: u8 = 3;
pub(super) const TAG_END: u8 = 4;

pub(super) fn frame(record: &[u8], out: &mut Vec<u8>) {
    // `framed` refuses records past `MAX_RECORD`; a checkpoint's are smaller by construction.
    let len = u32::try_from(record.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
    out.extend_from_slice(record);
}

/// `record` with its frame, or an error if it is too long to read back.
pub(super) fn framed(record: &[u8]) -> io::Result<Vec<u8>> {
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

pub(super) fn corrupt(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg.into())
}

pub(super) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, u32::try_from(b.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(b);
}

pub(super) fn encode_create(id: u32, name: &str) -> Vec<u8> {
    let mut out = vec![TAG_CREATE];
    put_u32(&mut out, id);
    put_bytes(&mut out, name.as_bytes());
    out
}

pub(super) fn encode_drop(id: u32) -> Vec<u8> {
    let mut out = vec![TAG_DROP];
    put_u32(&mut out, id);
    out
}

pub(super) fn encode_batch(id: u32, ops: &[BatchOp]) -> Vec<u8> {
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
pub(super) enum Record {
    Create(u32, String),
    Drop(u32),
    Batch(u32, Vec<BatchOp>),
    End,
}

pub(super) struct Cursor<'a>(&'a [u8]);

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

pub(super) fn decode(payload: &[u8]) -> io::Result<Record> {
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
pub(super) fn read_frames(buf: &[u8]) -> (Vec<&[u8]>, usize) {
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
