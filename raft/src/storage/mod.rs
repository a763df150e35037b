//! Persistent storage of the groups, written against the narrow [`engine::KvEngine`] trait so
//! the engine can be replaced without touching the log store (`log.rs`) or the state machine
//! (`sm.rs`). The only implementation is sled (`sled_engine.rs`), which alone knows sled.
//!
//! Layout: one engine (database) per process, its root tree holding the data version and node
//! id; per group three trees:
//! - `g{gid}/log`:  big-endian index -> versioned bincode `Entry`
//! - `g{gid}/meta`: vote, committed, last purged log id, last snapshot (meta + blob)
//! - `g{gid}/sm`:   app keys (prefix 0x01) and reserved keys (prefix 0x00: last_applied,
//!   membership), always written together in one `WriteBatch`.

pub(crate) mod engine;
pub(crate) mod log;
pub(crate) mod sled_engine;
pub(crate) mod sm;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use self::engine::{KvEngine, KvTree};
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

fn group_tree_names(gid: GroupId) -> [String; 3] {
    [
        format!("g{gid}/log"),
        format!("g{gid}/meta"),
        format!("g{gid}/sm"),
    ]
}

/// The process's single database, behind [`KvEngine`].
pub(crate) struct Store {
    engine: Box<dyn KvEngine>,
}

/// The three trees of one group.
#[derive(Clone)]
pub(crate) struct GroupTrees {
    pub(crate) log: Arc<dyn KvTree>,
    pub(crate) meta: Arc<dyn KvTree>,
    pub(crate) sm: Arc<dyn KvTree>,
}

impl Store {
    /// Wraps an opened engine and checks its data belongs to `node_id`.
    pub(crate) fn open(engine: Box<dyn KvEngine>, node_id: NodeId) -> Result<Arc<Self>, RaftError> {
        let store = Self { engine };
        store.check_identity(node_id)?;
        Ok(Arc::new(store))
    }

    fn check_identity(&self, node_id: NodeId) -> Result<(), RaftError> {
        let root = self.engine.root();
        match root.get(KEY_DATA_VERSION)? {
            Some(v) => match v.first() {
                Some(&DATA_VERSION) => {}
                Some(&other) => return Err(RaftError::DataVersion(other)),
                None => return Err(RaftError::Storage("empty data version record".into())),
            },
            None => {
                root.insert(KEY_DATA_VERSION, &[DATA_VERSION])?;
            }
        }
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

    pub(crate) fn group_trees(&self, gid: GroupId) -> Result<GroupTrees, RaftError> {
        let [log, meta, sm] = group_tree_names(gid);
        Ok(GroupTrees {
            log: self.engine.open_tree(&log)?,
            meta: self.engine.open_tree(&meta)?,
            sm: self.engine.open_tree(&sm)?,
        })
    }

    /// Deletes every tree of `gid` (its replica left the group) and makes that durable.
    pub(crate) async fn drop_group(&self, gid: GroupId) -> Result<(), RaftError> {
        for name in group_tree_names(gid) {
            self.engine.drop_tree(&name)?;
        }
        self.flush().await?;
        Ok(())
    }

    /// Makes every write issued so far durable (all trees).
    pub(crate) async fn flush(&self) -> std::io::Result<()> {
        self.engine.flush().await
    }
}
