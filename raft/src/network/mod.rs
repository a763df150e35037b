//! Raft RPC over HTTP: `POST /raft/v1/{gid}/{rpc}`.
//!
//! Request body: bincode of [`Envelope`] `{proto, group, payload}`, where `payload` is the
//! bincode of the openraft request. Response body (HTTP 200): bincode of
//! `Result<openraft response, openraft RaftError>`, so openraft errors travel as data.
//! Transport problems use HTTP status: 400 bad envelope/version, 404 group not open here.

pub(crate) mod client;
pub(crate) mod server;

use serde::{Deserialize, Serialize};

use crate::types::{GroupId, SnapshotMeta, Vote};

/// Protocol version this build speaks.
pub(crate) const PROTO_CURRENT: u16 = 1;
/// Oldest protocol version this build still accepts (rolling upgrades: N accepts N-1).
pub(crate) const PROTO_MIN: u16 = 1;

/// Upper bound of one RPC body (a full snapshot travels in one request).
pub(crate) const MAX_BODY_BYTES: usize = 512 * 1024 * 1024;

/// Versioned wrapper of every Raft RPC request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) proto: u16,
    pub(crate) group: GroupId,
    pub(crate) payload: Vec<u8>,
}

/// A full snapshot in one request.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotRpc {
    pub(crate) vote: Vote,
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RpcKind {
    Append,
    Vote,
    PreVote,
    Snapshot,
    TransferLeader,
}

impl RpcKind {
    pub(crate) fn path(self) -> &'static str {
        match self {
            RpcKind::Append => "append",
            RpcKind::Vote => "vote",
            RpcKind::PreVote => "pre-vote",
            RpcKind::Snapshot => "snapshot",
            RpcKind::TransferLeader => "transfer-leader",
        }
    }

    pub(crate) fn from_path(s: &str) -> Option<Self> {
        [
            Self::Append,
            Self::Vote,
            Self::PreVote,
            Self::Snapshot,
            Self::TransferLeader,
        ]
        .into_iter()
        .find(|k| k.path() == s)
    }
}
