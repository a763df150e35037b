//! Which shard holds a cluster, remembered by uuid. A cluster never changes shard (its shard is
//! its project's, and the shard count is fixed at bootstrap), so once an admin's look-up by uuid
//! found it, later ones ask that one shard instead of fanning out to all of them, and that
//! shard's "no such cluster" is final.
use magnum_proto::{ClusterId, ShardId};
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before the map starts over; a miss only costs one fan-out.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct ClusterHomes {
    map: Mutex<HashMap<ClusterId, ShardId>>,
}

impl ClusterHomes {
    pub fn get(&self, id: ClusterId) -> Option<ShardId> {
        self.lock().get(&id).copied()
    }

    pub fn remember(&self, id: ClusterId, shard: ShardId) {
        let mut m = self.lock();
        if m.len() >= CAPACITY && !m.contains_key(&id) {
            m.clear();
        }
        m.insert(id, shard);
    }

    pub fn forget(&self, id: ClusterId) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClusterId, ShardId>> {
        // Entries are independent facts; a panic elsewhere cannot make one wrong.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_forgets_and_stays_bounded() {
        let h = ClusterHomes::default();
        let a = ClusterId(uuid::Uuid::new_v4());
        assert_eq!(h.get(a), None);
        h.remember(a, ShardId(3));
        assert_eq!(h.get(a), Some(ShardId(3)));
        h.forget(a);
        assert_eq!(h.get(a), None);
        for _ in 0..CAPACITY + 10 {
            h.remember(ClusterId(uuid::Uuid::new_v4()), ShardId(1));
        }
        assert!(h.lock().len() <= CAPACITY);
    }
}
