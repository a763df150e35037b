//! Each conductor reports itself to the meta group's registry (`GET /v1/mservices`): a
//! `Heartbeat` right after start and then every interval, sent through a `ConductorClient` so it
//! reaches the meta leader wherever it is.
use crate::membership::api_nodes::ApiNodes;
use magnum_proto::{ConductorClient, MetaRequest, NodeId, Timestamp};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

pub async fn run(
    node: u64,
    host: String,
    seeds: Vec<String>,
    interval: Duration,
    api_nodes: ApiNodes,
    tls: magnum_net::Tls,
    cancel: CancellationToken,
) {
    // One beat must not outlive the next tick.
    let deadline = interval.max(Duration::from_millis(100));
    let client = match ConductorClient::new(seeds, deadline, &tls) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "heartbeat disabled: no client");
            return;
        }
    };
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let req = MetaRequest::Heartbeat {
            node: NodeId(node),
            host: host.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            at: Timestamp::now(),
            feature_version: magnum_proto::version::FEATURE_VERSION,
            api_nodes: api_nodes.recent(),
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = client.meta_command(&req) => match r {
                Ok(reply) => debug!(node, ?reply, "heartbeat"),
                Err(e) => debug!(node, error = %e, "heartbeat failed; retrying next tick"),
            },
        }
    }
}
