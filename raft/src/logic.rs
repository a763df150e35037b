//! The application's side of a group: deterministic state machine logic.

use std::collections::BTreeMap;

/// Deterministic application logic of one group. No clock, no randomness, no I/O: every replica
/// must reach the same state from the same entries. Timestamps and ids travel in the payload.
pub trait StateMachineLogic: Send + Sync + 'static {
    /// Replace the whole in-memory state from persisted key/value pairs (startup, snapshot
    /// install). The pairs are exactly what earlier `apply` calls put into their [`WriteSet`]s.
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String>;

    /// Key prefixes of rows `load` has no use for (rows the logic only reads through
    /// [`StoredRows`]): a replica's startup leaves them unread, so the engine pages in only
    /// what memory keeps. A snapshot install still passes every pair.
    fn stored_only(&self) -> &[&[u8]] {
        &[]
    }

    /// Apply one normal log entry's payload; return the response bytes; record the keys to
    /// persist. `stored` reads the rows persisted so far (earlier entries of the same batch
    /// included), for rows the logic keeps on disk only. The writes are stored atomically with
    /// the entry's index as `last_applied`, so after a restart an entry is never applied twice.
    /// Values are stored as given: version them yourself if their format may change.
    ///
    /// `Err` means the state can no longer be persisted faithfully (e.g. a row failed to
    /// encode): the store writes nothing of that batch and stops the group (fail-stop), since
    /// a replica that skipped a write would silently diverge from the others after a restart.
    fn apply(
        &mut self,
        index: u64,
        payload: &[u8],
        writes: &mut WriteSet,
        stored: &dyn StoredRows,
    ) -> Result<Vec<u8>, String>;
}

/// Read access to a group's persisted app rows, for state a logic does not keep in memory
/// (large rows that are rarely read: a replica's memory then holds what its reads need, not
/// everything it stores). Deterministic inside `apply`: the rows there are exactly what the
/// entries before it wrote. Outside `apply` (`Group::stored`) they may trail the in-memory
/// state by the batch being written, never more: an answered write is on the tree.
pub trait StoredRows {
    /// The value last written under `key`, `None` if none is. `Err` is an I/O failure, which
    /// inside `apply` must fail the apply (a replica that read nothing would diverge).
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
}

/// Rows held in a map, as tools and tests keep what `apply` wrote.
impl StoredRows for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(BTreeMap::get(self, key).cloned())
    }
}

/// No rows at all: a logic that keeps everything in memory never reads.
pub struct NoStoredRows;

impl StoredRows for NoStoredRows {
    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
}

/// Key/value changes produced by one `apply`, persisted in the same atomic batch as the group's
/// `last_applied`. Later operations on the same key win.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteSet {
    pub(crate) ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Store `value` under `key`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    /// Remove `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    /// The changes in order (a later one on the same key wins), for tools that apply
    /// commands outside a group (`magnum manage restore` builds a meta state this way).
    pub fn into_ops(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
