//! CADF notifications (reference §10) as an outbox in the shard state: the transition and the
//! notification that reports it commit in one command, so a leader failover can neither lose
//! one nor invent one; the leader delivers the outbox with each entry's id as idempotency key.
use crate::shard::ShardState;
use magnum_proto::*;
use serde_json::{json, Value};

/// Namespace of the CADF event ids (uuid v5 of the idempotency key).
const CADF_NS: uuid::Uuid = uuid::Uuid::from_u128(0x6d61_676e_756d_2d63_6164_662d_6576_656e);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    Success,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

impl ShardState {
    /// Queues `magnum.cluster.<action>` with `outcome` for the cluster as it is now.
    pub(crate) fn notify(&mut self, id: ClusterId, action: &str, outcome: Outcome, at: Timestamp) {
        let Some(view) = self.view(id) else {
            return;
        };
        // Unique across shards and commands, and ordered by the log within a shard.
        let key = format!(
            "magnum-s{}-{:020}-{}",
            self.shard.0, self.apply_index, self.emitted
        );
        self.emitted += 1;
        let n = Notification {
            id: key.clone(),
            event_type: format!("magnum.cluster.{action}"),
            priority: if outcome == Outcome::Failure {
                "ERROR"
            } else {
                "INFO"
            }
            .into(),
            payload: cadf(&key, &view, action, outcome, at),
            at,
        };
        self.rows.push_notification(n);
    }

    pub(crate) fn notifications_delivered(&mut self, ids: &[String]) -> ShardResponse {
        for id in ids {
            self.rows.remove_notification(id);
        }
        Ok(CommandOk::Done)
    }

    /// Notifications not yet delivered, oldest first.
    pub fn outbox(&self) -> impl Iterator<Item = &Notification> {
        self.rows.outbox().values()
    }
}

/// The CADF event Magnum's `conductor_utils.notify_about_cluster_operation` builds.
fn cadf(key: &str, v: &ClusterView, action: &str, outcome: Outcome, at: Timestamp) -> Value {
    let c = &v.cluster;
    let ts = |t: Option<Timestamp>| t.map(Timestamp::to_magnum);
    let cluster_data = json!({
        "status": c.status.as_str(),
        "status_reason": c.status_reason,
        "project_id": c.project_id.0,
        "created_at": ts(Some(c.created_at)),
        "updated_at": ts(c.updated_at),
        "cluster_template_id": c.cluster_template_id.to_string(),
        "keypair": c.keypair,
        // Upstream's key really ends in a colon.
        "docker_volume_size:": c.docker_volume_size,
        "labels": c.labels,
        "master_flavor_id": c.master_flavor_id,
        "flavor_id": c.flavor_id,
        "stack_id": c.stack_id,
        "health_status": c.health_status,
        "create_timeout": c.create_timeout,
        "api_address": c.api_address,
        "discovery_url": c.discovery_url,
        "node_addresses": v.node_addresses(),
        "master_addresses": v.master_addresses(),
        "node_count": v.node_count(),
        "master_count": v.master_count(),
    });
    json!({
        "typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event",
        "id": uuid::Uuid::new_v5(&CADF_NS, key.as_bytes()).to_string(),
        "eventTime": at.to_magnum(),
        "eventType": "activity",
        "action": action,
        "outcome": outcome.as_str(),
        "initiator": {
            "typeURI": "service/security/account/user",
            "id": c.user_id.0,
            "user_id": c.user_id.0,
            "project_id": c.project_id.0,
        },
        "observer": {"typeURI": "service/magnum/cluster", "id": "target"},
        "target": {
            "typeURI": "service/magnum/cluster",
            "id": c.uuid.to_string(),
            "name": c.name,
            "attachments": [{
                "typeURI": "mime:application/json",
                "name": "cluster_data",
                "content": cluster_data,
            }],
        },
    })
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
