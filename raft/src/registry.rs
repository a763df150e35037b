//! Groups open on this node, as seen by the RPC server and by node shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use futures::future::BoxFuture;

use crate::failover::Pulse;
use crate::network::RpcKind;
use crate::quiesce::Peers;
use crate::types::{GroupId, TypeConfig};

/// Type-erased handle of one open group (the group's state machine type is generic).
pub(crate) trait GroupHandle: Send + Sync {
    /// Serve one Raft RPC from `sender` (the conductor id of the caller's certificate, `None`
    /// for a plain peer); `Err` means the request could not be decoded or was not the sender's
    /// to make.
    fn call(
        &self,
        kind: RpcKind,
        sender: Option<u64>,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>>;
    fn shutdown(&self) -> BoxFuture<'static, ()>;
    /// openraft's current view of the group (for the metrics page).
    fn raft_metrics(&self) -> openraft::RaftMetrics<TypeConfig>;
    /// Its leader's pulse as this replica sees it (`failover.rs`, `quiesce.rs`).
    fn pulse(&self) -> &Pulse;
    /// Asks for a pre-vote and, if a quorum would grant it, campaigns.
    fn campaign(&self) -> BoxFuture<'static, ()>;
    /// Starts or stops openraft's ticker (heartbeats and election timeouts).
    fn set_ticking(&self, on: bool);
}

enum Slot {
    /// Being opened: RPCs get "not open" so peers back off and retry.
    Opening,
    /// `instance` tells a reopened group from a stale handle of its previous incarnation.
    Open {
        instance: u64,
        handle: Arc<dyn GroupHandle>,
    },
}

#[derive(Default)]
pub(crate) struct Registry {
    groups: RwLock<HashMap<GroupId, Slot>>,
    next_instance: AtomicU64,
    /// What this node heard from its peers' pings (`quiesce.rs`).
    pub(crate) peers: Arc<Peers>,
    /// Cancelled by `drain` (node shutdown): ends the peers' streams (`network/stream.rs`),
    /// which would otherwise hold the listener's graceful shutdown open.
    pub(crate) closed: tokio_util::sync::CancellationToken,
}

impl Registry {
    pub(crate) fn get(&self, gid: GroupId) -> Option<Arc<dyn GroupHandle>> {
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        match groups.get(&gid) {
            Some(Slot::Open { handle, .. }) => Some(handle.clone()),
            _ => None,
        }
    }

    /// Claims `gid` for opening; false if it is already open or being opened.
    pub(crate) fn reserve(&self, gid: GroupId) -> bool {
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        if groups.contains_key(&gid) {
            return false;
        }
        groups.insert(gid, Slot::Opening);
        true
    }

    /// Makes a reserved group reachable; returns its instance number.
    pub(crate) fn publish(&self, gid: GroupId, handle: Arc<dyn GroupHandle>) -> u64 {
        let instance = self.next_instance.fetch_add(1, Ordering::Relaxed);
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        groups.insert(gid, Slot::Open { instance, handle });
        instance
    }

    /// Drops a reservation that did not become a group.
    pub(crate) fn unreserve(&self, gid: GroupId) {
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        if matches!(groups.get(&gid), Some(Slot::Opening)) {
            groups.remove(&gid);
        }
    }

    /// Removes `gid` if it is still the given instance.
    pub(crate) fn remove(&self, gid: GroupId, instance: u64) {
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        if matches!(groups.get(&gid), Some(Slot::Open { instance: i, .. }) if *i == instance) {
            groups.remove(&gid);
        }
    }

    /// Open groups, ordered by id.
    pub(crate) fn open_groups(&self) -> Vec<(GroupId, Arc<dyn GroupHandle>)> {
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = groups
            .iter()
            .filter_map(|(gid, s)| match s {
                Slot::Open { handle, .. } => Some((*gid, handle.clone())),
                Slot::Opening => None,
            })
            .collect();
        out.sort_by_key(|(gid, _)| *gid);
        out
    }

    pub(crate) fn drain(&self) -> Vec<Arc<dyn GroupHandle>> {
        self.closed.cancel();
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        groups
            .drain()
            .filter_map(|(_, s)| match s {
                Slot::Open { handle, .. } => Some(handle),
                Slot::Opening => None,
            })
            .collect()
    }
}
