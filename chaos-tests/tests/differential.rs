//! Differential test against upstream Magnum (23.0.0 under `peers.sh`, no-op driver): the same
//! requests go to it and to ours; status codes, Magnum's headers and the shape of every JSON body
//! (field names and types; ids, timestamps and other values ignored) must agree, except for the
//! differences listed with their reasons in `chaos-tests/DIFFERENCES.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use magnum_chaos_tests::differential::{self, Step, Target};
use magnum_chaos_tests::{peers, repo_root, Deployment, Options};
use reqwest::Method;
use serde_json::json;
use std::collections::HashMap;

fn scenario() -> Vec<Step> {
    use Method as M;
    let tmpl = json!({
        "name": "dt-tmpl-{run}", "coe": "kubernetes", "image_id": "{image}",
        "external_network_id": "public", "flavor_id": "m1.small", "master_flavor_id": "m1.small",
        "keypair_id": null, "network_driver": "flannel", "volume_driver": null, "driver": null,
        "dns_nameserver": "8.8.8.8", "fixed_network": null, "fixed_subnet": null,
        "docker_volume_size": null, "docker_storage_driver": "overlay2", "http_proxy": null,
        "https_proxy": null, "no_proxy": null, "labels": {"kube_tag": "v1.27.0", "foo": "bar"},
        "tls_disabled": false, "public": false, "registry_enabled": false,
        "insecure_registry": null, "server_type": "vm", "master_lb_enabled": false, "tags": "t1"
    });
    let cluster = json!({
        "name": "dt-k8s-{run}", "cluster_template_id": "{ct}", "keypair": "{keypair}",
        "master_count": 1, "node_count": 1, "create_timeout": 30, "labels": {"x": "y"},
        "merge_labels": true
    });
    let csr = "-----BEGIN CERTIFICATE REQUEST-----\nnot a csr\n-----END CERTIFICATE REQUEST-----";
    vec![
        Step::new("root", M::GET, "/").version(None),
        Step::new("v1", M::GET, "/v1").version(None),
        Step::new("v1 at 1.99", M::GET, "/v1/clusters").version(Some("1.99")),
        Step::new("bad version header", M::GET, "/v1/clusters").version(Some("one.two")),
        Step::new("template create", M::POST, "/v1/clustertemplates")
            .body(tmpl.clone())
            .save("ct", "/uuid"),
        Step::new(
            "template create missing image",
            M::POST,
            "/v1/clustertemplates",
        )
        .body(json!({"name": "x", "coe": "kubernetes", "external_network_id": "public"})),
        Step::new(
            "template create unknown field",
            M::POST,
            "/v1/clustertemplates",
        )
        .body(json!({"name": "x", "coe": "kubernetes", "image_id": "{image}", "bogus": 1})),
        Step::new("template create bad coe", M::POST, "/v1/clustertemplates")
            .body(json!({"name": "x", "coe": "nomad", "image_id": "{image}"})),
        Step::new(
            "template create bad network driver",
            M::POST,
            "/v1/clustertemplates",
        )
        .body(
            json!({"name": "x", "coe": "kubernetes", "image_id": "{image}",
                     "external_network_id": "public", "network_driver": "weave"}),
        ),
        Step::new("template list", M::GET, "/v1/clustertemplates"),
        Step::new("template detail", M::GET, "/v1/clustertemplates/detail"),
        Step::new(
            "template list paged",
            M::GET,
            "/v1/clustertemplates/?limit=1&sort_key=name&sort_dir=asc",
        ),
        Step::new(
            "template list limit 0",
            M::GET,
            "/v1/clustertemplates?limit=0",
        ),
        Step::new(
            "template list bad sort key",
            M::GET,
            "/v1/clustertemplates?sort_key=nope",
        ),
        Step::new(
            "template show by name",
            M::GET,
            "/v1/clustertemplates/dt-tmpl-{run}",
        ),
        Step::new(
            "template show missing",
            M::GET,
            "/v1/clustertemplates/1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        ),
        Step::new("template update", M::PATCH, "/v1/clustertemplates/{ct}").body(json!([
            {"op": "replace", "path": "/docker_volume_size", "value": 10},
            {"op": "add", "path": "/labels/a", "value": "b"},
            {"op": "remove", "path": "/labels/foo"}
        ])),
        Step::new(
            "template update internal path",
            M::PATCH,
            "/v1/clustertemplates/{ct}",
        )
        .body(json!([{"op": "replace", "path": "/uuid", "value": "x"}])),
        Step::new("cluster create", M::POST, "/v1/clusters")
            .body(cluster.clone())
            .save("cluster", "/uuid")
            .wait("/v1/clusters/{cluster}"),
        Step::new("cluster create missing template", M::POST, "/v1/clusters")
            .body(json!({"name": "x", "cluster_template_id": "no-such-template"})),
        Step::new("cluster create even masters", M::POST, "/v1/clusters")
            .body(json!({"name": "x", "cluster_template_id": "{ct}", "master_count": 2})),
        Step::new("cluster create bad name", M::POST, "/v1/clusters")
            .body(json!({"name": "1-bad", "cluster_template_id": "{ct}"})),
        Step::new("cluster list", M::GET, "/v1/clusters"),
        Step::new(
            "cluster list paged",
            M::GET,
            "/v1/clusters/?limit=5&sort_key=name&sort_dir=desc",
        ),
        Step::new("cluster detail", M::GET, "/v1/clusters/detail"),
        Step::new("cluster show", M::GET, "/v1/clusters/dt-k8s-{run}"),
        Step::new("cluster show at 1.1", M::GET, "/v1/clusters/dt-k8s-{run}").version(None),
        Step::new(
            "cluster show missing",
            M::GET,
            "/v1/clusters/1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        ),
        Step::new("cluster update labels", M::PATCH, "/v1/clusters/{cluster}")
            .body(json!([{"op": "add", "path": "/labels/a", "value": "b"}])),
        Step::new(
            "cluster update node_count",
            M::PATCH,
            "/v1/clusters/{cluster}",
        )
        .body(json!([{"op": "replace", "path": "/node_count", "value": 2}]))
        .wait("/v1/clusters/{cluster}"),
        Step::new(
            "cluster resize at 1.6",
            M::POST,
            "/v1/clusters/{cluster}/actions/resize",
        )
        .version(Some("1.6"))
        .body(json!({"node_count": 1})),
        Step::new(
            "cluster resize",
            M::POST,
            "/v1/clusters/{cluster}/actions/resize",
        )
        .body(json!({"node_count": 1, "nodegroup": "default-worker"}))
        .wait("/v1/clusters/{cluster}"),
        Step::new(
            "nodegroup list",
            M::GET,
            "/v1/clusters/{cluster}/nodegroups/",
        ),
        Step::new(
            "nodegroup list at 1.8",
            M::GET,
            "/v1/clusters/{cluster}/nodegroups/",
        )
        .version(Some("1.8")),
        Step::new(
            "nodegroup list by role",
            M::GET,
            "/v1/clusters/{cluster}/nodegroups/?limit=3&role=worker",
        ),
        Step::new(
            "nodegroup show",
            M::GET,
            "/v1/clusters/{cluster}/nodegroups/default-worker",
        ),
        Step::new("ca show", M::GET, "/v1/certificates/{cluster}"),
        Step::new("ca sign bad csr", M::POST, "/v1/certificates")
            .body(json!({"cluster_uuid": "{cluster}", "csr": csr})),
        Step::new("quota create", M::POST, "/v1/quotas").body(
            json!({"project_id": "{quota_project}", "resource": "Cluster", "hard_limit": 10}),
        ),
        Step::new("quota create duplicate", M::POST, "/v1/quotas").body(
            json!({"project_id": "{quota_project}", "resource": "Cluster", "hard_limit": 10}),
        ),
        Step::new("quota list", M::GET, "/v1/quotas"),
        Step::new("quota show", M::GET, "/v1/quotas/{quota_project}/Cluster"),
        Step::new(
            "quota update",
            M::PATCH,
            "/v1/quotas/{quota_project}/Cluster",
        )
        .body(json!({"project_id": "{quota_project}", "resource": "Cluster", "hard_limit": 20})),
        Step::new(
            "quota delete",
            M::DELETE,
            "/v1/quotas/{quota_project}/Cluster",
        ),
        Step::new(
            "quota show default",
            M::GET,
            "/v1/quotas/{quota_project}/Cluster",
        ),
        Step::new("stats", M::GET, "/v1/stats?project_id={own_project}"),
        Step::new("stats bad type", M::GET, "/v1/stats?type=bay"),
        Step::new("service list", M::GET, "/v1/mservices"),
        Step::new(
            "template delete in use",
            M::DELETE,
            "/v1/clustertemplates/{ct}",
        ),
        Step::new("cluster delete", M::DELETE, "/v1/clusters/{cluster}")
            .wait("/v1/clusters/{cluster}"),
        Step::new("cluster show deleted", M::GET, "/v1/clusters/{cluster}"),
        Step::new("template delete", M::DELETE, "/v1/clustertemplates/{ct}"),
        Step::new("route not found", M::GET, "/v1/nothing-here"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_requests_same_answers_as_upstream_magnum() {
    peers::ensure_up("magnum");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let quota_project = peers::keystone_admin_project(&http).await;
    let upstream_root = peers::magnum_url().trim_end_matches("/v1").to_string();
    let mut upstream = Target {
        name: "upstream".into(),
        root: upstream_root,
        token: "notused".into(),
        vars: HashMap::from([
            ("image".into(), "ubuntu-k8s".into()),
            ("keypair".into(), "kp".into()),
            // magnum_noauth.py puts every request in this project.
            (
                "own_project".into(),
                "c0ffee00c0ffee00c0ffee00c0ffee00".into(),
            ),
            ("quota_project".into(), quota_project),
        ]),
        http: http.clone(),
    };

    let d = Deployment::up("differential", Options::default());
    let token = d.token("admin", "admin").await;
    let own = own_project(&d, &token).await;
    let demo = {
        let t = d.token("demo", "demo").await;
        own_project(&d, &t).await
    };
    let mut ours = Target {
        name: "ours".into(),
        root: d.api.trim_end_matches("/v1").to_string(),
        token,
        vars: HashMap::from([
            ("image".into(), "fedora-coreos-40".into()),
            ("keypair".into(), "default".into()),
            ("own_project".into(), own),
            ("quota_project".into(), demo),
        ]),
        http,
    };

    // Upstream keeps its state between runs: names unique per run keep lookups unambiguous.
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    for t in [&mut upstream, &mut ours] {
        t.vars.insert("run".into(), run.clone());
    }
    // A quota row left by an interrupted earlier run would turn the create into a 409.
    let cleanup = [Step::new(
        "cleanup",
        Method::DELETE,
        "/v1/quotas/{quota_project}/Cluster",
    )];
    upstream.run(&cleanup).await;
    let steps = scenario();
    let a = upstream.run(&steps).await;
    let b = ours.run(&steps).await;
    let mut diffs = vec![];
    for (i, step) in steps.iter().enumerate() {
        diffs.extend(differential::compare(step, &a[i], &b[i]));
    }
    let path = repo_root().join("chaos-tests/DIFFERENCES.md");
    let accepted = differential::parse_accepted(&std::fs::read_to_string(&path).unwrap());
    let (bad, unused) = differential::judge(&diffs, &accepted);
    println!(
        "MEASURE differential: {} steps, {} differences ({:?}), {} accepted rows, {} unaccepted, {} rows unused",
        steps.len(),
        diffs.len(),
        differential::count_by_kind(&diffs),
        accepted.len(),
        bad.len(),
        unused.len()
    );
    for u in &unused {
        println!(
            "note: accepted row no longer needed: | {} | {} | {} |",
            u.step, u.kind, u.path
        );
    }
    let report: Vec<String> = bad
        .iter()
        .map(|d| format!("| {} | {} | {} | {} |", d.step, d.kind, d.path, d.detail))
        .collect();
    assert!(
        bad.is_empty(),
        "{} differences from upstream Magnum not in {}:\n{}\n\nupstream/ours bodies of the first: {}\n{}",
        bad.len(),
        path.display(),
        report.join("\n"),
        steps
            .iter()
            .position(|s| s.label == bad[0].step)
            .map(|i| a[i].0.body.to_string())
            .unwrap_or_default(),
        steps
            .iter()
            .position(|s| s.label == bad[0].step)
            .map(|i| b[i].0.body.to_string())
            .unwrap_or_default(),
    );
}

/// The project id a token is scoped to, as our API sees it (`GET /v1/stats` needs an id).
async fn own_project(d: &Deployment, token: &str) -> String {
    let r = d
        .http
        .get(format!("{}/auth/tokens", d.auth_url()))
        .header("X-Auth-Token", token)
        .header("X-Subject-Token", token)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    v["token"]["project"]["id"].as_str().unwrap().to_string()
}
