//! axum routes that feed incoming Raft RPCs to the right group.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::future::BoxFuture;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::raft::{
    AppendEntriesRequest, TransferLeaderRequest, TransferLeaderResponse, VoteRequest,
};

use super::snapshot::Receiver;
use super::{Envelope, RpcKind, MAX_BODY_BYTES, PROTO_CURRENT, PROTO_MIN};
use crate::codec::{self, CodecError};
use crate::group::ORaft;
use crate::logic::StateMachineLogic;
use crate::registry::{GroupHandle, Registry};
use crate::types::{GroupId, ORaftError, TypeConfig};

pub(crate) fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/raft/v1/{gid}/{rpc}", post(handle))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(registry)
}

fn reject(status: StatusCode, msg: String) -> Response {
    tracing::debug!(%status, %msg, "raft rpc rejected");
    (status, msg).into_response()
}

async fn handle(
    State(registry): State<Arc<Registry>>,
    Path((gid, rpc)): Path<(GroupId, String)>,
    body: Bytes,
) -> Response {
    let Some(kind) = RpcKind::from_path(&rpc) else {
        return reject(StatusCode::NOT_FOUND, format!("unknown raft rpc {rpc:?}"));
    };
    let env: Envelope = match codec::decode(&body) {
        Ok(env) => env,
        Err(e) => return reject(StatusCode::BAD_REQUEST, format!("bad envelope: {e}")),
    };
    if !(PROTO_MIN..=PROTO_CURRENT).contains(&env.proto) {
        return reject(
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported raft protocol {} (accept {PROTO_MIN}..={PROTO_CURRENT})",
                env.proto
            ),
        );
    }
    if env.group != gid {
        return reject(
            StatusCode::BAD_REQUEST,
            format!("envelope group {} != path group {gid}", env.group),
        );
    }
    // Unknown and not-yet-opened groups look the same from here; the client backs off.
    let Some(group) = registry.get(gid) else {
        return reject(
            StatusCode::NOT_FOUND,
            format!("group {gid} is not open on this node"),
        );
    };
    match group.call(kind, env.payload).await {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Err(e) => reject(StatusCode::BAD_REQUEST, e),
    }
}

/// The registry's view of one group's openraft instance.
pub(crate) struct RaftEndpoint<L: StateMachineLogic> {
    pub(crate) raft: ORaft<L>,
    pub(crate) snapshots: Arc<Receiver>,
}

impl<L: StateMachineLogic> GroupHandle for RaftEndpoint<L> {
    fn call(&self, kind: RpcKind, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let (raft, snapshots) = (self.raft.clone(), self.snapshots.clone());
        Box::pin(async move { dispatch(raft, &snapshots, kind, payload).await })
    }

    fn raft_metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let raft = self.raft.clone();
        Box::pin(async move {
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(error = %e, "raft core task ended abnormally");
            }
        })
    }
}

fn codec_err(e: CodecError) -> String {
    e.to_string()
}

async fn dispatch<L: StateMachineLogic>(
    raft: ORaft<L>,
    snapshots: &Receiver,
    kind: RpcKind,
    payload: Vec<u8>,
) -> Result<Vec<u8>, String> {
    match kind {
        RpcKind::Append => {
            let req: AppendEntriesRequest<TypeConfig> =
                codec::decode(&payload).map_err(codec_err)?;
            codec::encode(&raft.append_entries(req).await).map_err(codec_err)
        }
        RpcKind::Vote => {
            let req: VoteRequest<TypeConfig> = codec::decode(&payload).map_err(codec_err)?;
            codec::encode(&raft.vote(req).await).map_err(codec_err)
        }
        RpcKind::PreVote => {
            let req: VoteRequest<TypeConfig> = codec::decode(&payload).map_err(codec_err)?;
            codec::encode(&raft.pre_vote(req).await).map_err(codec_err)
        }
        RpcKind::Snapshot => snapshots.v1(&raft, &payload).await,
        RpcKind::SnapshotChunk => snapshots.chunk(&raft, &payload).await,
        RpcKind::TransferLeader => {
            let req: TransferLeaderRequest<TypeConfig> =
                codec::decode(&payload).map_err(codec_err)?;
            let res: Result<TransferLeaderResponse<TypeConfig>, ORaftError> = raft
                .handle_transfer_leader(req)
                .await
                .map_err(ORaftError::Fatal);
            codec::encode(&res).map_err(codec_err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every RPC with its payload.
    struct Echo;

    impl GroupHandle for Echo {
        fn call(
            &self,
            _kind: RpcKind,
            payload: Vec<u8>,
        ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
            Box::pin(async move { Ok(payload) })
        }

        fn shutdown(&self) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }

        fn raft_metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
            unreachable!("not used by these tests")
        }
    }

    #[tokio::test]
    async fn envelope_version_group_and_routing_are_checked() {
        let registry = Arc::new(Registry::default());
        assert!(registry.reserve(3));
        registry.publish(3, Arc::new(Echo));
        assert!(registry.reserve(5)); // still opening
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router(registry)).await;
        });
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
        server.abort();
    }
}
