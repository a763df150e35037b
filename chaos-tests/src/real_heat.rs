//! Real Heat (27, noauth, legacy engine) from the peers toolkit (`peers.sh up heat`), for the
//! differential tier and the conductor runs against it.
use std::path::PathBuf;
use std::process::Command;

/// The peers toolkit: `$PEERS_TOOLS`, else `../shared/tools/peers` beside the repository.
pub fn peers_tools() -> PathBuf {
    std::env::var_os("PEERS_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("../shared/tools/peers"))
}

/// `http://127.0.0.1:18004/v1/admin` unless `PEERS_HEAT_URL` says otherwise.
pub fn heat_url() -> String {
    std::env::var("PEERS_HEAT_URL").unwrap_or_else(|_| "http://127.0.0.1:18004/v1/admin".into())
}

/// Starts real Heat (idempotent; `peers.sh install heat` must have run) and returns its URL.
/// Panics with the script's output when it cannot: a test that needs real Heat must not pass
/// without it.
pub fn ensure_up() -> String {
    static UP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    UP.get_or_init(|| {
        if std::env::var_os("PEERS_HEAT_URL").is_none() {
            let script = peers_tools().join("peers.sh");
            let out = Command::new("bash")
                .arg(&script)
                .args(["up", "heat"])
                .output()
                .expect("run peers.sh");
            assert!(
                out.status.success(),
                "{} up heat failed (run `peers.sh install heat` first):\n{}\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        heat_url()
    })
    .clone()
}

/// Stacks in real Heat whose name starts with `prefix` (`show_deleted` includes deleted ones).
pub async fn stacks_with_prefix(
    http: &reqwest::Client,
    prefix: &str,
    show_deleted: bool,
) -> Vec<serde_json::Value> {
    let url = format!("{}/stacks?show_deleted={show_deleted}", heat_url());
    let v: serde_json::Value = http
        .get(url)
        .header("X-Auth-Token", "noauth")
        .send()
        .await
        .expect("list real heat stacks")
        .json()
        .await
        .expect("stack list json");
    v["stacks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            s["stack_name"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}
