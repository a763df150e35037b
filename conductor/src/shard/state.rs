//! The deterministic state machine of one data shard: every row a project owns, the active
//! operation of each cluster, the ownership epoch and the request dedup table. No clock, no
//! randomness, no I/O: timestamps and ids travel inside the commands.
use crate::shard::messages;
use crate::shard::notify::Outcome;
use magnum_proto::*;
use std::collections::{BTreeMap, BTreeSet};

/// How many log indexes a request id is remembered for dedup.
const DEDUP_WINDOW: u64 = 100_000;

/// A row key; `persist` turns it into bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Ownership,
    Template(TemplateId),
    Cluster(ClusterId),
    NodeGroups(ClusterId),
    Certs(ClusterId),
    Trustee(ClusterId),
    Op(ClusterId),
    Quota(ProjectId, String),
    Request(RequestId),
    Canary(String),
    Federation(FederationId),
    Notification(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardState {
    pub shard: ShardId,
    pub shards: u32,
    pub epoch: u64,
    pub owner: Option<NodeId>,
    pub(crate) templates: BTreeMap<TemplateId, ClusterTemplate>,
    pub(crate) clusters: BTreeMap<ClusterId, Cluster>,
    pub(crate) nodegroups: BTreeMap<ClusterId, Vec<NodeGroup>>,
    pub(crate) certs: BTreeMap<ClusterId, ClusterCerts>,
    pub(crate) trustees: BTreeMap<ClusterId, TrusteeRecord>,
    pub(crate) ops: BTreeMap<ClusterId, Operation>,
    pub(crate) quotas: BTreeMap<(ProjectId, String), Quota>,
    pub(crate) requests: BTreeMap<RequestId, (u64, ShardResponse)>,
    pub(crate) canaries: BTreeMap<String, String>,
    pub(crate) federations: BTreeMap<FederationId, Federation>,
    /// CADF notifications not yet delivered (`state_notify`).
    pub(crate) outbox: BTreeMap<String, Notification>,
    /// Log index of the command being applied and notifications it emitted so far: the
    /// notification ids. Not part of the state.
    pub(crate) apply_index: u64,
    pub(crate) emitted: u32,
    /// Keys changed since the last `take_dirty`; not part of the state.
    pub(crate) dirty: BTreeSet<Key>,
}

impl ShardState {
    pub fn new(shard: ShardId, shards: u32) -> Self {
        Self {
            shard,
            shards,
            ..Self::default()
        }
    }

    /// Apply one forwarded request; a repeated request id returns the first answer unchanged.
    pub fn apply_request(&mut self, index: u64, req: &ShardRequest) -> ShardResponse {
        if let Some(id) = req.request_id {
            if let Some((_, resp)) = self.requests.get(&id) {
                return resp.clone();
            }
        }
        self.apply_index = index;
        self.emitted = 0;
        let resp = self.apply_command(index, &req.command);
        (self.apply_index, self.emitted) = (0, 0);
        if let Some(id) = req.request_id {
            self.requests.insert(id, (index, resp.clone()));
            self.dirty.insert(Key::Request(id));
        }
        if index.is_multiple_of(1024) {
            self.prune_requests(index);
        }
        resp
    }

    fn prune_requests(&mut self, index: u64) {
        let old: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, (i, _))| i + DEDUP_WINDOW < index)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.requests.remove(&k);
            self.dirty.insert(Key::Request(k));
        }
    }

    fn apply_command(&mut self, index: u64, cmd: &ShardCommand) -> ShardResponse {
        match cmd {
            ShardCommand::TakeOwnership { node, epoch } => {
                if *epoch <= self.epoch {
                    return Err(CommandError::StaleEpoch {
                        current: self.epoch,
                    });
                }
                self.epoch = *epoch;
                self.owner = Some(*node);
                self.dirty.insert(Key::Ownership);
                Ok(CommandOk::Owned { epoch: *epoch })
            }
            ShardCommand::CreateTemplate { template } => self.create_template(template),
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
                if *epoch != self.epoch {
                    return Err(CommandError::StaleEpoch {
                        current: self.epoch,
                    });
                }
                match self.ops.get(cluster) {
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
            } => {
                let k = (project_id.clone(), resource.clone());
                if self.quotas.remove(&k).is_none() {
                    return Err(CommandError::NotFound(messages::quota_not_found(
                        project_id, resource,
                    )));
                }
                self.dirty.insert(Key::Quota(k.0, k.1));
                Ok(CommandOk::Done)
            }
            ShardCommand::RotateCa { id, operation, at } => self.rotate_ca(*id, operation, *at),
            ShardCommand::RotateCredential { id, operation, at } => {
                self.rotate_credential(*id, operation, *at)
            }
            ShardCommand::NotificationsDelivered { epoch, ids } => {
                if *epoch != self.epoch {
                    return Err(CommandError::StaleEpoch {
                        current: self.epoch,
                    });
                }
                self.notifications_delivered(ids)
            }
        }
    }

    fn create_quota(&mut self, id: u64, q: &Quota) -> ShardResponse {
        let k = (q.project_id.clone(), q.resource.clone());
        if self.quotas.contains_key(&k) {
            return Err(CommandError::Conflict(messages::quota_exists(
                &q.project_id,
                &q.resource,
            )));
        }
        let mut q = q.clone();
        q.id = id;
        q.updated_at = None;
        self.quotas.insert(k.clone(), q.clone());
        self.dirty.insert(Key::Quota(k.0, k.1));
        Ok(CommandOk::Quota(q))
    }

    fn update_quota(
        &mut self,
        project: &ProjectId,
        resource: &str,
        hard_limit: u32,
        at: Timestamp,
    ) -> ShardResponse {
        let k = (project.clone(), resource.to_string());
        let Some(q) = self.quotas.get_mut(&k) else {
            return Err(CommandError::NotFound(messages::quota_not_found(
                project, resource,
            )));
        };
        q.hard_limit = hard_limit;
        q.updated_at = Some(at);
        let q = q.clone();
        self.dirty.insert(Key::Quota(k.0, k.1));
        Ok(CommandOk::Quota(q))
    }

    fn canary(&mut self, key: &str, value: &str) -> ShardResponse {
        if key.is_empty() || key.len() > CANARY_MAX_KEY || value.len() > CANARY_MAX_VALUE {
            return Err(CommandError::BadRequest(format!(
                "A canary key must have 1 to {CANARY_MAX_KEY} bytes and its value at most \
                 {CANARY_MAX_VALUE}."
            )));
        }
        self.canaries.insert(key.to_string(), value.to_string());
        self.dirty.insert(Key::Canary(key.to_string()));
        Ok(CommandOk::Done)
    }

    fn create_template(&mut self, t: &ClusterTemplate) -> ShardResponse {
        let Some(id) = t.uuid else {
            return Err(CommandError::BadRequest(
                "A cluster template needs a uuid.".into(),
            ));
        };
        if self.templates.contains_key(&id) {
            return Err(CommandError::Conflict(messages::template_exists(id)));
        }
        let mut t = t.clone();
        t.version = 0;
        self.templates.insert(id, t.clone());
        self.dirty.insert(Key::Template(id));
        Ok(CommandOk::Template(Box::new(t)))
    }

    fn update_template(&mut self, new: &ClusterTemplate, at: Timestamp) -> ShardResponse {
        let Some(id) = new.uuid else {
            return Err(CommandError::BadRequest(
                "A cluster template needs a uuid.".into(),
            ));
        };
        let Some(old) = self.templates.get(&id) else {
            return Err(CommandError::NotFound(messages::template_not_found(
                &id.to_string(),
            )));
        };
        if old.version != new.version {
            return Err(CommandError::Conflict(
                messages::template_concurrent_update(id),
            ));
        }
        if self.template_in_use(id) && !in_use_change_allowed(old, new) {
            return Err(CommandError::BadRequest(messages::template_referenced(id)));
        }
        let mut t = new.clone();
        t.version = old.version + 1;
        t.updated_at = Some(at);
        // Identity and ownership never change through an update.
        t.project_id = old.project_id.clone();
        t.user_id = old.user_id.clone();
        t.created_at = old.created_at;
        self.templates.insert(id, t.clone());
        self.dirty.insert(Key::Template(id));
        Ok(CommandOk::Template(Box::new(t)))
    }

    fn delete_template(&mut self, id: TemplateId) -> ShardResponse {
        if !self.templates.contains_key(&id) {
            return Err(CommandError::NotFound(messages::template_not_found(
                &id.to_string(),
            )));
        }
        if self.template_in_use(id) {
            return Err(CommandError::BadRequest(messages::template_referenced(id)));
        }
        self.templates.remove(&id);
        self.dirty.insert(Key::Template(id));
        Ok(CommandOk::Done)
    }

    fn template_in_use(&self, id: TemplateId) -> bool {
        self.clusters.values().any(|c| c.cluster_template_id == id)
    }

    /// An id unique across shards for the `slot`-th row a command at `index` creates.
    pub(crate) fn row_id(&self, index: u64, slot: u64) -> u64 {
        index
            .saturating_mul(u64::from(self.shards.max(1)))
            .saturating_add(u64::from(self.shard.0))
            .saturating_mul(16)
            .saturating_add(slot.min(15))
    }

    fn create_cluster(
        &mut self,
        index: u64,
        c: &Cluster,
        ngs: &[NodeGroup],
        op: &Operation,
    ) -> ShardResponse {
        if self.clusters.contains_key(&c.uuid) {
            return Err(CommandError::Conflict(messages::cluster_exists(c.uuid)));
        }
        if shard_of(&c.project_id, self.shards) != self.shard {
            return Err(CommandError::BadRequest(format!(
                "Project {} does not live in shard {}.",
                c.project_id, self.shard
            )));
        }
        // A template of this shard must still exist; one of another shard was checked by the
        // API node (cross-shard references are registered by the operation).
        let tpl_project = op.template.project_id.as_ref();
        let local = tpl_project.is_none_or(|p| shard_of(p, self.shards) == self.shard);
        if local && !self.templates.contains_key(&c.cluster_template_id) {
            return Err(CommandError::NotFound(messages::template_not_found(
                &c.cluster_template_id.to_string(),
            )));
        }
        let limit = self
            .quotas
            .get(&(c.project_id.clone(), "Cluster".to_string()))
            .map(|q| q.hard_limit)
            .unwrap_or(DEFAULT_CLUSTER_QUOTA);
        let used = self
            .clusters
            .values()
            .filter(|x| x.project_id == c.project_id)
            .count() as u64;
        if used >= u64::from(limit) {
            return Err(CommandError::Forbidden(messages::quota_exceeded(limit)));
        }
        let mut c = c.clone();
        c.status = ClusterStatus::CREATE_IN_PROGRESS;
        c.status_reason = None;
        let mut op = op.clone();
        op.cluster = c.uuid;
        op.kind = OpKind::Create;
        op.step = Step::GenerateCerts;
        let ngs: Vec<NodeGroup> = ngs
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, mut n)| {
                n.id = self.row_id(index, i as u64);
                n.cluster_id = c.uuid;
                n.status = Some(ClusterStatus::CREATE_IN_PROGRESS);
                n
            })
            .collect();
        self.clusters.insert(c.uuid, c.clone());
        self.nodegroups.insert(c.uuid, ngs.clone());
        self.ops.insert(c.uuid, op);
        for k in [
            Key::Cluster(c.uuid),
            Key::NodeGroups(c.uuid),
            Key::Op(c.uuid),
        ] {
            self.dirty.insert(k);
        }
        self.notify(c.uuid, "create", Outcome::Pending, c.created_at);
        Ok(CommandOk::Cluster(Box::new(ClusterView {
            cluster: c,
            nodegroups: ngs,
            trustee: None,
            template_labels: None,
        })))
    }

    fn delete_cluster(
        &mut self,
        id: ClusterId,
        op_id: OpId,
        at: Timestamp,
        deadline: Timestamp,
    ) -> ShardResponse {
        let Some(cluster) = self.clusters.get_mut(&id) else {
            return Err(CommandError::NotFound(messages::cluster_not_found(
                &id.to_string(),
            )));
        };
        if let Some(op) = self.ops.get(&id) {
            if op.kind == OpKind::Delete {
                return Ok(CommandOk::Done);
            }
        }
        cluster.status = ClusterStatus::DELETE_IN_PROGRESS;
        cluster.status_reason = None;
        cluster.updated_at = Some(at);
        let previous = self.ops.remove(&id);
        let op = Operation {
            id: op_id,
            cluster: id,
            kind: OpKind::Delete,
            step: Step::DeleteStack { attempt: 0 },
            started_at: at,
            deadline,
            template: previous
                .as_ref()
                .map(|o| o.template.clone())
                .unwrap_or_default(),
            stack_name: previous.map(|o| o.stack_name).unwrap_or_default(),
            retries: 0,
            last_error: None,
            rollback: false,
            restore_node_count: None,
            nodes_to_remove: Vec::new(),
            nodegroup: None,
            upgrade: None,
            trustor: None,
        };
        self.ops.insert(id, op);
        if let Some(ngs) = self.nodegroups.get_mut(&id) {
            for n in ngs {
                n.status = Some(ClusterStatus::DELETE_IN_PROGRESS);
                n.updated_at = Some(at);
            }
        }
        for k in [Key::Cluster(id), Key::NodeGroups(id), Key::Op(id)] {
            self.dirty.insert(k);
        }
        self.notify(id, "delete", Outcome::Pending, at);
        Ok(CommandOk::Done)
    }

    /// Move the cluster's active operation forward. Events that don't fit the current step are
    /// ignored: they are late duplicates, and the reconciler re-reads the state after each one.
    fn advance(&mut self, id: ClusterId, event: &OpEvent, at: Timestamp) {
        if self.advance_nodegroup(id, event, at) {
            return;
        }
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        let target = op.nodegroup;
        let kind = op.kind;
        let previous = self.clusters.get(&id).map(|c| c.status);
        let mut upgraded: Option<UpgradeSpec> = None;
        let mut finished: Option<(ClusterStatus, Option<String>)> = None;
        let mut outputs: Option<&StackOutputs> = None;
        let mut remove_cluster = false;
        let mut restore: Option<u32> = None;
        match (event, &mut op.step) {
            (OpEvent::CertsGenerated { certs }, Step::GenerateCerts) => {
                self.certs.insert(id, certs.clone());
                self.dirty.insert(Key::Certs(id));
                op.step = match op.trustor {
                    Some(_) => Step::CreateTrustee,
                    None => Step::CreateStack {
                        stack_name: op.stack_name.clone(),
                        attempt: 0,
                    },
                };
            }
            (OpEvent::TrusteeCreated { trustee }, Step::CreateTrustee) => {
                if let Some(t) = trustee {
                    self.trustees.insert(id, t.clone());
                    self.dirty.insert(Key::Trustee(id));
                }
                // The token did its one job; it leaves the log's live state with it.
                op.trustor = None;
                op.step = Step::CreateStack {
                    stack_name: op.stack_name.clone(),
                    attempt: 0,
                };
            }
            (OpEvent::TrusteePasswordRotated { password }, Step::RotateTrusteePassword) => {
                if let Some(t) = self.trustees.get_mut(&id) {
                    t.password = password.clone();
                    self.dirty.insert(Key::Trustee(id));
                }
                op.step = Step::UpdateStack { attempt: 0 };
            }
            (OpEvent::CertsRotated { certs }, Step::RotateCerts) => {
                self.certs.insert(id, certs.clone());
                self.dirty.insert(Key::Certs(id));
                op.step = Step::UpdateStack { attempt: 0 };
            }
            (OpEvent::StackCreateIntent, Step::CreateStack { attempt, .. }) => *attempt += 1,
            (OpEvent::StackCreated { stack_id }, Step::CreateStack { .. }) => {
                op.step = Step::WaitCreate {
                    stack_id: stack_id.clone(),
                };
                op.retries = 0;
                op.last_error = None;
                if let Some(c) = self.clusters.get_mut(&id) {
                    c.stack_id = Some(stack_id.clone());
                }
                if let Some(ngs) = self.nodegroups.get_mut(&id) {
                    for n in ngs.iter_mut().filter(|n| n.is_default) {
                        n.stack_id = Some(stack_id.clone());
                    }
                }
            }
            (
                OpEvent::CreateFinished {
                    status,
                    reason,
                    outputs: o,
                },
                Step::WaitCreate { .. },
            ) => {
                finished = Some((*status, reason.clone()));
                outputs = Some(o);
            }
            (OpEvent::StackUpdateIntent, Step::UpdateStack { attempt }) => *attempt += 1,
            (OpEvent::StackUpdateRequested { stack_id }, Step::UpdateStack { .. }) => {
                op.step = Step::WaitUpdate {
                    stack_id: stack_id.clone(),
                };
                op.retries = 0;
                op.last_error = None;
            }
            (
                OpEvent::UpdateFinished {
                    status,
                    reason,
                    outputs: o,
                },
                Step::WaitUpdate { .. },
            ) => {
                finished = Some((*status, reason.clone()));
                outputs = Some(o);
                if op.kind == OpKind::Upgrade && !status.is_failed() {
                    upgraded = op.upgrade.clone();
                }
            }
            (OpEvent::StackDeleteIntent, Step::DeleteStack { attempt }) => *attempt += 1,
            (OpEvent::StackDeleteRequested { stack_id }, Step::DeleteStack { .. }) => {
                op.step = Step::WaitDelete {
                    stack_id: stack_id.clone(),
                };
                op.retries = 0;
                op.last_error = None;
            }
            // The trustee goes after the stack: the nodes use it until they are gone. Looked up by
            // name, not by record, so one made by a create the delete superseded goes too.
            (OpEvent::DeleteFinished, Step::DeleteStack { .. } | Step::WaitDelete { .. }) => {
                op.step = Step::DeleteTrustee;
                op.retries = 0;
                op.last_error = None;
            }
            (OpEvent::TrusteeDeleted, Step::DeleteTrustee) => remove_cluster = true,
            (OpEvent::Failed { reason }, _) => {
                let status = op.kind.failed_status();
                restore = op.restore_node_count.filter(|_| op.kind == OpKind::Update);
                finished = Some((status, Some(reason.clone())));
            }
            (OpEvent::TransientError { error }, _) => {
                op.retries = op.retries.saturating_add(1);
                op.last_error = Some(error.clone());
            }
            _ => return,
        }
        self.dirty.insert(Key::Op(id));
        if remove_cluster {
            self.notify(id, "delete", Outcome::Success, at);
            self.remove_cluster(id);
            return;
        }
        if let Some(n) = restore {
            self.restore_node_count(id, target, n);
        }
        if let Some(up) = &upgraded {
            self.complete_upgrade(id, target, up);
        }
        if let Some((status, reason)) = finished {
            self.ops.remove(&id);
            let previous = previous.unwrap_or(status);
            self.finish(id, kind, target, (status, reason), outputs, previous, at);
            let outcome = if status.is_failed() {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            self.notify(id, kind.action(), outcome, at);
        }
    }

    /// A finished operation's status goes to the nodegroups it acted on (the default ones for
    /// cluster operations, all of them for a delete), then the cluster's status follows (§7.5).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish(
        &mut self,
        id: ClusterId,
        kind: OpKind,
        target: Option<NodeGroupId>,
        (status, reason): (ClusterStatus, Option<String>),
        out: Option<&StackOutputs>,
        previous: ClusterStatus,
        at: Timestamp,
    ) {
        let ngs = self.nodegroups.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        // A nodegroup of its own stack, or the default ones (the cluster stack).
        let own = target.and_then(|t| {
            ngs.iter()
                .find(|n| n.uuid == t && !n.is_default)
                .map(|n| n.uuid)
        });
        if own.is_none() {
            if let (Some(c), Some(o)) = (self.clusters.get_mut(&id), out) {
                c.api_address = o.api_address.clone();
                if o.coe_version.is_some() {
                    c.coe_version = o.coe_version.clone();
                }
            }
        }
        if let Some(ngs) = self.nodegroups.get_mut(&id) {
            let targets = ngs.iter_mut().filter(|n| match own {
                Some(t) => n.uuid == t,
                None => n.is_default || kind == OpKind::Delete,
            });
            for n in targets {
                n.status = Some(status);
                n.status_reason = reason.clone();
                n.updated_at = Some(at);
                if let Some(o) = out {
                    n.node_addresses = if n.is_master() {
                        o.master_addresses.clone()
                    } else {
                        o.node_addresses.clone()
                    };
                }
            }
            self.dirty.insert(Key::NodeGroups(id));
        }
        self.settle(id, previous, Some((status, reason)), at);
    }

    fn remove_cluster(&mut self, id: ClusterId) {
        self.clusters.remove(&id);
        self.nodegroups.remove(&id);
        self.certs.remove(&id);
        self.trustees.remove(&id);
        self.ops.remove(&id);
        for k in [
            Key::Cluster(id),
            Key::NodeGroups(id),
            Key::Certs(id),
            Key::Trustee(id),
            Key::Op(id),
        ] {
            self.dirty.insert(k);
        }
    }

    pub fn query(&self, q: &ShardQuery) -> QueryResult {
        match q {
            ShardQuery::Templates {
                project,
                include_public,
            } => QueryResult::Templates(
                self.templates
                    .values()
                    .filter(|t| {
                        project
                            .as_ref()
                            .is_none_or(|p| t.project_id.as_ref() == Some(p))
                            || (*include_public && t.public)
                    })
                    .cloned()
                    .collect(),
            ),
            ShardQuery::Clusters { project } => QueryResult::Clusters(
                self.clusters
                    .values()
                    .filter(|c| project.as_ref().is_none_or(|p| &c.project_id == p))
                    .filter_map(|c| self.view(c.uuid))
                    .collect(),
            ),
            ShardQuery::Cluster { id } => QueryResult::Cluster(self.view(*id).map(|mut v| {
                v.template_labels = self
                    .templates
                    .get(&v.cluster.cluster_template_id)
                    .map(|t| t.labels.clone());
                Box::new(v)
            })),
            ShardQuery::ClustersUsingTemplate { id } => QueryResult::Clusters(
                self.clusters
                    .values()
                    .filter(|c| c.cluster_template_id == *id)
                    .filter_map(|c| self.view(c.uuid))
                    .collect(),
            ),
            ShardQuery::CaCert { id, kind } => {
                QueryResult::CaCert(self.certs.get(id).map(|c| c.ca(*kind).0.to_string()))
            }
            ShardQuery::Operations => QueryResult::Operations(self.ops.values().cloned().collect()),
            ShardQuery::Quotas { project } => QueryResult::Quotas(
                self.quotas
                    .values()
                    .filter(|q| project.as_ref().is_none_or(|p| *p == q.project_id))
                    .cloned()
                    .collect(),
            ),
            ShardQuery::Stats { project } => {
                let (mut clusters, mut nodes) = (0u64, 0u64);
                for c in self.clusters.values() {
                    if project.as_ref().is_some_and(|p| *p != c.project_id) {
                        continue;
                    }
                    clusters += 1;
                    nodes += self
                        .nodegroups
                        .get(&c.uuid)
                        .map_or(0, |ngs| ngs.iter().map(|n| u64::from(n.node_count)).sum());
                }
                QueryResult::Stats { clusters, nodes }
            }
            ShardQuery::Canaries { prefix } => QueryResult::Canaries(
                self.canaries
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            ShardQuery::Federations { project } => self.query_federations(project.as_ref()),
            ShardQuery::Ownership => QueryResult::Ownership {
                epoch: self.epoch,
                owner: self.owner,
            },
        }
    }

    pub fn view(&self, id: ClusterId) -> Option<ClusterView> {
        let cluster = self.clusters.get(&id)?.clone();
        let nodegroups = self.nodegroups.get(&id).cloned().unwrap_or_default();
        Some(ClusterView {
            cluster,
            nodegroups,
            trustee: None,
            template_labels: None,
        })
    }

    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.ops.values()
    }

    pub fn operation(&self, id: ClusterId) -> Option<&Operation> {
        self.ops.get(&id)
    }

    pub fn certs(&self, id: ClusterId) -> Option<&ClusterCerts> {
        self.certs.get(&id)
    }

    /// The cluster's trustee, password sealed.
    pub fn trustee(&self, id: ClusterId) -> Option<&TrusteeRecord> {
        self.trustees.get(&id)
    }

    pub(crate) fn take_dirty(&mut self) -> BTreeSet<Key> {
        std::mem::take(&mut self.dirty)
    }
}

/// Reference §5.3: a template referenced by clusters may only change its name alone, become
/// public alone, change `hidden` alone, or set non-null tags alone.
fn in_use_change_allowed(old: &ClusterTemplate, new: &ClusterTemplate) -> bool {
    let mut a = old.clone();
    let b = new.clone();
    let mut changed = Vec::new();
    if a.name != b.name {
        changed.push("name");
        a.name = b.name.clone();
    }
    if a.public != b.public {
        changed.push("public");
        a.public = b.public;
    }
    if a.hidden != b.hidden {
        changed.push("hidden");
        a.hidden = b.hidden;
    }
    if a.tags != b.tags {
        changed.push("tags");
        a.tags = b.tags.clone();
    }
    a.updated_at = b.updated_at;
    a.version = b.version;
    a.project_id = b.project_id.clone();
    a.user_id = b.user_id.clone();
    a.created_at = b.created_at;
    if a != b {
        return false; // something outside the allowed set changed
    }
    match changed.as_slice() {
        [] | ["name"] | ["hidden"] => true,
        ["public"] => new.public,
        ["tags"] => new.tags.is_some(),
        _ => false,
    }
}
