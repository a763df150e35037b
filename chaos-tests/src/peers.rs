//! The real OpenStack peers (`../shared/tools/peers/peers.sh`): Keystone, Heat and upstream
//! Magnum on fixed loopback ports, installed into venvs cached outside the repository.
use std::path::PathBuf;
use std::process::Command;

/// `peers.sh`: `$PEERS_TOOLS/peers.sh`, else `<repo>/../shared/tools/peers/peers.sh`.
pub fn script() -> PathBuf {
    std::env::var("PEERS_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::repo_root().join("../shared/tools/peers"))
        .join("peers.sh")
}

/// The peers toolkit's directory (scripts such as `bench_magnum.py` live there).
pub fn tools_dir() -> PathBuf {
    script()
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Installs (if needed) and starts `what` (`keystone`, `heat`, `magnum`); idempotent, and it
/// leaves the services running for later tests (`deploy/test.sh` stops them at the end).
pub fn ensure_up(what: &str) {
    for verb in ["install", "up"] {
        let out = Command::new("bash")
            .arg(script())
            .args([verb, what])
            .output()
            .expect("running peers.sh");
        assert!(
            out.status.success(),
            "peers.sh {verb} {what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `http://127.0.0.1:P/v1` of upstream Magnum.
pub fn magnum_url() -> String {
    let port = std::env::var("PEERS_MAGNUM_PORT").unwrap_or_else(|_| "19511".into());
    format!("http://127.0.0.1:{port}/v1")
}

/// `http://127.0.0.1:P/v3` of the real Keystone.
pub fn keystone_url() -> String {
    let port = std::env::var("PEERS_KEYSTONE_PORT").unwrap_or_else(|_| "15000".into());
    format!("http://127.0.0.1:{port}/v3")
}

/// The project id of Keystone's `admin` project (upstream Magnum checks quota projects there).
pub async fn keystone_admin_project(http: &reqwest::Client) -> String {
    let pw = std::env::var("PEERS_ADMIN_PASSWORD").unwrap_or_else(|_| "secret".into());
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": pw}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let r = http
        .post(format!("{}/auth/tokens", keystone_url()))
        .json(&body)
        .send()
        .await
        .expect("keystone login");
    assert_eq!(r.status().as_u16(), 201, "keystone admin login failed");
    let v: serde_json::Value = r.json().await.expect("keystone token body");
    v["token"]["project"]["id"]
        .as_str()
        .expect("token without project")
        .to_string()
}
