//! Rolling-upgrade plumbing: the previous release built from git history
//! (`deploy/upgrade/build-previous.sh`), and moving one process of a `local-cluster.sh`
//! deployment to another binary the way an operator does: edit `DIR/<name>.cmd`, stop, start.
use crate::{repo_root, tail, Deployment};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A release's tree (for its own `deploy/local-cluster.sh`) and binary.
#[derive(Clone, Debug)]
pub struct Release {
    pub commit: String,
    pub src: PathBuf,
    pub bin: PathBuf,
}

impl Release {
    pub fn script(&self) -> PathBuf {
        self.src.join("deploy/local-cluster.sh")
    }
}

/// The release upgrades start from, built once (a few minutes the first time; reused after).
pub fn previous_release() -> Release {
    let root = repo_root();
    let out = Command::new("bash")
        .arg(root.join("deploy/upgrade/build-previous.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-previous.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let first = std::fs::read_to_string(root.join("deploy/upgrade/previous-release")).unwrap();
    Release {
        commit: first.lines().next().unwrap_or_default().trim().to_string(),
        src: dir.join("src"),
        bin: dir.join("magnum"),
    }
}

impl Deployment {
    /// Points `DIR/<name>.cmd` at `to` instead of `from` (the process keeps running until it is
    /// restarted, as with an operator's package upgrade).
    pub fn swap_binary(&self, name: &str, from: &Path, to: &Path) {
        let (from, to) = (from.to_str().unwrap(), to.to_str().unwrap());
        self.edit_cmd(name, |cmd| {
            assert!(cmd.contains(from), "{name}.cmd does not run {from}: {cmd}");
            cmd.replace(from, to)
        });
    }

    /// Rewrites `DIR/<name>.cmd`, the command line the next `start` runs.
    pub fn edit_cmd(&self, name: &str, edit: impl FnOnce(&str) -> String) {
        let path = self.dir.join(format!("{name}.cmd"));
        let cmd = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(&cmd)).unwrap();
    }

    /// The binary `DIR/<name>.cmd` runs (its first word).
    pub fn binary_of(&self, name: &str) -> PathBuf {
        let cmd = std::fs::read_to_string(self.dir.join(format!("{name}.cmd"))).unwrap();
        PathBuf::from(cmd.split_whitespace().next().unwrap_or_default())
    }

    /// Starts a second API node (`api-2`, the first one's command on the next port) and returns
    /// its `/v1` URL. Both scripts start and stop it by its command file.
    pub async fn start_second_api(&self) -> String {
        let (p1, p2) = (self.port_base + 11, self.port_base + 12);
        let cmd = std::fs::read_to_string(self.dir.join("api.cmd")).unwrap();
        let cmd = cmd.replace(&format!("127.0.0.1:{p1}"), &format!("127.0.0.1:{p2}"));
        std::fs::write(self.dir.join("api-2.cmd"), cmd).unwrap();
        self.script(&["start", "api", "2"]);
        let url = format!("http://127.0.0.1:{p2}/v1");
        self.wait_api(&url, "api-2").await;
        url
    }

    /// Waits until the API node at `url` (`.../v1`) answers.
    pub async fn wait_api(&self, url: &str, name: &str) {
        let start = Instant::now();
        while self.http.get(url).send().await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} not up; log:\n{}",
                tail(&self.log(name), 30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
