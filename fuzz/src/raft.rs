//! `raft_envelope`: the Raft RPC server's decode of a request (`magnum_raft::fuzzing::decode_rpc`)
//! and the client's decode of an answer (`decode_reply`).
//!
//! Input: one selector byte, then the HTTP body. Selector below 0x80: a request to
//! `REQUEST_PATHS[(sel & 0x3f) % len]`, from conductor 1 when bit 6 is set (else from a plain
//! peer); otherwise an answer to `REPLY_RPCS[sel % len]`.

use magnum_raft::fuzzing::{decode_reply, decode_rpc, samples};

use crate::Seed;

/// Every RPC of group 3, the batch and stream routes, plus a path whose group differs from the seeds'
/// envelopes and an RPC this build does not know.
pub const REQUEST_PATHS: [&str; 10] = [
    "/raft/v1/3/append",
    "/raft/v1/3/vote",
    "/raft/v1/3/pre-vote",
    "/raft/v1/3/snapshot",
    "/raft/v1/3/transfer-leader",
    "/raft/v1/3/snapshot-chunk",
    "/raft/v1/batch",
    "/raft/v1/4/vote",
    "/raft/v1/3/nope",
    "/raft/v1/stream",
];

pub const REPLY_RPCS: [&str; 6] = [
    "append",
    "vote",
    "pre-vote",
    "snapshot",
    "transfer-leader",
    "snapshot-chunk",
];

pub fn run(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    if sel < 0x80 {
        // Bit 6: the peer presented conductor 1's certificate (the seeds' leader/candidate).
        let sender = (sel & 0x40 != 0).then_some(1);
        let path = REQUEST_PATHS[usize::from(sel & 0x3f) % REQUEST_PATHS.len()];
        let _ = decode_rpc(path, sender, body);
    } else {
        let _ = decode_reply(REPLY_RPCS[usize::from(sel) % REPLY_RPCS.len()], body);
    }
}

pub fn seeds() -> Vec<Seed> {
    let (requests, replies) = samples();
    let mut out = Vec::new();
    for (i, (path, body)) in requests.into_iter().enumerate() {
        let sel = REQUEST_PATHS
            .iter()
            .position(|p| *p == path)
            .unwrap_or_else(|| panic!("no selector for {path}"));
        let rpc = path.rsplit('/').next().unwrap_or_default();
        out.push((format!("req-{i}-{rpc}"), framed(sel, &body)));
        out.push((format!("req-{i}-{rpc}-from-1"), framed(sel | 0x40, &body)));
    }
    for (i, (rpc, body)) in replies.into_iter().enumerate() {
        // The smallest selector >= 0x80 that picks `rpc`.
        let pos = REPLY_RPCS
            .iter()
            .position(|r| *r == rpc)
            .unwrap_or_else(|| panic!("no selector for {rpc}"));
        let sel = (0x80..=0xff)
            .find(|s| s % REPLY_RPCS.len() == pos)
            .unwrap_or(0x80);
        out.push((format!("reply-{i}-{rpc}"), framed(sel, &body)));
    }
    out
}

fn framed(sel: usize, body: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::try_from(sel).unwrap_or(0)];
    v.extend_from_slice(body);
    v
}
