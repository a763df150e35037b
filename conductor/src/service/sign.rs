//! `POST /internal/v1/shards/{n}/sign`: a CSR signed with a cluster's CA on the shard leader.
//! The request that mints cluster credentials (a `system:masters` client certificate is one
//! CSR away), so it is served only for a caller who sees the cluster's project (`Caller`):
//! the API node's word for who asks is not taken.
use super::{caller_of, decode_envelope, shard_group, ServiceState, SvcError};
use crate::shard::persist::stored_certs;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use magnum_net::Peer;
use magnum_proto::wire::{Envelope, SignCsr, SignResult};
use std::sync::Arc;

/// Signs on the leader, with the CA it read after a linearizability check; the private key never
/// leaves the conductor.
pub(super) async fn sign(
    State(s): State<Arc<ServiceState>>,
    peer: Option<Extension<Peer>>,
    Path(shard): Path<u32>,
    body: Bytes,
) -> Result<Response, SvcError> {
    let env: Envelope<SignCsr> = decode_envelope(&body)?;
    let caller = match caller_of(&s, peer, env.user.as_ref()).await {
        Err(SvcError::UserRefused(why)) => Err(why),
        Ok(c) => Ok(c),
        Err(e) => return Err(e),
    };
    let req = env.body;
    let group = shard_group(&s, shard)?;
    let project = group
        .read(|l| {
            let rows = l.state.rows();
            rows.cluster(req.cluster).map(|c| c.project_id.clone())
        })
        .await?;
    let certs = stored_certs(&group.stored(), req.cluster)
        .map_err(|e| SvcError::Unavailable(format!("shard {shard}: {e}")))?;
    let (Some(c), Some(project)) = (certs, project) else {
        return Ok(Json(SignResult::NoCertificates).into_response());
    };
    let refused = match &caller {
        Err(why) => Some(why.clone()),
        Ok(c) if !c.sees(&project) => {
            Some("The user's token is not scoped to the cluster's project.".to_string())
        }
        Ok(_) => None,
    };
    if let Some(why) = refused {
        tracing::warn!(cluster = %req.cluster, %why, "CSR signing refused");
        return Ok(Json(SignResult::Forbidden(why)).into_response());
    }
    let r = match crate::pki::csr::sign_csr(&c, &s.cert_key, req.ca, &req.csr) {
        Ok(pem) => SignResult::Signed(pem),
        Err(crate::pki::csr::SignError::BadCsr(m)) => SignResult::BadCsr(m),
        Err(e) => return Err(SvcError::Unavailable(e.to_string())),
    };
    Ok(Json(r).into_response())
}
