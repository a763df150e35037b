//! Helpers to run a mock service.

use std::sync::Arc;

use axum::Router;
use futures::future::BoxFuture;
use magnum_drivers::openstack::{HttpClient, HttpConfig, TokenProvider};
use magnum_drivers::Result;

/// Serves `router` on an ephemeral 127.0.0.1 port; returns `http://127.0.0.1:<port>`.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// A port on which nothing listens (bound then released).
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

pub fn http() -> HttpClient {
    HttpClient::with_defaults().unwrap()
}

pub fn http_with_timeout(ms: u64) -> HttpClient {
    HttpClient::new(&HttpConfig {
        request_timeout: std::time::Duration::from_millis(ms),
        ..HttpConfig::default()
    })
    .unwrap()
}

/// Hands out `first` until invalidated, then `second`; counts invalidations.
pub struct RotatingToken {
    pub first: String,
    pub second: String,
    pub invalidated: std::sync::atomic::AtomicUsize,
}

impl RotatingToken {
    pub fn new(first: &str, second: &str) -> Arc<Self> {
        Arc::new(RotatingToken {
            first: first.into(),
            second: second.into(),
            invalidated: Default::default(),
        })
    }
}

impl TokenProvider for RotatingToken {
    fn token(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            if self.invalidated.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                Ok(self.first.clone())
            } else {
                Ok(self.second.clone())
            }
        })
    }

    fn invalidate<'a>(&'a self, _token: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.invalidated
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            true
        })
    }
}
