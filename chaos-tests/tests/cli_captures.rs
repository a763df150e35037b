//! Every `openstack coe` command of the peers toolkit's captures, run with the real CLI against
//! the multi-process system in the order the capture against upstream Magnum 23 ran them
//! (`captures/captures_real_magnum.txt`, its "OSC OUTPUT" section). Each command must exit with
//! the code it had against upstream, and each "(waited: status=X)" of the capture is waited for
//! here too, so the run is a CLI-level differential of the whole command list.
//!
//! The only changes to the captured command lines are names of things that exist in cloud-sim
//! rather than in the capture's cloud: the image (a Fedora CoreOS image, as our kubernetes driver
//! needs), the keypair, and the project id of the quota and stats commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_chaos_tests::cli::openstack;
use magnum_chaos_tests::{peers, Deployment, Options};
use reqwest::Method;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// One command of the capture: its line, its exit code there, the status waited for after it.
#[derive(Debug)]
struct Captured {
    line: String,
    rc: i32,
    waited: Option<String>,
}

fn captures_dir() -> std::path::PathBuf {
    peers::tools_dir().join("captures")
}

/// The "OSC OUTPUT" section: `### <command>`, its output, `rc=N  T s`, then maybe
/// `(waited: status=X)` (an empty status: waited until the cluster was gone).
fn parse_real_capture(text: &str) -> Vec<Captured> {
    let section = text
        .split("######## OSC OUTPUT")
        .nth(1)
        .expect("an OSC OUTPUT section");
    let mut out: Vec<Captured> = Vec::new();
    for line in section.lines() {
        if let Some(cmd) = line.strip_prefix("### openstack ") {
            out.push(Captured {
                line: cmd.trim().to_string(),
                rc: -1,
                waited: None,
            });
        } else if let (Some(rest), Some(last)) = (line.strip_prefix("rc="), out.last_mut()) {
            last.rc = rest.split_whitespace().next().unwrap().parse().unwrap();
        } else if let (Some(rest), Some(last)) =
            (line.strip_prefix("(waited: status="), out.last_mut())
        {
            last.waited = Some(rest.trim_end_matches(')').to_string());
        }
    }
    out
}

/// `openstack coe <words>` up to the first option or argument that is not a subcommand word.
fn command_path(line: &str) -> String {
    const WORDS: &[&str] = &[
        "coe",
        "cluster",
        "template",
        "create",
        "list",
        "show",
        "update",
        "delete",
        "resize",
        "upgrade",
        "config",
        "ca",
        "sign",
        "rotate",
        "quotas",
        "stats",
        "service",
        "nodegroup",
        "credential",
    ];
    line.split_whitespace()
        .take_while(|w| WORDS.contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits for the cluster's status as the capture did (`""`: until the cluster is gone). Polled
/// through the API, not the CLI: the waits are not commands under test.
async fn wait_status(d: &Deployment, token: &str, want: &str, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (code, c) = d
            .call(Method::GET, "/clusters/k8s", Some(token), None)
            .await;
        let status = (code == 200).then(|| c["status"].as_str().unwrap_or("").to_string());
        match (&status, want) {
            (None, "") => return,
            (Some(s), w) if s == w => return,
            (Some(s), _) => assert!(
                !s.ends_with("_FAILED"),
                "after `{after}` the cluster failed: {c}"
            ),
            (None, _) => panic!("after `{after}` the cluster is gone ({code}): {c}"),
        }
        assert!(
            Instant::now() < deadline,
            "after `{after}` status {status:?}, never {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_captured_openstack_coe_command_answers_as_upstream_did() {
    let real = std::fs::read_to_string(captures_dir().join("captures_real_magnum.txt")).unwrap();
    let fake = std::fs::read_to_string(captures_dir().join("captures.txt")).unwrap();
    let run = parse_real_capture(&real);
    // The capture against upstream holds every command of the command list.
    let listed: BTreeSet<String> = fake
        .lines()
        .filter_map(|l| l.strip_prefix("=== openstack "))
        .filter(|l| !l.starts_with("VARIANT"))
        .map(command_path)
        .collect();
    let ran: BTreeSet<String> = run.iter().map(|c| command_path(&c.line)).collect();
    assert_eq!(listed, ran, "the upstream run and the command list differ");
    assert_eq!(run.len(), 33, "{run:#?}");

    let d = Deployment::up(
        "cli-captures",
        Options {
            time_scale: 0.2,
            ..Options::default()
        },
    );
    let rc = d.dir.join("openrc");
    let os = |args: &[&str]| openstack(&rc, args);
    let tmp = d.dir.join("captures-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let tmp_s = tmp.to_string_lossy().to_string();
    let csr = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=admin",
        ])
        .arg("-keyout")
        .arg(tmp.join("csr.key"))
        .arg("-out")
        .arg(tmp.join("csr.pem"))
        .output()
        .unwrap();
    assert!(csr.status.success(), "{csr:?}");
    let project = magnum_cloud_sim::project_id("demo");
    let token = d.token("admin", "admin").await;

    let mut report = Vec::new();
    let started = Instant::now();
    for c in &run {
        let line = c
            .line
            .replace("--image ubuntu-k8s", "--image fedora-coreos-40")
            .replace("--keypair kp", "--keypair default")
            .replace("76908191b5db4faebab025866c4d0283", &project)
            .replace("<tmpdir>", &tmp_s);
        let args: Vec<&str> = line.split_whitespace().collect();
        let t = Instant::now();
        let out = os(&args);
        let ms = t.elapsed().as_millis();
        let text = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(
            out.code, c.rc,
            "`openstack {line}` exited {} (upstream: {}):\n{text}",
            out.code, c.rc
        );
        // magnumclient reports some refusals with exit code 0 (e.g. per-cluster rotations).
        if c.rc == 0 {
            assert!(!text.contains("(HTTP 4"), "`openstack {line}`:\n{text}");
        }
        if let Some(want) = &c.waited {
            wait_status(&d, &token, want, &line).await;
        }
        report.push(format!(
            "{:>3} {:>6} ms  openstack {}",
            out.code, ms, c.line
        ));
    }
    println!(
        "MEASURE cli_captures: {} commands, every exit code as upstream's, {} ms\n{}",
        run.len(),
        started.elapsed().as_millis(),
        report.join("\n")
    );
}
