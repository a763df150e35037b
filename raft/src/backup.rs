//! Backups of a group's state and fresh data dirs started from them (`magnum manage backup`,
//! `magnum manage restore`).
//!
//! A backup file holds the application's pairs of one group at one applied index, in the
//! snapshot file format (`storage::snapfile`: length-prefixed pairs, then a count and FNV-1a
//! trailer), so truncation and corruption are caught by the same reader snapshots use.
//!
//! A restore writes, like etcd's `snapshot restore`, a data dir per initial member of the new
//! deployment: each group starts as if it had installed a snapshot at the backup's applied
//! index whose membership is the new members. Every member gets the same state at the same log
//! id, so the group elects a leader and goes on from there; nothing is replicated to start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use openraft::impls::leader_id_adv::LeaderId;
use openraft::Membership;

use crate::codec;
use crate::config::Engine;
use crate::error::RaftError;
use crate::group::Group;
use crate::logic::StateMachineLogic;
use crate::storage::snapfile::{self, PairReader, PairWriter};
use crate::storage::snapshot::SnapshotRef;
use crate::storage::{meta_keys, sm, Store};
use crate::types::{GroupId, LogId, NodeAddr, NodeId, SnapshotMeta, StoredMembership};

/// What [`Group::export`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exported {
    /// The applied index the pairs reflect (0 for a group that never applied an entry).
    pub applied_index: u64,
    pub pairs: u64,
    pub bytes: u64,
}

impl<L: StateMachineLogic> Group<L> {
    /// Writes this replica's application pairs, in key order, at one applied index to a new
    /// file at `path` (fsynced). Applies wait meanwhile, so the pairs and the index agree; to
    /// hold every write acknowledged before the call, run a linearizable read first.
    pub async fn export(&self, path: &Path) -> Result<Exported, RaftError> {
        let written = self
            .scan_applied(|applied, pairs| -> std::io::Result<Exported> {
                let mut w = PairWriter::create(path)?;
                let mut count = 0;
                for (k, v) in pairs {
                    w.put(&k, &v)?;
                    count += 1;
                }
                let (_, bytes) = w.finish()?;
                Ok(Exported {
                    applied_index: applied.unwrap_or(0),
                    pairs: count,
                    bytes,
                })
            })
            .await??;
        snapfile::sync_file(path)?;
        Ok(written)
    }
}

/// Writes `pairs` (in key order) to a new backup file at `path`, fsynced; returns its size.
pub fn write_pairs(
    path: &Path,
    pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> std::io::Result<u64> {
    let mut w = PairWriter::create(path)?;
    for (k, v) in pairs {
        w.put(&k, &v)?;
    }
    let (_, bytes) = w.finish()?;
    snapfile::sync_file(path)?;
    Ok(bytes)
}

/// The pairs of a backup file, checked as they are read: the last item is an error if the
/// file is not in this format, is truncated, corrupt, or has bytes after its trailer.
pub fn read_pairs(
    path: &Path,
) -> std::io::Result<impl Iterator<Item = std::io::Result<(Vec<u8>, Vec<u8>)>>> {
    let file = std::fs::File::open(path)?;
    PairReader::from_file(file)
}

/// One group of a data dir being restored.
#[derive(Clone, Debug)]
pub struct Seed {
    pub group: GroupId,
    /// The group's voters in the new deployment.
    pub members: BTreeMap<NodeId, NodeAddr>,
    /// Where the group's log goes on from (the backup's applied index, so indexes that the
    /// application derives ids from never repeat).
    pub applied_index: u64,
    /// The application pairs, in the backup file format.
    pub file: PathBuf,
}

/// Writes a new data dir for `node_id` in which each seeded group starts from its backup
/// file. Refuses a dir that already holds Raft data. The pairs are written as a snapshot
/// install that the first open finishes (`storage::snapshot::resume_install`), so a crash
/// part-way leaves an install that is redone, never half a state.
pub fn seed_data_dir(
    data_dir: &Path,
    node_id: NodeId,
    engine: Engine,
    seeds: &[Seed],
) -> Result<(), RaftError> {
    if crate::storage::holds_data(data_dir) {
        return Err(RaftError::Config(format!(
            "{} already holds Raft data; restore writes fresh data dirs only",
            data_dir.display()
        )));
    }
    std::fs::create_dir_all(data_dir)?;
    let engine = crate::storage::open_engine(data_dir, engine)?;
    let store = Store::open(engine, node_id, data_dir.join(crate::node::SNAP_DIR))?;
    for seed in seeds {
        seed_group(&store, seed)?;
    }
    store.flush_blocking()?;
    Ok(())
}

fn seed_group(store: &Store, seed: &Seed) -> Result<(), RaftError> {
    let gid = seed.group;
    let err = |what: &str, e: &dyn std::fmt::Display| {
        RaftError::Storage(format!("group {gid}: {what}: {e}"))
    };
    let voters: BTreeSet<NodeId> = seed.members.keys().copied().collect();
    let membership = Membership::new(vec![voters], seed.members.clone())
        .map_err(|e| RaftError::Config(format!("group {gid} membership: {e}")))?;
    // Term 0 is what `initialize` writes its first membership under: the first leader
    // elected from here is at term 1, after every seeded id.
    let log_id = LogId::new(
        LeaderId {
            term: 0,
            node_id: 0,
        },
        seed.applied_index,
    );
    let trees = store.group_trees(gid)?;
    if trees.sm.get(sm::KEY_LAST_APPLIED)?.is_some() || trees.log.last()?.is_some() {
        return Err(RaftError::Config(format!("group {gid} already has state")));
    }
    let name = snapfile::final_name(Some(seed.applied_index));
    let path = trees.snap_dir.join(&name);
    let mut w = PairWriter::create(&path)?;
    for pair in read_pairs(&seed.file)? {
        let (k, v) = pair.map_err(|e| err("backup file", &e))?;
        w.put(&sm::app_key(&k), &v)?;
    }
    let (_, size) = w.finish()?;
    snapfile::sync_file(&path)?;
    snapfile::sync_dir(&trees.snap_dir)?;
    let rec = SnapshotRef {
        meta: SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: StoredMembership::new(Some(log_id), membership),
        },
        file: name,
        size,
    };
    // The log starts purged up to the seeded id, so openraft reads it as the last log id.
    trees
        .meta
        .insert(meta_keys::PURGED, &encode(gid, &log_id)?)?;
    trees
        .meta
        .insert(meta_keys::COMMITTED, &encode(gid, &Some(log_id))?)?;
    trees
        .meta
        .insert(meta_keys::INSTALLING, &encode(gid, &rec)?)?;
    Ok(())
}

fn encode<T: serde::Serialize>(gid: GroupId, v: &T) -> Result<Vec<u8>, RaftError> {
    codec::encode_record(v).map_err(|e| RaftError::Storage(format!("group {gid}: encode: {e}")))
}
