//! The cluster's Keystone trustee and trust (reference §7): made after the certificates and
//! before the stack, which hands them to the nodes; its password replaced by a credential
//! rotation; deleted after the stack. Every call is find-or-create or idempotent, so a new
//! leader repeating a step adopts what the old one made instead of making a second.
use super::{advance, confirm_leadership, Ctx, Progress, StepError};
use crate::cloud::CloudError;
use magnum_proto::*;
use rand::distributions::{Alphanumeric, DistString};
use std::collections::BTreeMap;

/// Upstream's trustee passwords are 18 random characters.
const PASSWORD_LEN: usize = 18;

fn new_password() -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, PASSWORD_LEN)
}

/// The cluster's trustee with its password opened, for this step's cloud calls.
pub(super) fn opened_trustee(
    ctx: &Ctx,
    cluster: ClusterId,
) -> Result<Option<TrusteeRecord>, crate::pki::sealing::SealError> {
    let Some(mut t) = ctx.group.read_local(|l| l.state.trustee(cluster).cloned()) else {
        return Ok(None);
    };
    t.password = ctx.cfg.cert_key.open(&t.password)?;
    Ok(Some(t))
}

/// A refusal ends the operation with Keystone's reason; anything else is retried.
async fn settle<T>(
    ctx: &Ctx,
    op: &Operation,
    r: Result<T, CloudError>,
) -> Result<Result<T, Progress>, StepError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(CloudError::Permanent(reason)) => {
            advance(ctx, op, OpEvent::Failed { reason }).await.map(Err)
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn create(
    ctx: &Ctx,
    op: &Operation,
    view: &ClusterView,
) -> Result<Progress, StepError> {
    let Some(trustor) = op.trustor.as_ref().filter(|_| ctx.cloud.trusts()) else {
        return advance(ctx, op, OpEvent::TrusteeCreated { trustee: None }).await;
    };
    let token = match ctx.cfg.cert_key.open(&trustor.token) {
        Ok(t) => t,
        Err(e) => {
            let reason = format!("The trust could not be created: {e}.");
            return advance(ctx, op, OpEvent::Failed { reason }).await;
        }
    };
    let password = new_password();
    confirm_leadership(ctx).await?;
    let user = match settle(ctx, op, ctx.cloud.ensure_trustee(view, &password).await).await? {
        Ok(u) => u,
        Err(p) => return Ok(p),
    };
    let trustor = Trustor {
        token,
        ..trustor.clone()
    };
    let trust = ctx.cloud.ensure_trust(view, &user.id, &trustor).await;
    let trust_id = match settle(ctx, op, trust).await? {
        Ok(id) => id,
        Err(p) => return Ok(p),
    };
    let trustee = TrusteeRecord {
        user_id: user.id,
        username: user.name,
        domain_id: user.domain_id,
        password: ctx.cfg.cert_key.seal(&password),
        trust_id,
    };
    advance(
        ctx,
        op,
        OpEvent::TrusteeCreated {
            trustee: Some(trustee),
        },
    )
    .await
}

pub(super) async fn delete(
    ctx: &Ctx,
    op: &Operation,
    view: &ClusterView,
) -> Result<Progress, StepError> {
    if ctx.cloud.trusts() {
        confirm_leadership(ctx).await?;
        if let Err(p) = settle(ctx, op, ctx.cloud.delete_trustee(view).await).await? {
            return Ok(p);
        }
    }
    advance(ctx, op, OpEvent::TrusteeDeleted).await
}

pub(super) async fn rotate(
    ctx: &Ctx,
    op: &Operation,
    view: &ClusterView,
) -> Result<Progress, StepError> {
    let Some(t) = &view.trustee else {
        let reason = "Credential rotation is not supported by driver.".to_string();
        return advance(ctx, op, OpEvent::Failed { reason }).await;
    };
    let password = new_password();
    confirm_leadership(ctx).await?;
    let set = ctx
        .cloud
        .set_trustee_password(view, &t.user_id, &password)
        .await;
    if let Err(p) = settle(ctx, op, set).await? {
        return Ok(p);
    }
    let password = ctx.cfg.cert_key.seal(&password);
    advance(ctx, op, OpEvent::TrusteePasswordRotated { password }).await
}

/// What a credential rotation's stack update sends: the trustee's new password.
pub(super) fn stack_parameters(
    view: &ClusterView,
) -> Result<BTreeMap<String, serde_json::Value>, StepError> {
    let t = view
        .trustee
        .as_ref()
        .ok_or_else(|| StepError::Retry("the cluster's trustee is missing".into()))?;
    Ok(BTreeMap::from([(
        "trustee_password".to_string(),
        t.password.clone().into(),
    )]))
}
