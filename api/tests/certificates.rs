//! `/v1/certificates`: the cluster CA and CSR signing, with the creator-only policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use magnum_proto::ClusterId;
use serde_json::json;

fn csr() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "admin");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:masters");
    p.serialize_request(&key).unwrap().pem().unwrap()
}

#[tokio::test]
async fn ca_and_signing_for_the_clusters_creator() {
    let h = harness();
    let t = h.template("member-a", json!({"name": "t"})).await;
    let id = h
        .cluster(
            "member-a",
            json!({"name": "k", "cluster_template_id": t["uuid"], "node_count": 1}),
        )
        .await;
    let path = format!("/v1/certificates/{id}");
    // No CA before the conductor generated it.
    assert_error(
        &h.get(&path, "member-a").await,
        400,
        "has no certificates yet",
    );
    let certs = h
        .backend
        .generate_certs(0, ClusterId(uuid::Uuid::parse_str(&id).unwrap()));

    for (tok, by_name) in [("member-a", false), ("admin-token", true)] {
        let p = if by_name {
            "/v1/certificates/k".to_string()
        } else {
            path.clone()
        };
        let r = h.get(&p, tok).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body["cluster_uuid"], id);
        assert_eq!(r.body["pem"], certs.ca_cert);
        assert_eq!(r.body["links"][0]["rel"], "self");
    }
    // A reader of the project who did not create the cluster, and another project.
    assert_error(&h.get(&path, "reader-a").await, 403, "certificate:get");
    assert_error(&h.get(&path, "member-b").await, 404, "could not be found");

    let r = h
        .post(
            "/v1/certificates",
            "member-a",
            json!({"cluster_uuid": "k", "csr": csr()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.body["cluster_uuid"], id);
    assert!(r.body["pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(r.body.get("ca_cert_type").is_none());

    for (body, status, detail) in [
        (
            json!({"cluster_uuid": id, "csr": "garbage"}),
            400,
            "Invalid CSR",
        ),
        (json!({"cluster_uuid": id, "csr": ""}), 400, "csr"),
        (json!({"cluster_uuid": id}), 400, "csr"),
        (json!({"csr": csr()}), 400, "cluster_uuid"),
        (
            json!({"cluster_uuid": id, "csr": csr(), "pem": "x"}),
            400,
            "pem",
        ),
        (json!({"cluster_uuid": id, "csr": csr(), "x": 1}), 400, "x"),
        (json!({"cluster_uuid": "nope", "csr": csr()}), 400, "nope"),
    ] {
        let r = h.post("/v1/certificates", "member-a", body).await;
        assert_error(&r, status, detail);
    }
    let r = h
        .post(
            "/v1/certificates",
            "reader-a",
            json!({"cluster_uuid": id, "csr": csr()}),
        )
        .await;
    assert_error(&r, 403, "certificate:create");
}
