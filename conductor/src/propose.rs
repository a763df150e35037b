//! The one way a command enters a Raft log: typed handles that encode, check the active cluster
//! version, write and decode. `ShardLeader` proposes to a data shard; `membership::propose::
//! MetaLeader` to the meta group. Nothing else calls `Group::write` on them.
//!
//! The version gate lives here and nowhere else: a kind newer than the active cluster version
//! (`magnum_proto::version::min_version`) is refused before anything is proposed, so an older
//! conductor never sees a command it cannot decode.
use crate::shard::logic::ShardLogic;
use magnum_proto::version::{self, Kind, BASE_VERSION};
use magnum_proto::{CommandError, CommandOk, ShardRequest, ShardResponse};
use magnum_raft::{Group, NodeAddr, WriteError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// Not proposed: this replica does not lead the group (`hint`: who does, if known).
    #[error("not leader; leader is {hint:?}")]
    NotLeader { hint: Option<(u64, NodeAddr)> },
    /// Not proposed: the kind needs a cluster version the operator has not finalized yet.
    #[error(
        "{what} is not available until every conductor runs a release that supports it and the \
         operator finalizes the upgrade (active cluster version {active}, needs {needs})"
    )]
    NotYetActive {
        what: String,
        needs: u32,
        active: u32,
    },
    /// Committed, and the state machine refused it.
    #[error("{0}")]
    Rejected(CommandError),
    /// Outcome unknown or the group stopped.
    #[error("raft: {0}")]
    Raft(WriteError),
    #[error("codec: {0}")]
    Codec(String),
}

impl From<WriteError> for ProposeError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotLeader { leader } => Self::NotLeader { hint: leader },
            other => Self::Raft(other),
        }
    }
}

/// This node's copy of the active cluster version, kept by the meta state machine as it
/// applies (`MetaState`), read by every propose without a round trip.
#[derive(Clone, Debug)]
pub struct ActiveVersion(Arc<AtomicU32>);

impl Default for ActiveVersion {
    /// Until the meta state is loaded: what every release speaks.
    fn default() -> Self {
        Self::new(BASE_VERSION)
    }
}

impl ActiveVersion {
    pub fn new(v: u32) -> Self {
        Self(Arc::new(AtomicU32::new(v)))
    }

    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn set(&self, v: u32) {
        self.0.store(v, Ordering::Release);
    }

    /// The gate: refuses `kind` while the active version is below the one that introduced it.
    pub fn check(&self, kind: Kind<'_>) -> Result<(), ProposeError> {
        let (needs, active) = (version::min_version(kind), self.get());
        if needs > active {
            return Err(ProposeError::NotYetActive {
                what: kind.name(),
                needs,
                active,
            });
        }
        Ok(())
    }
}

/// Proposes to one data shard this node hosts (the leader's loops and the service listener).
#[derive(Clone)]
pub struct ShardLeader {
    group: Group<ShardLogic>,
    active: ActiveVersion,
}

impl ShardLeader {
    pub fn new(group: Group<ShardLogic>, active: ActiveVersion) -> Self {
        Self { group, active }
    }

    /// For reads; writes go through [`Self::propose`].
    pub fn group(&self) -> &Group<ShardLogic> {
        &self.group
    }

    /// The node's copy of the active cluster version.
    pub fn active(&self) -> &ActiveVersion {
        &self.active
    }

    pub async fn propose(&self, req: impl Into<ShardRequest>) -> Result<CommandOk, ProposeError> {
        let mut req = req.into();
        version::fit_to(&mut req.command, self.active.get());
        self.active.check(Kind::Shard(&req.command))?;
        let payload = serde_json::to_vec(&req).map_err(|e| ProposeError::Codec(e.to_string()))?;
        let bytes = self.group.write(payload).await?;
        match serde_json::from_slice::<ShardResponse>(&bytes) {
            Ok(Ok(ok)) => Ok(ok),
            Ok(Err(e)) => Err(ProposeError::Rejected(e)),
            Err(e) => Err(ProposeError::Codec(format!("undecodable response: {e}"))),
        }
    }
}

#[cfg(test)]
#[path = "propose_tests.rs"]
mod tests;
