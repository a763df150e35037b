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
            "Received invalid csr garbage.",
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

#[tokio::test]
async fn ca_cert_type_picks_the_ca_for_show_and_sign() {
    let h = harness();
    let t = h.template("member-a", json!({"name": "t"})).await;
    let id = h
        .cluster(
            "member-a",
            json!({"name": "k", "cluster_template_id": t["uuid"], "node_count": 1}),
        )
        .await;
    let certs = h
        .backend
        .generate_certs(0, ClusterId(uuid::Uuid::parse_str(&id).unwrap()));
    let etcd = certs.etcd_ca_cert.clone().unwrap();
    let proxy = certs.front_proxy_ca_cert.clone().unwrap();
    for (param, want) in [
        ("", &certs.ca_cert),
        ("?ca_cert_type=kubernetes", &certs.ca_cert),
        ("?ca_cert_type=whatever", &certs.ca_cert),
        ("?ca_cert_type=etcd", &etcd),
        ("?ca_cert_type=front_proxy", &proxy),
        ("?ca_cert_type=front-proxy", &proxy),
    ] {
        let r = h
            .get(&format!("/v1/certificates/{id}{param}"), "member-a")
            .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(&r.body["pem"], want, "{param}");
    }
    let r = h
        .post(
            "/v1/certificates",
            "member-a",
            json!({"cluster_uuid": id, "csr": csr(), "ca_cert_type": "etcd"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.body["ca_cert_type"], "etcd");
    let pem = r.body["pem"].as_str().unwrap();
    assert!(!pem.ends_with('\n'));
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = der.parse_x509().unwrap();
    let (_, ca) = x509_parser::pem::parse_x509_pem(etcd.as_bytes()).unwrap();
    let ca = ca.parse_x509().unwrap();
    assert!(cert.verify_signature(Some(ca.public_key())).is_ok());
    let (_, k8s) = x509_parser::pem::parse_x509_pem(certs.ca_cert.as_bytes()).unwrap();
    let k8s = k8s.parse_x509().unwrap();
    assert!(cert.verify_signature(Some(k8s.public_key())).is_err());
}

#[tokio::test]
async fn ca_rotate_starts_an_update_and_answers_202() {
    let h = harness();
    let t = h.template("member-a", json!({"name": "t"})).await;
    let id = h
        .cluster(
            "member-a",
            json!({"name": "k", "cluster_template_id": t["uuid"], "node_count": 1}),
        )
        .await;
    let cid = ClusterId(uuid::Uuid::parse_str(&id).unwrap());
    let path = format!("/v1/certificates/{id}");
    let rotate = |tok: &'static str| {
        let h = &h;
        let path = path.clone();
        async move {
            h.req("PATCH", &path)
                .token(tok)
                .raw("application/octet-stream", "")
                .send()
                .await
        }
    };
    // Status gate: CREATE_IN_PROGRESS is not rotatable.
    assert_error(&rotate("member-a").await, 400, "CREATE_IN_PROGRESS");
    h.backend.complete_create(0, cid);
    assert_error(&rotate("reader-a").await, 403, "certificate:rotate_ca");
    assert_error(&rotate("member-b").await, 404, "could not be found");
    let r = rotate("member-a").await;
    assert_eq!(r.status, 202, "{}", r.raw);
    assert_eq!(r.body, json!({"uuid": id}));
    let c = h.get(&format!("/v1/clusters/{id}"), "member-a").await;
    assert_eq!(c.body["status"], "UPDATE_IN_PROGRESS");
    // One operation at a time.
    assert_error(&rotate("admin-token").await, 400, "UPDATE_IN_PROGRESS");

    // TLS-disabled templates cannot rotate.
    let t2 = h
        .template("member-a", json!({"name": "t2", "tls_disabled": true}))
        .await;
    let id2 = h
        .cluster(
            "member-a",
            json!({"name": "k2", "cluster_template_id": t2["uuid"], "node_count": 1}),
        )
        .await;
    h.backend
        .complete_create(0, ClusterId(uuid::Uuid::parse_str(&id2).unwrap()));
    let r = h
        .req("PATCH", &format!("/v1/certificates/{id2}"))
        .token("member-a")
        .send()
        .await;
    assert_error(&r, 400, "non-TLS cluster");
}

#[tokio::test]
async fn credential_rotate_is_gated_by_version_policy_and_status() {
    let h = harness();
    let t = h.template("member-a", json!({"name": "t"})).await;
    let id = h
        .cluster(
            "member-a",
            json!({"name": "k", "cluster_template_id": t["uuid"], "node_count": 1}),
        )
        .await;
    let path = format!("/v1/credentials/{id}");
    let r = h
        .req("PATCH", &path)
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 1.11")
        .send()
        .await;
    assert_eq!(r.status, 406, "{}", r.raw);
    assert_error(
        &h.req("PATCH", &path).token("reader-a").send().await,
        403,
        "credential:rotate",
    );
    assert_error(
        &h.req("PATCH", &path).token("member-a").send().await,
        400,
        "CREATE_IN_PROGRESS",
    );
    h.backend
        .complete_create(0, ClusterId(uuid::Uuid::parse_str(&id).unwrap()));
    // Clusters have no trustee to rotate yet: Magnum's answer for such a driver.
    assert_error(
        &h.req("PATCH", &path).token("member-a").send().await,
        400,
        "Credential rotation is not supported by driver.",
    );
}
