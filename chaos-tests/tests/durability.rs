//! Design §7 "all conductors restarted": every acknowledged write survives SIGKILL of all three
//! conductors, and an operation in flight at the time resumes.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_chaos_tests::{Deployment, Options};
use reqwest::Method;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_of_all_conductors() {
    let d = Deployment::up("durability", Options::default());
    let admin = d.token("admin", "admin").await;
    let demo = d.token("demo", "demo").await;

    let mut templates = BTreeSet::new();
    for (i, tok) in [&admin, &demo].iter().cycle().take(8).enumerate() {
        templates.insert(create_template(&d, tok, &format!("dur-{i}")).await);
    }
    let tpl_admin = create_template(&d, &admin, "dur-used").await;
    templates.insert(tpl_admin.clone());
    let tok_of_tpl = &admin;
    let done = create_cluster(&d, tok_of_tpl, &tpl_admin, "dur-done", 1).await;
    d.wait_cluster(tok_of_tpl, &done, Duration::from_secs(60), |_, v| {
        v["status"] == "CREATE_COMPLETE"
    })
    .await;
    // This one is still in flight when everything dies.
    let inflight = create_cluster(&d, tok_of_tpl, &tpl_admin, "dur-inflight", 1).await;

    for n in 1..=3 {
        d.kill_conductor(n);
    }
    for n in 1..=3 {
        d.start("conductor", Some(n));
    }

    let mut seen = BTreeSet::new();
    for tok in [&admin, &demo] {
        let (s, v) = d
            .call(Method::GET, "/clustertemplates", Some(tok), None)
            .await;
        assert_eq!(s, 200, "{v}");
        for t in v["clustertemplates"].as_array().unwrap() {
            seen.insert(t["uuid"].as_str().unwrap().to_string());
        }
    }
    assert!(
        templates.is_subset(&seen),
        "lost templates: {:?}",
        templates.difference(&seen).collect::<Vec<_>>()
    );

    let (s, v) = d
        .call(
            Method::GET,
            &format!("/clusters/{done}"),
            Some(tok_of_tpl),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "CREATE_COMPLETE");
    let (_, v) = d
        .wait_cluster(tok_of_tpl, &inflight, Duration::from_secs(90), |s, v| {
            s == 200 && v["status"] != "CREATE_IN_PROGRESS"
        })
        .await;
    assert_eq!(
        v["status"], "CREATE_COMPLETE",
        "in-flight create resumed after full restart: {v}"
    );
    assert_eq!(stacks_named(&d, "dur-inflight-").await.len(), 1);
}
