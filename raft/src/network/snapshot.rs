//! Snapshot transfer: the leader streams the snapshot file in `snapshot-chunk` requests; the
//! follower appends them to a temporary file in the group's snapshot dir and installs it once
//! complete. Memory on both sides is one chunk. A peer that predates chunks (protocol v1) gets
//! the whole snapshot in one `snapshot` request, and one is accepted from it.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

use openraft::raft::SnapshotResponse;
use tokio::sync::Mutex;

use super::client::{CallError, PeerClient};
use super::{RpcKind, SnapshotChunk, SnapshotRpc, SNAPSHOT_CHUNK_BYTES};
use crate::codec;
use crate::group::ORaft;
use crate::logic::StateMachineLogic;
use crate::storage::snapfile::{self, SnapshotFile};
use crate::types::{LogId, ORaftError, Snapshot, TypeConfig, Vote};

type Reply = Result<Option<SnapshotResponse<TypeConfig>>, ORaftError>;

async fn read_chunk(file: &SnapshotFile, offset: u64, len: u64) -> Result<Vec<u8>, CallError> {
    let f = file
        .file
        .try_clone()
        .map_err(|e| CallError::Unreachable(format!("snapshot file: {e}")))?;
    let read = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset).map(|_| buf)
    });
    match read.await {
        Ok(Ok(buf)) => Ok(buf),
        Ok(Err(e)) => Err(CallError::Unreachable(format!("snapshot file: {e}"))),
        Err(e) => Err(CallError::Unreachable(format!("snapshot read task: {e}"))),
    }
}

/// Sends `snapshot` to the peer; each chunk must arrive within `ttl`, the last one (which
/// waits for the install) within `ttl` plus a second per MiB.
pub(crate) async fn send(
    peer: &PeerClient,
    vote: Vote,
    snapshot: Snapshot,
    ttl: Duration,
) -> Result<SnapshotResponse<TypeConfig>, CallError> {
    let total = snapshot.snapshot.len;
    let mut offset = 0;
    loop {
        let len = SNAPSHOT_CHUNK_BYTES.min(total - offset);
        let last = offset + len == total;
        let chunk = SnapshotChunk {
            vote,
            meta: snapshot.meta.clone(),
            offset,
            total,
            data: read_chunk(&snapshot.snapshot, offset, len).await?,
        };
        let timeout = match last {
            true => ttl + Duration::from_millis(total >> 10),
            false => ttl,
        };
        let reply = peer.call::<_, Option<SnapshotResponse<TypeConfig>>>(
            RpcKind::SnapshotChunk,
            &chunk,
            timeout,
        );
        match (reply.await, last) {
            (Ok(Some(resp)), true) => return Ok(resp),
            (Ok(None), false) => offset += len,
            (Ok(_), _) => {
                return Err(CallError::Network(
                    "snapshot chunk answer out of step".into(),
                ))
            }
            (Err(CallError::Unsupported(_)), _) if offset == 0 => {
                return send_v1(
                    peer,
                    vote,
                    snapshot,
                    ttl + Duration::from_millis(total >> 10),
                )
                .await;
            }
            (Err(e), _) => return Err(e),
        }
    }
}

/// Protocol v1: the whole snapshot in one request, in DataVersion 1's format.
async fn send_v1(
    peer: &PeerClient,
    vote: Vote,
    snapshot: Snapshot,
    timeout: Duration,
) -> Result<SnapshotResponse<TypeConfig>, CallError> {
    let data = snapfile::to_v1_blob(&snapshot.snapshot)
        .map_err(|e| CallError::Unreachable(format!("snapshot file: {e}")))?;
    let req = SnapshotRpc {
        vote,
        meta: snapshot.meta,
        data,
    };
    peer.call(RpcKind::Snapshot, &req, timeout).await
}

/// A transfer in progress on the receiving side.
struct Incoming {
    vote: Vote,
    last_log_id: Option<LogId>,
    path: PathBuf,
    file: File,
    written: u64,
}

/// The receiving side of one group: at most one transfer at a time (a new one replaces it).
pub(crate) struct Receiver {
    dir: PathBuf,
    incoming: Mutex<Option<Incoming>>,
}

fn io_msg(e: impl std::fmt::Display) -> String {
    format!("snapshot receive: {e}")
}

impl Receiver {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            incoming: Mutex::new(None),
        }
    }

    /// Handles one chunk; answers `None` until the last one, which installs.
    pub(crate) async fn chunk<L: StateMachineLogic>(
        &self,
        raft: &ORaft<L>,
        sender: Option<u64>,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        let c: SnapshotChunk = codec::decode(payload).map_err(|e| e.to_string())?;
        super::server::check_sender(sender, &c.vote)?;
        let mut guard = self.incoming.lock().await;
        if c.offset == 0 {
            if let Some(old) = guard.take() {
                let _ = std::fs::remove_file(&old.path);
            }
            let path = snapfile::tmp_path(&self.dir);
            *guard = Some(Incoming {
                vote: c.vote,
                last_log_id: c.meta.last_log_id,
                file: File::create(&path).map_err(io_msg)?,
                path,
                written: 0,
            });
        }
        let inc = match guard.as_mut() {
            Some(i)
                if i.vote == c.vote
                    && i.last_log_id == c.meta.last_log_id
                    && i.written == c.offset =>
            {
                i
            }
            // The sender restarts from offset 0 on any error.
            _ => return Err(format!("snapshot chunk at {} out of order", c.offset)),
        };
        inc.file.write_all(&c.data).map_err(io_msg)?;
        inc.written += c.data.len() as u64;
        if inc.written < c.total {
            return codec::encode(&Reply::Ok(None)).map_err(|e| e.to_string());
        }
        let Some(done) = guard.take() else {
            return Err("snapshot transfer vanished".into());
        };
        drop(guard);
        if done.written != c.total {
            let _ = std::fs::remove_file(&done.path);
            return Err(format!(
                "snapshot of {} bytes overran {}",
                done.written, c.total
            ));
        }
        drop(done.file);
        let res: Reply = install(raft, c.vote, c.meta, &done.path).await?.map(Some);
        codec::encode(&res).map_err(|e| e.to_string())
    }

    /// A whole snapshot from a protocol v1 peer.
    pub(crate) async fn v1<L: StateMachineLogic>(
        &self,
        raft: &ORaft<L>,
        sender: Option<u64>,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        let req: SnapshotRpc = codec::decode(payload).map_err(|e| e.to_string())?;
        super::server::check_sender(sender, &req.vote)?;
        let (path, _) = snapfile::write_from_v1_blob(&req.data, &snapfile::tmp_path(&self.dir))
            .map_err(io_msg)?;
        let res = install(raft, req.vote, req.meta, &path).await?;
        codec::encode(&res).map_err(|e| e.to_string())
    }
}

/// Installs the received file; `Err` is a local failure, answered as a transport error.
async fn install<L: StateMachineLogic>(
    raft: &ORaft<L>,
    vote: Vote,
    meta: crate::types::SnapshotMeta,
    path: &std::path::Path,
) -> Result<Result<SnapshotResponse<TypeConfig>, ORaftError>, String> {
    let file = SnapshotFile::open(path).map_err(io_msg)?;
    let snapshot = Snapshot {
        meta,
        snapshot: file,
    };
    let res = raft
        .install_full_snapshot(vote, snapshot)
        .await
        .map_err(ORaftError::Fatal);
    // Installed snapshots were moved away; a refused (stale) one is dropped here.
    let _ = std::fs::remove_file(path);
    Ok(res)
}
