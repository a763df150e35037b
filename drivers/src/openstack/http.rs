//! Shared HTTP plumbing: the reqwest client (no redirects, timeouts), token providers, URL joining and
//! the translation of OpenStack error bodies into [`Error`].

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, Result};

/// Connection timeout used by [`HttpConfig::default`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Whole-request timeout used by [`HttpConfig::default`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the HTTP client shared by all OpenStack clients.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of a whole request, body included.
    pub request_timeout: Duration,
    /// Sent as `User-Agent`.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            user_agent: concat!("magnum-drivers/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A cheaply clonable HTTP client. Redirects are never followed: Heat answers name look-ups with a
/// 302 whose `Location` we read ourselves, and an automatic redirect would turn PATCH/DELETE into GET.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    /// Builds a client with the given timeouts.
    pub fn new(config: &HttpConfig) -> Result<Self> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| Error::Config(format!("cannot build HTTP client: {}", error_chain(&e))))?;
        Ok(HttpClient { inner })
    }

    /// Builds a client with [`HttpConfig::default`].
    pub fn with_defaults() -> Result<Self> {
        Self::new(&HttpConfig::default())
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.inner
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json")
    }
}

/// Supplies the `X-Auth-Token` for requests to a service.
///
/// Implemented by [`crate::openstack::ServiceSession`] (service credentials, refreshed) and
/// [`StaticToken`] (a caller's token, used as is).
pub trait TokenProvider: Send + Sync {
    /// The token to send.
    fn token(&self) -> BoxFuture<'_, Result<String>>;

    /// Called when `token` was answered with 401. Returns true if a fresh token may be fetched with
    /// [`TokenProvider::token`] and the request retried once.
    fn invalidate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, bool>;
}

/// A fixed token, e.g. the requesting user's. A 401 is final.
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(token.into())
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<String>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }

    fn invalidate<'a>(&'a self, _token: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }
}

/// Appends path segments (percent-encoded) to `base`, tolerating a trailing slash on `base`.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Result<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| Error::Config(format!("{base} cannot be used as a base URL")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Parses a configured or catalog URL.
pub(crate) fn parse_url(what: &str, s: &str) -> Result<Url> {
    Url::parse(s).map_err(|e| Error::Config(format!("invalid {what} URL {s:?}: {e}")))
}

/// Sends a request, mapping transport failures (connect, timeout, reset) to [`Error::Transient`].
pub(crate) async fn send(service: &str, request: RequestBuilder) -> Result<Response> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(service, &e))?;
    if let Some(id) = response.headers().get("x-openstack-request-id") {
        tracing::debug!(service, status = response.status().as_u16(), request_id = ?id, "response");
    } else {
        tracing::debug!(service, status = response.status().as_u16(), "response");
    }
    Ok(response)
}

/// Sends a request built by `build` with a token from `tokens`; on 401 asks the provider for a new
/// token and retries once.
pub(crate) async fn send_authed<F>(
    service: &str,
    tokens: &dyn TokenProvider,
    build: F,
) -> Result<Response>
where
    F: Fn() -> RequestBuilder,
{
    let token = tokens.token().await?;
    let response = send(service, build().header("X-Auth-Token", &token)).await?;
    if response.status() != StatusCode::UNAUTHORIZED || !tokens.invalidate(&token).await {
        return Ok(response);
    }
    tracing::info!(
        service,
        "token refused with 401, retrying once with a new token"
    );
    let token = tokens.token().await?;
    send(service, build().header("X-Auth-Token", &token)).await
}

/// Reads a success body as JSON.
pub(crate) async fn read_json<T: DeserializeOwned>(service: &str, response: Response) -> Result<T> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport_error(service, &e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidResponse(format!("{service}: cannot parse response body: {e}")))
}

/// Turns a non-success response into an [`Error`], using the service's own message when it has one.
pub(crate) async fn error_from_response(service: &str, response: Response) -> Error {
    let status = response.status();
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return transport_error(service, &e),
    };
    let message = error_message(status, &body);
    tracing::debug!(service, status = status.as_u16(), %message, "error response");
    if status.is_server_error() {
        return Error::Transient(format!("{service} answered {status}: {message}"));
    }
    Error::from_status(status.as_u16(), message)
}

/// Extracts a human-readable message from an OpenStack error body:
/// - Heat: `{"code","title","explanation","error":{"type","message","traceback"}}`
/// - Keystone: `{"error":{"code","title","message"}}`
/// - Nova: `{"itemNotFound":{"code","message"}}` (one key naming the fault)
/// - Neutron: `{"NeutronError":{"type","message","detail"}}`
/// - Glance and proxies: plain text or HTML.
pub(crate) fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(msg) = json_message(&value) {
            return msg;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = strip_tags(&text);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("error").to_string();
    }
    truncate(&text, 500)
}

fn json_message(value: &serde_json::Value) -> Option<String> {
    let obj = value.as_object()?;
    let str_field = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(|m| m.as_str())
            .filter(|m| !m.trim().is_empty())
            .map(|m| m.trim().to_string())
    };
    if let Some(err) = obj.get("error") {
        if let Some(m) = str_field(err, "message") {
            return Some(m);
        }
        if let Some(m) = err.as_str() {
            return Some(m.to_string());
        }
    }
    for key in ["explanation", "message", "title"] {
        if let Some(m) = str_field(value, key) {
            return Some(m);
        }
    }
    // Nova / Neutron: a single key whose value carries the message.
    if obj.len() == 1 {
        if let Some((_, inner)) = obj.iter().next() {
            if let Some(m) = str_field(inner, "message") {
                return Some(m);
            }
        }
    }
    None
}

fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((idx, _)) => format!("{}...", &s[..idx]),
        None => s.to_string(),
    }
}

fn transport_error(service: &str, e: &reqwest::Error) -> Error {
    let detail = error_chain(e);
    if e.is_builder() {
        return Error::InvalidInput(format!("{service}: cannot build request: {detail}"));
    }
    if e.is_timeout() {
        return Error::Transient(format!("{service}: request timed out: {detail}"));
    }
    Error::Transient(format!("{service}: {detail}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_envelope_message() {
        let body = br#"{"code":409,"title":"Conflict","explanation":"There was a conflict when trying to complete your request.","error":{"type":"StackExists","message":"The Stack (x) already exists.","traceback":null}}"#;
        assert_eq!(
            error_message(StatusCode::CONFLICT, body),
            "The Stack (x) already exists."
        );
    }

    #[test]
    fn keystone_nova_neutron_and_text_messages() {
        let ks = br#"{"error":{"code":401,"title":"Unauthorized","message":"The request you have made requires authentication."}}"#;
        assert_eq!(
            error_message(StatusCode::UNAUTHORIZED, ks),
            "The request you have made requires authentication."
        );
        let nova =
            br#"{"itemNotFound":{"code":404,"message":"Flavor m1.tiny could not be found."}}"#;
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, nova),
            "Flavor m1.tiny could not be found."
        );
        let neutron = br#"{"NeutronError":{"type":"NetworkNotFound","message":"Network x could not be found.","detail":""}}"#;
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, neutron),
            "Network x could not be found."
        );
        let glance = b"<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1>\n\nThe resource could not be found.</body></html>";
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, glance),
            "404 Not Found 404 Not Found The resource could not be found."
        );
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, b""), "Bad Gateway");
    }

    #[test]
    fn join_handles_trailing_slash_and_encodes() {
        let base = Url::parse("http://h/heat-api/v1/p/").unwrap();
        assert_eq!(
            join(&base, &["stacks", "a b"]).unwrap().as_str(),
            "http://h/heat-api/v1/p/stacks/a%20b"
        );
        let base = Url::parse("http://h/compute/v2.1").unwrap();
        assert_eq!(
            join(&base, &["flavors", "x"]).unwrap().as_str(),
            "http://h/compute/v2.1/flavors/x"
        );
    }
}
