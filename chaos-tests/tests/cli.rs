//! The real `openstack` CLI (python-openstackclient + python-magnumclient) against the running
//! multi-process system, logging in through cloud-sim's Keystone and finding the API in the
//! catalog exactly as it would in a cloud.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_chaos_tests::cli::openstack;
use magnum_chaos_tests::{Deployment, Options};
use serde_json::Value;
use std::time::{Duration, Instant};

fn ok(out: &magnum_chaos_tests::cli::Output, what: &str) -> String {
    assert_eq!(
        out.code, 0,
        "{what} failed:\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out.stdout.clone()
}

/// Decodes the kubeconfig's CA and client certificate and runs `openssl verify` on them.
fn verify_kubeconfig(kubeconfig: &str, dir: &std::path::Path) {
    let field = |name: &str| {
        kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {kubeconfig}"))
            .trim()
            .to_string()
    };
    for (name, file) in [
        ("certificate-authority-data", "ca.pem"),
        ("client-certificate-data", "client.pem"),
    ] {
        let out = std::process::Command::new("base64")
            .arg("-d")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(field(name).as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        std::fs::write(dir.join(file), out.stdout).unwrap();
    }
    let v = std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(dir.join("ca.pem"))
        .arg(dir.join("client.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success() && text.contains(": OK"),
        "openssl verify: {text}{}",
        String::from_utf8_lossy(&v.stderr)
    );
}

fn json(out: &magnum_chaos_tests::cli::Output, what: &str) -> Value {
    let s = ok(out, what);
    // magnumclient prints "Request to ... accepted" before the formatted object.
    let start = s.find(['{', '[']).unwrap_or(0);
    let s = &s[start..];
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_template_and_cluster_lifecycle() {
    let d = Deployment::up(
        "cli",
        Options {
            time_scale: 0.5,
            ..Options::default()
        },
    );
    let rc = d.dir.join("openrc");
    let os = |args: &[&str]| openstack(&rc, args);

    let t = json(
        &os(&[
            "coe",
            "cluster",
            "template",
            "create",
            "--coe",
            "kubernetes",
            "--image",
            "fedora-coreos-40",
            "--external-network",
            "public",
            "--flavor",
            "m1.small",
            "--master-flavor",
            "m1.small",
            "--keypair",
            "default",
            "--network-driver",
            "flannel",
            "--labels",
            "kube_tag=v1.30.1",
            "-f",
            "json",
            "k8s-tmpl",
        ]),
        "template create",
    );
    assert_eq!(t["name"], "k8s-tmpl");
    assert_eq!(t["coe"], "kubernetes");
    assert_eq!(t["cluster_distro"], "fedora-coreos");

    let list = json(
        &os(&["coe", "cluster", "template", "list", "-f", "json"]),
        "template list",
    );
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "k8s-tmpl"),
        "{list}"
    );
    let shown = json(
        &os(&[
            "coe", "cluster", "template", "show", "k8s-tmpl", "-f", "json",
        ]),
        "template show",
    );
    assert_eq!(shown["uuid"], t["uuid"]);
    let upd = json(
        &os(&[
            "coe",
            "cluster",
            "template",
            "update",
            "k8s-tmpl",
            "--dns-nameserver",
            "1.1.1.1",
            "--label",
            "kube_tag=v1.31.0",
            "-f",
            "json",
        ]),
        "template update",
    );
    assert_eq!(upd["dns_nameserver"], "1.1.1.1");
    assert_eq!(upd["labels"]["kube_tag"], "v1.31.0", "{upd}");

    let started = Instant::now();
    let out = ok(
        &os(&[
            "coe",
            "cluster",
            "create",
            "--cluster-template",
            "k8s-tmpl",
            "--master-count",
            "1",
            "--node-count",
            "2",
            "k8s",
        ]),
        "cluster create",
    );
    assert!(out.contains("accepted"), "{out}");
    let list = json(
        &os(&["coe", "cluster", "list", "-f", "json"]),
        "cluster list",
    );
    assert!(
        list.as_array().unwrap().iter().any(|x| x["name"] == "k8s"),
        "{list}"
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    let c = loop {
        let c = json(
            &os(&["coe", "cluster", "show", "k8s", "-f", "json"]),
            "cluster show",
        );
        if c["status"] != "CREATE_IN_PROGRESS" {
            break c;
        }
        assert!(Instant::now() < deadline, "cluster stuck: {c}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let to_complete = started.elapsed();
    assert_eq!(c["status"], "CREATE_COMPLETE", "{c}");
    assert!(
        c["api_address"]
            .as_str()
            .is_some_and(|a| a.starts_with("https://")),
        "{c}"
    );
    assert_eq!(c["node_addresses"].as_array().map(Vec::len), Some(2), "{c}");
    assert_eq!(
        c["master_addresses"].as_array().map(Vec::len),
        Some(1),
        "{c}"
    );
    assert_eq!(c["node_count"], 2);

    let ngs = json(
        &os(&["coe", "nodegroup", "list", "k8s", "-f", "json"]),
        "nodegroup list",
    );
    assert_eq!(ngs.as_array().map(Vec::len), Some(2), "{ngs}");
    let w = json(
        &os(&[
            "coe",
            "nodegroup",
            "show",
            "k8s",
            "default-worker",
            "-f",
            "json",
        ]),
        "nodegroup show",
    );
    assert_eq!(w["node_count"], 2, "{w}");

    // Scale the workers: a stack PATCH through the update operation.
    ok(
        &os(&[
            "coe",
            "cluster",
            "update",
            "k8s",
            "--node-count",
            "3",
            "--rollback",
        ]),
        "cluster update",
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let c = loop {
        let c = json(
            &os(&["coe", "cluster", "show", "k8s", "-f", "json"]),
            "cluster show",
        );
        if c["status"] != "UPDATE_IN_PROGRESS" && c["status"] != "CREATE_COMPLETE" {
            break c;
        }
        assert!(Instant::now() < deadline, "update never finished: {c}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(c["status"], "UPDATE_COMPLETE", "{c}");
    assert_eq!(c["node_count"], 3, "{c}");
    assert_eq!(c["node_addresses"].as_array().map(Vec::len), Some(3), "{c}");
    // And back down with `resize` (the removal policy picks the servers).
    ok(
        &os(&["coe", "cluster", "resize", "k8s", "2"]),
        "cluster resize",
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let c = loop {
        let c = json(
            &os(&["coe", "cluster", "show", "k8s", "-f", "json"]),
            "cluster show",
        );
        if c["status"] == "UPDATE_COMPLETE" && c["node_count"] == 2 {
            break c;
        }
        assert!(
            c["status"] == "UPDATE_IN_PROGRESS" || c["status"] == "UPDATE_COMPLETE",
            "{c}"
        );
        assert!(Instant::now() < deadline, "resize never finished: {c}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(c["node_addresses"].as_array().map(Vec::len), Some(2), "{c}");

    // `cluster config` signs a fresh CSR through POST /v1/certificates and fetches the CA; the
    // kubeconfig's client certificate must verify against that CA.
    let cfg_dir = d.dir.join("kube");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let dir_arg = cfg_dir.to_string_lossy().to_string();
    ok(
        &os(&[
            "coe", "cluster", "config", "k8s", "--dir", &dir_arg, "--force",
        ]),
        "cluster config",
    );
    let kubeconfig = std::fs::read_to_string(cfg_dir.join("config")).unwrap();
    assert!(
        kubeconfig.contains(c["api_address"].as_str().unwrap()),
        "{kubeconfig}"
    );
    verify_kubeconfig(&kubeconfig, &cfg_dir);
    ca_show_sign_rotate(&d, &os, &cfg_dir).await;
    let shown = json(
        &os(&["coe", "cluster", "show", "k8s", "-f", "json"]),
        "cluster show",
    );
    let trustee_id = trustee(&d, &shown).await.expect("a trustee").0;

    // In use: the template can't be deleted.
    let busy = os(&["coe", "cluster", "template", "delete", "k8s-tmpl"]);
    assert!(
        busy.code != 0 || busy.stdout.contains("referenced") || busy.stderr.contains("referenced"),
        "{}{}",
        busy.stdout,
        busy.stderr
    );

    ok(&os(&["coe", "cluster", "delete", "k8s"]), "cluster delete");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = os(&["coe", "cluster", "show", "k8s", "-f", "json"]);
        if shown.code != 0 {
            assert!(
                shown.stderr.contains("could not be found"),
                "{}",
                shown.stderr
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cluster not deleted: {}",
            shown.stdout
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The trustee (and with it its trust) went with the cluster.
    let l = d.sim_keystone_ledger().await;
    let tid = trustee_id.as_str();
    assert!(
        !l["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == tid)
            && !l["trusts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["trustee_user_id"] == tid),
        "trustee {tid} outlived its cluster: {l}"
    );
    ok(
        &os(&["coe", "cluster", "template", "delete", "k8s-tmpl"]),
        "template delete",
    );
    let list = json(
        &os(&["coe", "cluster", "template", "list", "-f", "json"]),
        "template list",
    );
    assert!(list.as_array().unwrap().is_empty(), "{list}");

    // Quotas and stats, as an admin.
    let project = os(&["token", "issue", "-f", "value", "-c", "project_id"]);
    ok(&project, "token issue");
    let project = project.stdout.trim().to_string();
    // `coe quotas` and `coe stats` print plain tables (no `-f json`).
    let has = |out: &str, words: &[&str], what: &str| {
        for w in words {
            assert!(out.contains(w), "{what}: {w:?} not in {out}");
        }
    };
    let out = ok(
        &os(&[
            "coe",
            "quotas",
            "create",
            "--project-id",
            &project,
            "--resource",
            "Cluster",
            "--hard-limit",
            "10",
        ]),
        "quotas create",
    );
    has(&out, &["hard_limit", "10", &project], "quotas create");
    ok(
        &os(&[
            "coe",
            "quotas",
            "update",
            "--project-id",
            &project,
            "--resource",
            "Cluster",
            "--hard-limit",
            "20",
        ]),
        "quotas update",
    );
    let out = ok(
        &os(&[
            "coe",
            "quotas",
            "show",
            "--project-id",
            &project,
            "--resource",
            "Cluster",
        ]),
        "quotas show",
    );
    has(&out, &["hard_limit", "20"], "quotas show");
    let out = ok(
        &os(&["coe", "quotas", "list", "--all-tenants"]),
        "quotas list",
    );
    has(&out, &[&project, "20"], "quotas list");
    ok(
        &os(&[
            "coe",
            "quotas",
            "delete",
            "--project-id",
            &project,
            "--resource",
            "Cluster",
        ]),
        "quotas delete",
    );
    let out = ok(&os(&["coe", "stats", "list", &project]), "stats list");
    has(&out, &["clusters", "nodes"], "stats list");

    // The conductor registry (meta group), as an admin sees it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let svcs = json(
            &os(&["coe", "service", "list", "-f", "json"]),
            "service list",
        );
        let field = |x: &Value, k: &str, title: &str| {
            x.get(k)
                .or_else(|| x.get(title))
                .cloned()
                .unwrap_or_default()
        };
        let rows = svcs.as_array().unwrap();
        let up = rows
            .iter()
            .filter(|x| field(x, "state", "State") == "up")
            .filter(|x| field(x, "binary", "Binary") == "magnum-conductor")
            .count();
        if rows.len() == 3 && up == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "conductors not all up: {svcs}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("MEASURE cli: `openstack coe cluster create` → CREATE_COMPLETE seen by `cluster show` = {} ms (time_scale {})", to_complete.as_millis(), d.opts.time_scale);
}

fn openssl(args: &[&str]) -> std::process::Output {
    std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl CLI")
}

/// The PEM block the CLI printed (it may add a trailing newline).
fn pem_of(out: &str) -> String {
    let start = out
        .find("-----BEGIN")
        .unwrap_or_else(|| panic!("no PEM in {out}"));
    format!("{}\n", out[start..].trim_end())
}

/// `openstack coe ca show/sign/rotate` and `coe credential rotate`: a certificate signed
/// before the rotation no longer verifies against the new CA.
async fn ca_show_sign_rotate(
    d: &Deployment,
    os: &impl Fn(&[&str]) -> magnum_chaos_tests::cli::Output,
    dir: &std::path::Path,
) {
    let p = |f: &str| dir.join(f).to_string_lossy().to_string();
    let ca = pem_of(&ok(&os(&["coe", "ca", "show", "k8s"]), "ca show"));
    std::fs::write(dir.join("ca-old.pem"), &ca).unwrap();
    let req = openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=dev/O=team",
        "-keyout",
        &p("dev.key"),
        "-out",
        &p("dev.csr"),
    ]);
    assert!(
        req.status.success(),
        "{}",
        String::from_utf8_lossy(&req.stderr)
    );
    let signed = pem_of(&ok(
        &os(&["coe", "ca", "sign", "k8s", &p("dev.csr")]),
        "ca sign",
    ));
    std::fs::write(dir.join("dev.pem"), &signed).unwrap();
    assert!(
        openssl(&["verify", "-CAfile", &p("ca-old.pem"), &p("dev.pem")])
            .status
            .success()
    );

    ok(&os(&["coe", "ca", "rotate", "k8s"]), "ca rotate");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = json(
            &os(&["coe", "cluster", "show", "k8s", "-f", "json"]),
            "cluster show",
        );
        if c["status"] == "UPDATE_COMPLETE" {
            break;
        }
        assert_eq!(c["status"], "UPDATE_IN_PROGRESS", "{c}");
        assert!(Instant::now() < deadline, "CA rotation never finished: {c}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let new_ca = pem_of(&ok(&os(&["coe", "ca", "show", "k8s"]), "ca show"));
    assert_ne!(new_ca, ca, "the CA changed");
    std::fs::write(dir.join("ca-new.pem"), &new_ca).unwrap();
    let old_cert = openssl(&["verify", "-CAfile", &p("ca-new.pem"), &p("dev.pem")]);
    assert!(
        !old_cert.status.success(),
        "a certificate of the old CA still verifies"
    );
    let resigned = pem_of(&ok(
        &os(&["coe", "ca", "sign", "k8s", &p("dev.csr")]),
        "ca sign",
    ));
    std::fs::write(dir.join("dev2.pem"), &resigned).unwrap();
    assert!(
        openssl(&["verify", "-CAfile", &p("ca-new.pem"), &p("dev2.pem")])
            .status
            .success()
    );

    credential_rotate(d, os).await;
}

/// The cluster's trustee as cloud-sim's Keystone holds it: (user id, password resets, trusts).
async fn trustee(d: &Deployment, cluster: &Value) -> Option<(String, u64, usize)> {
    let name = format!(
        "{}_{}",
        cluster["uuid"].as_str().unwrap(),
        cluster["project_id"].as_str().unwrap()
    );
    let l = d.sim_keystone_ledger().await;
    assert!(
        l["users_created"][&name].as_u64().unwrap_or(0) <= 1,
        "one trustee per cluster: {l}"
    );
    let user = l["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name.as_str())?;
    let id = user["id"].as_str().unwrap().to_string();
    let trusts = l["trusts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["trustee_user_id"] == id.as_str())
        .count();
    let resets = l["password_sets"][&id].as_u64().unwrap_or(0);
    Some((id, resets, trusts))
}

/// `coe credential rotate`: Keystone takes a new trustee password and the stack update carrying
/// it ends UPDATE_COMPLETE; the trustee and its one trust stay.
async fn credential_rotate(
    d: &Deployment,
    os: &impl Fn(&[&str]) -> magnum_chaos_tests::cli::Output,
) {
    let show = |os: &dyn Fn(&[&str]) -> magnum_chaos_tests::cli::Output| {
        json(
            &os(&["coe", "cluster", "show", "k8s", "-f", "json"]),
            "cluster show",
        )
    };
    let c = show(os);
    let (id, resets, trusts) = trustee(d, &c).await.expect("the cluster has a trustee");
    assert_eq!(trusts, 1, "one trust for the trustee");
    let out = ok(
        &os(&["coe", "credential", "rotate", "k8s"]),
        "credential rotate",
    );
    assert!(!out.contains("HTTP 4"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = trustee(d, &c).await.expect("the trustee stays");
        let c = show(os);
        if now.1 == resets + 1 && c["status"] == "UPDATE_COMPLETE" {
            assert_eq!(
                (now.0.as_str(), now.2),
                (id.as_str(), 1),
                "same user, one trust"
            );
            break;
        }
        assert!(
            c["status"] == "UPDATE_IN_PROGRESS" || c["status"] == "UPDATE_COMPLETE",
            "{c}"
        );
        assert!(Instant::now() < deadline, "rotation never finished: {c}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
