//! `POST /internal/v1/shards/{n}/sign`: a CSR signed with a cluster's CA on the shard leader.
//! The request that mints cluster credentials (a `system:masters` client certificate is one
//! CSR away), so the conductor does not take the API node's word for who asks: it validates
//! the forwarded user token with Keystone itself and signs only for the cluster's project or
//! an admin.
use super::{decode, shard_group, ServiceState, SvcError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use magnum_net::{Peer, Role};
use magnum_proto::wire::{SignCsr, SignResult};
use magnum_proto::ProjectId;
use std::sync::Arc;

/// Signs on the leader, with the CA it read after a linearizability check; the private key never
/// leaves the conductor.
pub(super) async fn sign(
    State(s): State<Arc<ServiceState>>,
    peer: Option<Extension<Peer>>,
    Path(shard): Path<u32>,
    body: Bytes,
) -> Result<Response, SvcError> {
    let req: SignCsr = decode(&body)?;
    let group = shard_group(&s, shard)?;
    let (certs, project) = group
        .read(|l| {
            let st = &l.state;
            let project = st.rows().cluster(req.cluster).map(|c| c.project_id.clone());
            (st.certs(req.cluster).cloned(), project)
        })
        .await?;
    let (Some(c), Some(project)) = (certs, project) else {
        return Ok(Json(SignResult::NoCertificates).into_response());
    };
    let peer = peer.map_or(Peer::Anonymous, |Extension(p)| p);
    if let Err(why) = may_sign(&s, &peer, &req, &project).await? {
        tracing::warn!(%peer, cluster = %req.cluster, %why, "CSR signing refused");
        return Ok(Json(SignResult::Forbidden(why)).into_response());
    }
    let r = match crate::pki::csr::sign_csr(&c, &s.cert_key, req.ca, &req.csr) {
        Ok(pem) => SignResult::Signed(pem),
        Err(crate::pki::csr::SignError::BadCsr(m)) => SignResult::BadCsr(m),
        Err(e) => return Err(SvcError::Unavailable(e.to_string())),
    };
    Ok(Json(r).into_response())
}

/// Conductors and operators are trusted with every shard; anyone else (an API node, or a
/// plain caller where the mode lets one in) signs for the user whose token it forwards: a
/// token Keystone knows, scoped to the cluster's project or carrying the admin role. An API
/// node of a release before cluster version 2 forwards none, and is believed until then.
async fn may_sign(
    s: &ServiceState,
    peer: &Peer,
    req: &SignCsr,
    project: &ProjectId,
) -> Result<Result<(), String>, SvcError> {
    if matches!(peer, Peer::Verified(id) if matches!(id.role, Role::Conductor | Role::Operator)) {
        return Ok(Ok(()));
    }
    let Some(token) = &req.user_token else {
        if s.meta().read_local(|m| m.active_version()).get() < 2 {
            return Ok(Ok(()));
        }
        return Ok(Err(
            "The request carries no user token for the conductor to check.".into(),
        ));
    };
    match s.cloud.token_user(&token.0).await {
        Ok(Some(u)) if u.is_admin() || u.project_id.as_deref() == Some(project.0.as_str()) => {
            Ok(Ok(()))
        }
        Ok(Some(_)) => Ok(Err(
            "The user's token is not scoped to the cluster's project.".into(),
        )),
        Ok(None) => Ok(Err("The user's token is not valid.".into())),
        Err(e) => Err(SvcError::Unavailable(format!(
            "Keystone could not validate the user's token: {e}"
        ))),
    }
}
