//! Persistent storage of the groups, written against the narrow [`engine::KvEngine`] trait so
//! the engine can be replaced without touching the log store (`log.rs`) or the state machine
//! (`sm.rs`). Two engines: sled (`sled_engine.rs`, which alone knows sled) and memory plus a
//! write-ahead log (`wal_engine.rs`); [`open_engine`] picks one per data dir.
//!
//! Layout (DataVersion 2, see `upgrade.rs`): one engine (database) per process, its root tree
//! holding the data version and node id; per group three trees:
//! - `g{gid}/log`:  big-endian index -> versioned bincode `Entry`
//! - `g{gid}/meta`: vote, committed, last purged log id, `snapshot_ref` (meta + file name) and,
//!   during a snapshot install, `installing`
//! - `g{gid}/sm`:   app keys (prefix 0x01) and reserved keys (prefix 0x00: last_applied,
//!   membership), always written together in one `WriteBatch`;
//!
//! and the group's snapshot file in `snapshots/g{gid}/` beside the database (`snapfile.rs`).

pub(crate) mod engine;
pub(crate) mod log;
pub(crate) mod sled_engine;
pub(crate) mod sm;
pub(crate) mod snapfile;
pub(crate) mod snapshot;
pub(crate) mod stall;
#[cfg(test)]
mod tests;
pub(crate) mod upgrade;
pub(crate) mod wal_engine;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::engine::{KvEngine, KvTree};
use crate::codec;
use crate::config::Engine;
use crate::error::RaftError;
use crate::types::{GroupId, NodeId};

const KEY_NODE_ID: &[u8] = b"magnum-raft/node_id";

/// Where each engine keeps its files in a data dir.
pub(crate) const SLED_DIR: &str = "raft.sled";
pub(crate) const WAL_DIR: &str = "raft.wal";

/// Whether `data_dir` already holds Raft data (of either engine).
pub(crate) fn holds_data(data_dir: &Path) -> bool {
    data_dir.join(SLED_DIR).exists() || data_dir.join(WAL_DIR).exists()
}

/// Opens the engine of `data_dir`: the one its Raft data was written with, or `preferred` for
/// a new data dir. An engine is never switched under existing data (that takes a replica
/// replaced through membership, which starts from an empty dir).
pub(crate) fn open_engine(
    data_dir: &Path,
    preferred: Engine,
) -> std::io::Result<Box<dyn KvEngine>> {
    let sled = data_dir.join(SLED_DIR);
    let wal = data_dir.join(WAL_DIR);
    let engine = match (sled.exists(), wal.exists()) {
        (true, true) => {
            return Err(std::io::Error::other(format!(
                "{} holds Raft data of two engines ({SLED_DIR} and {WAL_DIR}); keep one",
                data_dir.display()
            )))
        }
        (true, false) => Engine::Sled,
        (false, true) => Engine::Wal,
        (false, false) => preferred,
    };
    if engine != preferred {
        tracing::warn!(found = ?engine, configured = ?preferred, "the data dir keeps the storage engine it was written with");
    }
    Ok(match engine {
        Engine::Sled => Box::new(sled_engine::SledEngine::open(&sled)?),
        Engine::Wal => Box::new(wal_engine::WalEngine::open(&wal)?),
    })
}

/// Keys of the per-group meta tree.
pub(crate) mod meta_keys {
    pub(crate) const VOTE: &[u8] = b"vote";
    pub(crate) const COMMITTED: &[u8] = b"committed";
    pub(crate) const PURGED: &[u8] = b"purged";
    /// DataVersion 1 only: the whole snapshot as one value (moved to a file by the upgrade).
    pub(crate) const SNAPSHOT_V1: &[u8] = b"snapshot";
    pub(crate) const SNAPSHOT_REF: &[u8] = b"snapshot_ref";
    pub(crate) const INSTALLING: &[u8] = b"installing";
}

fn group_tree_names(gid: GroupId) -> [String; 3] {
    [
        format!("g{gid}/log"),
        format!("g{gid}/meta"),
        format!("g{gid}/sm"),
    ]
}

/// The process's single database, behind [`KvEngine`], and the snapshot files beside it.
pub(crate) struct Store {
    engine: Box<dyn KvEngine>,
    snap_root: PathBuf,
}

/// The three trees of one group and its snapshot dir.
#[derive(Clone)]
pub(crate) struct GroupTrees {
    pub(crate) log: Arc<dyn KvTree>,
    pub(crate) meta: Arc<dyn KvTree>,
    pub(crate) sm: Arc<dyn KvTree>,
    pub(crate) snap_dir: PathBuf,
}

impl Store {
    /// Wraps an opened engine, brings its data to the current DataVersion (before any group
    /// uses it) and checks it belongs to `node_id`. Snapshot files live under `snap_root`.
    pub(crate) fn open(
        engine: Box<dyn KvEngine>,
        node_id: NodeId,
        snap_root: PathBuf,
    ) -> Result<Arc<Self>, RaftError> {
        let store = Self { engine, snap_root };
        // Startup, before anything else uses the engine: blocking is fine here.
        futures::executor::block_on(upgrade::run(&store, &upgrade::Failpoints::default()))?;
        store.check_identity(node_id)?;
        Ok(Arc::new(store))
    }

    fn check_identity(&self, node_id: NodeId) -> Result<(), RaftError> {
        let root = self.engine.root();
        match root.get(KEY_NODE_ID)? {
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
                root.insert(KEY_NODE_ID, &rec)?;
                self.engine.flush_blocking()?;
            }
        }
        Ok(())
    }

    /// The snapshot dir of a group, created if missing.
    pub(crate) fn snapshot_dir(&self, gid: GroupId) -> std::io::Result<PathBuf> {
        let dir = self.snap_root.join(format!("g{gid}"));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    pub(crate) fn group_trees(&self, gid: GroupId) -> Result<GroupTrees, RaftError> {
        let [log, meta, sm] = group_tree_names(gid);
        Ok(GroupTrees {
            log: self.engine.open_tree(&log)?,
            meta: self.engine.open_tree(&meta)?,
            sm: self.engine.open_tree(&sm)?,
            snap_dir: self.snapshot_dir(gid)?,
        })
    }

    /// Deletes every tree of `gid` (its replica left the group) and makes that durable.
    pub(crate) async fn drop_group(&self, gid: GroupId) -> Result<(), RaftError> {
        for name in group_tree_names(gid) {
            self.engine.drop_tree(&name)?;
        }
        self.flush().await?;
        let dir = self.snap_root.join(format!("g{gid}"));
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// As [`Self::flush`], for callers outside any runtime (offline tools).
    pub(crate) fn flush_blocking(&self) -> std::io::Result<()> {
        self.engine.flush_blocking()
    }

    /// Makes every write issued so far durable (all trees).
    pub(crate) async fn flush(&self) -> std::io::Result<()> {
        self.engine.flush().await
    }
}
