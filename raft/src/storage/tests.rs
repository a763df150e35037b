//! Storage tests: openraft's own storage suite plus our persistence guarantees.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::errors::ErrorSource;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::RaftStateMachine;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{Membership, RaftSnapshotBuilder, StorageError};

use super::log::LogStore;
use super::sled_engine::SledEngine;
use super::sm::SmStore;
use super::wal_engine::WalEngine;
use super::Store;
use crate::logic::{StateMachineLogic, StoredRows, WriteSet};
use crate::metrics::{GroupMetrics, Metrics};
use crate::types::{Entry, LogId, NodeAddr, Payload, TypeConfig};

/// `k=v` puts, `-k` deletes, `?k` reads `k` from the stored rows, `!` fails; records every
/// applied index and what each read saw.
#[derive(Default)]
struct Kv {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    applied: Vec<u64>,
    loads: usize,
    reads: Vec<Option<Vec<u8>>>,
    /// What `stored_only` answers.
    skip: Vec<&'static [u8]>,
}

impl StateMachineLogic for Kv {
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        self.map = kv.collect();
        self.loads += 1;
        Ok(())
    }

    fn stored_only(&self) -> &[&[u8]] {
        &self.skip
    }

    fn apply(
        &mut self,
        index: u64,
        payload: &[u8],
        writes: &mut WriteSet,
        stored: &dyn StoredRows,
    ) -> Result<Vec<u8>, String> {
        self.applied.push(index);
        if payload == b"!" {
            return Err("cannot persist".into());
        }
        if let Some(k) = payload.strip_prefix(b"?") {
            self.reads.push(stored.get(k)?);
            return Ok(index.to_be_bytes().to_vec());
        }
        if let Some(k) = payload.strip_prefix(b"-") {
            self.map.remove(k);
            writes.delete(k);
        } else if let Some(pos) = payload.iter().position(|b| *b == b'=') {
            let (k, v) = (&payload[..pos], &payload[pos + 1..]);
            self.map.insert(k.to_vec(), v.to_vec());
            writes.put(k, v);
        }
        Ok(index.to_be_bytes().to_vec())
    }
}

fn metrics(gid: u64) -> GroupMetrics {
    Metrics::new().unwrap().group(gid)
}

/// A store on a temporary engine; its snapshot files go under `dir`.
fn temporary_store(node_id: u64, dir: &Path) -> Arc<Store> {
    let engine = Box::new(SledEngine::temporary().unwrap());
    Store::open(engine, node_id, dir.join("snapshots")).unwrap()
}

/// Group 1's state machine, empty, on a temporary store under `dir`.
async fn temporary_sm(dir: &Path) -> SmStore<Kv> {
    let store = temporary_store(1, dir);
    let trees = store.group_trees(1).unwrap();
    SmStore::open(store, 1, &trees, Kv::default(), metrics(1))
        .await
        .unwrap()
}

fn open_store(path: &Path, node_id: u64) -> Result<Arc<Store>, crate::error::RaftError> {
    let snaps = path.with_extension("snapshots");
    Store::open(Box::new(SledEngine::open(path)?), node_id, snaps)
}

struct Builder {
    store: Arc<Store>,
    next_gid: AtomicU64,
}

impl StoreBuilder<TypeConfig, LogStore, SmStore<Kv>> for Builder {
    async fn build(&self) -> Result<((), LogStore, SmStore<Kv>), StorageError<TypeConfig>> {
        let gid = self.next_gid.fetch_add(1, Ordering::Relaxed);
        let err = |e: crate::error::RaftError| {
            StorageError::read(openraft::impls::BoxedErrorSource::from_string(
                e.to_string(),
            ))
        };
        let trees = self.store.group_trees(gid).map_err(err)?;
        let log = LogStore::new(self.store.clone(), gid, &trees, metrics(gid), None);
        let sm = SmStore::open(self.store.clone(), gid, &trees, Kv::default(), metrics(gid))
            .await
            .map_err(err)?;
        Ok(((), log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    let dir = tempfile::tempdir().unwrap();
    let builder = Builder {
        store: temporary_store(1, dir.path()),
        next_gid: AtomicU64::new(0),
    };
    Suite::test_all(builder).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_on_the_wal_engine() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Box::new(WalEngine::open(&dir.path().join("wal")).unwrap());
    let builder = Builder {
        store: Store::open(engine, 1, dir.path().join("snapshots")).unwrap(),
        next_gid: AtomicU64::new(0),
    };
    Suite::test_all(builder).await.unwrap();
}

fn log_id(index: u64) -> LogId {
    LogId::new(
        LeaderId {
            term: 1,
            node_id: 1,
        },
        index,
    )
}

fn normal(index: u64, payload: &str) -> Entry {
    Entry::new_normal(log_id(index), Payload(payload.as_bytes().to_vec()))
}

async fn apply(sm: &mut SmStore<Kv>, entries: Vec<Entry>) {
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await.unwrap();
}

fn membership() -> Membership<u64, NodeAddr> {
    let nodes = BTreeMap::from([(
        1u64,
        NodeAddr {
            raft: "127.0.0.1:1".into(),
            service: String::new(),
        },
    )]);
    Membership::new(vec![[1u64].into()], nodes).unwrap()
}

#[tokio::test]
async fn write_set_and_last_applied_are_persisted_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = open_store(&path, 7).unwrap();
        let trees = store.group_trees(3).unwrap();
        let mut sm = SmStore::open(store.clone(), 3, &trees, Kv::default(), metrics(3))
            .await
            .unwrap();
        apply(
            &mut sm,
            vec![
                Entry::new_blank(log_id(1)),
                Entry::new_membership(log_id(2), membership()),
                normal(3, "a=1"),
                normal(4, "b=2"),
                normal(5, "-a"),
                normal(6, "c=3"),
            ],
        )
        .await;
        // Raw tree: exactly the app keys plus the reserved records, written by one batch.
        let keys: Vec<Vec<u8>> = trees
            .sm
            .range(Bound::Unbounded, Bound::Unbounded)
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(
            keys,
            vec![
                b"\x00last_applied".to_vec(),
                b"\x00membership".to_vec(),
                b"\x01b".to_vec(),
                b"\x01c".to_vec()
            ]
        );
    }
    // Reopen as after a crash: the state and last_applied agree, nothing is re-applied.
    let store = open_store(&path, 7).unwrap();
    let trees = store.group_trees(3).unwrap();
    let mut sm = SmStore::open(store.clone(), 3, &trees, Kv::default(), metrics(3))
        .await
        .unwrap();
    let (applied, mem) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(6)));
    assert_eq!(mem.log_id(), &Some(log_id(2)));
    let logic = sm.handles().logic;
    {
        let kv = logic.read().unwrap();
        assert_eq!(kv.loads, 1);
        assert!(kv.applied.is_empty());
        let want: BTreeMap<Vec<u8>, Vec<u8>> = [
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"3".to_vec()),
        ]
        .into();
        assert_eq!(kv.map, want);
    }
    // Opening the same directory with another node id is refused.
    drop((sm, trees, logic, store));
    assert!(matches!(
        open_store(&path, 8),
        Err(crate::error::RaftError::NodeIdMismatch {
            expected: 8,
            found: 7
        })
    ));
}

/// A read in `apply` sees what every earlier entry wrote: those on the tree and those of the
/// same batch, not yet on it (a later write of a key wins, a delete hides it).
#[tokio::test]
async fn apply_reads_the_rows_of_earlier_entries_in_and_before_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = temporary_sm(dir.path()).await;
    apply(&mut sm, vec![normal(1, "a=1"), normal(2, "b=1")]).await;
    apply(
        &mut sm,
        vec![
            normal(3, "?a"),
            normal(4, "a=2"),
            normal(5, "?a"),
            normal(6, "-a"),
            normal(7, "?a"),
            normal(8, "?b"),
            normal(9, "?z"),
        ],
    )
    .await;
    let reads = sm.handles().logic.read().unwrap().reads.clone();
    let v = |s: &str| Some(s.as_bytes().to_vec());
    assert_eq!(reads, vec![v("1"), v("2"), None, v("1"), None]);
    // Outside apply the rows are the tree's.
    let rows = sm.handles().tree;
    assert_eq!(rows.get(b"a").unwrap(), None);
    assert_eq!(rows.get(b"b").unwrap(), v("1"));
}

/// Startup loads every app pair but those under the logic's stored-only prefixes, which stay
/// readable through the stored rows.
#[tokio::test]
async fn startup_leaves_the_stored_only_rows_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let writes = ["a=1", "k/1=x", "k/2=y", "k0=2", "kz=3", "\u{ff}\u{ff}=4"];
    {
        let store = open_store(&path, 1).unwrap();
        let trees = store.group_trees(1).unwrap();
        let mut sm = SmStore::open(store.clone(), 1, &trees, Kv::default(), metrics(1))
            .await
            .unwrap();
        let entries = (1..).zip(writes).map(|(i, w)| normal(i, w)).collect();
        apply(&mut sm, entries).await;
    }
    let cases: [(&[&'static [u8]], &[&str]); 4] = [
        (&[], &["a", "k/1", "k/2", "k0", "kz", "\u{ff}\u{ff}"]),
        (&[b"k/"], &["a", "k0", "kz", "\u{ff}\u{ff}"]),
        (&[b"k", b"k/"], &["a", "\u{ff}\u{ff}"]),
        (&["\u{ff}".as_bytes(), b"a"], &["k/1", "k/2", "k0", "kz"]),
    ];
    for (skip, want) in cases {
        let store = open_store(&path, 1).unwrap();
        let trees = store.group_trees(1).unwrap();
        let kv = Kv {
            skip: skip.to_vec(),
            ..Kv::default()
        };
        let sm = SmStore::open(store.clone(), 1, &trees, kv, metrics(1))
            .await
            .unwrap();
        let loaded: Vec<Vec<u8>> = sm
            .handles()
            .logic
            .read()
            .unwrap()
            .map
            .keys()
            .cloned()
            .collect();
        let want: Vec<Vec<u8>> = want.iter().map(|k| k.as_bytes().to_vec()).collect();
        assert_eq!(loaded, want, "skipping {skip:?}");
        assert_eq!(sm.handles().tree.get(b"k/2").unwrap(), Some(b"y".to_vec()));
        drop((sm, trees, store));
    }
}

#[tokio::test]
async fn a_failed_apply_writes_nothing_of_its_batch_and_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = temporary_sm(dir.path()).await;
    apply(&mut sm, vec![normal(1, "a=1")]).await;
    let stream = futures::stream::iter(
        [normal(2, "b=2"), normal(3, "!"), normal(4, "c=3")]
            .into_iter()
            .map(|e| Ok((e, None))),
    );
    assert!(sm.apply(stream).await.is_err());
    // `last_applied` stays, and no write of the batch (not even the entry before) is stored.
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1)));
    let app: Vec<Vec<u8>> = sm
        .sm
        .range(Bound::Unbounded, Bound::Unbounded)
        .map(|kv| kv.unwrap().0)
        .filter(|k| k.first() == Some(&super::sm::APP_PREFIX))
        .collect();
    assert_eq!(app, vec![b"\x01a".to_vec()]);
    // The entry after the failed one was not applied.
    assert_eq!(sm.handles().logic.read().unwrap().applied, vec![1, 2, 3]);
}

#[tokio::test]
async fn snapshot_installs_on_another_replica_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = temporary_store(1, dir.path());
    let (ta, tb) = (store.group_trees(1).unwrap(), store.group_trees(2).unwrap());
    let mut a = SmStore::open(store.clone(), 1, &ta, Kv::default(), metrics(1))
        .await
        .unwrap();
    apply(
        &mut a,
        vec![
            Entry::new_membership(log_id(1), membership()),
            normal(2, "x=1"),
            normal(3, "y=2"),
        ],
    )
    .await;
    let snap = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(3)));
    // Later applies on `a` are not in the snapshot already built.
    apply(&mut a, vec![normal(4, "z=3")]).await;

    let mut b = SmStore::open(store.clone(), 2, &tb, Kv::default(), metrics(2))
        .await
        .unwrap();
    apply(&mut b, vec![normal(1, "stale=1")]).await;
    b.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
    let (applied, _) = b.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(3)));
    let want: BTreeMap<Vec<u8>, Vec<u8>> = [
        (b"x".to_vec(), b"1".to_vec()),
        (b"y".to_vec(), b"2".to_vec()),
    ]
    .into();
    assert_eq!(b.handles().logic.read().unwrap().map, want);
    assert_eq!(b.handles().logic.read().unwrap().loads, 2);

    // After a restart the installed state and the snapshot are both there.
    drop(b);
    let mut b = SmStore::open(store.clone(), 2, &tb, Kv::default(), metrics(2))
        .await
        .unwrap();
    assert_eq!(b.handles().logic.read().unwrap().map, want);
    let current = b.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(3)));
}

#[tokio::test]
async fn an_install_interrupted_by_a_crash_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let want: BTreeMap<Vec<u8>, Vec<u8>> = [
        (b"x".to_vec(), b"1".to_vec()),
        (b"y".to_vec(), b"2".to_vec()),
    ]
    .into();
    {
        let store = open_store(&path, 1).unwrap();
        let (ta, tb) = (store.group_trees(1).unwrap(), store.group_trees(2).unwrap());
        let mut a = SmStore::open(store.clone(), 1, &ta, Kv::default(), metrics(1))
            .await
            .unwrap();
        apply(
            &mut a,
            vec![
                Entry::new_membership(log_id(1), membership()),
                normal(2, "x=1"),
                normal(3, "y=2"),
            ],
        )
        .await;
        let snap = a
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let mut b = SmStore::open(store.clone(), 2, &tb, Kv::default(), metrics(2))
            .await
            .unwrap();
        apply(&mut b, vec![normal(1, "stale=1"), normal(2, "old=2")]).await;
        // The crash: b adopted the file and recorded `installing`, then replaced only part of
        // its tree.
        std::fs::copy(&snap.snapshot.path, tb.snap_dir.join("s.snap")).unwrap();
        let rec = super::snapshot::SnapshotRef {
            meta: snap.meta.clone(),
            file: "s.snap".into(),
            size: snap.snapshot.len,
        };
        tb.meta
            .insert(
                super::meta_keys::INSTALLING,
                &crate::codec::encode_record(&rec).unwrap(),
            )
            .unwrap();
        let mut half = super::engine::WriteBatch::default();
        half.delete(b"\x01stale".to_vec());
        half.put(b"\x01x".to_vec(), b"1".to_vec());
        tb.sm.apply_batch(half).await.unwrap();
        store.flush().await.unwrap();
    }
    let store = open_store(&path, 1).unwrap();
    let tb = store.group_trees(2).unwrap();
    let mut b = SmStore::open(store.clone(), 2, &tb, Kv::default(), metrics(2))
        .await
        .unwrap();
    assert_eq!(b.handles().logic.read().unwrap().map, want);
    assert_eq!(b.applied_state().await.unwrap().0, Some(log_id(3)));
    assert!(tb.meta.get(super::meta_keys::INSTALLING).unwrap().is_none());
    let current = b.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(3)));
    assert_eq!(current.snapshot.path, tb.snap_dir.join("s.snap"));
}

#[tokio::test]
async fn purge_and_truncate_of_thousands_of_entries_leave_no_hole() {
    use openraft::storage::RaftLogStorage;
    use openraft::RaftLogReader;
    let dir = tempfile::tempdir().unwrap();
    let store = temporary_store(1, dir.path());
    let trees = store.group_trees(1).unwrap();
    let mut log = LogStore::new(store.clone(), 1, &trees, metrics(1), None);
    let mut batch = super::engine::WriteBatch::default();
    for i in 1..=2500u64 {
        let e = normal(i, "k=v");
        batch.put(i.to_be_bytes(), crate::codec::encode_record(&e).unwrap());
    }
    trees.log.apply_batch(batch).await.unwrap();

    log.purge(log_id(2100)).await.unwrap();
    log.truncate_after(Some(log_id(2299))).await.unwrap();
    let left = log.try_get_log_entries(0..).await.unwrap();
    let idx: Vec<u64> = left.iter().map(|e| e.index()).collect();
    assert_eq!(idx, (2101..=2299).collect::<Vec<_>>());
    let st = log.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(2100)));
    assert_eq!(st.last_log_id, Some(log_id(2299)));
}
