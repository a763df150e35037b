//! Counters of the transport, one registry per process (`text()` is appended to /metrics).

use std::sync::OnceLock;

use prometheus::{IntCounterVec, Opts, Registry, TextEncoder};

pub(crate) struct NetMetrics {
    registry: Registry,
    /// New connections by outcome: tls, plain, anonymous, refused (handshake failed or timed
    /// out), over_limit.
    pub(crate) connections: Option<IntCounterVec>,
    /// Requests answered 503 by the in-flight bound, by listener.
    pub(crate) shed: Option<IntCounterVec>,
}

fn counter(r: &Registry, name: &str, help: &str, label: &str) -> Option<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), &[label]).ok()?;
    r.register(Box::new(c.clone())).ok()?;
    Some(c)
}

pub(crate) fn get() -> &'static NetMetrics {
    static M: OnceLock<NetMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let registry = Registry::new();
        NetMetrics {
            connections: counter(
                &registry,
                "magnum_net_connections_total",
                "Connections accepted by the listeners of this process, by outcome.",
                "outcome",
            ),
            shed: counter(
                &registry,
                "magnum_net_requests_shed_total",
                "Requests answered 503 + Retry-After because too many were in flight.",
                "listener",
            ),
            registry,
        }
    })
}

pub(crate) fn connection(outcome: &str) {
    if let Some(c) = &get().connections {
        c.with_label_values(&[outcome]).inc();
    }
}

/// The Prometheus text of these counters.
pub fn text() -> String {
    TextEncoder::new()
        .encode_to_string(&get().registry.gather())
        .unwrap_or_default()
}
