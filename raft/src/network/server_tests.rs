//! The Raft routes: envelopes and routing, batches, streams, and peers of older releases.

use super::super::batch::{Answer, Batchers};
use super::super::client::CallError;
use super::super::take_frames;
use super::*;

/// Answers every RPC with its payload; a payload starting with `SLOW` after 2 s.
struct Echo;

const SLOW: u8 = 0xee;

/// A registry with an [`Echo`] open as each of `gids`.
fn echoes(gids: impl IntoIterator<Item = GroupId>) -> Arc<Registry> {
    let registry = Arc::new(Registry::default());
    for g in gids {
        assert!(registry.reserve(g));
        registry.publish(g, Arc::new(Echo));
    }
    registry
}

impl GroupHandle for Echo {
    fn call(
        &self,
        _kind: RpcKind,
        _sender: Option<u64>,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        Box::pin(async move {
            if payload.first() == Some(&SLOW) {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Ok(payload)
        })
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    fn raft_metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
        unreachable!("not used by these tests")
    }

    fn pulse(&self) -> &Pulse {
        unreachable!("not used by these tests")
    }

    fn campaign(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    fn set_ticking(&self, _on: bool) {}
}

#[tokio::test]
async fn envelope_version_group_and_routing_are_checked() {
    let registry = echoes([3]);
    assert!(registry.reserve(5)); // still opening
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let server = magnum_net::serve(
        listener,
        router(registry),
        Router::new(),
        magnum_net::Tls::plain(),
        magnum_net::Limits::default(),
        cancel.clone(),
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, body: Vec<u8>| {
        let req = http.post(format!("http://{addr}{path}")).body(body);
        async move { req.send().await.unwrap() }
    };
    let env = |proto: u16, group: GroupId| {
        codec::encode(&Envelope {
            proto,
            group,
            payload: vec![1, 2, 3],
        })
        .unwrap()
    };

    // The current version and the one before it (rolling upgrades) are both served.
    for proto in [PROTO_CURRENT, PROTO_CURRENT - 1] {
        let ok = post("/raft/v1/3/vote", env(proto, 3)).await;
        assert_eq!(ok.status(), StatusCode::OK, "protocol {proto}");
        assert_eq!(ok.bytes().await.unwrap().as_ref(), &[1, 2, 3]);
    }
    const { assert!(PROTO_MIN < PROTO_CURRENT) };

    let cases = [
        (
            "/raft/v1/3/vote",
            vec![0xff, 0xff, 0xff],
            StatusCode::BAD_REQUEST,
        ),
        (
            "/raft/v1/3/vote",
            env(PROTO_MIN - 1, 3),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/raft/v1/3/vote",
            env(PROTO_CURRENT + 1, 3),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/raft/v1/3/vote",
            env(PROTO_CURRENT, 4),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/raft/v1/4/vote",
            env(PROTO_CURRENT, 4),
            StatusCode::NOT_FOUND,
        ),
        (
            "/raft/v1/5/append",
            env(PROTO_CURRENT, 5),
            StatusCode::NOT_FOUND,
        ),
        (
            "/raft/v1/3/nope",
            env(PROTO_CURRENT, 3),
            StatusCode::NOT_FOUND,
        ),
        (
            "/raft/v1/x/vote",
            env(PROTO_CURRENT, 3),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (path, body, want) in cases {
        assert_eq!(post(path, body).await.status(), want, "{path}");
    }
    // Bodies are bounded per kind: a vote of 1 MiB is refused before it is decoded (413,
    // or the client's write cut off when the server closes without reading the rest).
    let big = http
        .post(format!("http://{addr}/raft/v1/3/vote"))
        .body(vec![0u8; 1 << 20])
        .send()
        .await;
    assert!(
        matches!(&big, Ok(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE) || big.is_err(),
        "{big:?}"
    );
    cancel.cancel();
    let _ = server.task.await;
}

/// A listener serving `router` on a free port; its address and stop handle.
async fn listen(router: Router) -> (String, tokio_util::sync::CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cancel = tokio_util::sync::CancellationToken::new();
    magnum_net::serve(
        listener,
        router,
        Router::new(),
        magnum_net::Tls::plain(),
        magnum_net::Limits::default(),
        cancel.clone(),
    );
    (addr, cancel)
}

fn env(group: GroupId, payload: Vec<u8>) -> Envelope {
    Envelope {
        proto: 1,
        group,
        payload,
    }
}

fn batchers(stream: bool) -> (Arc<Batchers>, Arc<crate::metrics::Metrics>) {
    let http = super::super::client::http_client(&magnum_net::Tls::plain()).unwrap();
    let metrics = Arc::new(crate::metrics::Metrics::new().unwrap());
    (Batchers::new(http, metrics.clone(), stream), metrics)
}

#[tokio::test]
async fn batches_coalesce_groups_and_answer_each_as_it_is_ready() {
    coalesce_and_answer_each(false).await;
}

#[tokio::test]
async fn a_stream_coalesces_groups_and_answers_each_as_it_is_ready() {
    coalesce_and_answer_each(true).await;
}

/// Many groups' RPCs to one peer go in few batches (requests, or frames of a stream), each
/// caller gets its own answer, a slow group delays no other, and what a single route refuses
/// is refused alike.
async fn coalesce_and_answer_each(stream: bool) {
    let registry = echoes(1..=64);
    let (addr, cancel) = listen(router(registry)).await;
    let (b, metrics) = batchers(stream);
    let peer = b.peer(2, &addr);
    let t = Duration::from_secs(5);

    let slow = peer.call(RpcKind::Append, env(7, vec![SLOW, 7]), t);
    let calls = (1..=64u64).map(|g| {
        let peer = peer.clone();
        async move {
            let started = std::time::Instant::now();
            let kind = [RpcKind::Append, RpcKind::Vote, RpcKind::PreVote][g as usize % 3];
            let got = peer.call(kind, env(g, vec![g as u8; 3]), t).await;
            (g, got.ok(), started.elapsed())
        }
    });
    let (slow, fast) = tokio::join!(slow, futures::future::join_all(calls));
    for (g, got, took) in fast {
        assert_eq!(got.as_deref(), Some(&[g as u8; 3][..]), "group {g}");
        assert!(took < Duration::from_secs(1), "group {g} waited {took:?}");
    }
    assert_eq!(slow.unwrap().as_ref(), &[SLOW, 7]);
    let text = metrics.render(&[]).unwrap();
    let count = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(count("magnum_raft_batched_rpcs_total"), 65.0, "{text}");
    let batches = count("magnum_raft_batches_total");
    assert!(batches < 65.0 / 4.0, "65 RPCs in {batches} batches");

    // Refused items: a group not open here, an RPC a batch cannot carry, a bad version.
    let not_open = peer.call(RpcKind::Vote, env(99, vec![1]), t).await;
    assert!(
        matches!(&not_open, Err(CallError::Unreachable(m)) if m.contains("404") && m.contains("not open")),
        "{not_open:?}"
    );
    let snapshot = peer.call(RpcKind::SnapshotChunk, env(1, vec![1]), t).await;
    assert!(
        matches!(snapshot, Err(CallError::Unsupported(_))),
        "{snapshot:?}"
    );
    let mut future = env(1, vec![1]);
    future.proto = PROTO_CURRENT + 1;
    let refused = peer.call(RpcKind::Vote, future, t).await;
    assert!(
        matches!(&refused, Err(CallError::Unreachable(m)) if m.contains("400")),
        "{refused:?}"
    );
    assert!(peer.batches());
    assert_eq!(peer.streams(), stream);
    cancel.cancel();
}

/// A peer of an older release has no batch route: its RPCs go one by one, nothing lost.
#[tokio::test]
async fn a_peer_without_batches_gets_single_rpcs() {
    let registry = echoes([3]);
    let old = Router::new()
        .route("/raft/v1/{gid}/{rpc}", post(handle))
        .with_state(registry);
    let (addr, cancel) = listen(old).await;
    let (b, _) = batchers(true);
    let peer = b.peer(2, &addr);
    let t = Duration::from_secs(5);
    let got = peer.call(RpcKind::Vote, env(3, vec![4, 5]), t).await;
    assert_eq!(got.unwrap().as_ref(), &[4, 5]);
    assert!(!peer.streams(), "the peer is sent no stream for a while");
    assert!(!peer.batches(), "the peer is sent single RPCs for a while");
    let got = peer.call(RpcKind::Append, env(3, vec![6]), t).await;
    assert_eq!(got.unwrap().as_ref(), &[6]);
    cancel.cancel();
}

/// A peer of release v3 has batches but no stream: batches go as requests, nothing lost.
#[tokio::test]
async fn a_peer_without_streams_gets_batch_requests() {
    let registry = echoes([3]);
    let v3 = Router::new()
        .route(BATCH_PATH, post(batch))
        .route("/raft/v1/{gid}/{rpc}", post(handle))
        .with_state(registry);
    let (addr, cancel) = listen(v3).await;
    let (b, metrics) = batchers(true);
    let peer = b.peer(2, &addr);
    let t = Duration::from_secs(5);
    for i in 0..3u8 {
        let got = peer.call(RpcKind::Append, env(3, vec![i]), t).await;
        assert_eq!(got.unwrap().as_ref(), &[i]);
        assert!(!peer.streams() && peer.batches());
    }
    let text = metrics.render(&[]).unwrap();
    assert!(
        text.contains("magnum_raft_batches_total{peer=\"2\"} 3"),
        "{text}"
    );
    cancel.cancel();
}

/// A stream that breaks (the peer went away) fails the calls waiting on it at once, not at
/// their timeouts; the next call opens a new stream.
#[tokio::test]
async fn a_broken_stream_fails_its_calls_and_the_next_call_reopens() {
    let serve_on = |addr: Option<String>| async move {
        let registry = echoes([3]);
        let listener = tokio::net::TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:0"))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cancel = tokio_util::sync::CancellationToken::new();
        let server = magnum_net::serve(
            listener,
            router(registry.clone()),
            Router::new(),
            magnum_net::Tls::plain(),
            magnum_net::Limits::default(),
            cancel.clone(),
        );
        (addr, registry, cancel, server)
    };
    let (addr, registry, cancel, server) = serve_on(None).await;
    let (b, _) = batchers(true);
    let peer = b.peer(2, &addr);
    let t = Duration::from_secs(10);
    assert_eq!(
        peer.call(RpcKind::Vote, env(3, vec![1]), t)
            .await
            .unwrap()
            .as_ref(),
        &[1]
    );
    let started = std::time::Instant::now();
    let waiting = tokio::spawn({
        let peer = peer.clone();
        async move { peer.call(RpcKind::Append, env(3, vec![SLOW]), t).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The node shuts down: its groups drain, its streams end, its listener closes.
    let _ = registry.drain();
    cancel.cancel();
    let _ = server.task.await;
    let failed = waiting.await.unwrap();
    assert!(matches!(failed, Err(CallError::Network(_))), "{failed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let (_, _, cancel, _) = serve_on(Some(addr)).await;
    let got = peer.call(RpcKind::Vote, env(3, vec![2]), t).await;
    assert_eq!(got.unwrap().as_ref(), &[2]);
    assert!(peer.streams());
    cancel.cancel();
}

/// On a stream the peer serves an item no longer than its caller waits, and only items of
/// its protocol's kinds and versions.
#[tokio::test]
async fn a_stream_item_is_served_within_its_timeout_and_version() {
    use super::super::batch::BatchItem;
    use super::super::stream::{serve_item, StreamItem, PROTO_STREAM};
    let registry = echoes([3]);
    let item = |rpc: &str, payload: Vec<u8>, timeout_ms: u64| StreamItem {
        id: 9,
        timeout_ms,
        item: BatchItem {
            rpc: rpc.into(),
            env: env(3, payload),
        },
    };
    let started = std::time::Instant::now();
    let a = serve_item(
        registry.clone(),
        None,
        PROTO_STREAM,
        item("append", vec![SLOW], 100),
    )
    .await;
    assert_eq!(a.id, 9);
    assert!(matches!(&a.result, Err((504, _))), "{a:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let a = serve_item(
        registry.clone(),
        None,
        PROTO_STREAM,
        item("vote", vec![5], 100),
    )
    .await;
    assert_eq!(a.result, Ok(vec![5]));
    let a = serve_item(
        registry.clone(),
        None,
        PROTO_STREAM - 1,
        item("vote", vec![5], 100),
    )
    .await;
    assert!(
        matches!(&a.result, Err((400, m)) if m.contains("stream protocol")),
        "{a:?}"
    );
    let a = serve_item(
        registry,
        None,
        PROTO_STREAM,
        item("snapshot-chunk", vec![5], 100),
    )
    .await;
    assert!(
        matches!(&a.result, Err((404, m)) if m.starts_with("unknown raft rpc")),
        "{a:?}"
    );
}

#[test]
fn frames_are_taken_whole() {
    let a = Answer {
        index: 3,
        result: Ok(vec![1, 2, 3]),
    };
    let b = Answer {
        index: 4,
        result: Err((404, "not open".into())),
    };
    let mut buf = [frame(&a).unwrap(), frame(&b).unwrap()].concat();
    let mut tail = buf.split_off(buf.len() - 2);
    let got = take_frames::<Answer>(&mut buf, 1 << 20).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].index, 3);
    buf.append(&mut tail);
    let got = take_frames::<Answer>(&mut buf, 1 << 20).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].result, Err((404, "not open".to_string())));
    assert!(buf.is_empty());
    let mut junk = vec![3, 0, 0, 0, 0xff, 0xff, 0xff];
    assert!(take_frames::<Answer>(&mut junk, 1 << 20).is_err());
    // A length over the bound is refused before its bytes arrive.
    let mut huge = vec![0, 0, 0, 2];
    assert!(take_frames::<Answer>(&mut huge, 1 << 20).is_err());
}

#[test]
fn a_request_must_come_from_the_node_it_names() {
    let vote = Vote::new_committed(7, 1);
    assert!(check_sender(Some(1), &vote).is_ok());
    assert!(
        check_sender(None, &vote).is_ok(),
        "plain peers: the mode trusts them"
    );
    let err = check_sender(Some(2), &vote).unwrap_err();
    assert!(
        err.contains("conductor 2") && err.contains("node 1"),
        "{err}"
    );
}
