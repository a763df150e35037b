//! List pagination: limit, marker, sort_key, sort_dir, next links and their 400/404s.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::json;
use std::sync::atomic::Ordering::SeqCst;

fn names(r: &Resp, key: &str) -> Vec<String> {
    r.body[key]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.raw))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn template_pages_follow_next_links() {
    let h = harness();
    for n in ["c", "a", "d", "b", "e"] {
        h.template("member-a", json!({"name": n})).await;
        // Distinct creation times keep the default `id` order meaningful.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    // Default order is creation order.
    let r = h.get("/v1/clustertemplates", "member-a").await;
    assert_eq!(names(&r, "clustertemplates"), vec!["c", "a", "d", "b", "e"]);
    assert!(r.body.get("next").is_none());

    // The CLI's shape: trailing slash before the query string.
    let r = h
        .get(
            "/v1/clustertemplates/?limit=2&sort_key=name&sort_dir=asc",
            "member-a",
        )
        .await;
    assert_eq!(names(&r, "clustertemplates"), vec!["a", "b"]);
    let next = r.body["next"].as_str().unwrap().to_string();
    let last = r.body["clustertemplates"][1]["uuid"].as_str().unwrap();
    assert_eq!(
        next,
        format!("http://magnum.test:9511/v1/clustertemplates?sort_key=name&sort_dir=asc&limit=2&marker={last}")
    );
    let path = next.trim_start_matches("http://magnum.test:9511");
    let r = h.get(path, "member-a").await;
    assert_eq!(names(&r, "clustertemplates"), vec!["c", "d"]);
    let path = r.body["next"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://magnum.test:9511")
        .to_string();
    let r = h.get(&path, "member-a").await;
    assert_eq!(names(&r, "clustertemplates"), vec!["e"]);
    assert!(
        r.body.get("next").is_none(),
        "a short page has no next link"
    );

    let r = h
        .get(
            "/v1/clustertemplates?sort_key=name&sort_dir=desc&limit=3",
            "member-a",
        )
        .await;
    assert_eq!(names(&r, "clustertemplates"), vec!["e", "d", "c"]);
    let r = h
        .get("/v1/clustertemplates/detail?limit=1", "member-a")
        .await;
    assert!(r.body["next"]
        .as_str()
        .unwrap()
        .contains("/v1/clustertemplates/detail?sort_key=id&sort_dir=asc&limit=1&marker="));
}

#[tokio::test]
async fn cluster_pages() {
    let h = harness();
    h.template("member-a", json!({})).await;
    for n in ["k3", "k1", "k2"] {
        h.cluster(
            "member-a",
            json!({"cluster_template_id": "k8s-tmpl", "name": n}),
        )
        .await;
    }
    let r = h
        .get(
            "/v1/clusters/?limit=5&sort_key=name&sort_dir=desc",
            "member-a",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(names(&r, "clusters"), vec!["k3", "k2", "k1"]);
    assert!(r.body.get("next").is_none());
    let r = h
        .get("/v1/clusters?limit=1&sort_key=name", "member-a")
        .await;
    assert_eq!(names(&r, "clusters"), vec!["k1"]);
    let next = r.body["next"].as_str().unwrap();
    assert!(next.starts_with(
        "http://magnum.test:9511/v1/clusters?sort_key=name&sort_dir=asc&limit=1&marker="
    ));
    let r = h
        .get(
            next.trim_start_matches("http://magnum.test:9511"),
            "member-a",
        )
        .await;
    assert_eq!(names(&r, "clusters"), vec!["k2"]);
}

#[tokio::test]
async fn pagination_errors() {
    let h = harness();
    h.template("member-a", json!({})).await;
    let missing = "5d3c1f5e-0000-4000-8000-000000000000";
    let cases = [
        (
            "/v1/clustertemplates?limit=0",
            400,
            "Limit must be positive",
        ),
        (
            "/v1/clustertemplates?limit=-3",
            400,
            "Limit must be positive",
        ),
        ("/v1/clusters?limit=0", 400, "Limit must be positive"),
        (
            "/v1/clustertemplates?limit=ten",
            400,
            "Invalid input for field/attribute limit. Value: 'ten'.",
        ),
        (
            "/v1/clustertemplates?sort_dir=up",
            400,
            "Invalid sort direction: up. Acceptable values are 'asc' or 'desc'",
        ),
        (
            "/v1/clusters/?sort_dir=DESC",
            400,
            "Invalid sort direction: DESC",
        ),
        (
            "/v1/clustertemplates?sort_key=bogus",
            400,
            "The sort_key value \"bogus\" is an invalid field for sorting",
        ),
        (
            "/v1/clusters?sort_key=node_count",
            400,
            "The sort_key value \"node_count\" is an invalid field for sorting",
        ),
        (
            "/v1/clustertemplates?marker=not-a-uuid",
            400,
            "Expected a uuid but received not-a-uuid.",
        ),
    ];
    for (path, status, detail) in cases {
        let r = h.get(path, "member-a").await;
        assert_error(&r, status, detail);
    }
    let r = h
        .get(
            &format!("/v1/clustertemplates?marker={missing}"),
            "member-a",
        )
        .await;
    assert_error(
        &r,
        404,
        &format!("ClusterTemplate {missing} could not be found."),
    );
    let r = h
        .get(&format!("/v1/clusters?marker={missing}"), "member-a")
        .await;
    assert_error(&r, 404, &format!("Cluster {missing} could not be found."));
    // Limits above [api]max_limit are capped, not refused.
    let r = h.get("/v1/clustertemplates?limit=100000", "member-a").await;
    assert_eq!(r.status, 200);
}

/// Pages in creation order are cut by the shards (an admin's keys first: `ClusterKeysPage`
/// with the views of each shard's first few, then `ClustersById` for the rest; else
/// `ClustersPage`); against conductors that predate those queries or `views` the API falls
/// back to the older ones, down to paging every cluster itself. All walk the
/// same pages, in both directions, for a member (one shard) and for an admin (every shard
/// merged).
#[tokio::test]
async fn cluster_pages_in_creation_order_are_the_same_from_old_and_new_conductors() {
    let h = harness();
    h.template("member-a", json!({})).await;
    h.template("member-b", json!({})).await;
    for i in 0..7 {
        for who in ["member-a", "member-b"] {
            h.cluster(
                who,
                json!({"cluster_template_id": "k8s-tmpl", "name": format!("{who}-{i}")}),
            )
            .await;
        }
    }
    async fn walk(h: &Harness, token: &str, first: &str, detail: bool) -> Vec<Vec<String>> {
        let key = "clusters";
        let mut pages = Vec::new();
        let mut path = first.to_string();
        loop {
            let r = h.get(&path, token).await;
            assert_eq!(r.status, 200, "{path}: {}", r.raw);
            pages.push(names(&r, key));
            if detail {
                assert!(r.body[key][0]["labels"].is_object() || pages.last().unwrap().is_empty());
            }
            match r.body["next"].as_str() {
                Some(next) => {
                    path = next
                        .trim_start_matches("http://magnum.test:9511")
                        .to_string()
                }
                None => return pages,
            }
        }
    }
    for (token, total) in [("member-a", 7), ("admin-token", 14)] {
        for first in [
            "/v1/clusters?limit=3",
            "/v1/clusters?limit=3&sort_dir=desc",
            "/v1/clusters/detail?limit=4",
            "/v1/clusters",
        ] {
            let detail = first.contains("detail");
            let walk_as = |release: u8, lose: bool| {
                h.backend.old_conductors.store(release, SeqCst);
                h.backend.lose_between_rounds.store(lose, SeqCst);
                walk(&h, token, first, detail)
            };
            let new = walk_as(0, false).await;
            assert_eq!(
                new.iter().map(Vec::len).sum::<usize>(),
                total,
                "{token} {first}: {new:?}"
            );
            // A cluster gone between the keys and the views: asked again in one round, no
            // short page (which would end the walk early).
            assert_eq!(walk_as(0, true).await, new, "{token} {first}: lost");
            for release in [1, 2, 3] {
                let old = walk_as(release, false).await;
                assert_eq!(old, new, "{token} {first}: release {release}");
            }
        }
    }
    h.backend.old_conductors.store(0, SeqCst);
    h.backend.lose_between_rounds.store(false, SeqCst);
    // A marker from another project is not visible: the same 404 as before.
    let r = h.get("/v1/clusters?limit=1", "member-b").await;
    let theirs = r.body["clusters"][0]["uuid"].as_str().unwrap().to_string();
    let r = h
        .get(&format!("/v1/clusters?marker={theirs}"), "member-a")
        .await;
    assert_error(&r, 404, &format!("Cluster {theirs} could not be found."));
}

/// `[api] max_limit` and `[cluster_heat] create_timeout` from magnum.conf: a page never holds
/// more than max_limit, whatever `limit` asks, and a cluster create that names no timeout gets
/// the configured one.
#[tokio::test]
async fn max_limit_and_the_default_create_timeout_come_from_the_settings() {
    let mut settings = magnum_api::Settings::new("http://keystone.test:5000/v3");
    settings.validation.max_limit = 2;
    settings.validation.default_create_timeout = 25;
    let h = harness_with(settings);
    for n in ["a", "b", "c"] {
        h.template("member-a", json!({"name": n})).await;
    }
    let r = h.get("/v1/clustertemplates?limit=50", "member-a").await;
    assert_eq!(names(&r, "clustertemplates"), vec!["a", "b"], "{}", r.raw);
    assert!(
        r.body["next"]
            .as_str()
            .is_some_and(|n| n.contains("limit=2")),
        "{}",
        r.raw
    );
    let r = h.get("/v1/clustertemplates", "member-a").await;
    assert_eq!(names(&r, "clustertemplates").len(), 2, "{}", r.raw);

    let id = h
        .cluster("member-a", json!({"name": "k", "cluster_template_id": "a"}))
        .await;
    let r = h.get(&format!("/v1/clusters/{id}"), "member-a").await;
    assert_eq!(r.body["create_timeout"], 25, "{}", r.raw);
    let id = h
        .cluster(
            "member-a",
            json!({"name": "k2", "cluster_template_id": "a", "create_timeout": 7}),
        )
        .await;
    let r = h.get(&format!("/v1/clusters/{id}"), "member-a").await;
    assert_eq!(r.body["create_timeout"], 7, "{}", r.raw);
}
