//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not part of the API).
//!
//! [`decode_rpc`] runs the decode steps of the Raft RPC server (`network::server::handle` and
//! `dispatch`, `network::snapshot::Receiver`) on one request, without a live group: route, body
//! bound, envelope, protocol and group checks, then the openraft request the RPC carries and
//! its sender check; for `/raft/v1/batch`, the batch and then each item the same way; for
//! `/raft/v1/stream`, the body's frames, each a batch of items taken the same way.
//! [`decode_reply`] runs the client's decode of a peer's answer (`network::client`).
//! [`samples`] are real encodings of every RPC, the seeds of the corpus. [`write_set_ops`] reads
//! what an `apply` wrote.
//!
//! Every decoded message is re-encoded and decoded again: the second encoding must equal the
//! first (a value that does not survive its own codec would corrupt a log or a snapshot).

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::network::batch::{Batch, BatchItem, BATCH_PATH, MAX_BATCH_BODY, PROTO_BATCH};
use crate::network::server::check_sender;
use crate::network::stream::{StreamBatch, StreamItem, PROTO_STREAM, STREAM_PATH};
use crate::network::{Envelope, RpcKind, SnapshotChunk, SnapshotRpc, PROTO_CURRENT, PROTO_MIN};
use crate::types::{GroupId, ORaftError, TypeConfig};

/// Decodes `bytes` as `T` with the RPC codec; a decoded value must re-encode stably.
fn decode_stable<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let v: T = codec::decode(bytes).map_err(|e| e.to_string())?;
    let once = codec::encode(&v).map_err(|e| format!("re-encode: {e}"))?;
    let again: T = match codec::decode(&once) {
        Ok(a) => a,
        Err(e) => panic!("a decoded message does not decode after re-encoding: {e}"),
    };
    let twice = codec::encode(&again).map_err(|e| format!("re-encode: {e}"))?;
    assert_eq!(once, twice, "re-encoding is not stable");
    Ok(v)
}

/// `server::batch`: the batch, then each item as its single route would take it (a refused item
/// is an answer of its own, not a refused batch).
fn decode_batch(sender: Option<u64>, body: &[u8]) -> Result<String, String> {
    if body.len() > MAX_BATCH_BODY {
        return Err(format!("batch body over {MAX_BATCH_BODY} bytes"));
    }
    let batch: Batch = decode_stable(body).map_err(|e| format!("bad batch: {e}"))?;
    if !(PROTO_BATCH..=PROTO_CURRENT).contains(&batch.proto) {
        return Err(format!("unsupported raft batch protocol {}", batch.proto));
    }
    let items = batch.items.into_iter().map(|i| decode_item(sender, i));
    Ok(format!(
        "batch [{}]",
        items.collect::<Result<Vec<_>, _>>()?.join(", ")
    ))
}

/// One item of a batch or a stream, as its single route would take it.
fn decode_item(sender: Option<u64>, item: BatchItem) -> Result<String, String> {
    let answer = match RpcKind::from_path(&item.rpc) {
        Some(RpcKind::Append | RpcKind::Vote | RpcKind::PreVote) => {
            let path = format!("/raft/v1/{}/{}", item.env.group, item.rpc);
            let body = codec::encode(&item.env).map_err(|e| format!("re-encode: {e}"))?;
            decode_rpc(&path, sender, &body)
        }
        _ => Err(format!("unknown raft rpc {:?} in a batch", item.rpc)),
    };
    Ok(format!("{answer:?}"))
}

/// `stream::serve_items`: the body's complete frames (a frame over the bound ends the stream),
/// each a batch whose items are answered one by one (a frame of another protocol answers each
/// item 400).
fn decode_stream(sender: Option<u64>, body: &[u8]) -> Result<String, String> {
    let mut buf = body.to_vec();
    let batches: Vec<StreamBatch> = crate::network::take_frames(&mut buf, MAX_BATCH_BODY)?;
    let mut out = Vec::new();
    for b in batches {
        let once = codec::encode(&b).map_err(|e| format!("re-encode: {e}"))?;
        let b: StreamBatch = decode_stable(&once)?;
        for StreamItem { id, item, .. } in b.items {
            let answer = match (PROTO_STREAM..=PROTO_CURRENT).contains(&b.proto) {
                true => decode_item(sender, item)?,
                false => format!("unsupported raft stream protocol {}", b.proto),
            };
            out.push(format!("{id}: {answer}"));
        }
    }
    Ok(format!(
        "stream [{}] ({} bytes left)",
        out.join(", "),
        buf.len()
    ))
}

/// `POST {path}` with `body` to the Raft RPC server, up to the point where the request would be
/// handed to openraft. `path` is the URL path, `/raft/v1/{gid}/{rpc}`; `sender` the conductor
/// id of the peer's certificate (`None`: a plain peer). `Ok` names what was decoded (its
/// `Display`, as openraft logs it); `Err` is the rejection the server answers.
pub fn decode_rpc(path: &str, sender: Option<u64>, body: &[u8]) -> Result<String, String> {
    if path == BATCH_PATH {
        return decode_batch(sender, body);
    }
    if path == STREAM_PATH {
        return decode_stream(sender, body);
    }
    // The route `/raft/v1/{gid}/{rpc}` and axum's `Path<(GroupId, String)>`.
    let rest = path.strip_prefix("/raft/v1/").ok_or("no route")?;
    let (gid, rpc) = rest.split_once('/').ok_or("no route")?;
    if gid.is_empty() || rpc.is_empty() || rpc.contains('/') {
        return Err("no route".into());
    }
    let gid: GroupId = gid.parse().map_err(|e| format!("bad group id: {e}"))?;

    // `server::handle`.
    let kind = RpcKind::from_path(rpc).ok_or_else(|| format!("unknown raft rpc {rpc:?}"))?;
    if body.len() > kind.max_body() {
        return Err(format!("{rpc} body over {} bytes", kind.max_body()));
    }
    let env: Envelope = decode_stable(body).map_err(|e| format!("bad envelope: {e}"))?;
    if !(PROTO_MIN..=PROTO_CURRENT).contains(&env.proto) {
        return Err(format!("unsupported raft protocol {}", env.proto));
    }
    if env.group != gid {
        return Err(format!("envelope group {} != path group {gid}", env.group));
    }

    // `server::dispatch` and `snapshot::Receiver`.
    let payload = env.payload.as_slice();
    match kind {
        RpcKind::Append => {
            let req: AppendEntriesRequest<TypeConfig> = decode_stable(payload)?;
            check_sender(sender, &req.vote)?;
            Ok(format!("append {req} {req:?}"))
        }
        RpcKind::Vote | RpcKind::PreVote => {
            let req: VoteRequest<TypeConfig> = decode_stable(payload)?;
            check_sender(sender, &req.vote)?;
            Ok(format!("vote {req} {req:?}"))
        }
        RpcKind::TransferLeader => {
            let req: TransferLeaderRequest<TypeConfig> = decode_stable(payload)?;
            check_sender(sender, req.from_leader())?;
            Ok(format!("transfer {req} {req:?}"))
        }
        RpcKind::Snapshot => {
            // `Receiver::v1`, then `snapfile::write_from_v1_blob` up to writing the file.
            let req: SnapshotRpc = decode_stable(payload)?;
            check_sender(sender, &req.vote)?;
            let pairs: Vec<(Vec<u8>, Vec<u8>)> =
                codec::decode_record(&req.data).map_err(|e| e.to_string())?;
            Ok(format!(
                "snapshot vote={} meta={} pairs={}",
                req.vote,
                req.meta,
                pairs.len()
            ))
        }
        RpcKind::SnapshotChunk => {
            // `Receiver::chunk`, up to the per-transfer state (which needs a live receiver).
            let c: SnapshotChunk = decode_stable(payload)?;
            check_sender(sender, &c.vote)?;
            Ok(format!(
                "chunk vote={} meta={} at {} of {} ({} bytes)",
                c.vote,
                c.meta,
                c.offset,
                c.total,
                c.data.len()
            ))
        }
    }
}

/// The client's decode of a peer's 200 answer to `rpc` (`PeerClient::try_call`): bincode of
/// `Result<response, RaftError>`; `Ok` is the answer or the remote error, as the client shows it.
pub fn decode_reply(rpc: &str, body: &[u8]) -> Result<String, String> {
    fn show<T: std::fmt::Debug>(r: Result<T, ORaftError>) -> String {
        match r {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("remote raft: {e}"),
        }
    }
    let kind = RpcKind::from_path(rpc).ok_or_else(|| format!("unknown raft rpc {rpc:?}"))?;
    Ok(match kind {
        RpcKind::Append => show(decode_stable::<
            Result<AppendEntriesResponse<TypeConfig>, ORaftError>,
        >(body)?),
        RpcKind::Vote | RpcKind::PreVote => {
            show(decode_stable::<Result<VoteResponse<TypeConfig>, ORaftError>>(body)?)
        }
        RpcKind::TransferLeader => show(decode_stable::<
            Result<TransferLeaderResponse<TypeConfig>, ORaftError>,
        >(body)?),
        RpcKind::Snapshot => show(decode_stable::<
            Result<SnapshotResponse<TypeConfig>, ORaftError>,
        >(body)?),
        RpcKind::SnapshotChunk => show(decode_stable::<
            Result<Option<SnapshotResponse<TypeConfig>>, ORaftError>,
        >(body)?),
    })
}

/// The changes of a [`crate::WriteSet`] in order (`None`: delete), so that a fuzz target can keep
/// the key/value state a group would persist.
pub fn write_set_ops(ws: &crate::WriteSet) -> &[(Vec<u8>, Option<Vec<u8>>)] {
    &ws.ops
}

/// Real encodings, as a peer sends them: `(path, request body)` of every RPC of group 3 and
/// `(rpc, answer body)` of some answers.
#[allow(clippy::type_complexity)]
pub fn samples() -> (Vec<(String, Vec<u8>)>, Vec<(String, Vec<u8>)>) {
    use crate::types::{Entry, LogId, NodeAddr, Payload, SnapshotMeta, StoredMembership, Vote};
    use openraft::entry::RaftEntry;
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::Membership;
    use std::collections::{BTreeMap, BTreeSet};

    const GID: GroupId = 3;
    let enc = |v: &dyn erased::Encode| v.encode();
    let log_id = |term: u64, index: u64| LogId::new(LeaderId { term, node_id: 1 }, index);
    let vote = Vote::new_committed(2, 1);
    let nodes: BTreeMap<u64, NodeAddr> = (1..=3)
        .map(|n| {
            let addr = NodeAddr {
                raft: format!("10.0.0.{n}:9512"),
                service: format!("10.0.0.{n}:9513"),
            };
            (n, addr)
        })
        .collect();
    let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
        .unwrap_or_else(|e| panic!("membership: {e}"));
    let entries = vec![
        Entry::new_blank(log_id(2, 5)),
        Entry::new_normal(
            log_id(2, 6),
            Payload(b"{\"Canary\":{\"key\":\"k\"}}".to_vec()),
        ),
        Entry::new_membership(log_id(2, 7), membership.clone()),
    ];
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(2, 7)),
        last_membership: StoredMembership::new(Some(log_id(2, 7)), membership),
    };
    let blob = codec::encode_record(&vec![
        (b"c/1".to_vec(), b"{}".to_vec()),
        (b"meta/applied".to_vec(), vec![7]),
    ])
    .unwrap_or_else(|e| panic!("blob: {e}"));

    let requests: Vec<(RpcKind, Vec<u8>)> = vec![
        (
            RpcKind::Append,
            enc(&AppendEntriesRequest::<TypeConfig> {
                vote,
                prev_log_id: Some(log_id(2, 4)),
                entries,
                leader_commit: Some(log_id(2, 4)),
            }),
        ),
        (
            RpcKind::Append,
            enc(&AppendEntriesRequest::<TypeConfig> {
                vote,
                prev_log_id: None,
                entries: vec![],
                leader_commit: None,
            }),
        ),
        (
            RpcKind::Vote,
            enc(&VoteRequest::<TypeConfig>::new(
                Vote::new(3, 1),
                Some(log_id(2, 7)),
            )),
        ),
        (
            RpcKind::PreVote,
            enc(&VoteRequest::<TypeConfig>::new(Vote::new(3, 1), None)),
        ),
        (
            RpcKind::TransferLeader,
            enc(&TransferLeaderRequest::<TypeConfig>::new(
                vote,
                2,
                Some(log_id(2, 7)),
            )),
        ),
        (
            RpcKind::Snapshot,
            enc(&SnapshotRpc {
                vote,
                meta: meta.clone(),
                data: blob,
            }),
        ),
        (
            RpcKind::SnapshotChunk,
            enc(&SnapshotChunk {
                vote,
                meta,
                offset: 0,
                total: 12,
                data: b"MGNSNAP\x02\xff\xff\xff\xff".to_vec(),
            }),
        ),
    ];
    let envelopes: Vec<(RpcKind, Envelope)> = requests
        .into_iter()
        .map(|(kind, payload)| {
            let env = Envelope {
                proto: kind.since(),
                group: GID,
                payload,
            };
            (kind, env)
        })
        .collect();
    // A batch of the appends, votes and pre-votes above, and one item it cannot carry.
    let batch = Batch {
        proto: PROTO_BATCH,
        items: envelopes
            .iter()
            .filter(|(k, _)| !matches!(k, RpcKind::Snapshot))
            .map(|(k, env)| BatchItem {
                rpc: k.path().to_string(),
                env: env.clone(),
            })
            .collect(),
    };
    let mut requests: Vec<(String, Vec<u8>)> = envelopes
        .iter()
        .map(|(kind, env)| (format!("/raft/v1/{GID}/{}", kind.path()), enc(env)))
        .collect();
    // The same items as two frames of a stream.
    let items: Vec<StreamItem> = (1..)
        .zip(&batch.items)
        .map(|(id, item)| StreamItem {
            id,
            timeout_ms: 75,
            item: item.clone(),
        })
        .collect();
    let (first, second) = items.split_at(items.len() / 2);
    let frames: Vec<u8> = [first, second]
        .into_iter()
        .flat_map(|items| {
            let b = StreamBatch {
                proto: PROTO_STREAM,
                items: items.to_vec(),
            };
            crate::network::frame(&b).unwrap_or_default()
        })
        .collect();
    requests.push((BATCH_PATH.to_string(), enc(&batch)));
    requests.push((STREAM_PATH.to_string(), frames));

    let replies = vec![
        (
            RpcKind::Append,
            enc(&Ok::<_, ORaftError>(
                AppendEntriesResponse::<TypeConfig>::Success,
            )),
        ),
        (
            RpcKind::Append,
            enc(&Ok::<_, ORaftError>(
                AppendEntriesResponse::<TypeConfig>::Conflict,
            )),
        ),
        (
            RpcKind::Vote,
            enc(&Ok::<_, ORaftError>(VoteResponse::<TypeConfig>::new(
                Vote::new(3, 1),
                Some(log_id(2, 7)),
                true,
            ))),
        ),
        (
            RpcKind::SnapshotChunk,
            enc(&Ok::<Option<SnapshotResponse<TypeConfig>>, ORaftError>(
                None,
            )),
        ),
        (
            RpcKind::Snapshot,
            enc(&Ok::<_, ORaftError>(SnapshotResponse::<TypeConfig>::new(
                vote,
            ))),
        ),
    ];
    let replies = replies
        .into_iter()
        .map(|(kind, body)| (kind.path().to_string(), body))
        .collect();
    (requests, replies)
}

/// `samples` encodes values of many types through one closure.
mod erased {
    pub(super) trait Encode {
        fn encode(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> Vec<u8> {
            crate::codec::encode(self).unwrap_or_else(|e| panic!("encode: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_decode_as_the_server_and_client_do() {
        let (requests, replies) = samples();
        for (path, body) in &requests {
            decode_rpc(path, None, body).unwrap();
            decode_rpc(path, Some(1), body).unwrap();
            if path == BATCH_PATH || path == STREAM_PATH {
                // Each item is refused on its own.
                let out = decode_rpc(path, Some(2), body).unwrap();
                assert!(out.contains("in the name of node 1"), "{out}");
                assert!(out.contains("in a batch"), "{out}");
                continue;
            }
            assert!(
                decode_rpc(path, Some(2), body).is_err(),
                "{path}: sender checked"
            );
        }
        for (rpc, body) in &replies {
            decode_reply(rpc, body).unwrap();
        }
        let (path, body) = &requests[0];
        assert!(decode_rpc(&path.replace("/3/", "/4/"), None, body).is_err());
        assert!(decode_rpc("/raft/v1/3/nope", None, body).is_err());
        assert!(decode_rpc(path, None, &body[..body.len() - 1]).is_err());
        // A stream's torn last frame waits for its rest; a frame over the bound ends it.
        let (_, stream) = requests.iter().find(|(p, _)| p == STREAM_PATH).unwrap();
        let torn = decode_rpc(STREAM_PATH, None, &stream[..stream.len() - 1]).unwrap();
        assert!(
            torn.contains("bytes left") && !torn.contains("(0 bytes left)"),
            "{torn}"
        );
        assert!(decode_rpc(STREAM_PATH, None, &[0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
