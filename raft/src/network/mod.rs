//! Raft RPC over HTTP: `POST /raft/v1/{gid}/{rpc}`.
//!
//! Request body: bincode of [`Envelope`] `{proto, group, payload}`, where `payload` is the
//! bincode of the openraft request. Response body (HTTP 200): bincode of
//! `Result<openraft response, openraft RaftError>`, so openraft errors travel as data.
//! Transport problems use HTTP status: 400 bad envelope/version, 404 group not open here or
//! unknown RPC (an older peer).
//!
//! Versions: an envelope carries the protocol version that introduced its RPC, so a peer one
//! version behind understands every message it knows. v1: append, vote, pre-vote, the whole
//! snapshot in one request, transfer-leader. v2: snapshots stream as chunks (`snapshot-chunk`);
//! a v2 node still accepts v1 snapshots, and sends one to a peer that does not know chunks.
//! v3: appends, votes and pre-votes of many groups in one request (`batch.rs`); a v3 node
//! sends single RPCs to a peer that does not know batches. v4: the batches to a peer travel
//! as frames of one long-lived request (`stream.rs`); a v4 node sends batch requests to a
//! peer that does not know streams.

pub(crate) mod batch;
pub(crate) mod client;
pub(crate) mod server;
pub(crate) mod snapshot;
pub(crate) mod stream;
#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::types::{GroupId, SnapshotMeta, Vote};

/// Protocol version this build speaks.
pub(crate) const PROTO_CURRENT: u16 = 4;
/// Oldest protocol version this build still accepts (rolling upgrades: N accepts N-1).
pub(crate) const PROTO_MIN: u16 = 1;

/// Upper bound of a v1 snapshot body (a v1 peer sends a whole snapshot in one request).
pub(crate) const MAX_V1_SNAPSHOT_BYTES: usize = 512 * 1024 * 1024;
/// Upper bound of an AppendEntries body: openraft sends at most `max_payload_entries` (300)
/// entries per request, and one entry is bounded by the service's body limit (8 MiB).
pub(crate) const MAX_APPEND_BYTES: usize = 64 * 1024 * 1024;
/// Votes and leadership transfers are a few dozen bytes.
pub(crate) const MAX_SMALL_BYTES: usize = 64 * 1024;

/// Bytes of snapshot file per `snapshot-chunk` request.
pub(crate) const SNAPSHOT_CHUNK_BYTES: u64 = 8 << 20;

/// Versioned wrapper of every Raft RPC request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) proto: u16,
    pub(crate) group: GroupId,
    pub(crate) payload: Vec<u8>,
}

/// A full snapshot in one request (protocol v1; `data` in DataVersion 1's blob format).
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotRpc {
    pub(crate) vote: Vote,
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: Vec<u8>,
}

/// `data` is the file's bytes at `offset`; the chunk ending at `total` completes the transfer
/// and is answered once the snapshot is installed. A chunk at offset 0 starts over.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotChunk {
    pub(crate) vote: Vote,
    pub(crate) meta: SnapshotMeta,
    pub(crate) offset: u64,
    pub(crate) total: u64,
    pub(crate) data: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RpcKind {
    Append,
    Vote,
    PreVote,
    Snapshot,
    TransferLeader,
    SnapshotChunk,
}

impl RpcKind {
    pub(crate) fn path(self) -> &'static str {
        match self {
            RpcKind::Append => "append",
            RpcKind::Vote => "vote",
            RpcKind::PreVote => "pre-vote",
            RpcKind::Snapshot => "snapshot",
            RpcKind::TransferLeader => "transfer-leader",
            RpcKind::SnapshotChunk => "snapshot-chunk",
        }
    }

    /// The largest body a peer may send for this RPC; checked while the body streams in,
    /// before anything is buffered beyond it.
    pub(crate) fn max_body(self) -> usize {
        match self {
            RpcKind::Append => MAX_APPEND_BYTES,
            RpcKind::Vote | RpcKind::PreVote | RpcKind::TransferLeader => MAX_SMALL_BYTES,
            // Chunk data plus its envelope and snapshot meta (membership).
            RpcKind::SnapshotChunk => SNAPSHOT_CHUNK_BYTES as usize + (1 << 20),
            RpcKind::Snapshot => MAX_V1_SNAPSHOT_BYTES,
        }
    }

    /// The protocol version that introduced this RPC (sent in its envelope).
    pub(crate) fn since(self) -> u16 {
        match self {
            RpcKind::SnapshotChunk => 2,
            _ => 1,
        }
    }

    pub(crate) fn from_path(s: &str) -> Option<Self> {
        [
            Self::Append,
            Self::Vote,
            Self::PreVote,
            Self::Snapshot,
            Self::TransferLeader,
            Self::SnapshotChunk,
        ]
        .into_iter()
        .find(|k| k.path() == s)
    }
}

/// A frame of a batch's or a stream's body: `[u32 LE length][bincode(v)]`.
pub(crate) fn frame<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, codec::CodecError> {
    let body = codec::encode(v)?;
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Takes the complete frames off the front of `buf`; a frame declared longer than `max` is an
/// error before it is buffered.
pub(crate) fn take_frames<T: DeserializeOwned>(
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len) = buf.get(at..at + 4) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > max {
            return Err(format!("frame of {len} bytes, over {max}"));
        }
        let Some(body) = buf.get(at + 4..at + 4 + len) else {
            break;
        };
        out.push(codec::decode(body).map_err(|e| format!("bad frame: {e}"))?);
        at += 4 + len;
    }
    buf.drain(..at);
    Ok(out)
}
