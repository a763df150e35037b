//! `GET /internal/v1/groups/{g}/export`: one group's state machine at one applied index, from
//! its leader, streamed in the backup file format (`magnum_raft::backup`). `magnum manage
//! backup` (`crate::backup`) asks every group's leader in turn.
use super::{ServiceState, SvcError};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use magnum_proto::wire;
use magnum_raft::{Group, StateMachineLogic};
use std::sync::Arc;

/// Where exports are written before they are streamed (inside the data dir: the root
/// filesystem of a container may be read-only). Emptied at start.
pub(crate) const EXPORT_DIR: &str = "exports";

pub(super) async fn export(
    State(s): State<Arc<ServiceState>>,
    Path(group): Path<u64>,
) -> Result<Response, SvcError> {
    let dir = s.data_dir.join(EXPORT_DIR);
    if group == wire::META_GROUP {
        return export_of(s.meta(), &dir).await;
    }
    let g = u32::try_from(group.saturating_sub(1))
        .ok()
        .and_then(|shard| s.hosting.shard(shard))
        .ok_or_else(|| SvcError::NotFound(format!("group {group} is not hosted here")))?;
    export_of(&g, &dir).await
}

async fn export_of<L: StateMachineLogic>(
    g: &Group<L>,
    dir: &std::path::Path,
) -> Result<Response, SvcError> {
    // A read-index round: only the leader answers, and only once every write acknowledged
    // before this request is applied, so the backup holds all of them.
    g.read(|_| ()).await?;
    let io = |e: std::io::Error| SvcError::Unavailable(format!("export: {e}"));
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join(format!("g{}-{}.pairs", g.id(), uuid::Uuid::new_v4()));
    let written = match g.export(&path).await {
        Ok(e) => tokio::fs::File::open(&path)
            .await
            .map(|f| (e, f))
            .map_err(io),
        Err(e) => Err(SvcError::Unavailable(format!("export: {e}"))),
    };
    // The open handle keeps the bytes; nothing is left behind whatever the client does.
    let _ = std::fs::remove_file(&path);
    let (exported, file) = written?;
    tracing::info!(
        group = g.id(),
        applied = exported.applied_index,
        pairs = exported.pairs,
        bytes = exported.bytes,
        "exported for a backup"
    );
    Ok((
        [
            (
                header::HeaderName::from_static(wire::EXPORT_APPLIED_HEADER),
                exported.applied_index.to_string(),
            ),
            (
                header::HeaderName::from_static(wire::EXPORT_PAIRS_HEADER),
                exported.pairs.to_string(),
            ),
            (header::CONTENT_LENGTH, exported.bytes.to_string()),
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}
