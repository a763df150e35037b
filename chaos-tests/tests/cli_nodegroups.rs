//! The real `openstack` CLI driving nodegroups and upgrades against the multi-process system:
//! `coe nodegroup create/update/delete` (a separate Heat stack per nodegroup in cloud-sim) and
//! `coe cluster upgrade` (a rolling stack PATCH to the new template's kube_tag), then a
//! cluster delete that takes the nodegroup stacks with it. Request shapes as in
//! shared/tools/peers/captures/captures.txt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_chaos_tests::cli::{openstack, Output};
use magnum_chaos_tests::{Deployment, Options};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn ok(out: &Output, what: &str) -> String {
    assert_eq!(
        out.code, 0,
        "{what} failed:\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out.stdout.clone()
}

fn json(out: &Output, what: &str) -> Value {
    let s = ok(out, what);
    let start = s.find(['{', '[']).unwrap_or(0);
    serde_json::from_str(&s[start..]).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {s}"))
}

/// Polls `show` until `done` holds; every status seen must be one `allowed` names.
async fn wait_for(
    rc: &Path,
    show: &[&str],
    what: &str,
    allowed: &[&str],
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let v = json(&openstack(rc, show), what);
        if done(&v) {
            return v;
        }
        let st = v["status"].as_str().unwrap_or_default();
        assert!(allowed.contains(&st), "{what}: unexpected {st}: {v}");
        assert!(Instant::now() < deadline, "{what} never finished: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn template(rc: &Path, name: &str, kube_tag: &str) -> Value {
    let label = format!("kube_tag={kube_tag}");
    json(
        &openstack(
            rc,
            &[
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
                "--labels",
                &label,
                "-f",
                "json",
                name,
            ],
        ),
        "template create",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_nodegroups_and_upgrade() {
    let d = Deployment::up(
        "cli-ng",
        Options {
            time_scale: 0.3,
            ..Options::default()
        },
    );
    let rc = d.dir.join("openrc");
    let os = |args: &[&str]| openstack(&rc, args);
    template(&rc, "k8s-tmpl", "v1.30.1");
    let t2 = template(&rc, "k8s-tmpl2", "v1.31.0");
    let out = ok(
        &os(&[
            "coe",
            "cluster",
            "create",
            "--cluster-template",
            "k8s-tmpl",
            "--node-count",
            "1",
            "k8s",
        ]),
        "cluster create",
    );
    assert!(out.contains("accepted"), "{out}");
    let cluster_show = ["coe", "cluster", "show", "k8s", "-f", "json"];
    wait_for(
        &rc,
        &cluster_show,
        "cluster create",
        &["CREATE_IN_PROGRESS"],
        |c| c["status"] == "CREATE_COMPLETE",
    )
    .await;

    // nodegroup create: a stack of its own beside the cluster stack.
    let out = ok(
        &os(&[
            "coe",
            "nodegroup",
            "create",
            "k8s",
            "ng1",
            "--node-count",
            "2",
            "--flavor",
            "m1.small",
            "--role",
            "worker",
            "--min-nodes",
            "1",
            "--max-nodes",
            "5",
            "--labels",
            "a=b",
        ]),
        "nodegroup create",
    );
    assert!(out.contains("Request to create nodegroup"), "{out}");
    let ng_show = ["coe", "nodegroup", "show", "k8s", "ng1", "-f", "json"];
    let ng = wait_for(
        &rc,
        &ng_show,
        "nodegroup create",
        &["CREATE_IN_PROGRESS"],
        |n| n["status"] == "CREATE_COMPLETE",
    )
    .await;
    assert_eq!(ng["node_count"], 2, "{ng}");
    assert_eq!(ng["is_default"], false, "{ng}");
    assert_eq!(ng["labels"]["a"], "b", "{ng}");
    assert_eq!(
        ng["node_addresses"].as_array().map(Vec::len),
        Some(2),
        "{ng}"
    );
    let ng_stack = ng["stack_id"].as_str().unwrap().to_string();
    let c = json(&os(&cluster_show), "cluster show");
    assert_eq!(c["status"], "UPDATE_COMPLETE", "{c}");
    assert_eq!(c["node_count"], 3, "{c}");
    assert_ne!(c["stack_id"], ng["stack_id"], "a separate stack");

    let out = ok(
        &os(&[
            "coe",
            "nodegroup",
            "update",
            "k8s",
            "ng1",
            "--min-nodes",
            "1",
            "--max-nodes",
            "6",
        ]),
        "nodegroup update",
    );
    assert!(out.contains("accepted"), "{out}");
    let ng = json(&os(&ng_show), "nodegroup show");
    assert_eq!(ng["max_node_count"], 6, "{ng}");

    // Resize of the new nodegroup PATCHes its own stack.
    ok(
        &os(&["coe", "cluster", "resize", "k8s", "3", "--nodegroup", "ng1"]),
        "cluster resize ng1",
    );
    let ng = wait_for(
        &rc,
        &ng_show,
        "nodegroup resize",
        &["CREATE_COMPLETE", "UPDATE_IN_PROGRESS"],
        |n| n["status"] == "UPDATE_COMPLETE",
    )
    .await;
    assert_eq!(
        ng["node_addresses"].as_array().map(Vec::len),
        Some(3),
        "{ng}"
    );
    assert_eq!(ng["stack_id"], ng_stack.as_str());

    let out = ok(
        &os(&["coe", "nodegroup", "delete", "k8s", "ng1"]),
        "nodegroup delete",
    );
    assert!(out.contains("accepted"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let shown = os(&ng_show);
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
            "nodegroup not deleted: {}",
            shown.stdout
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let c = wait_for(
        &rc,
        &cluster_show,
        "after nodegroup delete",
        &["UPDATE_IN_PROGRESS"],
        |c| c["status"] == "UPDATE_COMPLETE",
    )
    .await;
    assert_eq!(c["node_count"], 1, "{c}");

    // A rolling upgrade of the default nodegroups to the second template's kube_tag.
    let out = ok(
        &os(&[
            "coe",
            "cluster",
            "upgrade",
            "k8s",
            "k8s-tmpl2",
            "--max-batch-size",
            "2",
            "--nodegroup",
            "default-worker",
        ]),
        "cluster upgrade",
    );
    assert!(out.contains("accepted"), "{out}");
    let c = wait_for(
        &rc,
        &cluster_show,
        "cluster upgrade",
        &["UPDATE_COMPLETE", "UPDATE_IN_PROGRESS"],
        |c| c["cluster_template_id"] == t2["uuid"] && c["status"] == "UPDATE_COMPLETE",
    )
    .await;
    assert_eq!(c["labels"]["kube_tag"], "v1.31.0", "{c}");
    assert_eq!(c["coe_version"], "v1.31.0", "{c}");
    // A downgrade is refused.
    let down = os(&["coe", "cluster", "upgrade", "k8s", "k8s-tmpl"]);
    assert!(
        down.code != 0 && down.stderr.contains("downgrade of kube_tag"),
        "{}",
        down.stderr
    );

    // Cluster delete with a nodegroup: its stack goes first, then the cluster's.
    ok(
        &os(&[
            "coe",
            "nodegroup",
            "create",
            "k8s",
            "ng2",
            "--node-count",
            "1",
        ]),
        "nodegroup create ng2",
    );
    wait_for(
        &rc,
        &["coe", "nodegroup", "show", "k8s", "ng2", "-f", "json"],
        "nodegroup create ng2",
        &["CREATE_IN_PROGRESS"],
        |n| n["status"] == "CREATE_COMPLETE",
    )
    .await;
    ok(&os(&["coe", "cluster", "delete", "k8s"]), "cluster delete");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let shown = os(&cluster_show);
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
    // Every stack is gone, each nodegroup stack was created once (no duplicate across
    // retries), and ng2's stack was deleted before the cluster stack.
    let all = d.sim_stacks().await;
    let stacks = all["stacks"].as_array().unwrap();
    let top: Vec<&Value> = stacks.iter().filter(|s| s["parent"].is_null()).collect();
    assert!(
        top.iter().all(|s| s["status"] == "DELETE_COMPLETE"),
        "live stacks: {top:?}"
    );
    for (name, n) in all["creates_by_name"].as_object().unwrap() {
        assert_eq!(n, 1, "stack {name} created {n} times");
    }
    let deleted_at = |pred: &dyn Fn(&str) -> bool| {
        top.iter()
            .find(|s| pred(s["name"].as_str().unwrap_or_default()))
            .and_then(|s| s["deletion_time"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no such stack in {top:?}"))
    };
    let ng2 = deleted_at(&|n| n.starts_with("k8s-ng2-"));
    let cluster = deleted_at(&|n| n.starts_with("k8s-") && !n.starts_with("k8s-ng"));
    assert!(
        ng2 <= cluster,
        "ng2 stack deleted {ng2}, cluster stack {cluster}"
    );
}
