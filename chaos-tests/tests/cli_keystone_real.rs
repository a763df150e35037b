//! The whole system on the REAL Keystone 30 (peers toolkit): `MAGNUM_KEYSTONE=real
//! deploy/local-cluster.sh up` logs every process in there, cloud-sim's Heat/Nova/Neutron/Glance
//! validate the tokens there, and the real `openstack` CLI finds the API in its catalog. Run as
//! the users `local-cluster.sh` sets up: a member of `demo` (template and cluster lifecycle, a
//! trust made in Keystone, `cluster config`), a reader of `demo`, a member of `alt_demo`, and
//! the admin (quotas). The Keystone is shared with other tests and left running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_chaos_tests::cli::{openstack, Output};
use magnum_chaos_tests::{peers, Deployment, Options};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The real Keystone as its admin, for looking at what Magnum left there.
struct Keystone {
    http: reqwest::Client,
    v3: String,
    token: String,
}

impl Keystone {
    async fn admin(http: &reqwest::Client) -> Keystone {
        let v3 = peers::keystone_url();
        let pw = std::env::var("PEERS_ADMIN_PASSWORD").unwrap_or_else(|_| "secret".into());
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": pw}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
        let r = http
            .post(format!("{v3}/auth/tokens?nocatalog"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "keystone admin login");
        let token = r.headers()["x-subject-token"].to_str().unwrap().to_string();
        Keystone {
            http: http.clone(),
            v3,
            token,
        }
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.v3))
            .header("X-Auth-Token", &self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    async fn id_of(&self, collection: &str, query: &str) -> String {
        let v = self.get(&format!("/{collection}?{query}")).await;
        v[collection][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no {collection} {query}: {v}"))
            .to_string()
    }

    /// The trustee of a cluster (`<uuid>_<project>` in the domain `magnum`) and its trusts.
    async fn trustee(&self, cluster: &Value) -> Option<(String, Vec<Value>)> {
        let domain = self.id_of("domains", "name=magnum").await;
        let name = format!(
            "{}_{}",
            cluster["uuid"].as_str().unwrap(),
            cluster["project_id"].as_str().unwrap()
        );
        let users = self
            .get(&format!("/users?domain_id={domain}&name={name}"))
            .await;
        let id = users["users"].get(0)?["id"].as_str()?.to_string();
        let trusts = self
            .get(&format!("/OS-TRUST/trusts?trustee_user_id={id}"))
            .await;
        Some((id, trusts["trusts"].as_array().cloned().unwrap_or_default()))
    }
}

/// Polls `cluster show` as `user` until its status leaves `from`.
async fn settle(
    os: &impl Fn(&str, &[&str]) -> Output,
    user: &str,
    name: &str,
    from: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let c = os(user, &["coe", "cluster", "show", name, "-f", "json"]).json("cluster show");
        if c["status"] != from {
            return c;
        }
        assert!(Instant::now() < deadline, "cluster stuck: {c}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_on_real_keystone() {
    // Built (or found up to date) first, so that `up` below times the deployment alone.
    magnum_chaos_tests::magnum_bin();
    let started = Instant::now();
    let d = Deployment::up(
        "cli-ks",
        Options {
            real_keystone: true,
            time_scale: 0.2,
            ..Options::default()
        },
    );
    let up_took = started.elapsed();
    let dir = d.dir.clone();
    let os = move |user: &str, args: &[&str]| {
        let rc = match user {
            "admin" => dir.join("openrc"),
            u => dir.join(format!("openrc-{u}")),
        };
        openstack(&rc, args)
    };
    let ks = Keystone::admin(&d.http).await;
    let openrc = std::fs::read_to_string(d.dir.join("openrc")).unwrap();
    assert!(
        openrc.contains(&format!("OS_AUTH_URL={}", ks.v3)),
        "{openrc}"
    );

    // cloud-sim's services take the real Keystone's tokens, not those of its own Keystone.
    let images = format!("{}/image/v2/images", d.sim);
    let r = d
        .http
        .get(&images)
        .header("X-Auth-Token", &ks.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let own = d.token("demo", "demo").await;
    let r = d
        .http
        .get(&images)
        .header("X-Auth-Token", own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A member of demo: template lifecycle (image, flavors, network checked in cloud-sim with
    // the user's real token, found through the region's catalog).
    let t = os(
        "demo",
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
            "--network-driver",
            "flannel",
            "-f",
            "json",
            "ks-tmpl",
        ],
    )
    .json("template create");
    assert_eq!(t["cluster_distro"], "fedora-coreos", "{t}");
    let demo_project = ks.id_of("projects", "name=demo").await;
    assert_eq!(t["project_id"], demo_project.as_str(), "{t}");
    let list = os(
        "demo",
        &["coe", "cluster", "template", "list", "-f", "json"],
    )
    .json("template list");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "ks-tmpl"),
        "{list}"
    );
    let shown = os(
        "demo",
        &[
            "coe", "cluster", "template", "show", "ks-tmpl", "-f", "json",
        ],
    )
    .json("template show");
    assert_eq!(shown["uuid"], t["uuid"]);

    // Cluster create: the conductor makes the trustee and the trust in the real Keystone and
    // the stack in cloud-sim's Heat (found in the catalog, the service token checked there).
    let create_started = Instant::now();
    let out = os(
        "demo",
        &[
            "coe",
            "cluster",
            "create",
            "--cluster-template",
            "ks-tmpl",
            "--master-count",
            "1",
            "--node-count",
            "1",
            "ks",
        ],
    )
    .ok("cluster create");
    assert!(out.contains("accepted"), "{out}");
    let c = settle(&os, "demo", "ks", "CREATE_IN_PROGRESS").await;
    let to_complete = create_started.elapsed();
    assert_eq!(c["status"], "CREATE_COMPLETE", "{c}");
    let api_address = c["api_address"].as_str().unwrap_or_default().to_string();
    // The floating IP range local-cluster.sh gives cloud-sim on the real Keystone: loopback.
    assert!(api_address.starts_with("https://127.24.4."), "{c}");
    let demo_user = ks.id_of("users", "name=demo&domain_id=default").await;
    let (trustee, trusts) = ks.trustee(&c).await.expect("a trustee in Keystone");
    assert_eq!(trusts.len(), 1, "{trusts:?}");
    assert_eq!(trusts[0]["trustor_user_id"], demo_user.as_str());
    assert_eq!(trusts[0]["project_id"], demo_project.as_str());
    assert_eq!(trusts[0]["impersonation"], true);

    // `cluster config`: a kubeconfig with the cluster's address and a certificate just signed.
    let kube = d.dir.join("kube");
    std::fs::create_dir_all(&kube).unwrap();
    let kube_arg = kube.to_string_lossy().to_string();
    os(
        "demo",
        &[
            "coe", "cluster", "config", "ks", "--dir", &kube_arg, "--force",
        ],
    )
    .ok("cluster config");
    let kubeconfig = std::fs::read_to_string(kube.join("config")).unwrap();
    assert!(
        kubeconfig.contains(&format!("server: {api_address}")),
        "{kubeconfig}"
    );
    assert!(
        kubeconfig.contains("client-certificate-data: "),
        "{kubeconfig}"
    );

    // A reader of demo reads, and may change nothing.
    let list = os("reader", &["coe", "cluster", "list", "-f", "json"]).json("reader list");
    assert!(
        list.as_array().unwrap().iter().any(|x| x["name"] == "ks"),
        "{list}"
    );
    os("reader", &["coe", "cluster", "show", "ks", "-f", "json"]).json("reader show");
    let denied = [
        (
            vec![
                "coe",
                "cluster",
                "create",
                "--cluster-template",
                "ks-tmpl",
                "ks-r",
            ],
            "cluster:create",
        ),
        (vec!["coe", "cluster", "delete", "ks"], "cluster:delete"),
        (
            vec!["coe", "cluster", "template", "delete", "ks-tmpl"],
            "clustertemplate:delete",
        ),
    ];
    for (args, rule) in denied {
        let err = os("reader", &args).refused(&format!("reader {args:?}"));
        assert!(
            err.contains(&format!("Policy doesn't allow {rule} to be performed"))
                && err.contains("HTTP 403"),
            "{args:?}: {err}"
        );
    }

    // Another project's member does not see demo's cluster or template: 404, as Magnum answers.
    let err = os("alt_demo", &["coe", "cluster", "show", "ks"]).refused("alt_demo show");
    assert!(err.contains("Cluster ks could not be found"), "{err}");
    let err = os("alt_demo", &["coe", "cluster", "delete", "ks"]).refused("alt_demo delete");
    assert!(err.contains("could not be found"), "{err}");
    let err = os(
        "alt_demo",
        &["coe", "cluster", "template", "show", "ks-tmpl"],
    )
    .refused("alt_demo template show");
    assert!(err.contains("could not be found"), "{err}");
    let list = os("alt_demo", &["coe", "cluster", "list", "-f", "json"]).json("alt_demo list");
    assert_eq!(list, json!([]), "{list}");

    // Quotas: the admin sets one for demo, a member may not; over it a create is refused.
    let quota_args = |limit: &'static str| {
        vec![
            "coe".to_string(),
            "quotas".into(),
            "create".into(),
            "--project-id".into(),
            demo_project.clone(),
            "--resource".into(),
            "Cluster".into(),
            "--hard-limit".into(),
            limit.into(),
        ]
    };
    let args = quota_args("1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = os("demo", &args).refused("member quotas create");
    assert!(err.contains("HTTP 403"), "{err}");
    let out = os("admin", &args).ok("admin quotas create");
    assert!(out.contains(&demo_project), "{out}");
    let err = os(
        "demo",
        &[
            "coe",
            "cluster",
            "create",
            "--cluster-template",
            "ks-tmpl",
            "ks-2",
        ],
    )
    .refused("create over quota");
    assert!(
        err.contains("You have reached the maximum clusters per project, 1")
            && err.contains("HTTP 403"),
        "{err}"
    );
    os(
        "admin",
        &[
            "coe",
            "quotas",
            "delete",
            "--project-id",
            &demo_project,
            "--resource",
            "Cluster",
        ],
    )
    .ok("quotas delete");

    // Delete: the cluster goes, and with it the trustee and its trust in Keystone.
    os("demo", &["coe", "cluster", "delete", "ks"]).ok("cluster delete");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = os("demo", &["coe", "cluster", "show", "ks", "-f", "json"]);
        if shown.code != 0 {
            assert!(
                shown.stderr.contains("could not be found"),
                "{}",
                shown.stderr
            );
            break;
        }
        assert!(Instant::now() < deadline, "not deleted: {}", shown.stdout);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        ks.trustee(&c).await.is_none(),
        "trustee {trustee} outlived its cluster"
    );
    let trusts = ks
        .get(&format!("/OS-TRUST/trusts?trustee_user_id={trustee}"))
        .await;
    assert_eq!(trusts["trusts"], json!([]), "{trusts}");
    os("demo", &["coe", "cluster", "template", "delete", "ks-tmpl"]).ok("template delete");
    let list = os(
        "demo",
        &["coe", "cluster", "template", "list", "-f", "json"],
    )
    .json("template list");
    assert_eq!(list, json!([]), "{list}");

    // `down` takes the deployment's region out of the shared catalog.
    let region = format!("local-cluster-{}", d.port_base);
    assert!(
        !ks.get(&format!("/endpoints?region_id={region}")).await["endpoints"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    d.down();
    let left = ks.get(&format!("/endpoints?region_id={region}")).await;
    assert_eq!(left["endpoints"], json!([]), "{left}");
    println!(
        "MEASURE cli_keystone_real: up {} ms, create → CREATE_COMPLETE {} ms, whole test {} ms",
        up_took.as_millis(),
        to_complete.as_millis(),
        started.elapsed().as_millis()
    );
}
