//! `deploy/systemd/`'s units pass `systemd-analyze verify` (with this build's binary in place of
//! `/usr/bin/magnum`, which verify requires to exist), with no warning either (verify exits 0
//! on unknown keys and bad values), and keep the hardening the operator guide promises.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::Path;
use std::process::Command;

const UNITS: [&str; 2] = ["magnum-api.service", "magnum-conductor.service"];

const HARDENING: [&str; 7] = [
    "User=magnum",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "Restart=on-failure",
    "KillSignal=SIGTERM",
];

#[test]
fn units_verify_cleanly_and_are_hardened() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for unit in UNITS {
        let text = std::fs::read_to_string(src.join(unit)).unwrap();
        for key in HARDENING {
            assert!(text.lines().any(|l| l == key), "{unit}: no {key}");
        }
        let p = dir.path().join(unit);
        std::fs::write(
            &p,
            text.replace("/usr/bin/magnum", env!("CARGO_BIN_EXE_magnum")),
        )
        .unwrap();
        paths.push(p);
    }
    let conductor = std::fs::read_to_string(src.join("magnum-conductor.service")).unwrap();
    assert!(conductor.contains("StateDirectoryMode=0700"));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("systemd-analyze (Debian package systemd; deploy/test.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Only lines about our units: verify also reports on the host's own units it loads.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| UNITS.iter().any(|u| l.contains(u)))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        out.status
    );
}
