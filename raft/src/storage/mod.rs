//! sled-backed storage. All sled use of the crate is confined to this module, so the engine
//! can be swapped by rewriting it (log.rs + sm.rs) without touching the rest.
//!
//! Layout: one `sled::Db` per process; per group three trees:
//! - `g{gid}/log`:  big-endian index -> versioned bincode `Entry`
//! - `g{gid}/meta`: vote, committed, last purged log id, last snapshot (meta + blob)
//! - `g{gid}/sm`:   app keys (prefix 0x01) and reserved keys (prefix 0x00: last_applied,
//!   membership), always written together in one `Batch`.

pub(crate) mod log;
pub(crate) mod sm;
#[cfg(test)]
mod tests;

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec;
use crate::error::RaftError;
use crate::types::{GroupId, NodeId};

/// On-disk format written by this version (`DataVersion`). Bump with an upgrade step.
pub(crate) const DATA_VERSION: u8 = 1;
const KEY_DATA_VERSION: &[u8] = b"magnum-raft/data_version";
const KEY_NODE_ID: &[u8] = b"magnum-raft/node_id";

/// Keys of the per-group meta tree.
pub(crate) mod meta_keys {
    pub(crate) const VOTE: &[u8] = b"vote";
    pub(crate) const COMMITTED: &[u8] = b"committed";
    pub(crate) const PURGED: &[u8] = b"purged";
    pub(crate) const SNAPSHOT: &[u8] = b"snapshot";
}

/// How long `open` waits for a previous instance in this process to release the db lock.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// The process's single sled database.
pub(crate) struct Store {
    db: sled::Db,
    /// Orders our flushes (shared) against our batch writes (exclusive). sled 0.34 has a
    /// process-global RwLock where `apply_batch` is the writer and a flush holds the read side
    /// for a whole fsync; taking our async lock first means a batch never blocks a tokio worker
    /// thread waiting for an fsync to end.
    io: tokio::sync::RwLock<()>,
}

/// The three trees of one group.
#[derive(Clone)]
pub(crate) struct GroupTrees {
    pub(crate) log: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) sm: sled::Tree,
}

impl Store {
    /// Opens (or creates) the database and checks it belongs to `node_id`.
    pub(crate) fn open(path: &Path, node_id: NodeId) -> Result<Arc<Self>, RaftError> {
        let config = sled::Config::new()
            .path(path)
            // sled defaults to a 1 GiB cache; the state per group is small.
            .cache_capacity(128 * 1024 * 1024);
        // sled's file lock outlives the last `Db` handle until its IO threads finish, so a
        // reopen right after a shutdown in the same process may briefly find it taken.
        let deadline = Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let store = Self {
            db,
            io: tokio::sync::RwLock::new(()),
        };
        store.check_identity(node_id)?;
        Ok(Arc::new(store))
    }

    #[cfg(test)]
    pub(crate) fn temporary(node_id: NodeId) -> Result<Arc<Self>, RaftError> {
        let db = sled::Config::new().temporary(true).open()?;
        let store = Self {
            db,
            io: tokio::sync::RwLock::new(()),
        };
        store.check_identity(node_id)?;
        Ok(Arc::new(store))
    }

    fn check_identity(&self, node_id: NodeId) -> Result<(), RaftError> {
        match self.db.get(KEY_DATA_VERSION)? {
            Some(v) => match v.first() {
                Some(&DATA_VERSION) => {}
                Some(&other) => return Err(RaftError::DataVersion(other)),
                None => return Err(RaftError::Storage("empty data version record".into())),
            },
            None => {
                self.db.insert(KEY_DATA_VERSION, &[DATA_VERSION])?;
            }
        }
        match self.db.get(KEY_NODE_ID)? {
            Some(v) => {
                let found: NodeId =
                    codec::decode_record(&v).map_err(|e| RaftError::Storage(e.to_string()))?;
                if found != node_id {
                    return Err(RaftError::NodeIdMismatch {
                        expected: node_id,
                        found,
                    });
                }
            }
            None => {
                let rec = codec::encode_record(&node_id)
                    .map_err(|e| RaftError::Storage(e.to_string()))?;
                self.db.insert(KEY_NODE_ID, rec)?;
                self.db.flush()?;
            }
        }
        Ok(())
    }

    pub(crate) fn group_trees(&self, gid: GroupId) -> Result<GroupTrees, RaftError> {
        Ok(GroupTrees {
            log: self.db.open_tree(format!("g{gid}/log"))?,
            meta: self.db.open_tree(format!("g{gid}/meta"))?,
            sm: self.db.open_tree(format!("g{gid}/sm"))?,
        })
    }

    /// Makes every write issued so far durable (sled flushes the whole db, all trees).
    ///
    /// Not `flush_async`: in sled 0.34.7 it runs the flush on sled's own IO thread pool, where
    /// concurrent flushes can occupy every thread while waiting for an IO-buffer write queued
    /// on that same pool; with a pending `apply_batch` holding sled's global lock queue, the
    /// whole process deadlocks (spacejam/sled#1308, fixed only on sled main). A blocking flush
    /// on tokio's blocking pool leaves sled's pool free for the buffer writes.
    pub(crate) async fn flush(&self) -> std::io::Result<()> {
        let _shared = self.io.read().await;
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(res) => res.map(|_| ()).map_err(sled_io),
            Err(e) => Err(std::io::Error::other(format!("flush task failed: {e}"))),
        }
    }
}

impl Store {
    /// Applies `batch` to `tree` atomically (not yet durable: see `flush`).
    pub(crate) async fn apply_batch(
        &self,
        tree: &sled::Tree,
        batch: sled::Batch,
    ) -> std::io::Result<()> {
        let _exclusive = self.io.write().await;
        tree.apply_batch(batch).map_err(sled_io)
    }
}

pub(crate) fn sled_io(e: sled::Error) -> std::io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}
