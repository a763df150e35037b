//! `magnum manage backup` under writes, `magnum manage restore` into a new deployment, and
//! every object compared through the API; damaged or mismatched backups refused before
//! anything is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_chaos_tests::{magnum_bin, Deployment, Options};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `GET path` at the newest microversion (nodegroups and quota lists need it); must be 200.
async fn get(d: &Deployment, path: &str, token: &str) -> Value {
    let (status, v) = get_latest(d, token, path).await;
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

/// Every object an admin and demo see: templates, clusters (GET one), their nodegroups and
/// the quotas, keyed by kind and uuid (or project).
async fn everything(d: &Deployment, admin: &str, demo: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for tok in [admin, demo] {
        let v = get(d, "/clustertemplates", tok).await;
        for t in v["clustertemplates"].as_array().unwrap() {
            let id = t["uuid"].as_str().unwrap();
            let full = get(d, &format!("/clustertemplates/{id}"), tok).await;
            out.insert(format!("template {id}"), full);
        }
        let v = get(d, "/clusters", tok).await;
        for c in v["clusters"].as_array().unwrap() {
            let id = c["uuid"].as_str().unwrap();
            out.insert(
                format!("cluster {id}"),
                get(d, &format!("/clusters/{id}"), tok).await,
            );
            let ngs = get(d, &format!("/clusters/{id}/nodegroups"), tok).await;
            out.insert(format!("nodegroups {id}"), ngs);
        }
    }
    out.insert(
        "quotas".into(),
        get(d, "/quotas?all_tenants=True", admin).await,
    );
    // Links name the API node that answered: the same object has another host in the other
    // deployment.
    let host = d.api.trim_end_matches("/v1");
    out.into_iter()
        .map(|(k, v)| {
            let text = v.to_string().replace(host, "API");
            (k, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// `magnum manage restore ARGS`: (exit ok, stdout + stderr).
fn restore(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(magnum_bin())
        .args(["manage", "restore"])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `--peer` list of deployment `d`'s three conductors (local-cluster.sh's ports).
fn peers_of(d: &Deployment) -> Vec<String> {
    (1..=3u16)
        .map(|n| {
            format!(
                "{n}=127.0.0.1:{}@127.0.0.1:{}",
                d.port_base + 100 + n,
                d.port_base + 200 + n
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A copy of the backup with `damage` applied; its restore must fail saying `expect`, and
/// write nothing.
fn refused(backup: &Path, scratch: &Path, name: &str, expect: &str, damage: impl Fn(&Path)) {
    let copy = scratch.join(name);
    copy_dir(backup, &copy);
    damage(&copy);
    let target = scratch.join(format!("{name}-data"));
    let (c, t) = (copy.to_str().unwrap(), target.to_str().unwrap());
    let (ok, text) = restore(&[
        c,
        "--data-dir",
        t,
        "--node-id",
        "1",
        "--peer",
        "1=127.0.0.1:1@127.0.0.1:2",
    ]);
    assert!(!ok, "{name}: restore accepted a damaged backup: {text}");
    assert!(
        text.contains(expect),
        "{name}: expected {expect:?} in: {text}"
    );
    assert!(
        !target.exists(),
        "{name}: restore wrote {} before refusing",
        target.display()
    );
}

fn edit_manifest(dir: &Path, f: impl Fn(&mut Value)) {
    let p = dir.join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut m);
    std::fs::write(&p, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn flip_byte(file: &Path, at_from_end: usize) {
    let mut b = std::fs::read(file).unwrap();
    let i = b.len() - at_from_end;
    b[i] ^= 0x5a;
    std::fs::write(file, b).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writes_restores_into_a_new_deployment() {
    let src = Deployment::up("backup-src", Options::default());
    let admin = src.token("admin", "admin").await;
    let (demo, demo_project) = src.login("demo", "demo").await;
    let tpl = create_template(&src, &demo, "bk-tpl").await;
    create_template(&src, &admin, "bk-admin-tpl").await;
    let mut clusters = Vec::new();
    for i in 0..3 {
        clusters.push(create_cluster(&src, &demo, &tpl, &format!("bk-{i}"), 1).await);
    }
    for c in &clusters {
        src.wait_cluster(&demo, c, Duration::from_secs(90), |_, v| {
            v["status"] == "CREATE_COMPLETE"
        })
        .await;
    }
    let (s, v) = src
        .call(
            Method::POST,
            "/quotas",
            Some(&admin),
            Some(serde_json::json!({"project_id": demo_project, "resource": "Cluster", "hard_limit": 12})),
        )
        .await;
    assert!(s == 201 || s == 200, "quota: {s} {v}");

    // A writer creates templates throughout the backup; each acknowledgement is timestamped.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let writer = {
        let (stop, acked) = (stop.clone(), acked.clone());
        let (http, api, demo) = (src.http.clone(), src.api.clone(), demo.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let r = http
                    .post(format!("{api}/clustertemplates"))
                    .header("X-Auth-Token", &demo)
                    .json(&template_body(&format!("bk-load-{i}")))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if r.status() == 201 {
                        let v: Value = r.json().await.unwrap();
                        let id = v["uuid"].as_str().unwrap().to_string();
                        acked.lock().unwrap().push((Instant::now(), id));
                    }
                }
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let scratch = src.dir.join("scratch");
    let backup_dir = scratch.join("backup");
    let started = Instant::now();
    let out = {
        let src = &src;
        let dir = backup_dir.to_str().unwrap().to_string();
        tokio::task::block_in_place(|| src.manage(&["backup", &dir]))
    };
    let finished = Instant::now();
    println!("{out}backup took {:?}", finished - started);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let before: Vec<&String> = acked
        .iter()
        .filter(|(t, _)| *t < started)
        .map(|(_, id)| id)
        .collect();
    let after: Vec<&String> = acked
        .iter()
        .filter(|(t, _)| *t > finished)
        .map(|(_, id)| id)
        .collect();
    assert!(
        !before.is_empty() && !after.is_empty(),
        "the writer ran before and after the backup"
    );

    let (ok, text) = restore(&[backup_dir.to_str().unwrap(), "--check"]);
    assert!(ok, "{text}");
    let source = everything(&src, &admin, &demo).await;
    src.down();

    // Damaged and mismatched backups: refused, saying why, before anything is written.
    let g1 = |d: &Path| d.join("g1.pairs");
    refused(
        &backup_dir,
        &scratch,
        "no-manifest",
        "no manifest.json",
        |d| std::fs::remove_file(d.join("manifest.json")).unwrap(),
    );
    refused(
        &backup_dir,
        &scratch,
        "truncated",
        "truncated or replaced",
        |d| {
            let b = std::fs::read(g1(d)).unwrap();
            std::fs::write(g1(d), &b[..b.len() - 10]).unwrap();
        },
    );
    refused(
        &backup_dir,
        &scratch,
        "corrupt",
        "the file is corrupt",
        |d| flip_byte(&g1(d), 30),
    );
    // Corruption the manifest agrees with: the file's own trailer catches it.
    refused(
        &backup_dir,
        &scratch,
        "corrupt-trailer",
        "checksum mismatch",
        |d| {
            // The last byte of the last value (the trailer is 20 bytes): lengths stay intact.
            flip_byte(&g1(d), 21);
            let b = std::fs::read(g1(d)).unwrap();
            let sum = sha256_hex(&b);
            edit_manifest(d, |m| m["groups"][1]["sha256"] = sum.clone().into());
        },
    );
    refused(
        &backup_dir,
        &scratch,
        "shard-count",
        "a deployment of 5 shards",
        |d| edit_manifest(d, |m| m["shards"] = 5.into()),
    );
    refused(
        &backup_dir,
        &scratch,
        "newer",
        "newer than this build supports",
        |d| edit_manifest(d, |m| m["cluster_version"] = 99.into()),
    );
    refused(&backup_dir, &scratch, "format", "backup format 2", |d| {
        edit_manifest(d, |m| m["format"] = 2.into())
    });

    // The new deployment: its own ports and directory, the backed-up deployment's PKI and
    // sealing key (kept by the operator, not in the backup) and its cloud (cloud-sim's state).
    let dst = Deployment::prepare("backup-dst", Options::default());
    copy_dir(&src.dir.join("tls"), &dst.dir.join("tls"));
    std::fs::copy(src.dir.join("cert.key"), dst.dir.join("cert.key")).unwrap();
    copy_dir(&src.dir.join("cloud-sim"), &dst.dir.join("cloud-sim"));
    let peers = peers_of(&dst);
    for n in 1..=3 {
        let data: PathBuf = dst.dir.join(format!("conductor-{n}"));
        let mut args = vec![
            backup_dir.to_str().unwrap().to_string(),
            "--data-dir".into(),
            data.to_str().unwrap().to_string(),
            "--node-id".into(),
            n.to_string(),
        ];
        for p in &peers {
            args.extend(["--peer".to_string(), p.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = restore(&args);
        assert!(ok, "restore of node {n}: {text}");
        // A second restore into the same data dir is refused.
        let (ok, text) = restore(&args);
        assert!(!ok && text.contains("already holds"), "{text}");
    }
    dst.script(&["up"]);
    let admin = dst.token("admin", "admin").await;
    let demo = dst.token("demo", "demo").await;
    let restored = everything(&dst, &admin, &demo).await;

    // Everything acknowledged before the backup began is there; nothing that was not
    // acknowledged after it ended; and every restored object is the source's, field for field.
    for id in &before {
        assert!(
            restored.contains_key(&format!("template {id}")),
            "lost template {id}"
        );
    }
    for id in &after {
        assert!(
            !restored.contains_key(&format!("template {id}")),
            "template {id} is from after the backup"
        );
    }
    for (k, v) in &restored {
        assert_eq!(Some(v), source.get(k), "{k} differs from the source");
    }
    let unaffected = source
        .keys()
        .filter(|k| !acked.iter().any(|(_, id)| k.ends_with(id.as_str())))
        .count();
    let kept = restored
        .keys()
        .filter(|k| !acked.iter().any(|(_, id)| k.ends_with(id.as_str())))
        .count();
    assert_eq!(
        kept, unaffected,
        "objects not written during the backup all came back"
    );
    println!(
        "restored {} objects ({} templates written during the backup: {} before it began, {} after it ended)",
        restored.len(),
        acked.len(),
        before.len(),
        after.len()
    );

    // The restored deployment works: replicas agree, a new cluster completes, a restored one
    // is deleted with its stack.
    dst.manage(&["verify"]);
    let fresh = create_cluster(&dst, &demo, &tpl, "bk-after", 1).await;
    dst.wait_cluster(&demo, &fresh, Duration::from_secs(90), |_, v| {
        v["status"] == "CREATE_COMPLETE"
    })
    .await;
    let (s, v) = dst
        .call(
            Method::DELETE,
            &format!("/clusters/{}", clusters[0]),
            Some(&demo),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    dst.wait_cluster(&demo, &clusters[0], Duration::from_secs(90), |s, _| {
        s == 404
    })
    .await;
    dst.down();
}
