//! Discovery documents, microversion negotiation, request ids, root routing, authentication.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn root_document_needs_no_token_and_no_version() {
    let h = harness();
    let r = h.req("GET", "/").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"name": "OpenStack Magnum API",
               "description": "Magnum is an OpenStack project which aims to provide container cluster management.",
               "versions": [{"id": "v1", "links": [{"href": "http://magnum.test:9511/v1/", "rel": "self"}],
                             "status": "CURRENT", "max_version": "1.14", "min_version": "1.1"}]})
    );
    assert!(r.raw.starts_with("{\"name\":"), "key order: {}", r.raw);
    assert!(r.header("openstack-api-version").is_none());
    assert!(r
        .header("x-openstack-request-id")
        .unwrap()
        .starts_with("req-"));
}

#[tokio::test]
async fn probes_need_no_token_and_readiness_follows_the_conductors() {
    let h = harness();
    let r = h.req("GET", "/healthcheck").no_version().send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.raw, "OK");
    let r = h.req("GET", "/readyz").no_version().send().await;
    assert_eq!(r.status, 200, "{}", r.raw);
    h.backend
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = h.req("GET", "/readyz").no_version().send().await;
    assert_eq!(r.status, 503, "{}", r.raw);
    assert!(r.raw.contains("no conductor answers"), "{}", r.raw);
    // Liveness does not depend on the conductors: a restart would not bring them back.
    let r = h.req("GET", "/healthcheck").no_version().send().await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn v1_document() {
    let h = harness();
    for path in ["/v1", "/v1/"] {
        let r = h.req("GET", path).no_version().send().await;
        assert_eq!(r.status, 200, "{path}");
        let b = &r.body;
        assert_eq!(b["id"], "v1");
        assert_eq!(
            b["media_types"],
            json!([{"base": "application/json", "type": "application/vnd.openstack.magnum.v1+json"}])
        );
        assert_eq!(
            b["links"],
            json!([{"href": "http://magnum.test:9511/v1/", "rel": "self"},
                   {"href": "http://docs.openstack.org/developer/magnum/dev/api-spec-v1.html",
                    "rel": "describedby", "type": "text/html"}])
        );
        assert_eq!(
            b["clustertemplates"],
            json!([{"href": "http://magnum.test:9511/v1/clustertemplates/", "rel": "self"},
                   {"href": "http://magnum.test:9511/clustertemplates/", "rel": "bookmark"}])
        );
        assert_eq!(
            b["nodegroups"][0]["href"],
            "http://magnum.test:9511/v1/clusters/{cluster_id}/nodegroups"
        );
        for res in [
            "clusters",
            "quotas",
            "certificates",
            "mservices",
            "stats",
            "federations",
            "credentials",
        ] {
            assert!(b[res].is_array(), "{res}");
        }
        assert_eq!(
            r.header("openstack-api-version"),
            Some("container-infrastructure-management 1.1")
        );
        assert_eq!(
            r.header("openstack-api-minimum-version"),
            Some("container-infrastructure-management 1.1")
        );
        assert_eq!(
            r.header("openstack-api-maximum-version"),
            Some("container-infrastructure-management 1.14")
        );
        assert_eq!(r.header("vary"), Some("OpenStack-API-Version"));
    }
}

#[tokio::test]
async fn version_negotiation() {
    let h = harness();
    let cases = [
        ("OpenStack-API-Version", "container-infra latest", "1.14"),
        ("openstack-api-version", "container-infra 1.5", "1.5"),
        // Go's canonicalisation.
        (
            "Openstack-Api-Version",
            "container-infrastructure 1.10",
            "1.10",
        ),
        (
            "OPENSTACK-API-VERSION",
            "container-infrastructure-management 1.1",
            "1.1",
        ),
    ];
    for (name, value, want) in cases {
        let r = h
            .req("GET", "/v1/clusters")
            .token("member-a")
            .header(name, value)
            .send()
            .await;
        assert_eq!(r.status, 200, "{name}: {value}: {}", r.raw);
        assert_eq!(
            r.header("openstack-api-version").unwrap(),
            format!("container-infrastructure-management {want}")
        );
        assert_eq!(r.header("vary"), Some("OpenStack-API-Version"));
    }
}

#[tokio::test]
async fn unsupported_version_is_406_with_microversion_body() {
    let h = harness();
    let r = h
        .req("GET", "/v1/clusters")
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 1.99")
        .send()
        .await;
    assert_eq!(r.status, 406);
    assert_eq!(
        r.body,
        json!({"errors": [{"code": "magnum.microversion-unsupported",
            "title": "Requested microversion is unsupported",
            "links": [{"rel": "help", "href": "http://docs.openstack.org/api-guide/compute/microversions.html"}],
            "max_version": "1.14", "min_version": "1.1",
            "description": "Version 1.99 was requested but the minor version is not supported by this service. The supported version range is: [container-infrastructure-management 1.1, container-infrastructure-management 1.14]."}]})
    );
    assert_eq!(
        r.header("openstack-api-version"),
        Some("container-infrastructure-management 1.99")
    );
    assert_eq!(
        r.header("openstack-api-maximum-version"),
        Some("container-infrastructure-management 1.14")
    );

    let r = h
        .req("GET", "/v1/clusters")
        .token("member-a")
        .header("OpenStack-API-Version", "container-infra 2.0")
        .send()
        .await;
    assert_eq!(r.status, 406);
    let d = r.body["errors"][0]["description"].as_str().unwrap();
    assert!(
        d.starts_with("Mutually exclusive versions requested. Version 2.0"),
        "{d}"
    );
}

#[tokio::test]
async fn malformed_version_is_plain_406_without_version_headers() {
    let h = harness();
    for (value, detail) in [
        (
            "container-infra",
            "Invalid service type for OpenStack-API-Version header",
        ),
        (
            "compute 1.5",
            "Invalid service type for OpenStack-API-Version header",
        ),
        (
            "container-infra one.two",
            "Invalid value for OpenStack-API-Version header",
        ),
        (
            "container-infra 1.2.3",
            "Invalid value for OpenStack-API-Version header",
        ),
    ] {
        let r = h
            .req("GET", "/v1/clusters")
            .token("member-a")
            .header("OpenStack-API-Version", value)
            .send()
            .await;
        assert_eq!(r.status, 406, "{value}");
        assert_eq!(
            r.body,
            json!({"errors": [{"request_id": "", "code": "", "status": 406,
                               "title": "Not Acceptable", "detail": detail, "links": []}]})
        );
        assert!(r.header("openstack-api-version").is_none());
        assert!(r.header("x-openstack-request-id").is_some());
    }
}

#[tokio::test]
async fn missing_or_bad_token_is_401() {
    let h = harness();
    for token in [None, Some("bogus")] {
        let mut req = h.req("GET", "/v1/clustertemplates");
        if let Some(t) = token {
            req = req.token(t);
        }
        let r = req.send().await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.body,
            json!({"error": {"code": 401, "title": "Unauthorized",
                             "message": "The request you have made requires authentication."}})
        );
        assert_eq!(
            r.header("www-authenticate"),
            Some("Keystone uri=\"http://keystone.test:5000/v3\"")
        );
        assert!(r.header("x-openstack-request-id").is_some());
    }
    // Unknown routes are behind authentication too.
    let r = h.req("GET", "/v1/nothing-here").send().await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn keystone_down_is_503_in_envelope() {
    let h = harness();
    let r = h.get("/v1/clusters", "keystone-down").await;
    assert_error(&r, 503, "Identity service unavailable");
}

#[tokio::test]
async fn conductors_down_is_503_in_envelope() {
    let h = harness();
    h.backend
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = h.get("/v1/clusters", "member-a").await;
    assert_error(&r, 503, "Conductors are unavailable");
    assert!(r.header("openstack-api-version").is_some());
}

#[tokio::test]
async fn unknown_route_and_method_come_out_in_the_envelope() {
    let h = harness();
    let r = h.get("/v1/nothing-here", "member-a").await;
    assert_error(&r, 404, "The resource could not be found.");
    assert_eq!(r.body["errors"][0]["code"], "");
    // Pecan's 404 comes before the versioned controller: no version headers (upstream 23).
    assert!(r.header("openstack-api-version").is_none());

    let r = h.req("PUT", "/v1/clusters").token("member-a").send().await;
    assert_error(&r, 405, "The method PUT is not allowed for this resource.");
}

#[tokio::test]
async fn bookmark_paths_are_routed_under_v1() {
    let h = harness();
    let t = h.template("member-a", json!({})).await;
    let uuid = t["uuid"].as_str().unwrap();
    let r = h
        .get(&format!("/clustertemplates/{uuid}"), "member-a")
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["uuid"], uuid);
}

#[tokio::test]
async fn every_answer_has_a_request_id() {
    let h = harness();
    let a = h.get("/v1/clusters", "member-a").await;
    let b = h.get("/v1/clusters", "member-a").await;
    let (ia, ib) = (
        a.header("x-openstack-request-id").unwrap(),
        b.header("x-openstack-request-id").unwrap(),
    );
    assert!(ia.starts_with("req-") && ia.len() == 4 + 36);
    assert_ne!(ia, ib);
}

#[tokio::test]
async fn a_panicking_handler_answers_500_in_the_envelope() {
    let h = harness();
    h.backend
        .panic
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = h.get("/v1/clusters", "member-a").await;
    assert_error(&r, 500, "Internal Server Error.");
    assert!(!r.raw.contains("test: query panics"));
    assert!(r.header("x-openstack-request-id").is_some());
}
