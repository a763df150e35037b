//! Streamed transport (protocol v4): one long-lived `POST /raft/v1/stream` per peer pair
//! carries the batches of every group's appends, votes and pre-votes as frames of its request
//! body, and their answers as frames of its response body. A batch then costs one HTTP/2 DATA
//! frame each way (one TLS record, one socket write), where a `POST /raft/v1/batch` cost a
//! stream's HEADERS, DATA and closing frames each way plus routing and middleware; on loopback
//! every write also pays the receiver's wake-up. Under all-shards writes that was most of
//! what the transport cost (`benches/results/stream-ab.md`).
//!
//! Opening: the node's batcher for a peer opens the stream on first use and waits for the
//! peer's response headers before it sends an item, so a peer of an older release, which
//! answers 404, has been sent nothing; the batcher then uses `POST /raft/v1/batch` for a while
//! (`batch.rs`). A stream that breaks (connection lost, peer restarted) fails the items still
//! waiting on it, which openraft retries as it retries any failed RPC; the next batch opens a
//! new stream.
//!
//! Frames both ways: `u32` little-endian length, then bincode. Request: [`StreamBatch`];
//! answer: a list of [`StreamAnswer`]. The peer serves items concurrently, each for at most
//! its caller's timeout (an item nobody waits for anymore must not hold a slot), at most
//! `MAX_IN_FLIGHT` per stream (beyond that it stops reading and HTTP/2 flow control holds the
//! sender back), and writes every answer that is ready as one frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::batch::{classify, single_answer, BatchItem, MAX_BATCH_BODY};
use super::client::CallError;
use super::{frame, take_frames, RpcKind, PROTO_CURRENT};
use crate::registry::Registry;

pub(crate) const STREAM_PATH: &str = "/raft/v1/stream";
/// The protocol version that introduced the stream.
pub(crate) const PROTO_STREAM: u16 = 4;
/// Items a peer serves at once for one stream.
const MAX_IN_FLIGHT: usize = 8192;
/// Answers per frame (a frame is written as soon as nothing more is ready).
const MAX_ANSWERS_PER_FRAME: usize = 1024;
/// Bytes of queued frames the sender joins into one write.
const MAX_WRITE: usize = 4 << 20;
/// Entries of callers that gave up are swept from the waiting map past this size.
const SWEEP_AT: usize = 4096;

/// One frame of the request body: items of any groups, each with its id on this stream.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StreamBatch {
    pub(crate) proto: u16,
    pub(crate) items: Vec<StreamItem>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StreamItem {
    pub(crate) id: u64,
    /// The caller's timeout: the peer stops serving the item after it.
    pub(crate) timeout_ms: u64,
    pub(crate) item: BatchItem,
}

/// The answer to item `id`: what its single route would have answered (body, or status and
/// text).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StreamAnswer {
    pub(crate) id: u64,
    pub(crate) result: Result<Vec<u8>, (u16, String)>,
}

type Reply = oneshot::Sender<Result<Bytes, CallError>>;

/// The callers waiting on a stream's answers; `None` once the stream ended (and every caller
/// still waiting was answered with why).
#[derive(Default)]
struct Waiting(Mutex<Option<HashMap<u64, Reply>>>);

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<u64, Reply>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self, id: u64) -> Option<Reply> {
        self.lock().as_mut().and_then(|m| m.remove(&id))
    }

    fn close(&self, why: CallError) {
        let waiting = self.lock().take();
        for (_, reply) in waiting.into_iter().flatten() {
            let _ = reply.send(Err(why.clone()));
        }
    }
}

/// An RPC to send on the stream.
pub(crate) struct Outgoing {
    pub(crate) item: BatchItem,
    pub(crate) timeout: Duration,
    pub(crate) reply: Reply,
}

/// Why a stream could not be opened.
pub(crate) enum OpenError {
    /// The peer has no stream route (an older release): nothing was sent.
    Unsupported,
    Failed(CallError),
}

/// The sending end of an open stream.
pub(crate) struct Outbound {
    frames: mpsc::UnboundedSender<Bytes>,
    waiting: Arc<Waiting>,
    next_id: u64,
}

impl Outbound {
    /// Opens a stream to `addr` and waits (up to `timeout`) for the peer's headers.
    pub(crate) async fn open(
        http: &magnum_net::InternalClient,
        addr: &str,
        timeout: Duration,
    ) -> Result<Self, OpenError> {
        let (frames, rx) = mpsc::unbounded_channel();
        // A permissive client may build the request twice (TLS, then plain); only the attempt
        // that sends its body takes the receiver.
        let rx = Arc::new(Mutex::new(Some(rx)));
        let send = http.send(addr, STREAM_PATH, |h, url| {
            h.post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body(rx.clone()))
        });
        let url = format!("{addr}{STREAM_PATH}");
        let resp = match tokio::time::timeout(timeout, send).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(OpenError::Failed(classify(&url, timeout, e))),
            Err(_) => return Err(OpenError::Failed(CallError::Timeout(timeout))),
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(OpenError::Unsupported);
        }
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(OpenError::Failed(CallError::Unreachable(format!(
                "{url}: HTTP {status}: {text}"
            ))));
        }
        let waiting = Arc::new(Waiting(Mutex::new(Some(HashMap::new()))));
        tokio::spawn(read_answers(resp, url, waiting.clone()));
        Ok(Self {
            frames,
            waiting,
            next_id: 0,
        })
    }

    /// False once the stream ended: its items were answered with the reason.
    pub(crate) fn is_open(&self) -> bool {
        self.waiting.lock().is_some() && !self.frames.is_closed()
    }

    /// Sends `items` as one frame; hands them back if the stream has ended.
    pub(crate) fn send(&mut self, items: Vec<Outgoing>) -> Result<(), Vec<Outgoing>> {
        let mut guard = self.waiting.lock();
        let Some(waiting) = guard.as_mut() else {
            return Err(items);
        };
        if waiting.len() >= SWEEP_AT {
            waiting.retain(|_, r| !r.is_closed());
        }
        let mut wire = Vec::with_capacity(items.len());
        let mut replies = Vec::with_capacity(items.len());
        for o in items {
            self.next_id += 1;
            wire.push(StreamItem {
                id: self.next_id,
                timeout_ms: u64::try_from(o.timeout.as_millis()).unwrap_or(u64::MAX),
                item: o.item,
            });
            replies.push((self.next_id, o.reply));
        }
        let batch = StreamBatch {
            proto: PROTO_STREAM,
            items: wire,
        };
        let bytes = match frame(&batch) {
            Ok(b) => b,
            Err(e) => {
                for (_, reply) in replies {
                    let _ = reply.send(Err(CallError::Network(e.to_string())));
                }
                return Ok(());
            }
        };
        if self.frames.send(bytes.into()).is_err() {
            // The body was dropped: the request is gone, and with it these items.
            drop(guard);
            self.waiting
                .close(CallError::Network("raft stream closed".into()));
            for (_, reply) in replies {
                let _ = reply.send(Err(CallError::Network("raft stream closed".into())));
            }
            return Ok(());
        }
        waiting.extend(replies);
        Ok(())
    }
}

/// The request body: every frame queued when the connection asks for more goes in one write.
fn body(rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Bytes>>>>) -> reqwest::Body {
    let frames = futures::stream::unfold((rx, None), |(shared, mut mine)| async move {
        if mine.is_none() {
            mine = shared.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
        let rx: &mut mpsc::UnboundedReceiver<Bytes> = mine.as_mut()?;
        let first = rx.recv().await?;
        let mut out = Vec::from(first);
        while out.len() < MAX_WRITE {
            match rx.try_recv() {
                Ok(more) => out.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        Some((Ok::<_, std::io::Error>(Bytes::from(out)), (shared, mine)))
    });
    reqwest::Body::wrap_stream(frames)
}

/// Hands each answer to its caller until the stream ends, then fails whoever still waits.
async fn read_answers(mut resp: reqwest::Response, url: String, waiting: Arc<Waiting>) {
    let mut buf = Vec::new();
    let why = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) => break CallError::Network(format!("{url}: the stream ended")),
            Err(e) => break classify(&url, Duration::ZERO, e),
        }
        let frames = match take_frames::<Vec<StreamAnswer>>(&mut buf, MAX_BATCH_BODY) {
            Ok(f) => f,
            Err(e) => break CallError::Unreachable(format!("{url}: {e}")),
        };
        for a in frames.into_iter().flatten() {
            if let Some(reply) = waiting.take(a.id) {
                let _ = reply.send(single_answer(&url, a.result));
            }
        }
    };
    tracing::debug!(error = ?why, "raft stream ended");
    waiting.close(why);
}

/// The peer's side: serves the stream's items as their frames come in and streams back the
/// answers.
pub(crate) fn serve(registry: Arc<Registry>, sender: Option<u64>, body: Body) -> Response {
    let (tx, rx) = mpsc::unbounded_channel::<StreamAnswer>();
    tokio::spawn(serve_items(registry, sender, body, tx));
    let answers = futures::stream::unfold(rx, |mut rx| async move {
        let first = rx.recv().await?;
        let mut ready = vec![first];
        while ready.len() < MAX_ANSWERS_PER_FRAME {
            match rx.try_recv() {
                Ok(a) => ready.push(a),
                Err(_) => break,
            }
        }
        let bytes = frame(&ready)
            .map(Bytes::from)
            .map_err(std::io::Error::other);
        Some((bytes, rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(answers),
    )
        .into_response()
}

/// Reads frames while fewer than `MAX_IN_FLIGHT` items are being served, and sends each answer
/// as it is ready. Ends when the body ended and every item was answered, when the answers'
/// reader went away, or when the node shuts down.
async fn serve_items(
    registry: Arc<Registry>,
    sender: Option<u64>,
    body: Body,
    tx: mpsc::UnboundedSender<StreamAnswer>,
) {
    let mut body = body.into_data_stream();
    let mut buf = Vec::new();
    let mut serving = FuturesUnordered::new();
    let mut reading = true;
    let closed = registry.closed.clone();
    loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            chunk = body.next(), if reading && serving.len() < MAX_IN_FLIGHT => {
                let Some(Ok(chunk)) = chunk else {
                    reading = false;
                    continue;
                };
                buf.extend_from_slice(&chunk);
                let batches = match take_frames::<StreamBatch>(&mut buf, MAX_BATCH_BODY) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "bad raft stream frame; ending the stream");
                        return;
                    }
                };
                for b in batches {
                    let proto = b.proto;
                    for it in b.items {
                        serving.push(serve_item(registry.clone(), sender, proto, it));
                    }
                }
            }
            Some(answer) = serving.next(), if !serving.is_empty() => {
                if tx.send(answer).is_err() {
                    return;
                }
            }
            else => return,
        }
    }
}

pub(super) async fn serve_item(
    registry: Arc<Registry>,
    sender: Option<u64>,
    proto: u16,
    it: StreamItem,
) -> StreamAnswer {
    let result = if !(PROTO_STREAM..=PROTO_CURRENT).contains(&proto) {
        Err((
            StatusCode::BAD_REQUEST,
            format!("unsupported raft stream protocol {proto} (accept {PROTO_STREAM}..={PROTO_CURRENT})"),
        ))
    } else {
        match RpcKind::from_path(&it.item.rpc) {
            Some(kind @ (RpcKind::Append | RpcKind::Vote | RpcKind::PreVote)) => {
                let timeout = Duration::from_millis(it.timeout_ms);
                let call = super::server::serve(&registry, kind, sender, it.item.env);
                match tokio::time::timeout(timeout, call).await {
                    Ok(r) => r,
                    Err(_) => Err((
                        StatusCode::GATEWAY_TIMEOUT,
                        format!("not answered within the caller's {timeout:?}"),
                    )),
                }
            }
            _ => Err((
                StatusCode::NOT_FOUND,
                format!("unknown raft rpc {:?} in a stream", it.item.rpc),
            )),
        }
    };
    StreamAnswer {
        id: it.id,
        result: result.map_err(|(s, m)| (s.as_u16(), m)),
    }
}
