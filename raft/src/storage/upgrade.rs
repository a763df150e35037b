//! DataVersion: the on-disk format version in the root tree, and the chain of steps that brings
//! older data to [`DATA_VERSION`] at open, before any group starts; later versions only on
//! request ([`raise`]), once the deployment allows it.
//!
//! Each step is idempotent and commits its progress as it goes (one atomic batch per unit of
//! work), so a crash anywhere in the middle is resumed by running the step again at the next
//! open. While a step runs, the root tree holds `upgrading = [from, to]`; the version is bumped
//! (and the marker removed) in one batch once the step completed. Data newer than this build
//! supports ([`NEWEST_DATA_VERSION`]) is refused (no downgrade).
//!
//! | version | format |
//! |---|---|
//! | 1 | every release before this chain; a group's snapshot is one engine value (`snapshot`) |
//! | 2 | a group's snapshot is a file under `snapshots/g{gid}/`, the engine keeps `snapshot_ref` |
//! | 3 | as 2; raised by the application once its logs may hold entries a build that knows only 2 cannot apply (the conductor: cluster version finalized past 1), so such a build refuses the data dir |

use std::io;

use serde::{Deserialize, Serialize};

use super::engine::WriteBatch;
use super::snapfile;
use super::snapshot::SnapshotRef;
use super::{meta_keys, Store};
use crate::codec;
use crate::error::RaftError;
use crate::types::{GroupId, SnapshotMeta};

/// On-disk format a fresh store gets and an older one is brought to at open.
pub(crate) const DATA_VERSION: u8 = 2;
/// The newest format this build opens (reached only through [`raise`]).
pub(crate) const NEWEST_DATA_VERSION: u8 = 3;
const KEY_DATA_VERSION: &[u8] = b"magnum-raft/data_version";
const KEY_UPGRADING: &[u8] = b"magnum-raft/upgrading";

/// The steps, in order: `STEPS[i]` upgrades version `i + 1` to `i + 2`.
const STEPS: &[&str] = &[
    "v1→v2: move each group's snapshot from an engine value into a file",
    "v2→v3: no format change; marks data that builds knowing only v2 must not open",
];

/// Where tests make an upgrade stop as a crash would (production: none).
#[derive(Clone, Debug, Default)]
pub(crate) struct Failpoints {
    /// Stop after this group's snapshot file was written, before its records switched over.
    pub(crate) after_snapshot_file: Option<GroupId>,
    /// Stop after the step completed, before the version is bumped.
    pub(crate) before_version_bump: bool,
}

fn fail(msg: impl Into<String>) -> RaftError {
    RaftError::Upgrade(msg.into())
}

fn failpoint(name: &str) -> RaftError {
    fail(format!("failpoint {name}"))
}

/// Brings the store to [`DATA_VERSION`]; a fresh store is stamped with it.
pub(crate) async fn run(store: &Store, fp: &Failpoints) -> Result<(), RaftError> {
    let root = store.engine.root();
    let mut version = match root.get(KEY_DATA_VERSION)? {
        Some(v) => *v.first().ok_or_else(|| fail("empty data version record"))?,
        None if store
            .engine
            .tree_names()?
            .iter()
            .any(|n| n.starts_with('g')) =>
        {
            return Err(fail("groups found but no data version"));
        }
        None => {
            root.insert(KEY_DATA_VERSION, &[DATA_VERSION])?;
            store.engine.flush_blocking()?;
            return Ok(());
        }
    };
    if version > NEWEST_DATA_VERSION {
        return Err(RaftError::DataVersion(version));
    }
    if let Some(m) = root.get(KEY_UPGRADING)? {
        tracing::warn!(marker = ?m, "resuming an interrupted data upgrade");
    }
    while version < DATA_VERSION {
        step(store, version, fp).await?;
        version += 1;
    }
    Ok(())
}

/// The on-disk format version of an opened store.
pub(crate) fn current(store: &Store) -> Result<u8, RaftError> {
    let v = store
        .engine
        .root()
        .get(KEY_DATA_VERSION)?
        .ok_or_else(|| fail("no data version"))?;
    v.first()
        .copied()
        .ok_or_else(|| fail("empty data version record"))
}

/// Brings an open store to `to` (at most [`NEWEST_DATA_VERSION`]); true when it changed. Only
/// steps that need no group quiesced belong past [`DATA_VERSION`].
pub(crate) async fn raise(store: &Store, to: u8) -> Result<bool, RaftError> {
    if to > NEWEST_DATA_VERSION {
        return Err(fail(format!(
            "data version {to} is newer than this build supports"
        )));
    }
    let mut version = current(store)?;
    let changed = version < to;
    while version < to {
        step(store, version, &Failpoints::default()).await?;
        version += 1;
    }
    Ok(changed)
}

/// One step, `version` → `version + 1`, with the `upgrading` marker around it.
async fn step(store: &Store, version: u8, fp: &Failpoints) -> Result<(), RaftError> {
    let root = store.engine.root();
    let name = STEPS
        .get(usize::from(version) - 1)
        .ok_or_else(|| fail(format!("no step from version {version}")))?;
    tracing::info!(
        from = version,
        to = version + 1,
        step = name,
        "data upgrade"
    );
    root.insert(KEY_UPGRADING, &[version, version + 1])?;
    store.engine.flush_blocking()?;
    match version {
        1 => v1_snapshots_to_files(store, fp).await?,
        2 => {}
        _ => return Err(fail(format!("no step from version {version}"))),
    }
    if fp.before_version_bump {
        return Err(failpoint("before_version_bump"));
    }
    let mut batch = WriteBatch::default();
    batch.put(KEY_DATA_VERSION, [version + 1]);
    batch.delete(KEY_UPGRADING);
    root.apply_batch(batch).await?;
    store.engine.flush_blocking()?;
    Ok(())
}

/// DataVersion 1's snapshot record (meta tree, key `snapshot`).
#[derive(Serialize, Deserialize)]
struct SnapshotRecordV1 {
    meta: SnapshotMeta,
    /// `[RECORD_V1] ++ bincode(Vec<(raw sm key, value)>)`.
    data: Vec<u8>,
}

/// v1 → v2. Why: a v1 snapshot was one engine value, built, stored, sent and installed as a
/// whole in memory, several times its size at once (see README, Benchmarks), and rewritten
/// into sled's log on every snapshot. v2 streams it through a file. Per group: write the file,
/// then switch `snapshot` → `snapshot_ref` in one batch; a group already switched has no
/// `snapshot` key, so a rerun skips it.
async fn v1_snapshots_to_files(store: &Store, fp: &Failpoints) -> Result<(), RaftError> {
    for name in store.engine.tree_names()? {
        let Some(gid) = name
            .strip_prefix('g')
            .and_then(|n| n.strip_suffix("/meta"))
            .and_then(|n| n.parse::<GroupId>().ok())
        else {
            continue;
        };
        let meta = store.engine.open_tree(&name)?;
        let Some(blob) = meta.get(meta_keys::SNAPSHOT_V1)? else {
            continue;
        };
        let rec: SnapshotRecordV1 = codec::decode_record(&blob).map_err(io::Error::from)?;
        let dir = store.snapshot_dir(gid)?;
        let (tmp, size) = snapfile::write_from_v1_blob(&rec.data, &snapfile::tmp_path(&dir))?;
        let file = snapfile::final_name(rec.meta.last_log_id.map(|l| l.index()));
        snapfile::sync_file(&tmp)?;
        std::fs::rename(&tmp, dir.join(&file))?;
        snapfile::sync_dir(&dir)?;
        if fp.after_snapshot_file == Some(gid) {
            return Err(failpoint("after_snapshot_file"));
        }
        let new = SnapshotRef {
            meta: rec.meta,
            file,
            size,
        };
        let mut batch = WriteBatch::default();
        batch.put(
            meta_keys::SNAPSHOT_REF,
            codec::encode_record(&new).map_err(io::Error::from)?,
        );
        batch.delete(meta_keys::SNAPSHOT_V1);
        meta.apply_batch(batch).await?;
        store.engine.flush_blocking()?;
        tracing::info!(gid, bytes = size, "snapshot moved to a file");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sled_engine::SledEngine;
    use std::path::Path;

    /// A copy of the committed v1 data dir (`tests/fixtures/data-v1`).
    pub(crate) fn v1_copy(to: &Path) {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-v1");
        let db = from.join("raft.sled");
        std::fs::create_dir_all(to.join("raft.sled")).unwrap();
        for e in std::fs::read_dir(&db).unwrap() {
            let e = e.unwrap();
            // sled's (empty) blobs dir is not in git; sled recreates it.
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.join("raft.sled").join(e.file_name())).unwrap();
            }
        }
    }

    fn store(dir: &Path) -> Store {
        Store {
            engine: Box::new(SledEngine::open(&dir.join("raft.sled")).unwrap()),
            snap_root: dir.join("snapshots"),
        }
    }

    fn snap_files(dir: &Path, gid: u64) -> Vec<String> {
        let d = dir.join(format!("snapshots/g{gid}"));
        let mut v: Vec<String> = std::fs::read_dir(d)
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn version(s: &Store) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let root = s.engine.root();
        (
            root.get(KEY_DATA_VERSION).unwrap(),
            root.get(KEY_UPGRADING).unwrap(),
        )
    }

    #[tokio::test]
    async fn interrupted_upgrade_resumes_and_completes() {
        let tmp = tempfile::tempdir().unwrap();
        v1_copy(tmp.path());
        {
            let s = store(tmp.path());
            assert_eq!(version(&s), (Some(vec![1]), None));
            // Crash after group 1's file was written, before its records switched.
            let fp = Failpoints {
                after_snapshot_file: Some(1),
                ..Default::default()
            };
            assert!(matches!(run(&s, &fp).await, Err(RaftError::Upgrade(_))));
            assert_eq!(version(&s), (Some(vec![1]), Some(vec![1, 2])));
            let meta = s.engine.open_tree("g1/meta").unwrap();
            assert!(meta.get(meta_keys::SNAPSHOT_V1).unwrap().is_some());
            assert!(meta.get(meta_keys::SNAPSHOT_REF).unwrap().is_none());
            assert_eq!(snap_files(tmp.path(), 1).len(), 1);
        }
        {
            // Next open: the step reruns; crash again once it is done, before the bump.
            let s = store(tmp.path());
            let fp = Failpoints {
                before_version_bump: true,
                ..Default::default()
            };
            assert!(run(&s, &fp).await.is_err());
            assert_eq!(version(&s), (Some(vec![1]), Some(vec![1, 2])));
            let meta = s.engine.open_tree("g1/meta").unwrap();
            assert!(meta.get(meta_keys::SNAPSHOT_V1).unwrap().is_none());
            assert!(meta.get(meta_keys::SNAPSHOT_REF).unwrap().is_some());
        }
        let s = store(tmp.path());
        run(&s, &Failpoints::default()).await.unwrap();
        assert_eq!(version(&s), (Some(vec![DATA_VERSION]), None));
        let meta = s.engine.open_tree("g1/meta").unwrap();
        let r: SnapshotRef =
            codec::decode_record(&meta.get(meta_keys::SNAPSHOT_REF).unwrap().unwrap()).unwrap();
        assert_eq!(r.meta.last_log_id.map(|l| l.index()), Some(39));
        assert!(snap_files(tmp.path(), 1).contains(&r.file));
        snapfile::verify(&tmp.path().join("snapshots/g1").join(&r.file)).unwrap();
        // Group 2 had no snapshot; running again changes nothing.
        assert!(snap_files(tmp.path(), 2).is_empty());
        run(&s, &Failpoints::default()).await.unwrap();
        assert_eq!(version(&s), (Some(vec![DATA_VERSION]), None));
    }

    #[tokio::test]
    async fn fresh_store_is_stamped_and_newer_data_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        run(&s, &Failpoints::default()).await.unwrap();
        assert_eq!(version(&s), (Some(vec![DATA_VERSION]), None));
        s.engine
            .root()
            .insert(KEY_DATA_VERSION, &[NEWEST_DATA_VERSION + 1])
            .unwrap();
        assert!(matches!(
            run(&s, &Failpoints::default()).await,
            Err(RaftError::DataVersion(v)) if v == NEWEST_DATA_VERSION + 1
        ));
    }

    /// Version 3 only on request, kept at the next open, and never past what this build knows.
    #[tokio::test]
    async fn raised_version_is_kept_and_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let s = store(tmp.path());
            run(&s, &Failpoints::default()).await.unwrap();
            assert_eq!(current(&s).unwrap(), DATA_VERSION);
            assert!(raise(&s, NEWEST_DATA_VERSION).await.unwrap());
            assert!(!raise(&s, NEWEST_DATA_VERSION).await.unwrap());
            assert!(!raise(&s, DATA_VERSION).await.unwrap());
            assert!(raise(&s, NEWEST_DATA_VERSION + 1).await.is_err());
        }
        let s = store(tmp.path());
        run(&s, &Failpoints::default()).await.unwrap();
        assert_eq!(version(&s), (Some(vec![NEWEST_DATA_VERSION]), None));
    }
}
