//! Version discovery: `GET /` and `GET /v1` (no token needed).
use crate::context::BaseUrl;
use crate::state::AppState;
use crate::version::MIN_VERSION;
use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;

#[derive(Serialize)]
struct Link {
    href: String,
    rel: &'static str,
    #[serde(skip_serializing_if = "Option::is_none", rename = "type")]
    kind: Option<&'static str>,
}

fn link(href: String, rel: &'static str) -> Link {
    Link {
        href,
        rel,
        kind: None,
    }
}

#[derive(Serialize)]
struct Version {
    id: &'static str,
    links: Vec<Link>,
    status: &'static str,
    max_version: String,
    min_version: String,
}

#[derive(Serialize)]
pub struct Root {
    name: &'static str,
    description: &'static str,
    versions: Vec<Version>,
}

pub async fn root(
    State(state): State<AppState>,
    Extension(base): Extension<BaseUrl>,
) -> Json<Root> {
    Json(Root {
        name: "OpenStack Magnum API",
        description: "Magnum is an OpenStack project which aims to provide container cluster \
                      management.",
        versions: vec![Version {
            id: "v1",
            links: vec![link(format!("{}/v1/", base.0), "self")],
            status: "CURRENT",
            max_version: state.settings.max_version.to_string(),
            min_version: MIN_VERSION.to_string(),
        }],
    })
}

#[derive(Serialize)]
struct MediaType {
    base: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
pub struct V1 {
    id: &'static str,
    media_types: Vec<MediaType>,
    links: Vec<Link>,
    clustertemplates: Vec<Link>,
    clusters: Vec<Link>,
    quotas: Vec<Link>,
    certificates: Vec<Link>,
    mservices: Vec<Link>,
    stats: Vec<Link>,
    federations: Vec<Link>,
    nodegroups: Vec<Link>,
    credentials: Vec<Link>,
}

fn resource(base: &str, res: &str) -> Vec<Link> {
    vec![
        link(format!("{base}/v1/{res}/"), "self"),
        link(format!("{base}/{res}/"), "bookmark"),
    ]
}

pub async fn v1(Extension(base): Extension<BaseUrl>) -> Json<V1> {
    let b = base.0.as_str();
    Json(V1 {
        id: "v1",
        media_types: vec![MediaType {
            base: "application/json",
            kind: "application/vnd.openstack.magnum.v1+json",
        }],
        links: vec![
            link(format!("{b}/v1/"), "self"),
            Link {
                href: "http://docs.openstack.org/developer/magnum/dev/api-spec-v1.html".into(),
                rel: "describedby",
                kind: Some("text/html"),
            },
        ],
        clustertemplates: resource(b, "clustertemplates"),
        clusters: resource(b, "clusters"),
        quotas: resource(b, "quotas"),
        certificates: resource(b, "certificates"),
        mservices: resource(b, "mservices"),
        stats: resource(b, "stats"),
        federations: resource(b, "federations"),
        nodegroups: vec![
            link(format!("{b}/v1/clusters/{{cluster_id}}/nodegroups"), "self"),
            link(
                format!("{b}/clusters/{{cluster_id}}/nodegroups"),
                "bookmark",
            ),
        ],
        credentials: resource(b, "credentials"),
    })
}
