//! A graceful stop drains the node in the meta group before it hands its leaderships off, so
//! the placement controller (on whichever node leads meta) stops giving it leadership: without
//! that, the controller saw a stopping node below its share and handed leaderships back to it,
//! and those groups then waited for an election once it exited. The drain is the node's own,
//! remembered by a marker file in its data dir, and it clears the drain itself when it starts
//! again; a drain the operator asked for (`magnum manage conductor drain`) stays.
use crate::membership::meta::MetaState;
use magnum_proto::{ClientError, ConductorClient, MetaRequest, NodeId, NodeState};
use magnum_raft::Group;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long the stop waits for the meta leader to read and record the drain.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// How often a restarted node asks to be active again until the meta leader records it.
const UNDRAIN_RETRY: Duration = Duration::from_secs(1);

fn marker(data_dir: &Path) -> PathBuf {
    data_dir.join("drained-by-stop")
}

/// First step of a graceful stop: an active node writes its marker, then asks the meta leader
/// to mark it draining. Best effort within [`DRAIN_DEADLINE`]: the hand-off follows anyway.
pub async fn drain(meta: &Group<MetaState>, client: &ConductorClient, node: u64, data_dir: &Path) {
    let id = NodeId(node);
    // The meta leader's view: this replica may not have applied a drain the operator asked
    // for a moment ago, and taking it for the stop's own would undo it at the next start.
    let started = tokio::time::Instant::now();
    let states: Vec<(NodeId, NodeState)> =
        match tokio::time::timeout(DRAIN_DEADLINE, client.placement()).await {
            Ok(Ok(p)) => p.nodes.iter().map(|n| (n.id, n.state)).collect(),
            _ => meta.read_local(|m| m.nodes.values().map(|n| (n.id, n.state)).collect()),
        };
    let mine = states.iter().find(|(n, _)| *n == id).map(|(_, s)| *s);
    let others_active = states
        .iter()
        .filter(|(n, s)| *n != id && *s == NodeState::Active)
        .count();
    if mine != Some(NodeState::Active) {
        return; // drained or leaving by the operator's hand: not ours to undo later
    }
    if others_active == 0 {
        return; // the last of a full stop: no one to take leadership, nothing to keep away
    }
    // Marker first: a crash between the two leaves a marker and an active node, which the
    // next start's undrain turns into an active node again.
    if let Err(e) = std::fs::write(marker(data_dir), b"") {
        warn!(error = %e, "cannot write the drain marker; stopping without a drain");
        return;
    }
    let req = MetaRequest::SetNodeState {
        id,
        state: NodeState::Draining,
    };
    let left = DRAIN_DEADLINE.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, client.meta_command(&req)).await {
        Ok(Ok(_)) => info!(node, "drained for the stop"),
        Ok(Err(e)) => warn!(node, error = %e, "drain before the stop refused"),
        Err(_) => warn!(node, "drain before the stop timed out"),
    }
}

/// At start: if the last stop drained this node, make it active again (retrying until the
/// meta leader records it), then drop the marker.
pub async fn undrain(
    client: ConductorClient,
    node: u64,
    data_dir: PathBuf,
    cancel: CancellationToken,
) {
    let file = marker(&data_dir);
    if !file.exists() {
        return;
    }
    let req = MetaRequest::SetNodeState {
        id: NodeId(node),
        state: NodeState::Active,
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = client.meta_command(&req) => match r {
                Ok(_) => break,
                // E.g. the operator removed the node meanwhile: that decision stands.
                Err(ClientError::Rejected(m)) => {
                    warn!(node, reason = %m, "the stop's drain is not undone");
                    break;
                }
                Err(e) => warn!(node, error = %e, "cannot undo the stop's drain yet"),
            },
        }
        tokio::time::sleep(UNDRAIN_RETRY).await;
    }
    info!(node, "the stop's drain is over");
    if let Err(e) = std::fs::remove_file(&file) {
        warn!(error = %e, "cannot remove the drain marker");
    }
}
