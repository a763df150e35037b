//! Batched transport (protocol v3): the appends, votes and pre-votes of every group bound for
//! one peer travel together, one `POST /raft/v1/batch` per batch instead of one request per
//! group and RPC. The HTTP request, TLS record and handler dispatch are paid once per batch.
//!
//! Forming a batch: one task per peer takes the first queued RPC, waits for a free sending slot
//! (`IN_FLIGHT`: while the slots are busy, RPCs queue up and the next batch grows), yields once
//! so that groups ready in the same scheduler pass can add theirs, then takes what is queued, up
//! to `MAX_ITEMS` and `MAX_BATCH_BYTES`. An idle peer pair sends each RPC at once: batching
//! adds no latency when there is nothing to coalesce.
//!
//! Answering: the peer serves the items concurrently and streams each answer as a frame as soon
//! as it is ready, so one slow group (a stalled replica, a long apply) delays no other group's
//! answer, and each caller keeps its own RPC timeout. A slot is released once the answer has
//! started (the request is delivered), not when its slowest item is answered.
//!
//! Versions: a peer of an older release answers 404 to the batch route; its RPCs then go one
//! by one (the v1/v2 routes, each item's own envelope) for `SINGLE_FOR`, and batching is tried
//! again after that. Snapshots never batch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::client::{post_one, refused, CallError};
use super::stream::{OpenError, Outbound, Outgoing};
use super::{take_frames, Envelope, RpcKind};
use crate::codec;
use crate::metrics::Metrics;
use crate::types::NodeId;

pub(crate) const BATCH_PATH: &str = "/raft/v1/batch";
/// The protocol version that introduced batches.
pub(crate) const PROTO_BATCH: u16 = 3;
/// RPCs per batch.
const MAX_ITEMS: usize = 256;
/// A batch stops growing past this many payload bytes; an RPC larger than it goes alone.
pub(crate) const MAX_BATCH_BYTES: usize = 4 << 20;
/// The largest batch body a node accepts: `MAX_BATCH_BYTES` plus the last item added (each
/// under `MAX_BATCH_BYTES`) and the items' envelopes.
pub(crate) const MAX_BATCH_BODY: usize = 2 * MAX_BATCH_BYTES + (1 << 20);
/// Batches being delivered to one peer at a time.
const IN_FLIGHT: usize = 2;
/// How long a peer that does not know batches gets single RPCs before it is asked again.
const SINGLE_FOR: Duration = Duration::from_secs(30);

/// One RPC of a batch: the v1/v2 route's name and the envelope that route would carry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BatchItem {
    pub(crate) rpc: String,
    pub(crate) env: Envelope,
}

/// The body of `POST /raft/v1/batch`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) proto: u16,
    pub(crate) items: Vec<BatchItem>,
}

/// One frame of the streamed answer: `u32` little-endian length, then this in bincode. `Err`
/// carries what the single route would have answered (status, text).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Answer {
    pub(crate) index: u32,
    pub(crate) result: Result<Vec<u8>, (u16, String)>,
}

/// An RPC waiting for its batch.
struct Item {
    wire: BatchItem,
    timeout: Duration,
    reply: oneshot::Sender<Result<Bytes, CallError>>,
}

/// The batchers of one node, one per peer address, shared by all its groups.
pub(crate) struct Batchers {
    http: magnum_net::InternalClient,
    metrics: Arc<Metrics>,
    /// Batches go on one stream per peer (`stream.rs`) where the peer has it.
    stream: bool,
    peers: Mutex<HashMap<String, Arc<PeerBatcher>>>,
}

impl Batchers {
    pub(crate) fn new(
        http: magnum_net::InternalClient,
        metrics: Arc<Metrics>,
        stream: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            http,
            metrics,
            stream,
            peers: Mutex::default(),
        })
    }

    /// The batcher of `addr`, started on first use (on the calling runtime: the Raft one).
    pub(crate) fn peer(&self, target: NodeId, addr: &str) -> Arc<PeerBatcher> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = peers.get(addr) {
            return b.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let b = Arc::new(PeerBatcher {
            target,
            addr: addr.to_string(),
            http: self.http.clone(),
            metrics: self.metrics.clone(),
            tx,
            single_until: Mutex::new(None),
            stream: self.stream,
            no_stream_until: Mutex::new(None),
        });
        tokio::spawn(b.clone().run(rx));
        peers.insert(addr.to_string(), b.clone());
        b
    }
}

pub(crate) struct PeerBatcher {
    target: NodeId,
    addr: String,
    http: magnum_net::InternalClient,
    metrics: Arc<Metrics>,
    tx: mpsc::UnboundedSender<Item>,
    /// Until when the peer gets single RPCs (it answered 404 to a batch: an older release).
    single_until: Mutex<Option<Instant>>,
    stream: bool,
    /// Until when batches go as requests (the peer answered 404 to a stream).
    no_stream_until: Mutex<Option<Instant>>,
}

/// False until `until` (set when a peer refused a route) has passed.
fn lapsed(until: &Mutex<Option<Instant>>) -> bool {
    let until = until.lock().unwrap_or_else(PoisonError::into_inner);
    until.is_none_or(|t| t <= Instant::now())
}

impl PeerBatcher {
    /// False while the peer is known not to take batches.
    pub(crate) fn batches(&self) -> bool {
        lapsed(&self.single_until)
    }

    /// Whether the next batch goes on the stream.
    pub(crate) fn streams(&self) -> bool {
        self.stream && lapsed(&self.no_stream_until)
    }

    /// Sends `env` (an RPC of kind `kind`) in the next batch; its answer body, as the single
    /// route would have answered it.
    pub(crate) async fn call(
        &self,
        kind: RpcKind,
        env: Envelope,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let (reply, rx) = oneshot::channel();
        let item = Item {
            wire: BatchItem {
                rpc: kind.path().to_string(),
                env,
            },
            timeout,
            reply,
        };
        if self.tx.send(item).is_err() {
            return Err(CallError::Network(format!(
                "{}: batcher stopped",
                self.addr
            )));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err(CallError::Network(format!("{}: batch dropped", self.addr))),
            Err(_) => Err(CallError::Timeout(timeout)),
        }
    }

    async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Item>) {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut carry: Option<Item> = None;
        let mut stream: Option<Outbound> = None;
        loop {
            let first = match carry.take() {
                Some(i) => i,
                None => match rx.recv().await {
                    Some(i) => i,
                    None => return,
                },
            };
            // A stream takes a batch at once; requests wait for a sending slot.
            let slot = match self.streams() {
                true => None,
                false => match slots.clone().acquire_owned().await {
                    Ok(slot) => Some(slot),
                    Err(_) => return,
                },
            };
            tokio::task::yield_now().await;
            let mut bytes = first.wire.env.payload.len();
            let mut items = vec![first];
            while items.len() < MAX_ITEMS && bytes < MAX_BATCH_BYTES {
                let Ok(next) = rx.try_recv() else { break };
                let len = next.wire.env.payload.len();
                if bytes + len > MAX_BATCH_BYTES {
                    carry = Some(next);
                    break;
                }
                bytes += len;
                items.push(next);
            }
            // Callers that timed out meanwhile need no answer.
            items.retain(|i| !i.reply.is_closed());
            if items.is_empty() {
                continue;
            }
            let (items, slot) = match slot {
                Some(slot) => (items, slot),
                None => match self.on_stream(&mut stream, items).await {
                    None => continue,
                    Some(items) => match slots.clone().acquire_owned().await {
                        Ok(slot) => (items, slot),
                        Err(_) => return,
                    },
                },
            };
            let this = self.clone();
            tokio::spawn(async move { this.send(items, slot).await });
        }
    }

    /// Sends `items` on the peer's stream, opened first if there is none; hands them back if
    /// the peer has no stream route (an older release), for a batch request.
    async fn on_stream(
        &self,
        stream: &mut Option<Outbound>,
        items: Vec<Item>,
    ) -> Option<Vec<Item>> {
        if !stream.as_ref().is_some_and(Outbound::is_open) {
            *stream = None;
            let timeout = items.iter().map(|i| i.timeout).max().unwrap_or_default();
            match Outbound::open(&self.http, &self.addr, timeout).await {
                Ok(s) => *stream = Some(s),
                Err(OpenError::Unsupported) => {
                    tracing::info!(
                        peer = self.target,
                        "peer has no Raft stream; batch requests"
                    );
                    *self
                        .no_stream_until
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) =
                        Some(Instant::now() + SINGLE_FOR);
                    return Some(items);
                }
                Err(OpenError::Failed(e)) => {
                    for i in items {
                        let _ = i.reply.send(Err(e.clone()));
                    }
                    return None;
                }
            }
        }
        let s = stream.as_mut()?;
        self.metrics.batch_sent(self.target, items.len());
        let out = items
            .into_iter()
            .map(|i| Outgoing {
                item: i.wire,
                timeout: i.timeout,
                reply: i.reply,
            })
            .collect();
        // Ended since `is_open`: these were not sent; openraft retries them.
        if let Err(back) = s.send(out) {
            for o in back {
                let _ = o.reply.send(Err(CallError::Network(format!(
                    "{}: raft stream ended",
                    self.addr
                ))));
            }
        }
        None
    }

    async fn send(&self, items: Vec<Item>, slot: tokio::sync::OwnedSemaphorePermit) {
        if !self.batches() {
            drop(slot);
            return self.one_by_one(items).await;
        }
        let timeout = items.iter().map(|i| i.timeout).max().unwrap_or_default();
        let (wire, mut waiting): (Vec<BatchItem>, Vec<_>) = items
            .into_iter()
            .map(|i| (i.wire, Some((i.reply, i.timeout))))
            .unzip();
        self.metrics.batch_sent(self.target, wire.len());
        let batch = Batch {
            proto: PROTO_BATCH,
            items: wire,
        };
        let body: Bytes = match codec::encode(&batch) {
            Ok(b) => b.into(),
            Err(e) => return answer_all(&mut waiting, CallError::Network(e.to_string())),
        };
        let resp = self
            .http
            .send(&self.addr, BATCH_PATH, |h, url| {
                h.post(url)
                    .timeout(timeout)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone())
            })
            .await;
        drop(slot);
        let url = format!("{}{BATCH_PATH}", self.addr);
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => return answer_all(&mut waiting, classify(&url, timeout, e)),
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            // An older release: no batch route. Nothing was served; send them one by one.
            tracing::info!(
                peer = self.target,
                "peer takes no Raft batches; single RPCs"
            );
            *self
                .single_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + SINGLE_FOR);
            let items = batch
                .items
                .into_iter()
                .zip(waiting)
                .filter_map(|(wire, w)| {
                    w.map(|(reply, timeout)| Item {
                        wire,
                        timeout,
                        reply,
                    })
                })
                .collect();
            return self.one_by_one(items).await;
        }
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let e = CallError::Unreachable(format!("{url}: HTTP {status}: {text}"));
            return answer_all(&mut waiting, e);
        }
        let mut buf = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return answer_all(&mut waiting, classify(&url, timeout, e)),
            }
            let answers = match take_frames::<Answer>(&mut buf, MAX_BATCH_BODY) {
                Ok(a) => a,
                Err(e) => return answer_all(&mut waiting, CallError::Unreachable(e)),
            };
            for a in answers {
                let slot = usize::try_from(a.index)
                    .ok()
                    .and_then(|i| waiting.get_mut(i));
                if let Some((reply, _)) = slot.and_then(Option::take) {
                    let _ = reply.send(single_answer(&url, a.result));
                }
            }
        }
        answer_all(
            &mut waiting,
            CallError::Network(format!("{url}: the batch's answer ended early")),
        );
    }

    /// Each item on its own route, concurrently (a peer without batches).
    async fn one_by_one(&self, items: Vec<Item>) {
        let calls = items.into_iter().map(|i| async move {
            let Some(kind) = RpcKind::from_path(&i.wire.rpc) else {
                return;
            };
            let body = match codec::encode(&i.wire.env) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    let _ = i.reply.send(Err(CallError::Network(e.to_string())));
                    return;
                }
            };
            let res = post_one(
                &self.http,
                &self.addr,
                i.wire.env.group,
                kind,
                body,
                i.timeout,
            );
            let _ = i.reply.send(res.await);
        });
        futures::future::join_all(calls).await;
    }
}

/// An item's answer as the single route would have given it.
pub(crate) fn single_answer(
    url: &str,
    result: Result<Vec<u8>, (u16, String)>,
) -> Result<Bytes, CallError> {
    result
        .map(Bytes::from)
        .map_err(|(status, text)| refused(url, status, text))
}

/// A caller waiting for its answer, and its timeout; `None` once answered.
type Waiting = Option<(oneshot::Sender<Result<Bytes, CallError>>, Duration)>;

fn answer_all(waiting: &mut [Waiting], e: CallError) {
    for (reply, _) in waiting.iter_mut().filter_map(Option::take) {
        let _ = reply.send(Err(e.clone()));
    }
}

pub(crate) fn classify(url: &str, timeout: Duration, e: reqwest::Error) -> CallError {
    if e.is_timeout() {
        CallError::Timeout(timeout)
    } else if e.is_connect() {
        CallError::Unreachable(format!("{url}: {e}"))
    } else {
        CallError::Network(format!("{url}: {e}"))
    }
}
