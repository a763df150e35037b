//! The policy matrix (reference §10): every endpoint × {admin, member of the owning project,
//! reader of it, member of another project, no token} → the status Magnum's default policies
//! give. Each cell runs on a fresh deployment, so a mutation in one cell cannot decide another.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use magnum_api::openapi::endpoints::ENDPOINTS;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Callers, in the order of each row's expectations.
const WHO: [Option<&str>; 5] = [
    Some("admin-token"),
    Some("member-a"),
    Some("reader-a"),
    Some("member-b"),
    None,
];

/// What every cell starts from, all in project A (created by member-a): a template `t`
/// referenced by cluster `c` (CREATE_COMPLETE, certificates committed), an unreferenced
/// template `t2`, a federation `f` hosted on `c`, and project A's quota row.
struct World {
    h: Harness,
    t: String,
    t2: String,
    c: String,
    f: String,
}

async fn world() -> World {
    let h = harness();
    let t = h.template("member-a", json!({"name": "t"})).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let t2 = h.template("member-a", json!({"name": "t2"})).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let c = h
        .cluster(
            "member-a",
            json!({"cluster_template_id": t, "name": "c", "node_count": 1}),
        )
        .await;
    h.backend
        .complete_create(0, magnum_proto::ClusterId(c.parse().unwrap()));
    let r = h
        .post(
            "/v1/federations",
            "member-a",
            json!({"name": "f", "hostcluster_id": c, "properties": {"dns-zone": "a.org."}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let f = r.body["uuid"].as_str().unwrap().to_string();
    let r = h
        .post(
            "/v1/quotas",
            "admin-token",
            json!({"project_id": PROJECT_A, "resource": "Cluster", "hard_limit": 10}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    World { h, t, t2, c, f }
}

fn csr() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "admin");
    p.serialize_request(&key).unwrap().pem().unwrap()
}

/// One row: the documented (method, path) it covers, how to build the concrete request from
/// the world, and the expected status per caller of [`WHO`].
struct Row {
    method: &'static str,
    pattern: &'static str,
    request: fn(&World) -> (String, Option<Value>),
    expect: [u16; 5],
}

macro_rules! row {
    ($m:literal $p:literal, |$w:ident| $req:expr, $e:expr) => {
        Row {
            method: $m,
            pattern: $p,
            request: |$w: &World| $req,
            expect: $e,
        }
    };
}

fn template_body() -> Value {
    json!({"name": "new", "coe": "kubernetes", "image_id": "fedora-coreos-40",
           "external_network_id": "public", "flavor_id": "m1.small", "master_flavor_id": "m1.small"})
}

fn rename() -> Value {
    json!([{"op": "replace", "path": "/name", "value": "renamed"}])
}

fn grow() -> Value {
    json!([{"op": "replace", "path": "/node_count", "value": 2}])
}

fn rows() -> Vec<Row> {
    vec![
        row!("get" "/", |_w| ("/".into(), None), [200, 200, 200, 200, 200]),
        row!("get" "/v1", |_w| ("/v1".into(), None), [200, 200, 200, 200, 200]),
        row!("get" "/v1/openapi.json", |_w| ("/v1/openapi.json".into(), None), [200, 200, 200, 200, 200]),
        // Cluster templates: reads need a reader of the owner (or a public template).
        row!("get" "/v1/clustertemplates", |_w| ("/v1/clustertemplates".into(), None), [200, 200, 200, 200, 401]),
        row!("post" "/v1/clustertemplates", |_w| ("/v1/clustertemplates".into(), Some(template_body())), [201, 201, 403, 201, 401]),
        row!("get" "/v1/clustertemplates/detail", |_w| ("/v1/clustertemplates/detail".into(), None), [200, 200, 200, 200, 401]),
        row!("get" "/v1/clustertemplates/{ident}", |w| (format!("/v1/clustertemplates/{}", w.t), None), [200, 200, 200, 404, 401]),
        row!("patch" "/v1/clustertemplates/{ident}", |w| (format!("/v1/clustertemplates/{}", w.t), Some(rename())), [200, 200, 403, 404, 401]),
        row!("delete" "/v1/clustertemplates/{ident}", |w| (format!("/v1/clustertemplates/{}", w.t2), None), [204, 204, 403, 404, 401]),
        // Clusters. Another project's member cannot see project A's private template: 404 (400 up to 1.9).
        row!("get" "/v1/clusters", |_w| ("/v1/clusters".into(), None), [200, 200, 200, 200, 401]),
        row!("post" "/v1/clusters", |w| ("/v1/clusters".into(), Some(json!({"cluster_template_id": w.t, "name": "n"}))), [202, 202, 403, 404, 401]),
        row!("get" "/v1/clusters/detail", |_w| ("/v1/clusters/detail".into(), None), [200, 200, 200, 200, 401]),
        row!("get" "/v1/clusters/{ident}", |w| (format!("/v1/clusters/{}", w.c), None), [200, 200, 200, 404, 401]),
        row!("patch" "/v1/clusters/{ident}", |w| (format!("/v1/clusters/{}", w.c), Some(grow())), [202, 202, 403, 404, 401]),
        row!("delete" "/v1/clusters/{ident}", |w| (format!("/v1/clusters/{}", w.c), None), [204, 204, 403, 404, 401]),
        row!("post" "/v1/clusters/{ident}/actions/resize", |w| (format!("/v1/clusters/{}/actions/resize", w.c), Some(json!({"node_count": 3}))), [202, 202, 403, 404, 401]),
        row!("get" "/v1/clusters/{cluster}/nodegroups", |w| (format!("/v1/clusters/{}/nodegroups", w.c), None), [200, 200, 200, 404, 401]),
        row!("get" "/v1/clusters/{cluster}/nodegroups/{ng}", |w| (format!("/v1/clusters/{}/nodegroups/default-worker", w.c), None), [200, 200, 200, 404, 401]),
        row!("post" "/v1/clusters/{cluster}/nodegroups", |w| (format!("/v1/clusters/{}/nodegroups", w.c), Some(json!({"name": "ng1", "node_count": 1}))), [202, 202, 403, 404, 401]),
        row!("patch" "/v1/clusters/{cluster}/nodegroups/{ng}", |w| (format!("/v1/clusters/{}/nodegroups/default-worker", w.c), Some(json!([{"op": "replace", "path": "/max_node_count", "value": 5}]))), [202, 202, 403, 404, 401]),
        // A default nodegroup cannot be deleted (400) once the policy let the caller in.
        row!("delete" "/v1/clusters/{cluster}/nodegroups/{ng}", |w| (format!("/v1/clusters/{}/nodegroups/default-worker", w.c), None), [400, 400, 403, 404, 401]),
        row!("post" "/v1/clusters/{ident}/actions/upgrade", |w| (format!("/v1/clusters/{}/actions/upgrade", w.c), Some(json!({"cluster_template": w.t, "max_batch_size": 1}))), [202, 202, 403, 404, 401]),
        // Certificates: non-admins must also be the cluster's creator (member-a).
        row!("post" "/v1/certificates", |w| ("/v1/certificates".into(), Some(json!({"cluster_uuid": w.c, "csr": csr()}))), [201, 201, 403, 400, 401]),
        row!("get" "/v1/certificates/{ident}", |w| (format!("/v1/certificates/{}", w.c), None), [200, 200, 403, 404, 401]),
        row!("patch" "/v1/certificates/{ident}", |w| (format!("/v1/certificates/{}", w.c), None), [202, 202, 403, 404, 401]),
        row!("patch" "/v1/credentials/{ident}", |w| (format!("/v1/credentials/{}", w.c), None), [400, 400, 403, 404, 401]),
        // Quotas: admin-only except reading one's own project's.
        row!("get" "/v1/quotas", |_w| ("/v1/quotas".into(), None), [200, 403, 403, 403, 401]),
        row!("post" "/v1/quotas", |_w| ("/v1/quotas".into(), Some(json!({"project_id": PROJECT_B, "resource": "Cluster", "hard_limit": 3}))), [201, 403, 403, 403, 401]),
        row!("get" "/v1/quotas/{project}/{resource}", |_w| (format!("/v1/quotas/{PROJECT_A}/Cluster"), None), [200, 200, 200, 403, 401]),
        row!("patch" "/v1/quotas/{project}/{resource}", |_w| (format!("/v1/quotas/{PROJECT_A}/Cluster"), Some(json!({"project_id": PROJECT_A, "resource": "Cluster", "hard_limit": 5}))), [202, 403, 403, 403, 401]),
        row!("delete" "/v1/quotas/{project}/{resource}", |_w| (format!("/v1/quotas/{PROJECT_A}/Cluster"), None), [204, 403, 403, 403, 401]),
        row!("get" "/v1/stats", |_w| (format!("/v1/stats?project_id={PROJECT_A}"), None), [200, 200, 200, 403, 401]),
        row!("get" "/v1/mservices", |_w| ("/v1/mservices".into(), None), [200, 403, 403, 403, 401]),
        // Federations. Another project cannot host on project A's cluster: 400.
        row!("get" "/v1/federations", |_w| ("/v1/federations".into(), None), [200, 200, 200, 200, 401]),
        row!("post" "/v1/federations", |w| ("/v1/federations".into(), Some(json!({"hostcluster_id": w.c, "properties": {"dns-zone": "b.org."}}))), [202, 202, 403, 400, 401]),
        row!("get" "/v1/federations/detail", |_w| ("/v1/federations/detail".into(), None), [200, 200, 200, 200, 401]),
        row!("get" "/v1/federations/{ident}", |w| (format!("/v1/federations/{}", w.f), None), [200, 200, 200, 404, 401]),
        row!("patch" "/v1/federations/{ident}", |w| (format!("/v1/federations/{}", w.f), Some(json!([{"op": "replace", "path": "/properties/dns-zone", "value": "c.org."}]))), [202, 202, 403, 404, 401]),
        row!("delete" "/v1/federations/{ident}", |w| (format!("/v1/federations/{}", w.f), None), [204, 204, 403, 404, 401]),
        // Legacy names: the same policies as what they alias.
        row!("get" "/v1/baymodels", |_w| ("/v1/baymodels".into(), None), [200, 200, 200, 200, 401]),
        row!("post" "/v1/baymodels", |_w| ("/v1/baymodels".into(), Some(template_body())), [201, 201, 403, 201, 401]),
        row!("get" "/v1/baymodels/detail", |_w| ("/v1/baymodels/detail".into(), None), [200, 200, 200, 200, 401]),
        row!("get" "/v1/baymodels/{ident}", |w| (format!("/v1/baymodels/{}", w.t), None), [200, 200, 200, 404, 401]),
        row!("patch" "/v1/baymodels/{ident}", |w| (format!("/v1/baymodels/{}", w.t), Some(rename())), [200, 200, 403, 404, 401]),
        row!("delete" "/v1/baymodels/{ident}", |w| (format!("/v1/baymodels/{}", w.t2), None), [204, 204, 403, 404, 401]),
        row!("get" "/v1/bays", |_w| ("/v1/bays".into(), None), [200, 200, 200, 200, 401]),
        row!("post" "/v1/bays", |w| ("/v1/bays".into(), Some(json!({"baymodel_id": w.t, "name": "b"}))), [202, 202, 403, 404, 401]),
        row!("get" "/v1/bays/detail", |_w| ("/v1/bays/detail".into(), None), [200, 200, 200, 200, 401]),
        row!("get" "/v1/bays/{ident}", |w| (format!("/v1/bays/{}", w.c), None), [200, 200, 200, 404, 401]),
        row!("patch" "/v1/bays/{ident}", |w| (format!("/v1/bays/{}", w.c), Some(grow())), [202, 202, 403, 404, 401]),
        row!("delete" "/v1/bays/{ident}", |w| (format!("/v1/bays/{}", w.c), None), [204, 204, 403, 404, 401]),
    ]
}

#[test]
fn the_matrix_covers_every_documented_endpoint() {
    let covered: BTreeSet<(&str, &str)> = rows().iter().map(|r| (r.method, r.pattern)).collect();
    for e in ENDPOINTS {
        assert!(
            covered.contains(&(e.method, e.path)),
            "no policy row for {} {}",
            e.method,
            e.path
        );
    }
}

#[tokio::test]
async fn every_endpoint_by_every_caller() {
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in rows() {
        for (who, want) in WHO.iter().zip(row.expect) {
            let w = world().await;
            let (path, body) = (row.request)(&w);
            let mut req = w.h.req(&row.method.to_uppercase(), &path);
            if let Some(t) = who {
                req = req.token(t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req.send().await;
            cells += 1;
            if r.status.as_u16() != want {
                failures.push(format!(
                    "{} {path} as {}: want {want}, got {} {}",
                    row.method,
                    who.unwrap_or("(no token)"),
                    r.status,
                    r.raw.chars().take(200).collect::<String>()
                ));
                continue;
            }
            // Denials say why, in the envelope; 401 carries the Keystone challenge.
            if want == 401 {
                assert_eq!(
                    r.header("www-authenticate"),
                    Some("Keystone uri=\"http://keystone.test:5000/v3\"")
                );
            } else if want == 403 {
                assert_error(&r, 403, "");
            }
        }
    }
    assert!(cells >= 200, "{cells} cells");
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
