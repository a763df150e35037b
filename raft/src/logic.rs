//! The application's side of a group: deterministic state machine logic.

/// Deterministic application logic of one group. No clock, no randomness, no I/O: every replica
/// must reach the same state from the same entries. Timestamps and ids travel in the payload.
pub trait StateMachineLogic: Send + Sync + 'static {
    /// Replace the whole in-memory state from persisted key/value pairs (startup, snapshot
    /// install). The pairs are exactly what earlier `apply` calls put into their [`WriteSet`]s.
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String>;

    /// Apply one normal log entry's payload; return the response bytes; record the keys to
    /// persist. The writes are stored atomically with the entry's index as `last_applied`, so
    /// after a restart an entry is never applied twice. Values are stored as given: version
    /// them yourself if their format may change.
    ///
    /// `Err` means the state can no longer be persisted faithfully (e.g. a row failed to
    /// encode): the store writes nothing of that batch and stops the group (fail-stop), since
    /// a replica that skipped a write would silently diverge from the others after a restart.
    fn apply(
        &mut self,
        index: u64,
        payload: &[u8],
        writes: &mut WriteSet,
    ) -> Result<Vec<u8>, String>;
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
