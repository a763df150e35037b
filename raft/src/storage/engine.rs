//! The narrow key/value engine interface the storage layer is written against, so the engine
//! (today sled, see `sled_engine.rs`) can be replaced without touching the log store or the
//! state machine.
//!
//! Model: an engine holds named keyspaces ("trees") of byte keys ordered lexicographically;
//! single writes and batches become durable only after a [`KvEngine::flush`] that started
//! after they returned. Writes are readable as soon as they return.

use std::io;
use std::ops::Bound;
use std::sync::Arc;

use futures::future::BoxFuture;

/// One `(key, value)` pair read from a tree.
pub(crate) type KvPair = (Vec<u8>, Vec<u8>);

/// Pairs of a range read, in ascending key order.
pub(crate) type KvIter<'a> = Box<dyn Iterator<Item = io::Result<KvPair>> + Send + 'a>;

/// A key/value engine: a set of named trees plus a durability barrier.
pub(crate) trait KvEngine: Send + Sync + 'static {
    /// The engine's default tree, for process-wide records (data version, node id).
    fn root(&self) -> Arc<dyn KvTree>;

    /// Names of every tree (data upgrades walk them).
    fn tree_names(&self) -> io::Result<Vec<String>>;

    /// Opens the tree called `name`, creating it empty if missing.
    fn open_tree(&self, name: &str) -> io::Result<Arc<dyn KvTree>>;

    /// Deletes the tree called `name` and its contents (a missing tree is not an error). Handles
    /// of it must no longer be used.
    fn drop_tree(&self, name: &str) -> io::Result<()>;

    /// Makes every write of every tree that returned before this call durable.
    fn flush(&self) -> BoxFuture<'static, io::Result<()>>;

    /// Blocking [`KvEngine::flush`], for synchronous callers outside the async runtime
    /// (startup only).
    fn flush_blocking(&self) -> io::Result<()>;

    /// Ends the process once a flush has been running longer than `limit` (`stall.rs`).
    fn exit_on_stall(&self, limit: std::time::Duration) -> io::Result<()>;
}

/// One named keyspace of a [`KvEngine`]; handles are cheap to share.
pub(crate) trait KvTree: Send + Sync {
    fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>>;

    /// A single unbatched put (not yet durable: see [`KvEngine::flush`]).
    fn insert(&self, key: &[u8], value: &[u8]) -> io::Result<()>;

    /// Pairs with a key within `(lower, upper)`, ascending.
    fn range<'a>(&'a self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> KvIter<'a>;

    /// Pairs whose key starts with `prefix`, ascending.
    fn scan_prefix<'a>(&'a self, prefix: &[u8]) -> KvIter<'a>;

    /// The pair with the greatest key.
    fn last(&self) -> io::Result<Option<KvPair>>;

    /// Applies every operation of `batch` to this tree atomically, also across a crash (not
    /// yet durable: see [`KvEngine::flush`]).
    fn apply_batch(&self, batch: WriteBatch) -> BoxFuture<'_, io::Result<()>>;
}

/// A write of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// Puts and deletes applied atomically to one tree, in order (a later op on a key wins).
#[derive(Debug, Default, Clone)]
pub(crate) struct WriteBatch {
    pub(crate) ops: Vec<BatchOp>,
}

impl WriteBatch {
    pub(crate) fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Put(key.into(), value.into()));
    }

    pub(crate) fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Delete(key.into()));
    }
}

/// The contract every engine must meet; run by each engine's tests.
#[cfg(test)]
pub(crate) async fn check_contract(engine: &dyn KvEngine) {
    let collect = |it: KvIter<'_>| it.collect::<io::Result<Vec<KvPair>>>().unwrap();
    let kv = |k: &[u8], v: &[u8]| (k.to_vec(), v.to_vec());

    let t = engine.open_tree("contract/a").unwrap();
    let other = engine.open_tree("contract/b").unwrap();
    let names = engine.tree_names().unwrap();
    assert!(names.iter().any(|n| n == "contract/a") && names.iter().any(|n| n == "contract/b"));
    assert_eq!(t.get(b"k").unwrap(), None);
    assert_eq!(t.last().unwrap(), None);
    assert!(collect(t.range(Bound::Unbounded, Bound::Unbounded)).is_empty());

    t.insert(b"k", b"v").unwrap();
    assert_eq!(t.get(b"k").unwrap(), Some(b"v".to_vec()));
    // Trees are separate keyspaces; reopening a name yields the same tree.
    assert_eq!(other.get(b"k").unwrap(), None);
    assert_eq!(
        engine.open_tree("contract/a").unwrap().get(b"k").unwrap(),
        Some(b"v".to_vec())
    );

    let mut b = WriteBatch::default();
    for i in 0u8..5 {
        b.put([1, i], [i]);
    }
    b.put([0], *b"reserved");
    b.delete(*b"k");
    b.put([2], *b"x");
    b.delete([2]);
    t.apply_batch(b).await.unwrap();
    assert_eq!(t.get(b"k").unwrap(), None);
    assert_eq!(t.get(&[2]).unwrap(), None);
    assert_eq!(t.last().unwrap(), Some(kv(&[1, 4], &[4])));

    let all = collect(t.range(Bound::Unbounded, Bound::Unbounded));
    let keys: Vec<Vec<u8>> = all.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![
            vec![0],
            vec![1, 0],
            vec![1, 1],
            vec![1, 2],
            vec![1, 3],
            vec![1, 4]
        ]
    );
    assert_eq!(
        collect(t.range(Bound::Included(&[1, 1]), Bound::Excluded(&[1, 3]))),
        vec![kv(&[1, 1], &[1]), kv(&[1, 2], &[2])]
    );
    assert_eq!(
        collect(t.range(Bound::Included(&[1, 3]), Bound::Unbounded)),
        vec![kv(&[1, 3], &[3]), kv(&[1, 4], &[4])]
    );
    assert_eq!(collect(t.scan_prefix(&[1])).len(), 5);
    assert_eq!(collect(t.scan_prefix(&[0])), vec![kv(&[0], b"reserved")]);
    assert!(collect(other.scan_prefix(&[1])).is_empty());

    let root = engine.root();
    root.insert(b"contract/root", b"1").unwrap();
    assert_eq!(root.get(b"contract/root").unwrap(), Some(b"1".to_vec()));
    assert_eq!(t.get(b"contract/root").unwrap(), None);

    engine.flush().await.unwrap();
    engine.flush_blocking().unwrap();
}
