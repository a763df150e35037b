//! Versions for rolling upgrades. Each binary supports a monotonic feature version; the meta
//! group commits the active cluster version, and a command kind is proposed only once the
//! active version reaches the one that introduced it ([`min_version`], the one table).
use crate::command::ShardCommand;
use crate::meta::MetaCommand;

/// What every release before versioning speaks; an existing deployment without a version row,
/// and a heartbeat without a feature field, read as this.
pub const BASE_VERSION: u32 = 1;

/// This binary's feature version. 2: `MetaCommand::SetClusterVersion`, the heartbeat's
/// `feature_version` and API nodes, operation requests without their version 1 fields
/// (`OperationRequest::legacy`), the `RestoreStackIds` repair, and on-disk data version 3 once
/// finalized. 3: the orphan-stack reaper's tombstones (`RememberDeletedStacks`,
/// `ForgetDeletedStacks`). 4: nodegroups' tombstones (`Tombstone::nodegroup`,
/// `ForgetDeletedStacks::nodegroups`).
pub const FEATURE_VERSION: u32 = 4;

/// Crate version of this binary (shown beside the feature version).
pub const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Conductors before this feature version cannot decode `SetClusterVersion` (their meta apply
/// answers `Undecodable`): it is proposed only once every registered conductor reports this.
pub const SET_CLUSTER_VERSION_DECODERS: u32 = 2;

/// The internal listener's RPCs (`wire`), for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    Topology,
    ShardCommand,
    ShardQuery,
    MultiQuery,
    Sign,
    MetaCommand,
    MetaQuery,
    SetMembers,
    Transfer,
}

/// Anything that needs a cluster version to be used.
#[derive(Clone, Copy, Debug)]
pub enum Kind<'a> {
    Shard(&'a ShardCommand),
    Meta(&'a MetaCommand),
    Rpc(Rpc),
}

impl Kind<'_> {
    /// The variant's name, for messages.
    pub fn name(&self) -> String {
        let full = match self {
            Kind::Shard(c) => format!("{c:?}"),
            Kind::Meta(c) => format!("{c:?}"),
            Kind::Rpc(r) => format!("{r:?}"),
        };
        let end = full.find([' ', '(', '{']).unwrap_or(full.len());
        full[..end].to_string()
    }
}

/// The minimum active cluster version that may use each kind. Adding a kind = adding a row
/// here (with the binary's next `FEATURE_VERSION` for a kind older binaries cannot decode).
pub fn min_version(kind: Kind<'_>) -> u32 {
    use MetaCommand as M;
    use ShardCommand as S;
    match kind {
        // Version 1 conductors decode a whole `Operation` in these (see `LegacyOperation`).
        Kind::Shard(
            S::CreateCluster { operation, .. }
            | S::UpdateCluster { operation, .. }
            | S::ResizeCluster { operation, .. }
            | S::CreateNodeGroup { operation, .. }
            | S::DeleteNodeGroup { operation, .. }
            | S::UpgradeCluster { operation, .. }
            | S::RotateCa { operation, .. }
            | S::RotateCredential { operation, .. },
        ) => {
            if operation.legacy.is_some() {
                1
            } else {
                2
            }
        }
        // Version 1 replicas would not check the bound, and would diverge from those that do.
        Kind::Shard(S::CreateTemplate {
            max_per_project: Some(_),
            ..
        }) => 2,
        Kind::Shard(
            S::TakeOwnership { .. }
            | S::CreateTemplate {
                max_per_project: None,
                ..
            }
            | S::UpdateTemplate { .. }
            | S::DeleteTemplate { .. }
            | S::DeleteCluster { .. }
            | S::SetHealth { .. }
            | S::Advance { .. }
            | S::CreateQuota { .. }
            | S::UpdateQuota { .. }
            | S::DeleteQuota { .. }
            | S::Canary { .. }
            | S::CreateFederation { .. }
            | S::UpdateFederation { .. }
            | S::DeleteFederation { .. }
            | S::UpdateNodeGroup { .. }
            | S::SyncStatus { .. }
            | S::SyncNodeGroupStatus { .. }
            | S::ObserveHealth { .. }
            | S::NotificationsDelivered { .. },
        ) => 1,
        // Run at finalize; version 1 conductors cannot decode it.
        Kind::Shard(S::RestoreStackIds { .. }) => 2,
        // Sealing-key rotation; version 1 conductors cannot decode it.
        Kind::Shard(S::Reseal { .. }) => 2,
        // The reaper's tombstones; version 2 conductors cannot decode them. A nodegroup's:
        // version 3 replicas would key it by its cluster and never drop it (they ignore the
        // field), so they would diverge from the rest.
        Kind::Shard(S::RememberDeletedStacks { tombstone, .. }) => {
            if tombstone.nodegroup.is_some() {
                4
            } else {
                3
            }
        }
        Kind::Shard(S::ForgetDeletedStacks { nodegroups, .. }) => {
            if nodegroups.is_empty() {
                3
            } else {
                4
            }
        }
        Kind::Meta(
            M::Bootstrap(_)
            | M::Heartbeat { .. }
            | M::InitPlacement { .. }
            | M::AddNode { .. }
            | M::SetNodeState { .. }
            | M::SetPlacement { .. }
            | M::ForgetNode { .. },
        ) => 1,
        // Version 1 so that finalizing 1 → 2 can use it; the propose handle also requires
        // every registered conductor to decode it (SET_CLUSTER_VERSION_DECODERS).
        Kind::Meta(M::SetClusterVersion { .. }) => 1,
        Kind::Rpc(
            Rpc::Topology
            | Rpc::ShardCommand
            | Rpc::ShardQuery
            | Rpc::MultiQuery
            | Rpc::Sign
            | Rpc::MetaCommand
            | Rpc::MetaQuery
            | Rpc::SetMembers
            | Rpc::Transfer,
        ) => 1,
    }
}

/// Writes `cmd` in the shape the active cluster version reads: a field newer than it is left
/// out (the command then means what it meant before that field), so a client that always sends
/// the new shape still works until the operator finalizes.
pub fn fit_to(cmd: &mut ShardCommand, active: u32) {
    if let ShardCommand::CreateTemplate {
        max_per_project, ..
    } = cmd
    {
        if active < 2 {
            *max_per_project = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_today_is_version_1() {
        let canary = ShardCommand::Canary {
            key: "k".into(),
            value: "v".into(),
        };
        assert_eq!(min_version(Kind::Shard(&canary)), 1);
        let set = MetaCommand::SetClusterVersion { version: 2 };
        assert_eq!(min_version(Kind::Meta(&set)), 1);
        let forget = MetaCommand::ForgetNode {
            id: crate::NodeId(1),
        };
        assert_eq!(min_version(Kind::Meta(&forget)), 1);
        assert_eq!(min_version(Kind::Rpc(Rpc::MultiQuery)), 1);
        // No kind needs more than this binary supports.
        assert!(min_version(Kind::Shard(&canary)) <= FEATURE_VERSION);
    }

    /// A request without its version 1 fields must not reach a log a version 1 replica applies.
    #[test]
    fn a_compact_operation_request_needs_version_2() {
        let op = crate::OperationRequest {
            id: crate::OpId::new_v4(),
            started_at: crate::Timestamp(1),
            deadline: crate::Timestamp(2),
            template: crate::ClusterTemplate::default(),
            trustor: None,
            legacy: None,
        };
        let id = crate::ClusterId::new_v4();
        let rotate = |operation| ShardCommand::RotateCa {
            id,
            operation,
            at: crate::Timestamp(1),
        };
        assert_eq!(min_version(Kind::Shard(&rotate(op.clone()))), 2);
        let v1 = op.readable_by_v1(crate::OpKind::RotateCa, id, "s".into());
        assert_eq!(min_version(Kind::Shard(&rotate(v1))), 1);
    }

    #[test]
    fn a_template_bound_needs_version_2_and_is_left_out_before() {
        let mut bounded = ShardCommand::CreateTemplate {
            template: crate::ClusterTemplate::default(),
            max_per_project: Some(3),
        };
        assert_eq!(min_version(Kind::Shard(&bounded)), 2);
        fit_to(&mut bounded, 2);
        assert_eq!(min_version(Kind::Shard(&bounded)), 2, "kept once active");
        fit_to(&mut bounded, 1);
        assert_eq!(min_version(Kind::Shard(&bounded)), 1);
        // The version 1 shape: no field at all on the wire.
        let json = serde_json::to_string(&bounded).unwrap();
        assert!(!json.contains("max_per_project"), "{json}");
    }

    /// A version 3 replica would key a nodegroup's tombstone by its cluster and never drop it.
    #[test]
    fn nodegroup_tombstones_need_version_4_and_cluster_ones_3() {
        let cluster = crate::ClusterId::new_v4();
        let tombstone = |nodegroup| crate::Tombstone {
            cluster,
            nodegroup,
            project_id: crate::ProjectId::from("p"),
            stacks: vec!["s".into()],
            deleted_at: crate::Timestamp(1),
        };
        let remember = |nodegroup| ShardCommand::RememberDeletedStacks {
            epoch: 1,
            tombstone: tombstone(nodegroup),
        };
        let ng = crate::NodeGroupId::new_v4();
        assert_eq!(min_version(Kind::Shard(&remember(None))), 3);
        assert_eq!(min_version(Kind::Shard(&remember(Some(ng)))), 4);
        let forget = |nodegroups| ShardCommand::ForgetDeletedStacks {
            epoch: 1,
            clusters: vec![cluster],
            nodegroups,
        };
        assert_eq!(min_version(Kind::Shard(&forget(Vec::new()))), 3);
        assert_eq!(min_version(Kind::Shard(&forget(vec![(cluster, ng)]))), 4);
        // The version 3 shapes are unchanged on the wire.
        let json = serde_json::to_string(&remember(None)).unwrap();
        assert!(!json.contains("nodegroup"), "{json}");
        let json = serde_json::to_string(&forget(Vec::new())).unwrap();
        assert!(!json.contains("nodegroups"), "{json}");
    }

    #[test]
    fn names_are_the_variant() {
        let c = ShardCommand::Canary {
            key: "k".into(),
            value: "v".into(),
        };
        assert_eq!(Kind::Shard(&c).name(), "Canary");
        let m = MetaCommand::SetClusterVersion { version: 2 };
        assert_eq!(Kind::Meta(&m).name(), "SetClusterVersion");
        assert_eq!(Kind::Rpc(Rpc::Sign).name(), "Sign");
    }
}
