//! Snapshot files (DataVersion 2): a group's snapshot lives in its own file under
//! `<data dir>/snapshots/g<gid>/`, written, sent and installed as a stream, so no step holds
//! the whole snapshot in memory.
//!
//! Format: `MAGIC` (8 bytes, the last one the format version), then one record per state
//! machine pair, `u32 BE key length | key | u32 BE value length | value`, then a trailer
//! `u32 0xFFFF_FFFF | u64 BE pair count | u64 BE FNV-1a of every record byte`. The trailer
//! catches truncation and corruption before anything is installed.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec;

const MAGIC: &[u8; 8] = b"MGNSNAP\x02";
const TRAILER_MARK: u32 = u32::MAX;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Longest key or value accepted when reading (a corrupt length must not allocate wildly).
const MAX_FIELD: u32 = 1 << 30;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A snapshot file, open for reading: openraft's `SnapshotData`. The open handle keeps the
/// bytes readable even if a newer snapshot replaces (unlinks) the file meanwhile.
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) len: u64,
}

impl SnapshotFile {
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    /// A reader from the start of the file (through this handle: the path may be gone). Clones
    /// share the file offset, so use one reader of a `SnapshotFile` at a time.
    pub(crate) fn pairs(&self) -> io::Result<PairReader> {
        let mut f = self.file.try_clone()?;
        f.seek(SeekFrom::Start(0))?;
        PairReader::new(f)
    }
}

/// Streams pairs into a new file; `finish` writes the trailer and fsyncs.
pub(crate) struct PairWriter {
    out: BufWriter<File>,
    path: PathBuf,
    count: u64,
    hash: u64,
    bytes: u64,
}

impl PairWriter {
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(MAGIC)?;
        Ok(Self {
            out,
            path: path.to_path_buf(),
            count: 0,
            hash: FNV_OFFSET,
            bytes: MAGIC.len() as u64,
        })
    }

    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        for field in [key, value] {
            let len = u32::try_from(field.len())
                .ok()
                .filter(|l| *l < TRAILER_MARK)
                .ok_or_else(|| invalid("snapshot field too long"))?;
            let len = len.to_be_bytes();
            self.out.write_all(&len)?;
            self.out.write_all(field)?;
            self.hash = fnv(fnv(self.hash, &len), field);
            self.bytes += 4 + field.len() as u64;
        }
        self.count += 1;
        Ok(())
    }

    /// Completes the file (not yet durable: see [`sync_file`]); returns its path and size.
    pub(crate) fn finish(mut self) -> io::Result<(PathBuf, u64)> {
        self.out.write_all(&TRAILER_MARK.to_be_bytes())?;
        self.out.write_all(&self.count.to_be_bytes())?;
        self.out.write_all(&self.hash.to_be_bytes())?;
        self.out.flush()?;
        Ok((self.path, self.bytes + 20))
    }
}

/// Iterates the pairs of a snapshot file, checking the trailer at the end: the last item is an
/// error if the file is truncated, corrupt or has trailing bytes.
pub(crate) struct PairReader {
    input: BufReader<File>,
    count: u64,
    hash: u64,
    done: bool,
}

impl PairReader {
    pub(crate) fn from_file(file: File) -> io::Result<Self> {
        Self::new(file)
    }

    fn new(file: File) -> io::Result<Self> {
        let mut input = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(invalid("not a snapshot file of this format"));
        }
        Ok(Self {
            input,
            count: 0,
            hash: FNV_OFFSET,
            done: false,
        })
    }

    fn read_u32(&mut self) -> io::Result<[u8; 4]> {
        let mut b = [0u8; 4];
        self.input.read_exact(&mut b)?;
        Ok(b)
    }

    fn read_u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.input.read_exact(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    fn field(&mut self, len: [u8; 4]) -> io::Result<Vec<u8>> {
        let n = u32::from_be_bytes(len);
        if n > MAX_FIELD {
            return Err(invalid(format!("snapshot field of {n} bytes")));
        }
        let mut v = vec![0u8; n as usize];
        self.input.read_exact(&mut v)?;
        self.hash = fnv(fnv(self.hash, &len), &v);
        Ok(v)
    }

    fn next_pair(&mut self) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        let klen = self.read_u32()?;
        if u32::from_be_bytes(klen) == TRAILER_MARK {
            let (count, hash) = (self.read_u64()?, self.read_u64()?);
            if count != self.count || hash != self.hash {
                return Err(invalid("snapshot file checksum mismatch"));
            }
            if self.input.read(&mut [0u8; 1])? != 0 {
                return Err(invalid("trailing bytes after snapshot trailer"));
            }
            return Ok(None);
        }
        let key = self.field(klen)?;
        let vlen = self.read_u32()?;
        let value = self.field(vlen)?;
        self.count += 1;
        Ok(Some((key, value)))
    }
}

impl Iterator for PairReader {
    type Item = io::Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_pair() {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                let e = match e.kind() {
                    io::ErrorKind::UnexpectedEof => invalid("snapshot file is truncated"),
                    _ => e,
                };
                Some(Err(e))
            }
        }
    }
}

/// Reads a whole file through, checking its trailer.
#[cfg(test)]
pub(crate) fn verify(path: &Path) -> io::Result<()> {
    PairReader::new(File::open(path)?)?.try_for_each(|p| p.map(|_| ()))
}

/// A name no other file of this process or an earlier one takes.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A path for a file being written in `dir`; such files are removed at the next start.
pub(crate) fn tmp_path(dir: &Path) -> PathBuf {
    dir.join(format!("tmp-{}.snap", unique()))
}

/// The final name of a snapshot covering up to `index` (`None`: an empty state).
pub(crate) fn final_name(index: Option<u64>) -> String {
    let at = index.map_or("empty".to_string(), |i| format!("{i:020}"));
    format!("{at}-{}.snap", unique())
}

/// Makes a file's content durable.
pub(crate) fn sync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Makes renames and creations in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes the files of `dir` that are not in `keep`; with `tmp`, unfinished temporary files
/// too (only when nothing can be writing one: at open). Open handles (a snapshot being sent)
/// keep their bytes until closed.
pub(crate) fn remove_others(dir: &Path, keep: &[&str], tmp: bool) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_tmp = name.starts_with("tmp-");
        if !keep.contains(&name.as_ref()) && (tmp || !is_tmp) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// DataVersion 1 kept a snapshot as one value: `[RECORD_V1] ++ bincode(Vec<(key, value)>)`.
/// Writes it as a snapshot file (upgrade step, and snapshots received from a v1 peer).
pub(crate) fn write_from_v1_blob(blob: &[u8], path: &Path) -> io::Result<(PathBuf, u64)> {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = codec::decode_record(blob)?;
    let mut w = PairWriter::create(path)?;
    for (k, v) in &pairs {
        w.put(k, v)?;
    }
    w.finish()
}

/// The DataVersion 1 blob of a snapshot file, for a v1 peer (in memory, as v1 did).
pub(crate) fn to_v1_blob(file: &SnapshotFile) -> io::Result<Vec<u8>> {
    let pairs = file.pairs()?.collect::<io::Result<Vec<_>>>()?;
    Ok(codec::encode_record(&pairs)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> PathBuf {
        let mut w = PairWriter::create(&dir.join("a.snap")).unwrap();
        w.put(b"\x00last", b"7").unwrap();
        w.put(b"\x01k", &[0u8; 3000]).unwrap();
        w.put(b"\x01z", b"").unwrap();
        w.finish().unwrap().0
    }

    #[test]
    fn roundtrip_and_v1_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let f = SnapshotFile::open(&path).unwrap();
        let pairs: Vec<_> = f.pairs().unwrap().map(|p| p.unwrap()).collect();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[1], (b"\x01k".to_vec(), vec![0u8; 3000]));
        verify(&path).unwrap();

        let blob = to_v1_blob(&f).unwrap();
        let (back, size) = write_from_v1_blob(&blob, &dir.path().join("b.snap")).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&path).unwrap());
        assert_eq!(size, f.len);
    }

    #[test]
    fn truncation_corruption_and_garbage_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        let check = |b: &[u8]| {
            let p = dir.path().join("x.snap");
            std::fs::write(&p, b).unwrap();
            verify(&p)
        };
        assert!(check(&bytes[..bytes.len() - 1]).is_err());
        assert!(check(&bytes[..100]).is_err());
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(check(&flipped).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(check(&longer).is_err());
        assert!(check(b"hello").is_err());
        assert!(check(&bytes).is_ok());
    }

    #[test]
    fn remove_others_keeps_the_current_file() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        std::fs::write(dir.path().join("old.snap"), b"stale").unwrap();
        let tmp = tmp_path(dir.path());
        std::fs::write(&tmp, b"partial").unwrap();
        remove_others(dir.path(), &["a.snap"], false).unwrap();
        assert!(tmp.exists() && !dir.path().join("old.snap").exists());
        remove_others(dir.path(), &["a.snap"], true).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["a.snap"]);
        assert_ne!(final_name(Some(3)), final_name(Some(3)));
        assert!(final_name(Some(3)).starts_with("00000000000000000003-"));
    }
}
