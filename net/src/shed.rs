//! Load shedding: a bound on requests in flight per listener. Past it a request is answered at
//! once with 503 and `Retry-After` instead of queueing, so memory, file descriptors and the
//! Raft heartbeats sharing the process do not pay for a burst.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use tokio::sync::Semaphore;

/// Seconds a shed client is told to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Clone)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    listener: &'static str,
    /// Makes the answer: the public API wraps it in Magnum's error envelope.
    answer: fn() -> Response,
}

impl InFlight {
    /// `listener` names the listener in `magnum_net_requests_shed_total`.
    pub fn new(limit: usize, listener: &'static str, answer: fn() -> Response) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            listener,
            answer,
        }
    }
}

/// `axum::middleware::from_fn_with_state(in_flight, shed::layer)`.
pub async fn layer(State(s): State<InFlight>, req: Request, next: Next) -> Response {
    let Ok(_permit) = s.permits.clone().try_acquire_owned() else {
        if let Some(c) = &crate::metrics::get().shed {
            c.with_label_values(&[s.listener]).inc();
        }
        let mut resp = (s.answer)();
        if let Ok(v) = RETRY_AFTER_SECS.to_string().parse() {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    };
    next.run(req).await
}

/// The plain answer for internal listeners.
pub fn overloaded() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded: too many requests in flight; retry later\n",
    )
        .into_response()
}
