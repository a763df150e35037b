//! Every endpoint the router serves, as the document describes it. `tests/openapi.rs` checks
//! that each route of `src/routes/` appears here, so a new route cannot go undocumented.

/// What a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    None,
    /// A JSON object of the named component schema.
    Schema(&'static str),
    /// A JSON patch.
    Patch,
}

/// What a success answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The named component schema.
    Schema(&'static str),
    /// `{"<key>": [<schema>], "next"?}`.
    List(&'static str, &'static str),
    /// `{"uuid": …}`.
    Uuid,
    /// No body (204).
    Empty,
    /// Any object (discovery documents, stats).
    Object,
}

pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub query: &'static [&'static str],
    pub body: Body,
    pub status: u16,
    pub answer: Answer,
    /// No token needed.
    pub public: bool,
}

const LIST_Q: &[&str] = &["marker", "limit", "sort_key", "sort_dir"];

macro_rules! ep {
    ($m:literal $p:literal $id:literal $tag:literal $sum:literal, q: $q:expr, body: $b:expr, $st:literal $ans:expr) => {
        Endpoint {
            method: $m,
            path: $p,
            id: $id,
            tag: $tag,
            summary: $sum,
            query: $q,
            body: $b,
            status: $st,
            answer: $ans,
            public: false,
        }
    };
}

use Answer::*;
use Body::{Patch, Schema as In};

pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "get",
        path: "/",
        id: "versions",
        tag: "discovery",
        summary: "API versions (no token)",
        query: &[],
        body: Body::None,
        status: 200,
        answer: Object,
        public: true,
    },
    Endpoint {
        method: "get",
        path: "/v1",
        id: "v1",
        tag: "discovery",
        summary: "The v1 document with its resource links (no token)",
        query: &[],
        body: Body::None,
        status: 200,
        answer: Object,
        public: true,
    },
    Endpoint {
        method: "get",
        path: "/v1/openapi.json",
        id: "openapi",
        tag: "discovery",
        summary: "This document (no token)",
        query: &[],
        body: Body::None,
        status: 200,
        answer: Object,
        public: true,
    },
    // Cluster templates (§4.1).
    ep!("get" "/v1/clustertemplates" "clustertemplate_list" "clustertemplates" "List cluster templates", q: LIST_Q, body: Body::None, 200 List("clustertemplates", "ClusterTemplate")),
    ep!("post" "/v1/clustertemplates" "clustertemplate_create" "clustertemplates" "Create a cluster template (201 + Location)", q: &[], body: In("ClusterTemplate"), 201 Schema("ClusterTemplate")),
    ep!("get" "/v1/clustertemplates/detail" "clustertemplate_detail" "clustertemplates" "List cluster templates (detail)", q: LIST_Q, body: Body::None, 200 List("clustertemplates", "ClusterTemplate")),
    ep!("get" "/v1/clustertemplates/{ident}" "clustertemplate_show" "clustertemplates" "Show a cluster template (uuid or name)", q: &[], body: Body::None, 200 Schema("ClusterTemplate")),
    ep!("patch" "/v1/clustertemplates/{ident}" "clustertemplate_update" "clustertemplates" "Update a cluster template (JSON patch)", q: &[], body: Patch, 200 Schema("ClusterTemplate")),
    ep!("delete" "/v1/clustertemplates/{ident}" "clustertemplate_delete" "clustertemplates" "Delete a cluster template (400 while referenced)", q: &[], body: Body::None, 204 Empty),
    // Clusters (§4.2).
    ep!("get" "/v1/clusters" "cluster_list" "clusters" "List clusters (summary)", q: LIST_Q, body: Body::None, 200 List("clusters", "Cluster")),
    ep!("post" "/v1/clusters" "cluster_create" "clusters" "Create a cluster (202 after the commit)", q: &[], body: In("Cluster"), 202 Uuid),
    ep!("get" "/v1/clusters/detail" "cluster_detail" "clusters" "List clusters (detail)", q: LIST_Q, body: Body::None, 200 List("clusters", "Cluster")),
    ep!("get" "/v1/clusters/{ident}" "cluster_show" "clusters" "Show a cluster (stack_id; cluster_id from 1.13)", q: &[], body: Body::None, 200 Schema("Cluster")),
    ep!("patch" "/v1/clusters/{ident}" "cluster_update" "clusters" "Update node_count or health (JSON patch; ?rollback from 1.3)", q: &["rollback"], body: Patch, 202 Uuid),
    ep!("delete" "/v1/clusters/{ident}" "cluster_delete" "clusters" "Delete a cluster", q: &[], body: Body::None, 204 Empty),
    ep!("post" "/v1/clusters/{ident}/actions/resize" "cluster_resize" "clusters" "Resize a nodegroup (from 1.7)", q: &[], body: In("Resize"), 202 Uuid),
    ep!("post" "/v1/clusters/{ident}/actions/upgrade" "cluster_upgrade" "clusters" "Rolling upgrade of a nodegroup to a template's kube_tag (from 1.8)", q: &[], body: In("Upgrade"), 202 Uuid),
    // Nodegroups (§4.3, from 1.9).
    ep!("get" "/v1/clusters/{cluster}/nodegroups" "nodegroup_list" "nodegroups" "List a cluster's nodegroups (from 1.9)", q: &["marker", "limit", "sort_key", "sort_dir", "role"], body: Body::None, 200 List("nodegroups", "Nodegroup")),
    ep!("get" "/v1/clusters/{cluster}/nodegroups/{ng}" "nodegroup_show" "nodegroups" "Show a nodegroup (from 1.9)", q: &[], body: Body::None, 200 Schema("Nodegroup")),
    ep!("post" "/v1/clusters/{cluster}/nodegroups" "nodegroup_create" "nodegroups" "Create a nodegroup with its own stack (from 1.9; 202 with the nodegroup)", q: &[], body: In("NodegroupCreate"), 202 Schema("Nodegroup")),
    ep!("patch" "/v1/clusters/{cluster}/nodegroups/{ng}" "nodegroup_update" "nodegroups" "Update min_node_count/max_node_count (JSON patch, from 1.9)", q: &[], body: Patch, 202 Schema("Nodegroup")),
    ep!("delete" "/v1/clusters/{cluster}/nodegroups/{ng}" "nodegroup_delete" "nodegroups" "Delete a non-default nodegroup and its stack (from 1.9)", q: &[], body: Body::None, 204 Empty),
    // Certificates (§4.4).
    ep!("post" "/v1/certificates" "certificate_sign" "certificates" "Sign a CSR with a cluster's CA", q: &[], body: In("CertificateRequest"), 201 Schema("Certificate")),
    ep!("get" "/v1/certificates/{ident}" "certificate_show" "certificates" "A cluster's CA certificate", q: &["ca_cert_type"], body: Body::None, 200 Schema("Certificate")),
    ep!("patch" "/v1/certificates/{ident}" "certificate_rotate_ca" "certificates" "Rotate a cluster's CAs and client certificate (no body; 400 if TLS is disabled)", q: &[], body: Body::None, 202 Uuid),
    ep!("patch" "/v1/credentials/{ident}" "credential_rotate" "credentials" "Rotate a cluster's trustee credentials (from 1.12)", q: &[], body: Body::None, 202 Uuid),
    // Quotas, stats, services (§4.6–4.8).
    ep!("get" "/v1/quotas" "quota_list" "quotas" "List quotas (admin)", q: &["marker", "limit", "sort_key", "sort_dir", "all_tenants"], body: Body::None, 200 List("quotas", "Quota")),
    ep!("post" "/v1/quotas" "quota_create" "quotas" "Create a quota (admin)", q: &[], body: In("Quota"), 201 Schema("Quota")),
    ep!("get" "/v1/quotas/{project}/{resource}" "quota_show" "quotas" "Show a project's quota", q: &[], body: Body::None, 200 Schema("Quota")),
    ep!("patch" "/v1/quotas/{project}/{resource}" "quota_update" "quotas" "Update a quota (the body is a quota object, not a patch)", q: &[], body: In("Quota"), 202 Schema("Quota")),
    ep!("delete" "/v1/quotas/{project}/{resource}" "quota_delete" "quotas" "Delete a quota (admin)", q: &[], body: Body::None, 204 Empty),
    ep!("get" "/v1/stats" "stats" "stats" "Cluster and node counts", q: &["project_id", "type"], body: Body::None, 200 Object),
    ep!("get" "/v1/mservices" "mservice_list" "mservices" "Conductors (admin)", q: &[], body: Body::None, 200 Object),
    // Federations (§4.9).
    ep!("get" "/v1/federations" "federation_list" "federations" "List federations", q: LIST_Q, body: Body::None, 200 List("federations", "Federation")),
    ep!("post" "/v1/federations" "federation_create" "federations" "Create a federation (hostcluster_id and properties.dns-zone required)", q: &[], body: In("Federation"), 202 Uuid),
    ep!("get" "/v1/federations/detail" "federation_detail" "federations" "List federations (detail)", q: LIST_Q, body: Body::None, 200 List("federations", "Federation")),
    ep!("get" "/v1/federations/{ident}" "federation_show" "federations" "Show a federation", q: &[], body: Body::None, 200 Schema("Federation")),
    ep!("patch" "/v1/federations/{ident}" "federation_update" "federations" "Change member_ids or properties (add/remove of one uuid joins/leaves)", q: &["rollback"], body: Patch, 202 Uuid),
    ep!("delete" "/v1/federations/{ident}" "federation_delete" "federations" "Delete a federation", q: &[], body: Body::None, 204 Empty),
    // Legacy bays/baymodels (§4.10; kept at every version).
    ep!("get" "/v1/baymodels" "baymodel_list" "legacy" "List baymodels (= cluster templates)", q: LIST_Q, body: Body::None, 200 List("baymodels", "ClusterTemplate")),
    ep!("post" "/v1/baymodels" "baymodel_create" "legacy" "Create a baymodel", q: &[], body: In("ClusterTemplate"), 201 Schema("ClusterTemplate")),
    ep!("get" "/v1/baymodels/detail" "baymodel_detail" "legacy" "List baymodels (detail)", q: LIST_Q, body: Body::None, 200 List("baymodels", "ClusterTemplate")),
    ep!("get" "/v1/baymodels/{ident}" "baymodel_show" "legacy" "Show a baymodel", q: &[], body: Body::None, 200 Schema("ClusterTemplate")),
    ep!("patch" "/v1/baymodels/{ident}" "baymodel_update" "legacy" "Update a baymodel (JSON patch)", q: &[], body: Patch, 200 Schema("ClusterTemplate")),
    ep!("delete" "/v1/baymodels/{ident}" "baymodel_delete" "legacy" "Delete a baymodel", q: &[], body: Body::None, 204 Empty),
    ep!("get" "/v1/bays" "bay_list" "legacy" "List bays", q: LIST_Q, body: Body::None, 200 List("bays", "Bay")),
    ep!("post" "/v1/bays" "bay_create" "legacy" "Create a bay (1.1: 201 with the bay; from 1.2: 202 {uuid})", q: &[], body: In("Bay"), 201 Schema("Bay")),
    ep!("get" "/v1/bays/detail" "bay_detail" "legacy" "List bays (detail)", q: LIST_Q, body: Body::None, 200 List("bays", "Bay")),
    ep!("get" "/v1/bays/{ident}" "bay_show" "legacy" "Show a bay", q: &[], body: Body::None, 200 Schema("Bay")),
    ep!("patch" "/v1/bays/{ident}" "bay_update" "legacy" "Update a bay (1.1: 200 with the bay; from 1.2: 202; ?rollback from 1.3)", q: &["rollback"], body: Patch, 200 Schema("Bay")),
    ep!("delete" "/v1/bays/{ident}" "bay_delete" "legacy" "Delete a bay", q: &[], body: Body::None, 204 Empty),
];
