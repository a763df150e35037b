//! `magnum manage backup OUT` and `magnum manage restore IN` (operator guide: "Backup and
//! restore").
//!
//! A backup is a directory: one file per group (`g0.pairs` the meta group, `g<S>.pairs` data
//! shard S−1), each the group's state machine at one applied index taken from its leader after a
//! read-index round, in the backup file format of `magnum_raft::backup` (pairs with a count and
//! checksum trailer), and `manifest.json`, written last, with each file's applied index, pair
//! count, size and SHA-256 and the deployment's shard layout and versions. Clients keep writing
//! meanwhile: each group is consistent in itself; groups are taken one after the other.
//!
//! A restore checks all of it before it writes anything (`restore::check`), then writes the
//! data dir of one initial conductor of the new deployment (`restore::restore`, run once per
//! initial conductor with the same peers): every data shard as backed up, and a meta group with
//! the backup's shard layout and cluster version and the new deployment's conductors and
//! placement.
pub mod restore;
pub mod take;

use serde::{Deserialize, Serialize};

/// The backup format this build writes and reads.
pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// RFC 3339, when the backup finished.
    pub created_at: String,
    /// The release (crate version) and feature version of the `magnum` that took it.
    pub magnum_version: String,
    pub feature_version: u32,
    /// The deployment's active cluster version: a restoring binary must support it.
    pub cluster_version: u32,
    pub shards: u32,
    pub hash: String,
    pub replicas: u32,
    /// Every group, meta (0) first.
    pub groups: Vec<GroupFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFile {
    pub group: u64,
    pub file: String,
    pub applied_index: u64,
    pub pairs: u64,
    pub bytes: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// Hands a backup file's pairs to `logic.load` as they are read (a shard's rows are never all
/// in memory twice); a file that cannot be read, or whose trailer disagrees, is an error.
fn load_file(
    logic: &mut impl magnum_raft::StateMachineLogic,
    path: &std::path::Path,
) -> Result<(), String> {
    let mut failed = None;
    let mut pairs = magnum_raft::backup::read_pairs(path)
        .map_err(|e| e.to_string())?
        .map_while(|p| p.map_err(|e| failed = Some(e)).ok());
    let loaded = logic.load(&mut pairs);
    drop(pairs);
    match failed {
        Some(e) => Err(e.to_string()),
        None => loaded,
    }
}

fn file_name(group: u64) -> String {
    format!("g{group}.pairs")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fail(msg: impl Into<String>) -> crate::node::ConductorError {
    crate::node::ConductorError::Backup(msg.into())
}
