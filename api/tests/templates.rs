//! Cluster templates: create, list, show, patch, delete, validation and visibility.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};

fn body(extra: Value) -> Value {
    let mut b = json!({
        "name": "k8s-tmpl", "coe": "kubernetes", "image_id": "fedora-coreos-40",
        "external_network_id": "public", "flavor_id": "m1.small", "master_flavor_id": "m1.small",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() && k.starts_with('-') {
            b.as_object_mut().unwrap().remove(&k[1..]);
        } else {
            b[k] = v.clone();
        }
    }
    b
}

#[tokio::test]
async fn create_returns_201_location_and_the_full_template() {
    let h = harness();
    // What the openstack CLI sends: every field, nulls included.
    let cli = json!({"name": "k8s-tmpl", "image_id": "fedora-coreos-40", "keypair_id": null,
        "external_network_id": "public", "coe": "kubernetes", "fixed_network": null,
        "fixed_subnet": null, "network_driver": null, "volume_driver": null, "driver": null,
        "dns_nameserver": "8.8.8.8", "flavor_id": "m1.small", "master_flavor_id": "m1.small",
        "docker_volume_size": null, "docker_storage_driver": "overlay2", "http_proxy": null,
        "https_proxy": null, "no_proxy": null, "labels": {"kube_tag": "v1.27.0", "foo": "bar"},
        "tls_disabled": false, "public": false, "registry_enabled": false,
        "insecure_registry": null, "server_type": "vm", "master_lb_enabled": false, "tags": "t1"});
    let r = h.post("/v1/clustertemplates", "member-a", cli).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let t = &r.body;
    let uuid = t["uuid"].as_str().unwrap();
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://magnum.test:9511/v1/clustertemplates/{uuid}")
    );
    assert_eq!(t["cluster_distro"], "fedora-coreos");
    assert_eq!(t["network_driver"], "flannel");
    assert_eq!(t["driver"], Value::Null);
    assert_eq!(t["project_id"], PROJECT_A);
    assert_eq!(t["user_id"], "alice-id");
    assert_eq!(t["floating_ip_enabled"], true);
    assert_eq!(t["hidden"], false);
    assert_eq!(t["labels"], json!({"foo": "bar", "kube_tag": "v1.27.0"}));
    assert_eq!(t["updated_at"], Value::Null);
    assert!(t["created_at"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(
        t["links"],
        json!([{"href": format!("http://magnum.test:9511/v1/clustertemplates/{uuid}"), "rel": "self"},
               {"href": format!("http://magnum.test:9511/clustertemplates/{uuid}"), "rel": "bookmark"}])
    );
    // Magnum's key order (WSME declaration order).
    assert!(r.raw.starts_with("{\"uuid\":"), "{}", r.raw);
    let pos = |k: &str| r.raw.find(&format!("\"{k}\":")).unwrap();
    assert!(pos("cluster_distro") < pos("links") && pos("links") < pos("http_proxy"));
    assert!(pos("driver") > pos("tags") && pos("updated_at") > pos("created_at"));
    // Persisted in project A's shard.
    assert_eq!(h.backend.all_templates().len(), 1);
}

#[tokio::test]
async fn create_defaults_name_uuid_and_labels() {
    let h = harness();
    let given = "0a6b9f3c-33f5-4a3e-9a4e-4a5f1ee1b0f1";
    let r = h
        .post(
            "/v1/clustertemplates",
            "member-a",
            body(json!({"-name": null, "uuid": given})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let name = r.body["name"].as_str().unwrap();
    assert!(name.ends_with("-template"), "{name}");
    assert_eq!(r.body["uuid"], given);
    assert_eq!(r.body["labels"], json!({}));
    assert_eq!(r.body["server_type"], "vm");
    // The uuid is honoured, so a second create with it conflicts in the shard.
    let r = h
        .post(
            "/v1/clustertemplates",
            "member-a",
            body(json!({"uuid": given})),
        )
        .await;
    assert_error(&r, 409, "already exists");
}

#[tokio::test]
async fn legacy_drivers_are_accepted() {
    let h = harness();
    let r = h
        .post(
            "/v1/clustertemplates",
            "member-a",
            body(json!({"coe": "swarm", "image_id": "fedora-atomic-29"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.body["network_driver"], "docker");
    assert_eq!(r.body["cluster_distro"], "fedora-atomic");
}

#[tokio::test]
async fn legacy_coe_rules() {
    let h = harness();
    let ok: Vec<(Value, &str)> = vec![
        (
            json!({"coe": "swarm", "image_id": "fedora-atomic-29", "network_driver": "flannel", "volume_driver": "rexray"}),
            "flannel",
        ),
        (
            json!({"coe": "swarm-mode", "image_id": "fedora-atomic-29"}),
            "docker",
        ),
        (
            json!({"coe": "mesos", "image_id": "ubuntu-22", "volume_driver": "rexray"}),
            "docker",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-29"}),
            "flannel",
        ),
    ];
    for (extra, net) in ok {
        let r = h
            .post("/v1/clustertemplates", "member-a", body(extra.clone()))
            .await;
        assert_eq!(r.status, 201, "{extra}: {}", r.raw);
        assert_eq!(r.body["network_driver"], net, "{extra}");
    }
    let bad: Vec<(Value, u16, &str)> = vec![
        (json!({"coe": "swarm-mode", "image_id": "fedora-atomic-29", "network_driver": "flannel"}), 400,
         "Network driver type flannel is not supported, expecting a docker/unspecified network driver."),
        (json!({"coe": "mesos", "image_id": "ubuntu-22", "network_driver": "flannel"}), 400,
         "Network driver type flannel is not supported, expecting a docker/unspecified network driver."),
        (json!({"coe": "swarm", "image_id": "fedora-atomic-29", "volume_driver": "cinder"}), 400,
         "Volume driver type cinder is not supported, expecting a rexray/unspecified volume driver."),
        (json!({"coe": "swarm", "image_id": "fedora-atomic-29", "server_type": "bm"}), 400,
         "Server type bm is not supported, expecting a vm/unspecified server type."),
        (json!({"coe": "dcos", "image_id": "fedora-atomic-29", "server_type": "bm"}), 400,
         "Server type bm is not supported, expecting a vm/unspecified server type."),
        (json!({"coe": "mesos", "image_id": "fedora-atomic-29"}), 400,
         "Cluster type (vm, fedora-atomic, mesos) not supported."),
    ];
    for (extra, status, detail) in bad {
        let r = h
            .post("/v1/clustertemplates", "member-a", body(extra.clone()))
            .await;
        assert_error(&r, status, detail);
    }
}

#[tokio::test]
async fn create_validation_errors() {
    let h = harness();
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"-coe": null}), 400, "Invalid input for field/attribute coe. Value: 'None'. Mandatory field missing."),
        (json!({"-image_id": null}), 400, "Invalid input for field/attribute image_id. Value: 'None'. Mandatory field missing."),
        (json!({"coe": "nomad"}), 400, "Invalid input for field/attribute coe. Value: 'nomad'. Value should be one of: kubernetes"),
        (json!({"server_type": "vz"}), 400, "Invalid input for field/attribute server_type. Value: 'vz'. Value should be one of: vm, bm"),
        (json!({"foo": 1}), 400, "Unknown attribute for argument cluster_template: foo"),
        (json!({"project_id": "x"}), 400, "Invalid input for field/attribute project_id. Value: 'x'. Cannot set read only field."),
        (json!({"name": ""}), 400, "Value should have a minimum character requirement of 1"),
        (json!({"name": 5}), 400, "Invalid input for field/attribute name. Value: '5'. Value should be string"),
        (json!({"apiserver_port": 80}), 400, "Invalid input for field/attribute apiserver_port. Value: '80'. Value should be greater or equal to 1024"),
        (json!({"docker_volume_size": "big"}), 400, "invalid literal for int() with base 10: 'big'"),
        (json!({"docker_volume_size": 0}), 400, "Value should be greater or equal to 1"),
        (json!({"tls_disabled": "maybe"}), 400, "Unrecognized value 'maybe', acceptable values are"),
        (json!({"labels": ["a"]}), 400, "Value not a valid dict"),
        (json!({"labels": {"a": {"b": 1}}}), 400, "Wrong type"),
        (json!({"dns_nameserver": "8.8.8"}), 400, "Expected a single dns address or comma separated dns list, but received 8.8.8."),
        (json!({"uuid": "not-a-uuid"}), 400, "Expected a uuid but received not-a-uuid."),
        (json!({"network_driver": "weave"}), 400, "Network driver type weave is not supported, expecting a flannel/calico/cilium/unspecified network driver."),
        (json!({"network_driver": "cilium"}), 400, "Network driver type cilium is not allowed, expecting a flannel/calico/unspecified network driver."),
        (json!({"volume_driver": "rexray"}), 400, "Volume driver type rexray is not supported, expecting a cinder/unspecified volume driver."),
        (json!({"docker_storage_driver": "devicemapper", "docker_volume_size": 2}), 400, "docker volume size 2 GB is not valid, expecting minimum value 3GB for devicemapper storage driver."),
        (json!({"docker_storage_driver": "devicemapper"}), 400, "docker volume size None GB is not valid"),
        (json!({"image_id": "ubuntu-22"}), 400, "Cluster type (vm, ubuntu, kubernetes) not supported."),
        (json!({"server_type": "bm"}), 400, "Cluster type (bm, fedora-coreos, kubernetes) not supported."),
        (json!({"driver": "nope", "cluster_distro": "fedora-coreos"}), 400, "Cluster driver (nope) not supported."),
        (json!({"image_id": "missing-image"}), 400, "Image missing-image could not be found."),
        (json!({"image_id": "dup-image"}), 409, "Multiple images exist with same name dup-image"),
        (json!({"image_id": "secret-image"}), 403, "Not authorized for image secret-image."),
        (json!({"image_id": "no-distro", "cluster_distro": "fedora-coreos", "driver": "k8s_fedora_coreos_v1"}), 400, "Image no-distro doesn't contain os_distro field."),
        (json!({"flavor_id": "m1.huge"}), 400, "Unable to find flavor m1.huge."),
        (json!({"master_flavor_id": "m9"}), 400, "Unable to find flavor m9."),
        (json!({"external_network_id": "nowhere"}), 400, "Unable to find external network nowhere."),
        (json!({"external_network_id": "dup-net"}), 409, "Multiple external networks exist with same name 'dup-net'"),
        (json!({"fixed_network": "nowhere"}), 400, "Unable to find fixed network nowhere."),
        (json!({"fixed_subnet": "nowhere"}), 400, "Unable to find fixed subnet nowhere."),
        (json!({"flavor_id": "m1.nodisk"}), 400, "Flavor with zero root volume size is not supported when boot_volume_size is zero."),
        (json!({"public": true}), 403, "Not authorized to set public or hidden flag for cluster template."),
        (json!({"hidden": true}), 403, "Not authorized to set public or hidden flag for cluster template."),
        (json!({"image_id": "down-image"}), 503, "test: glance down"),
    ];
    for (extra, status, detail) in cases {
        let r = h
            .post("/v1/clustertemplates", "member-a", body(extra.clone()))
            .await;
        assert_error(&r, status, detail);
        assert_nothing_persisted(&h, 0);
    }
    // A zero-disk flavor is fine with a boot volume.
    let r = h
        .post(
            "/v1/clustertemplates",
            "member-a",
            body(json!({"flavor_id": "m1.nodisk", "labels": {"boot_volume_size": "10"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
}

#[tokio::test]
async fn create_needs_member_and_publish_needs_admin() {
    let h = harness();
    let r = h
        .post("/v1/clustertemplates", "reader-a", body(json!({})))
        .await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow clustertemplate:create to be performed.",
    );
    // Invalid input is reported before the policy check.
    let r = h
        .post(
            "/v1/clustertemplates",
            "reader-a",
            body(json!({"coe": "x"})),
        )
        .await;
    assert_error(&r, 400, "Value should be one of");
    assert_nothing_persisted(&h, 0);
    let r = h
        .post(
            "/v1/clustertemplates",
            "admin-token",
            body(json!({"public": true, "hidden": true})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.body["public"], true);
}

#[tokio::test]
async fn show_by_uuid_or_name_and_ambiguity() {
    let h = harness();
    let t = h.template("member-a", json!({})).await;
    let uuid = t["uuid"].as_str().unwrap();
    for ident in [uuid, "k8s-tmpl"] {
        let r = h
            .get(&format!("/v1/clustertemplates/{ident}"), "reader-a")
            .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body, t);
    }
    let r = h.get("/v1/clustertemplates/nope", "member-a").await;
    assert_error(&r, 404, "ClusterTemplate nope could not be found.");
    h.template("member-a", json!({})).await;
    let r = h.get("/v1/clustertemplates/k8s-tmpl", "member-a").await;
    assert_error(
        &r,
        409,
        "Multiple ClusterTemplates exist with same name. Please use the ClusterTemplate uuid instead.",
    );
    // A caller without any role sees nothing private.
    let r = h
        .get(&format!("/v1/clustertemplates/{uuid}"), "norole-a")
        .await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow clustertemplate:get to be performed.",
    );
}

#[tokio::test]
async fn visibility_across_projects_and_shards() {
    let h = harness();
    let private = h.template("member-a", json!({"name": "private-a"})).await;
    let public = h
        .template("admin-token", json!({"name": "public-a", "public": true}))
        .await;
    let hidden = h
        .template(
            "admin-token",
            json!({"name": "hidden-a", "public": true, "hidden": true}),
        )
        .await;
    let own_b = h.template("member-b", json!({"name": "own-b"})).await;

    let names = |r: &Resp| -> Vec<String> {
        let mut v: Vec<String> = r.body["clustertemplates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    // Project B: its own, and public-not-hidden from project A's shard.
    let r = h.get("/v1/clustertemplates", "member-b").await;
    assert_eq!(names(&r), vec!["own-b", "public-a"]);
    // Project A member: own (private, public, hidden, all owned by project A).
    let r = h.get("/v1/clustertemplates/", "member-a").await;
    assert_eq!(names(&r), vec!["hidden-a", "private-a", "public-a"]);
    // Admin: everything, all projects.
    let r = h.get("/v1/clustertemplates/detail", "admin-token").await;
    assert_eq!(
        names(&r),
        vec!["hidden-a", "own-b", "private-a", "public-a"]
    );

    // GET one: public ones from another shard are visible, private ones are 404.
    for t in [&public, &hidden] {
        let r = h
            .get(
                &format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap()),
                "member-b",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.raw);
    }
    let r = h.get("/v1/clustertemplates/public-a", "reader-b").await;
    assert_eq!(r.status, 200);
    let pid = private["uuid"].as_str().unwrap();
    let r = h
        .get(&format!("/v1/clustertemplates/{pid}"), "member-b")
        .await;
    assert_error(
        &r,
        404,
        &format!("ClusterTemplate {pid} could not be found."),
    );
    let r = h.get("/v1/clustertemplates/private-a", "member-b").await;
    assert_error(&r, 404, "ClusterTemplate private-a could not be found.");
    // Admin reads another project's private template.
    let r = h
        .get(
            &format!("/v1/clustertemplates/{}", own_b["uuid"].as_str().unwrap()),
            "admin-token",
        )
        .await;
    assert_eq!(r.status, 200);

    // Another project can neither delete nor patch them.
    let before = h.backend.command_count();
    let r = h
        .delete(&format!("/v1/clustertemplates/{pid}"), "member-b")
        .await;
    assert_error(&r, 404, "could not be found");
    let r = h.delete("/v1/clustertemplates/public-a", "member-b").await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow clustertemplate:delete to be performed.",
    );
    let r = h
        .patch(
            "/v1/clustertemplates/public-a",
            "member-b",
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow clustertemplate:update to be performed.",
    );
    assert_nothing_persisted(&h, before);
}

#[tokio::test]
async fn patch_like_the_cli() {
    let h = harness();
    h.template("member-a", json!({})).await;
    let r = h
        .patch(
            "/v1/clustertemplates/k8s-tmpl",
            "member-a",
            json!([{"op": "replace", "path": "/name", "value": "k8s-tmpl2"},
                   {"op": "replace", "path": "/docker_volume_size", "value": 10},
                   {"op": "replace", "path": "/tls_disabled", "value": "True"},
                   {"op": "add", "path": "/labels/a", "value": "b"},
                   {"op": "remove", "path": "/labels/foo"},
                   {"op": "add", "path": "/http_proxy", "value": "http://proxy:3128"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let t = &r.body;
    assert_eq!(t["name"], "k8s-tmpl2");
    assert_eq!(t["docker_volume_size"], 10);
    assert_eq!(t["tls_disabled"], true);
    assert_eq!(t["labels"], json!({"a": "b", "kube_tag": "v1.27.0"}));
    assert_eq!(t["http_proxy"], "http://proxy:3128");
    assert!(t["updated_at"].is_string());
    // Python-literal label strings, as python-magnumclient sends them.
    let r = h
        .patch(
            "/v1/clustertemplates/k8s-tmpl2",
            "member-a",
            json!([{"op": "replace", "path": "/labels", "value": "{'kube_tag': 'v1.27.3', 'n': 3}"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["labels"], json!({"kube_tag": "v1.27.3", "n": "3"}));
    // Remove resets a defaulted attribute and nulls the others.
    let r = h
        .patch(
            "/v1/clustertemplates/k8s-tmpl2",
            "member-a",
            json!([{"op": "remove", "path": "/floating_ip_enabled"},
                   {"op": "remove", "path": "/http_proxy"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["floating_ip_enabled"], true);
    assert_eq!(r.body["http_proxy"], Value::Null);
}

#[tokio::test]
async fn patch_errors() {
    let h = harness();
    h.template("member-a", json!({})).await;
    let before = h.backend.command_count();
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!([{"op": "replace", "path": "/uuid", "value": "x"}]), 400, "'/uuid' is an internal attribute and can not be updated"),
        (json!([{"op": "replace", "path": "/project_id", "value": "x"}]), 400, "'/project_id' is an internal attribute"),
        (json!([{"op": "remove", "path": "/image_id"}]), 400, "'/image_id' is a mandatory attribute and can not be removed"),
        (json!([{"op": "remove", "path": "/network_driver"}]), 400, "'/network_driver' is a mandatory attribute"),
        (json!([{"op": "replace", "path": "/name"}]), 400, "'add' and 'replace' operations needs value"),
        (json!([{"op": "add", "path": "/name", "value": "x"}]), 400, "The attribute /name has existed, please use 'replace' operation instead."),
        (json!([{"op": "add", "path": "/foo", "value": "x"}]), 400, "Adding a new attribute /foo to the root of the resource is not allowed."),
        (json!([{"op": "replace", "path": "/foo", "value": "x"}]), 400, "Couldn't apply patch '[{'path': '/foo', 'op': 'replace', 'value': 'x'}]'. Reason: can't replace a non-existent object 'foo'"),
        (json!([{"op": "remove", "path": "/labels/nope"}]), 400, "can't remove a non-existent object 'nope'"),
        (json!([{"op": "move", "from": "/uuid", "path": "/id"}]), 400, "Unknown attribute for argument patch: from"),
        (json!([{"op": "copy", "path": "/name", "value": "x"}]), 400, "Value should be one of: add, replace, remove"),
        (json!([{"op": "replace", "path": "name", "value": "x"}]), 400, "Value should match the pattern"),
        (json!([{"op": "replace", "path": "/name", "value": 1.5}]), 400, "Wrong type"),
        (json!({"op": "replace", "path": "/name", "value": "x"}), 400, "Value not a valid list"),
        (json!([{"op": "replace", "path": "/labels", "value": "{'a': "}]), 400, "Couldn't apply patch"),
        (json!([{"op": "replace", "path": "/coe", "value": "nomad"}]), 400, "Requested COE type nomad is not supported."),
        (json!([{"op": "replace", "path": "/network_driver", "value": "weave"}]), 400, "Network driver type weave is not supported"),
        (json!([{"op": "replace", "path": "/volume_driver", "value": "rexray"}]), 400, "Volume driver type rexray is not supported"),
        (json!([{"op": "replace", "path": "/apiserver_port", "value": 1}]), 400, "Value should be greater or equal to 1024"),
        (json!([{"op": "replace", "path": "/server_type", "value": "vz"}]), 400, "Value should be one of: vm, bm"),
        (json!([{"op": "replace", "path": "/image_id", "value": "missing"}]), 400, "Image missing could not be found."),
        (json!([{"op": "replace", "path": "/flavor_id", "value": "m1.nodisk"}]), 400, "Flavor with zero root volume size"),
        (json!([{"op": "replace", "path": "/public", "value": true}]), 403, "Not authorized to set public or hidden flag for cluster template."),
    ];
    for (patch, status, detail) in cases {
        let r = h
            .patch("/v1/clustertemplates/k8s-tmpl", "member-a", patch.clone())
            .await;
        assert_error(&r, status, detail);
        assert_nothing_persisted(&h, before);
    }
    let r = h
        .patch(
            "/v1/clustertemplates/k8s-tmpl",
            "reader-a",
            json!([{"op": "replace", "path": "/name", "value": "y"}]),
        )
        .await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow clustertemplate:update to be performed.",
    );
    let r = h
        .patch(
            "/v1/clustertemplates/nope",
            "member-a",
            json!([{"op": "replace", "path": "/name", "value": "y"}]),
        )
        .await;
    assert_error(&r, 404, "ClusterTemplate nope could not be found.");
    assert_nothing_persisted(&h, before);
    // Admin may publish.
    let r = h
        .patch(
            "/v1/clustertemplates/k8s-tmpl",
            "admin-token",
            json!([{"op": "replace", "path": "/public", "value": true}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["public"], true);
}

#[tokio::test]
async fn referenced_template_restrictions_and_delete() {
    let h = harness();
    let t = h.template("member-a", json!({})).await;
    let uuid = t["uuid"].as_str().unwrap().to_string();
    let c = h
        .cluster(
            "member-a",
            json!({"cluster_template_id": "k8s-tmpl", "name": "k8s"}),
        )
        .await;
    // In use: renaming alone is fine, anything else is 400, delete is 400.
    let r = h
        .patch(
            "/v1/clustertemplates/k8s-tmpl",
            "member-a",
            json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = h
        .patch(
            "/v1/clustertemplates/renamed",
            "member-a",
            json!([{"op": "replace", "path": "/docker_volume_size", "value": 5}]),
        )
        .await;
    assert_error(
        &r,
        400,
        &format!("ClusterTemplate {uuid} is referenced by one or multiple clusters."),
    );
    let r = h.delete("/v1/clustertemplates/renamed", "member-a").await;
    assert_error(&r, 400, "is referenced by one or multiple clusters.");
    assert_eq!(h.backend.all_templates().len(), 1);
    // Another project cannot remove the cluster either.
    let r = h.delete(&format!("/v1/clusters/{c}"), "member-b").await;
    assert_error(&r, 404, "could not be found");
}

#[tokio::test]
async fn delete_template() {
    let h = harness();
    let t = h.template("member-a", json!({})).await;
    let r = h.delete("/v1/clustertemplates/k8s-tmpl", "reader-a").await;
    assert_error(
        &r,
        403,
        "Policy doesn't allow clustertemplate:delete to be performed.",
    );
    let r = h.delete("/v1/clustertemplates/k8s-tmpl", "member-a").await;
    assert_eq!(r.status, 204);
    assert!(r.raw.is_empty());
    assert!(h.backend.all_templates().is_empty());
    let r = h
        .get(
            &format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap()),
            "member-a",
        )
        .await;
    assert_error(&r, 404, "could not be found");
    let r = h.delete("/v1/clustertemplates/k8s-tmpl", "member-a").await;
    assert_error(&r, 404, "ClusterTemplate k8s-tmpl could not be found.");
    // Admin deletes another project's template.
    h.template("member-b", json!({"name": "b-tmpl"})).await;
    let r = h.delete("/v1/clustertemplates/b-tmpl", "admin-token").await;
    assert_eq!(r.status, 204, "{}", r.raw);
}

#[tokio::test]
async fn patch_retries_after_losing_a_version_race() {
    let h = harness();
    h.template("member-a", json!({})).await;
    *h.backend.race_tags.lock().unwrap() = Some("raced".into());
    let r = h
        .patch(
            "/v1/clustertemplates/k8s-tmpl",
            "member-a",
            json!([{"op": "replace", "path": "/name", "value": "mine"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // Both updates survive: the concurrent one (tags) and ours, recomputed on top of it.
    assert_eq!(r.body["name"], "mine");
    assert_eq!(r.body["tags"], "raced");
    let stored = h.backend.all_templates();
    assert_eq!(stored[0].version, 2);
}
