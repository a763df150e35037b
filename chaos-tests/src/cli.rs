//! The real `openstack` CLI (python-openstackclient + python-magnumclient from PyPI), installed
//! by `../shared/tools/peers/peers.sh install osc` into a venv cached outside the repository.
use std::path::PathBuf;
use std::process::Command;

/// Path of the `openstack` executable: `$OPENSTACK_CLI`, else the peers toolkit's venv.
pub fn openstack_bin() -> PathBuf {
    if let Ok(p) = std::env::var("OPENSTACK_CLI") {
        return PathBuf::from(p);
    }
    let home = std::env::var("PEERS_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/magnum-peers")
        });
    home.join("venvs/osc/bin/openstack")
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Stdout of a command that must have succeeded.
    pub fn ok(&self, what: &str) -> String {
        assert_eq!(
            self.code, 0,
            "{what} failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout.clone()
    }

    /// The JSON (`-f json`) a successful command printed, after any "Request ... accepted" line.
    pub fn json(&self, what: &str) -> serde_json::Value {
        let s = self.ok(what);
        let s = &s[s.find(['{', '[']).unwrap_or(0)..];
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {s}"))
    }

    /// What a refused command printed (stdout and stderr). A refused delete prints "Delete for
    /// ... failed: ..." and exits 0 (magnumclient goes on with the next name); anything else
    /// must exit non-zero.
    pub fn refused(&self, what: &str) -> String {
        assert!(
            self.code != 0 || self.stdout.contains(" failed: "),
            "{what} succeeded but must not:\nstdout: {}",
            self.stdout
        );
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `openstack ARGS` with the deployment's openrc environment.
pub fn openstack(openrc: &std::path::Path, args: &[&str]) -> Output {
    let bin = openstack_bin();
    assert!(
        bin.exists(),
        "{} not found: run ../shared/tools/peers/peers.sh install osc",
        bin.display()
    );
    let mut cmd = Command::new(&bin);
    cmd.args(args);
    for line in std::fs::read_to_string(openrc).unwrap_or_default().lines() {
        if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            cmd.env(k, v);
        }
    }
    for k in ["OS_CLOUD", "OS_TOKEN", "OS_ENDPOINT", "OS_URL"] {
        cmd.env_remove(k);
    }
    // `coe cluster config` reads $SHELL to pick export/setenv; CI runs without one.
    if std::env::var_os("SHELL").is_none() {
        cmd.env("SHELL", "/bin/bash");
    }
    let out = cmd.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
