//! Federations (reference §4.9): a host cluster and member clusters of one project. Upstream's
//! conductor never implemented them; here the rows are stored in the owning project's shard
//! and complete at once, because there is nothing to drive.
use crate::ids::*;
use crate::model::ClusterStatus;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Federation {
    pub uuid: FederationId,
    pub name: String,
    pub project_id: ProjectId,
    /// The host cluster's uuid.
    pub hostcluster_id: String,
    /// Member clusters' uuids, in join order.
    pub member_ids: Vec<String>,
    pub status: ClusterStatus,
    pub status_reason: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// What a federation PATCH changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FederationChange {
    /// `add` of one cluster uuid on `/member_ids`: 409 if already a member.
    Join { member: String },
    /// `remove` of one cluster uuid on `/member_ids`: 404 if not a member.
    Leave { member: String },
    /// Any other patch: the new values of the changeable fields (`None` = unchanged).
    Set {
        member_ids: Option<Vec<String>>,
        properties: Option<BTreeMap<String, String>>,
    },
}
