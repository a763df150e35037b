//! `/v1/certificates` (reference §4.4): a cluster's CA certificate, and client CSRs signed with
//! it (what `openstack coe cluster config` uses to write a kubeconfig). The CA's private key
//! stays in the conductor: the shard leader signs.
use crate::context::{json_body, Ctx};
use crate::error::ApiError;
use crate::policy::{self, Action};
use crate::render::{self, Link};
use crate::state::AppState;
use crate::store::Store;
use crate::validate::fields::{self, field, Kind, Spec};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use magnum_proto::wire::{SignCsr, SignResult};
use magnum_proto::{CaKind, ClusterView, OpKind, QueryResult, ShardCommand, ShardQuery, Timestamp};
use serde::Serialize;
use serde_json::json;

/// The API type `Certificate` in declaration order (`bay_uuid` is the pre-cluster name).
const SPECS: &[Spec] = &[
    field("bay_uuid", Kind::Text),
    field("cluster_uuid", Kind::Text),
    field(
        "csr",
        Kind::Str {
            min: 1,
            max: usize::MAX,
        },
    ),
    field("pem", Kind::ReadOnly),
    field("ca_cert_type", Kind::Text),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/certificates", post(sign))
        .route("/v1/certificates/", post(sign))
        .route("/v1/certificates/{ident}", get(show).patch(rotate))
        .route("/v1/certificates/{ident}/", get(show).patch(rotate))
}

#[derive(Debug, Serialize)]
pub struct CaView {
    pub cluster_uuid: String,
    pub pem: String,
    pub links: Vec<Link>,
}

#[derive(Debug, Serialize)]
pub struct SignedView {
    pub cluster_uuid: String,
    pub csr: String,
    pub pem: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert_type: Option<String>,
    pub links: Vec<Link>,
}

/// `certificate:get` / `certificate:create`: the project's role rule, and for non-admins also
/// being the user who created the cluster.
fn enforce_owner(ctx: &Ctx, action: Action, c: &ClusterView) -> Result<(), ApiError> {
    policy::enforce(&ctx.who, action, Some(&c.cluster.project_id.0))?;
    if ctx.who.is_admin() || ctx.who.user_id == c.cluster.user_id.0 {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "Policy doesn't allow {} to be performed.",
        action.name()
    )))
}

fn no_certs(c: &ClusterView) -> ApiError {
    ApiError::BadRequest(format!(
        "Cluster {} has no certificates yet.",
        c.cluster.uuid
    ))
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<CaView>, ApiError> {
    let store = Store::new(&state, &ctx.who);
    let c = store.find_cluster(&ctx.who, &ident).await?;
    enforce_owner(&ctx, Action::CertificateGet, &c)?;
    let kind = CaKind::from_param(
        pairs
            .iter()
            .find(|(k, _)| k == "ca_cert_type")
            .map(|(_, v)| v.as_str()),
    );
    let shard = store.shard_of(&c.cluster.project_id).await?;
    let q = ShardQuery::CaCert {
        id: c.cluster.uuid,
        kind,
    };
    let pem = match store.query(shard, &q).await? {
        QueryResult::CaCert(Some(pem)) => pem,
        QueryResult::CaCert(None) => return Err(no_certs(&c)),
        other => {
            return Err(ApiError::Internal(format!(
                "conductor answered a CA query with {other:?}"
            )))
        }
    };
    let id = c.cluster.uuid.to_string();
    Ok(Json(CaView {
        links: render::links(&ctx.base, "certificates", &id),
        cluster_uuid: id,
        pem,
    }))
}

async fn sign(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body, "certificate")?;
    let f = fields::parse_object("certificate", &body, SPECS)?;
    let ident = f
        .str("cluster_uuid")
        .or_else(|| f.str("bay_uuid"))
        .ok_or_else(|| ApiError::bad_request("Mandatory field missing: cluster_uuid"))?;
    let csr = f
        .str("csr")
        .ok_or_else(|| ApiError::bad_request("Mandatory field missing: csr"))?;
    let store = Store::new(&state, &ctx.who);
    // The cluster is a body field here, so an unknown one is bad input (reference §2.2).
    let c = match store.find_cluster(&ctx.who, &ident).await {
        Err(ApiError::NotFound(m)) => return Err(ApiError::BadRequest(m)),
        other => other?,
    };
    enforce_owner(&ctx, Action::CertificateCreate, &c)?;
    let shard = store.shard_of(&c.cluster.project_id).await?;
    let req = SignCsr {
        cluster: c.cluster.uuid,
        csr: csr.clone(),
        ca: CaKind::from_param(f.str("ca_cert_type").as_deref()),
    };
    let pem = match store.sign(shard, &req).await? {
        SignResult::Signed(pem) => pem,
        SignResult::NoCertificates => return Err(no_certs(&c)),
        SignResult::BadCsr(m) => return Err(ApiError::BadRequest(m)),
        SignResult::Forbidden(m) => return Err(ApiError::Forbidden(m)),
    };
    let id = c.cluster.uuid.to_string();
    let view = SignedView {
        links: render::links(&ctx.base, "certificates", &id),
        cluster_uuid: id,
        csr,
        pem,
        ca_cert_type: f.str("ca_cert_type"),
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `PATCH /v1/certificates/{ident}` (`openstack coe ca rotate`): the body is ignored (the CLI
/// sends none, as `application/octet-stream`). New CAs and client certificate, then a stack
/// update; 202 `{"uuid"}` once the operation is committed.
async fn rotate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> Result<Response, ApiError> {
    let store = Store::new(&state, &ctx.who);
    let c = store.find_cluster(&ctx.who, &ident).await?;
    let project = c.cluster.project_id.clone();
    policy::enforce(&ctx.who, Action::CertificateRotateCa, Some(&project.0))?;
    let template = store
        .template_by_id(c.cluster.cluster_template_id, &project)
        .await?
        .unwrap_or_default();
    if template.tls_disabled {
        return Err(ApiError::BadRequest(format!(
            "Rotating the CA certificate on a non-TLS cluster is not supported, cluster: {}",
            c.cluster.uuid
        )));
    }
    // The driver's refusal is upstream's 400; here it comes before the cluster changes.
    if let Some(d) = crate::coe::template_driver(&template) {
        d.check_ca_rotation()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let shard = store.shard_of(&project).await?;
    let now = Timestamp::now();
    let cmd = ShardCommand::RotateCa {
        id: c.cluster.uuid,
        operation: super::cluster_update::operation(&c.cluster, OpKind::RotateCa, template, now),
        at: now,
    };
    store.submit(shard, cmd).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"uuid": c.cluster.uuid.to_string()})),
    )
        .into_response())
}
