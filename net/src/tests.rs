use std::path::Path;
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::server::{allow, bind};
use crate::{certs, serve, InternalClient, Limits, Mode, Peer, Role, Tls};

fn id(role: Role, name: &str) -> crate::Identity {
    crate::Identity::new(role, name).unwrap()
}

/// A CA in `dir/ca` and one node dir per `(role, name)` under `dir/<role>-<name>`.
fn pki(dir: &Path, nodes: &[(Role, &str)]) {
    certs::init_ca(&dir.join("ca")).unwrap();
    for (role, name) in nodes {
        let out = dir.join(format!("{}-{name}", role.as_str()));
        certs::issue(&dir.join("ca"), &out, &id(*role, name), &[], 30).unwrap();
    }
}

fn node(dir: &Path, role: Role, name: &str, mode: Mode) -> Tls {
    Tls::load(&dir.join(format!("{}-{name}", role.as_str())), mode, role).unwrap()
}

async fn whoami(Extension(peer): Extension<Peer>) -> String {
    peer.to_string()
}

/// `/who` for every authenticated peer, `/conductors-only` for conductors, `/metrics` open.
async fn start(tls: Tls, limits: Limits) -> (String, CancellationToken) {
    let private = Router::new().route("/who", get(whoami)).route(
        "/conductors-only",
        get(whoami).route_layer(axum::middleware::from_fn(|r, n| {
            allow(&[Role::Conductor], r, n)
        })),
    );
    let open = Router::new().route("/metrics", get(|| async { "m 1\n" }));
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cancel = CancellationToken::new();
    let l = serve(listener, private, open, tls, limits, cancel.clone());
    (l.local_addr.to_string(), cancel)
}

fn client(tls: &Tls) -> InternalClient {
    InternalClient::new(tls, |b| b.timeout(Duration::from_secs(5))).unwrap()
}

async fn get_text(c: &InternalClient, addr: &str, path: &str) -> Result<(u16, String), String> {
    let r = c
        .send(addr, path, |h, url| h.get(url))
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.unwrap_or_default()))
}

async fn plain_get(addr: &str, path: &str) -> (u16, String) {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn strict_listener_knows_who_calls_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    pki(
        dir.path(),
        &[
            (Role::Conductor, "1"),
            (Role::Conductor, "2"),
            (Role::Api, "a"),
        ],
    );
    let (addr, cancel) = start(
        node(dir.path(), Role::Conductor, "1", Mode::Strict),
        Limits::default(),
    )
    .await;

    let c2 = client(&node(dir.path(), Role::Conductor, "2", Mode::Strict));
    assert_eq!(
        get_text(&c2, &addr, "/who").await.unwrap(),
        (200, "conductor:2".into())
    );
    assert_eq!(
        get_text(&c2, &addr, "/conductors-only").await.unwrap().0,
        200
    );

    let api = client(&node(dir.path(), Role::Api, "a", Mode::Strict));
    assert_eq!(
        get_text(&api, &addr, "/who").await.unwrap(),
        (200, "api:a".into())
    );
    let (status, body) = get_text(&api, &addr, "/conductors-only").await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("role conductor"), "{body}");

    // No certificate: the open routes only.
    assert_eq!(plain_get(&addr, "/metrics").await, (200, "m 1\n".into()));
    let (status, body) = plain_get(&addr, "/who").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("mutual TLS"), "{body}");

    // A certificate of another CA: the handshake fails.
    let other = tempfile::tempdir().unwrap();
    pki(other.path(), &[(Role::Conductor, "1")]);
    let stranger = client(&node(other.path(), Role::Conductor, "1", Mode::Strict));
    assert!(get_text(&stranger, &addr, "/who").await.is_err());
    cancel.cancel();
}

#[tokio::test]
async fn clients_accept_only_conductors_as_servers() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path(), &[(Role::Api, "a"), (Role::Operator, "o")]);
    // A server holding an API node's certificate is not a conductor.
    let (addr, cancel) = start(
        node(dir.path(), Role::Api, "a", Mode::Strict),
        Limits::default(),
    )
    .await;
    let op = client(&node(dir.path(), Role::Operator, "o", Mode::Strict));
    let err = get_text(&op, &addr, "/who").await.unwrap_err();
    assert!(err.contains("not a conductor"), "{err}");
    cancel.cancel();
}

#[tokio::test]
async fn permissive_accepts_both_and_falls_back_to_plain_peers() {
    let dir = tempfile::tempdir().unwrap();
    pki(
        dir.path(),
        &[(Role::Conductor, "1"), (Role::Conductor, "2")],
    );
    let (addr, cancel) = start(
        node(dir.path(), Role::Conductor, "1", Mode::Permissive),
        Limits::default(),
    )
    .await;
    assert_eq!(plain_get(&addr, "/who").await, (200, "plain".into()));
    let c2 = client(&node(dir.path(), Role::Conductor, "2", Mode::Permissive));
    assert_eq!(
        get_text(&c2, &addr, "/who").await.unwrap(),
        (200, "conductor:2".into())
    );

    // A peer still in plain mode: the permissive client falls back, the strict one cannot.
    let (plain_addr, cancel_plain) = start(Tls::plain(), Limits::default()).await;
    assert_eq!(
        get_text(&c2, &plain_addr, "/who").await.unwrap(),
        (200, "plain".into())
    );
    let strict = client(&node(dir.path(), Role::Conductor, "2", Mode::Strict));
    assert!(get_text(&strict, &plain_addr, "/who").await.is_err());
    cancel_plain.cancel();

    // That peer turns strict on the same address: the permissive client notices the 401 and
    // speaks TLS again at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let listener = bind(plain_addr.parse().unwrap()).await.unwrap();
    let now_strict = node(dir.path(), Role::Conductor, "1", Mode::Strict);
    let private = Router::new().route("/who", get(whoami));
    let cancel_strict = CancellationToken::new();
    serve(
        listener,
        private,
        Router::new(),
        now_strict,
        Limits::default(),
        cancel_strict.clone(),
    );
    assert_eq!(
        get_text(&c2, &plain_addr, "/who").await.unwrap(),
        (200, "conductor:2".into())
    );
    cancel.cancel();
    cancel_strict.cancel();
}

#[tokio::test]
async fn a_rotated_ca_is_picked_up_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    pki(
        dir.path(),
        &[(Role::Conductor, "1"), (Role::Conductor, "2")],
    );
    let server = node(dir.path(), Role::Conductor, "1", Mode::Strict);
    let (addr, cancel) = start(server.clone(), Limits::default()).await;

    // New CA; conductor 3's certificate comes from it. Until conductor 1 reloads the bundle
    // it does not trust conductor 3.
    let ca = dir.path().join("ca");
    certs::rotate_ca(&ca).unwrap();
    let c3_dir = dir.path().join("conductor-3");
    certs::issue(&ca, &c3_dir, &id(Role::Conductor, "3"), &[], 30).unwrap();
    let c3 = client(&Tls::load(&c3_dir, Mode::Strict, Role::Conductor).unwrap());
    assert!(get_text(&c3, &addr, "/who").await.is_err());

    // Rotate conductor 1's own certificate (new key, new CA, bundle of both) and reload.
    let c1_dir = dir.path().join("conductor-1");
    certs::rotate(&ca, &c1_dir, &[], 30).unwrap();
    assert!(server.reload_if_changed().unwrap());
    assert!(
        !server.reload_if_changed().unwrap(),
        "nothing changed since"
    );
    assert_eq!(
        get_text(&c3, &addr, "/who").await.unwrap(),
        (200, "conductor:3".into())
    );
    // Conductor 2 got the new bundle but still holds its old-CA certificate: both ways work,
    // since the bundle keeps the previous CA.
    std::fs::copy(
        ca.join(certs::CA_CERT),
        dir.path().join("conductor-2").join(certs::CA_CERT),
    )
    .unwrap();
    let c2 = client(&node(dir.path(), Role::Conductor, "2", Mode::Strict));
    assert_eq!(get_text(&c2, &addr, "/who").await.unwrap().0, 200);
    cancel.cancel();
}

#[tokio::test]
async fn bad_material_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path(), &[(Role::Api, "a")]);
    let a = dir.path().join("api-a");
    // Wrong role for the process.
    let err = Tls::load(&a, Mode::Strict, Role::Conductor)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("api:a's"), "{err}");
    // A key others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = a.join(certs::NODE_KEY);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Tls::load(&a, Mode::Strict, Role::Api)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A key that does not fit the certificate.
    let b = dir.path().join("api-b");
    certs::issue(&dir.path().join("ca"), &b, &id(Role::Api, "b"), &[], 30).unwrap();
    std::fs::copy(b.join(certs::NODE_KEY), a.join(certs::NODE_KEY)).unwrap();
    let err = Tls::load(&a, Mode::Strict, Role::Api)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
    // Never overwrite a CA.
    assert!(certs::init_ca(&dir.path().join("ca")).is_err());
    // Identities.
    assert!(crate::Identity::new(Role::Api, "a b").is_err());
    assert_eq!(
        crate::Identity::from_uri(&id(Role::Conductor, "7").uri())
            .unwrap()
            .conductor_id(),
        Some(7)
    );
}

#[tokio::test]
async fn slow_headers_and_connection_floods_are_cut_off() {
    let limits = Limits {
        max_connections: 2,
        handshake_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_millis(300),
    };
    let (addr, cancel) = start(Tls::plain(), limits).await;
    // Half a request line, then silence: closed after the header timeout.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /who HT").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "a slow header held the connection");

    // Two silent connections fill the cap; a third is closed at once, then served after.
    let _a = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(1), c.read(&mut [0u8; 16])).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "over the cap: {n:?}");
    tokio::time::sleep(Duration::from_millis(400)).await; // the silent ones time out
    assert_eq!(plain_get(&addr, "/who").await, (200, "plain".into()));
    cancel.cancel();
}

/// Internal TLS negotiates HTTP/2, so every RPC to a peer rides one connection; with a peer of
/// an older release (no ALPN offered or accepted) both sides fall back to HTTP/1.1.
#[tokio::test]
async fn internal_tls_speaks_http2_and_falls_back_to_http1_without_alpn() {
    let dir = tempfile::tempdir().unwrap();
    pki(
        dir.path(),
        &[(Role::Conductor, "1"), (Role::Conductor, "2")],
    );
    let server = node(dir.path(), Role::Conductor, "1", Mode::Strict);
    let caller = node(dir.path(), Role::Conductor, "2", Mode::Strict);
    let (addr, cancel) = start(server.clone(), Limits::default()).await;
    let c = client(&caller);
    let calls = (0..32).map(|_| c.send(&addr, "/who", |h, url| h.get(url)));
    for r in futures::future::join_all(calls).await {
        let r = r.unwrap();
        assert_eq!(r.version(), http::Version::HTTP_2);
        assert_eq!(r.text().await.unwrap(), "conductor:2");
    }

    // An older client: the same certificate, no ALPN.
    let mut old = caller.client_config().unwrap();
    old.alpn_protocols.clear();
    let old = reqwest::Client::builder()
        .no_proxy()
        .use_preconfigured_tls(old)
        .build()
        .unwrap();
    let r = old.get(format!("https://{addr}/who")).send().await.unwrap();
    assert_eq!(r.version(), http::Version::HTTP_11);
    assert_eq!(r.text().await.unwrap(), "conductor:2");
    cancel.cancel();

    // An older server: TLS without ALPN, HTTP/1.1 only.
    let mut cfg = (*server.server_config().unwrap()).clone();
    cfg.alpn_protocols.clear();
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg))
            .accept(tcp)
            .await
            .unwrap();
        let svc = hyper::service::service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(axum::body::Body::from("old")))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
            .await;
    });
    let r = c.send(&addr, "/who", |h, url| h.get(url)).await.unwrap();
    assert_eq!(r.version(), http::Version::HTTP_11);
    assert_eq!(r.text().await.unwrap(), "old");
}
