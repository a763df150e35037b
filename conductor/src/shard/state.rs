//! The deterministic state machine of one data shard: every row a project owns (`rows`), the
//! active operation of each cluster, the ownership epoch and the request dedup table. No clock,
//! no randomness, no I/O: timestamps and ids travel inside the commands. This file dispatches
//! commands; each concern lives in its own file (`catalog`, `clusters`, `advance`, `update`, …).
use crate::shard::migrate::STACK_IDS_RESTORED;
use crate::shard::persist;
use crate::shard::rows::{Dirty, Rows};
use magnum_proto::*;
use magnum_raft::StoredRows;
use std::collections::BTreeMap;

/// How many log indexes a request id is remembered for dedup.
const DEDUP_WINDOW: u64 = 100_000;

/// Stored rows a command reads (`ShardState::fetch`).
#[derive(Default)]
pub(super) struct Fetched {
    pub certs: BTreeMap<ClusterId, ClusterCerts>,
    pub answers: BTreeMap<RequestId, (u64, ShardResponse)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardState {
    pub shard: ShardId,
    pub shards: u32,
    /// Everything persisted; changed only through its mutators, which mark what to write.
    pub(super) rows: Rows,
    /// Log index of the command being applied and notifications it emitted so far: the
    /// notification ids. Not part of the state.
    pub(super) apply_index: u64,
    pub(super) emitted: u32,
}

impl ShardState {
    pub fn new(shard: ShardId, shards: u32) -> Self {
        Self {
            shard,
            shards,
            ..Self::default()
        }
    }

    /// The persisted rows, read-only.
    pub fn rows(&self) -> &Rows {
        &self.rows
    }

    pub fn epoch(&self) -> u64 {
        self.rows.epoch()
    }

    pub fn owner(&self) -> Option<NodeId> {
        self.rows.owner()
    }

    /// Apply one forwarded request; a repeated request id returns the first answer unchanged.
    /// `stored` holds the rows kept on disk only (`rows`); `Err` is a failure to read them,
    /// which must fail the apply: this replica can no longer answer as the others do.
    pub fn apply_request(
        &mut self,
        index: u64,
        req: &ShardRequest,
        stored: &dyn StoredRows,
    ) -> Result<ShardResponse, String> {
        if let Some(id) = req.request_id {
            if self.rows.requests().contains_key(&id) {
                let answer = persist::answer(&self.rows, stored, id)?;
                let (_, resp) = answer.ok_or_else(|| format!("answer of request {id} missing"))?;
                return Ok(resp);
            }
        }
        let fetched = self.fetch(&req.command, stored)?;
        self.apply_index = index;
        self.emitted = 0;
        let resp = self.apply_command(index, &req.command, fetched);
        (self.apply_index, self.emitted) = (0, 0);
        if let Some(id) = req.request_id {
            self.rows.remember_request(id, index, resp.clone());
        }
        if index.is_multiple_of(1024) {
            self.rows.forget_requests(|i| i + DEDUP_WINDOW < index);
        }
        Ok(resp)
    }

    /// `apply_request` with no stored rows but those of earlier commands not yet taken
    /// (`take_dirty`): for tests that keep no disk.
    #[cfg(test)]
    pub(crate) fn apply(&mut self, index: u64, req: &ShardRequest) -> ShardResponse {
        self.apply_request(index, req, &magnum_raft::NoStoredRows)
            .expect("no stored rows are read")
    }

    /// `query` for tests that keep no disk.
    #[cfg(test)]
    pub(crate) fn ask(&self, q: &ShardQuery) -> QueryResult {
        self.query(q, &magnum_raft::NoStoredRows)
            .expect("no stored rows are read")
    }

    /// Commands of the shard leader are fenced by the ownership epoch they were made under.
    pub(super) fn check_epoch(&self, epoch: u64) -> Result<(), CommandError> {
        if epoch != self.epoch() {
            return Err(CommandError::StaleEpoch {
                current: self.epoch(),
            });
        }
        Ok(())
    }

    /// The stored rows `cmd` reads, read before it runs so that running it stays pure (none
    /// for a command its epoch refuses).
    fn fetch(&self, cmd: &ShardCommand, stored: &dyn StoredRows) -> Result<Fetched, String> {
        let mut f = Fetched::default();
        match cmd {
            ShardCommand::Reseal { epoch, secrets } if *epoch == self.epoch() => {
                for s in secrets.iter().filter(|s| s.field.is_certificate()) {
                    if let Some(c) = persist::certs(&self.rows, stored, s.cluster)? {
                        f.certs.insert(s.cluster, c);
                    }
                }
            }
            ShardCommand::RestoreStackIds { epoch, .. }
                if *epoch == self.epoch() && !self.rows.migrated(STACK_IDS_RESTORED) =>
            {
                for id in self.rows.requests().keys() {
                    if let Some(a) = persist::answer(&self.rows, stored, *id)? {
                        f.answers.insert(*id, a);
                    }
                }
            }
            _ => {}
        }
        Ok(f)
    }

    fn apply_command(&mut self, index: u64, cmd: &ShardCommand, fetched: Fetched) -> ShardResponse {
        match cmd {
            ShardCommand::TakeOwnership { node, epoch } => {
                if *epoch <= self.epoch() {
                    return Err(CommandError::StaleEpoch {
                        current: self.epoch(),
                    });
                }
                self.rows.set_ownership(*epoch, Some(*node));
                Ok(CommandOk::Owned { epoch: *epoch })
            }
            ShardCommand::CreateTemplate {
                template,
                max_per_project,
            } => self.create_template(template, *max_per_project),
            ShardCommand::UpdateTemplate { template, at } => self.update_template(template, *at),
            ShardCommand::DeleteTemplate { id } => self.delete_template(*id),
            ShardCommand::CreateCluster {
                cluster,
                nodegroups,
                operation,
            } => self.create_cluster(index, cluster, nodegroups, operation),
            ShardCommand::DeleteCluster {
                id,
                op,
                at,
                deadline,
            } => self.delete_cluster(*id, *op, *at, *deadline),
            ShardCommand::Advance {
                epoch,
                cluster,
                op,
                event,
                at,
            } => {
                self.check_epoch(*epoch)?;
                match self.rows.operation(*cluster) {
                    Some(o) if o.id == *op => {}
                    _ => return Err(CommandError::StaleOperation),
                }
                self.advance(*cluster, event, *at);
                Ok(CommandOk::Done)
            }
            ShardCommand::Canary { key, value } => self.canary(key, value),
            ShardCommand::SyncStatus {
                epoch,
                cluster,
                status,
                reason,
                outputs,
                at,
            } => self.sync_status(*epoch, *cluster, *status, reason, outputs.as_ref(), *at),
            ShardCommand::SyncNodeGroupStatus {
                epoch,
                cluster,
                nodegroup,
                status,
                reason,
                node_addresses,
                at,
            } => self.sync_nodegroup_status(
                *epoch,
                (*cluster, *nodegroup),
                *status,
                reason,
                node_addresses.as_deref(),
                *at,
            ),
            ShardCommand::ObserveHealth {
                epoch,
                cluster,
                health_status,
                health_status_reason,
                at,
            } => self.observe_health(*epoch, *cluster, health_status, health_status_reason, *at),
            ShardCommand::UpdateCluster {
                id,
                node_count,
                rollback,
                operation,
                at,
            } => self.update_cluster(*id, *node_count, *rollback, operation, *at),
            ShardCommand::ResizeCluster {
                id,
                nodegroup,
                node_count,
                nodes_to_remove,
                operation,
                at,
            } => self.resize_cluster(
                *id,
                *nodegroup,
                *node_count,
                nodes_to_remove,
                operation,
                *at,
            ),
            ShardCommand::SetHealth {
                id,
                health_status,
                health_status_reason,
                at,
            } => self.set_health(*id, health_status, health_status_reason, *at),
            ShardCommand::CreateQuota { quota } => {
                let id = self.row_id(index, 0);
                self.create_quota(id, quota)
            }
            ShardCommand::UpdateQuota {
                project_id,
                resource,
                hard_limit,
                at,
            } => self.update_quota(project_id, resource, *hard_limit, *at),
            ShardCommand::CreateFederation { federation } => self.create_federation(federation),
            ShardCommand::UpdateFederation { id, change, at } => {
                self.update_federation(*id, change, *at)
            }
            ShardCommand::DeleteFederation { id } => self.delete_federation(*id),
            ShardCommand::CreateNodeGroup {
                nodegroup,
                operation,
                at,
            } => self.create_nodegroup(index, nodegroup, operation, *at),
            ShardCommand::UpdateNodeGroup {
                cluster,
                nodegroup,
                min_node_count,
                max_node_count,
                at,
            } => self.update_nodegroup(*cluster, *nodegroup, *min_node_count, *max_node_count, *at),
            ShardCommand::DeleteNodeGroup {
                cluster,
                nodegroup,
                operation,
                at,
            } => self.delete_nodegroup(*cluster, *nodegroup, operation, *at),
            ShardCommand::UpgradeCluster {
                id,
                nodegroup,
                template,
                max_batch_size,
                operation,
                at,
            } => self.upgrade_cluster(*id, *nodegroup, template, *max_batch_size, operation, *at),
            ShardCommand::DeleteQuota {
                project_id,
                resource,
            } => self.delete_quota(project_id, resource),
            ShardCommand::RotateCa { id, operation, at } => self.rotate_ca(*id, operation, *at),
            ShardCommand::RotateCredential { id, operation, at } => {
                self.rotate_credential(*id, operation, *at)
            }
            ShardCommand::NotificationsDelivered { epoch, ids } => {
                self.check_epoch(*epoch)?;
                self.notifications_delivered(ids)
            }
            ShardCommand::RestoreStackIds { epoch, stacks } => {
                self.check_epoch(*epoch)?;
                Ok(self.restore_stack_ids(stacks, fetched.answers))
            }
            ShardCommand::Reseal { epoch, secrets } => {
                self.check_epoch(*epoch)?;
                Ok(self.reseal(secrets, fetched.certs))
            }
            ShardCommand::RememberDeletedStacks { epoch, tombstone } => {
                self.check_epoch(*epoch)?;
                self.rows.put_tombstone(tombstone.clone());
                Ok(CommandOk::Done)
            }
            ShardCommand::ForgetDeletedStacks {
                epoch,
                clusters,
                nodegroups,
            } => {
                self.check_epoch(*epoch)?;
                let keys = clusters.iter().map(|c| (*c, None));
                for key in keys.chain(nodegroups.iter().map(|(c, ng)| (*c, Some(*ng)))) {
                    self.rows.remove_tombstone(key);
                }
                Ok(CommandOk::Done)
            }
        }
    }

    /// An id unique across shards for the `slot`-th row a command at `index` creates.
    pub(crate) fn row_id(&self, index: u64, slot: u64) -> u64 {
        index
            .saturating_mul(u64::from(self.shards.max(1)))
            .saturating_add(u64::from(self.shard.0))
            .saturating_mul(16)
            .saturating_add(slot.min(15))
    }

    pub(crate) fn take_dirty(&mut self) -> Dirty {
        self.rows.take_dirty()
    }
}
