//! The rows one shard persists, behind the only methods that change them. Every mutator records
//! the key it touched and `logic` writes exactly those keys after the command: a change that
//! forgot its key would vanish on restart and make replicas disagree, so no code outside this
//! file can write a map or the dirty set.
//!
//! Two kinds of rows live on disk only ("stored"): certificates (most of a cluster's bytes, read
//! when a CSR is signed, a CA shown or a stack given its keys) and the answers remembered for
//! dedup (read only when a request repeats). Memory holds what the reads need: the id → index
//! of each remembered request, and a stored row only from its change until `persist` writes it.
use magnum_proto::*;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::ops::Bound;

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
    /// A one-time repair that ran (`migrate`).
    Migration(String),
    /// A deleted cluster's (or nodegroup's) stack names, watched by the reaper.
    Tombstone(TombstoneKey),
}

/// A cluster's place in a list: `created_at`, then uuid.
pub type ListKey = (Timestamp, ClusterId);

fn project_key(p: &ProjectId) -> u64 {
    // SipHash with fixed keys: the same on every replica and restart (it is never persisted).
    let mut h = std::hash::DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

fn list_key(c: &Cluster) -> ListKey {
    (c.created_at, c.uuid)
}

/// The persisted state of a shard. Reads are plain `&` accessors; writes go through the
/// mutators below, which mark their row for `take_dirty`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    epoch: u64,
    owner: Option<NodeId>,
    templates: BTreeMap<TemplateId, ClusterTemplate>,
    clusters: BTreeMap<ClusterId, Cluster>,
    /// The clusters in list order, so that a page is a range walk rather than a sort of the
    /// shard under its read lock: all of them, and per project by the project id's hash
    /// (`project_key`; a walk checks the row's project, so a collision costs a skip only).
    /// Derived from `clusters`: a row's `created_at` and project never change.
    listed: BTreeSet<ListKey>,
    listed_by_project: BTreeSet<(u64, ListKey)>,
    nodegroups: BTreeMap<ClusterId, Vec<NodeGroup>>,
    /// Certificates changed by the command being applied, until written (`None`: deleted).
    unwritten_certs: BTreeMap<ClusterId, Option<ClusterCerts>>,
    trustees: BTreeMap<ClusterId, TrusteeRecord>,
    ops: BTreeMap<ClusterId, Operation>,
    quotas: BTreeMap<(ProjectId, String), Quota>,
    /// Request id → log index of its first apply: the dedup table (answers are stored rows).
    requests: BTreeMap<RequestId, u64>,
    /// Answers remembered by the command being applied, until written.
    unwritten_answers: BTreeMap<RequestId, (u64, ShardResponse)>,
    canaries: BTreeMap<String, String>,
    federations: BTreeMap<FederationId, Federation>,
    /// CADF notifications not yet delivered (`notify`).
    outbox: BTreeMap<String, Notification>,
    /// One-time repairs done (`migrate`).
    migrations: BTreeSet<String>,
    /// Deleted clusters and nodegroups whose stack names the reaper watches.
    tombstones: BTreeMap<TombstoneKey, Tombstone>,
    /// Keys changed since the last `take_dirty`; not part of the state.
    dirty: BTreeSet<Key>,
}

/// Reads.
impl Rows {
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn owner(&self) -> Option<NodeId> {
        self.owner
    }

    pub fn templates(&self) -> &BTreeMap<TemplateId, ClusterTemplate> {
        &self.templates
    }

    pub fn clusters(&self) -> &BTreeMap<ClusterId, Cluster> {
        &self.clusters
    }

    pub fn cluster(&self, id: ClusterId) -> Option<&Cluster> {
        self.clusters.get(&id)
    }

    /// The clusters after `after` in list order (before it when `desc`), of `project` or all.
    pub fn listed<'a>(
        &'a self,
        project: Option<&'a ProjectId>,
        after: Option<ListKey>,
        desc: bool,
    ) -> Box<dyn Iterator<Item = ListKey> + 'a> {
        let open = |k: Option<ListKey>| k.map_or(Bound::Unbounded, Bound::Excluded);
        let (lo, hi) = match desc {
            false => (open(after), Bound::Unbounded),
            true => (Bound::Unbounded, open(after)),
        };
        let Some(p) = project else {
            let r = self.listed.range((lo, hi)).copied();
            return if desc { Box::new(r.rev()) } else { Box::new(r) };
        };
        let h = project_key(p);
        let first = (Timestamp(i64::MIN), ClusterId(uuid::Uuid::nil()));
        let last = (Timestamp(i64::MAX), ClusterId(uuid::Uuid::max()));
        let within = |b: Bound<ListKey>, edge: ListKey| match b {
            Bound::Unbounded => Bound::Included((h, edge)),
            Bound::Excluded(k) => Bound::Excluded((h, k)),
            Bound::Included(k) => Bound::Included((h, k)),
        };
        let r = self
            .listed_by_project
            .range((within(lo, first), within(hi, last)))
            .map(|(_, k)| *k);
        let mine = move |k: &ListKey| self.clusters.get(&k.1).is_some_and(|c| &c.project_id == p);
        if desc {
            Box::new(r.rev().filter(mine))
        } else {
            Box::new(r.filter(mine))
        }
    }

    pub fn all_nodegroups(&self) -> &BTreeMap<ClusterId, Vec<NodeGroup>> {
        &self.nodegroups
    }

    /// The cluster's nodegroups; empty for an unknown cluster.
    pub fn nodegroups(&self, id: ClusterId) -> &[NodeGroup] {
        self.nodegroups.get(&id).map_or(&[], Vec::as_slice)
    }

    pub fn nodegroup(&self, id: ClusterId, ng: NodeGroupId) -> Option<&NodeGroup> {
        self.nodegroups(id).iter().find(|n| n.uuid == ng)
    }

    /// Certificates changed by the command being applied and not yet written: `Some(None)`
    /// when deleted, `None` when the stored row is current.
    pub(crate) fn unwritten_certs(&self, id: ClusterId) -> Option<Option<&ClusterCerts>> {
        self.unwritten_certs.get(&id).map(Option::as_ref)
    }

    pub fn trustees(&self) -> &BTreeMap<ClusterId, TrusteeRecord> {
        &self.trustees
    }

    pub fn operations(&self) -> &BTreeMap<ClusterId, Operation> {
        &self.ops
    }

    pub fn operation(&self, id: ClusterId) -> Option<&Operation> {
        self.ops.get(&id)
    }

    pub fn quotas(&self) -> &BTreeMap<(ProjectId, String), Quota> {
        &self.quotas
    }

    /// Remembered request ids and the log index each was first applied at.
    pub fn requests(&self) -> &BTreeMap<RequestId, u64> {
        &self.requests
    }

    /// The answer remembered by the command being applied and not yet written.
    pub(crate) fn unwritten_answer(&self, id: RequestId) -> Option<&(u64, ShardResponse)> {
        self.unwritten_answers.get(&id)
    }

    pub fn canaries(&self) -> &BTreeMap<String, String> {
        &self.canaries
    }

    pub fn federations(&self) -> &BTreeMap<FederationId, Federation> {
        &self.federations
    }

    pub fn outbox(&self) -> &BTreeMap<String, Notification> {
        &self.outbox
    }

    pub fn tombstones(&self) -> &BTreeMap<TombstoneKey, Tombstone> {
        &self.tombstones
    }

    pub fn migrated(&self, name: &str) -> bool {
        self.migrations.contains(name)
    }
}

/// Writes: each marks the rows it changes.
impl Rows {
    fn mark(&mut self, k: Key) {
        self.dirty.insert(k);
    }

    /// The keys changed since the last call with the stored rows' new values (`persist`
    /// writes them after each command), which memory then forgets.
    pub(crate) fn take_dirty(&mut self) -> Dirty {
        Dirty {
            keys: std::mem::take(&mut self.dirty),
            certs: std::mem::take(&mut self.unwritten_certs),
            answers: std::mem::take(&mut self.unwritten_answers),
        }
    }

    pub(crate) fn set_ownership(&mut self, epoch: u64, owner: Option<NodeId>) {
        (self.epoch, self.owner) = (epoch, owner);
        self.mark(Key::Ownership);
    }

    pub(crate) fn put_template(&mut self, id: TemplateId, t: ClusterTemplate) {
        self.templates.insert(id, t);
        self.mark(Key::Template(id));
    }

    pub(crate) fn remove_template(&mut self, id: TemplateId) -> Option<ClusterTemplate> {
        let old = self.templates.remove(&id)?;
        self.mark(Key::Template(id));
        Some(old)
    }

    pub(crate) fn insert_cluster(&mut self, c: Cluster) {
        let id = c.uuid;
        let keys = (project_key(&c.project_id), list_key(&c));
        if let Some(old) = self.clusters.insert(id, c) {
            self.unlist(&old);
        }
        self.listed.insert(keys.1);
        self.listed_by_project.insert(keys);
        self.mark(Key::Cluster(id));
    }

    fn unlist(&mut self, c: &Cluster) {
        self.listed.remove(&list_key(c));
        self.listed_by_project
            .remove(&(project_key(&c.project_id), list_key(c)));
    }

    /// The cluster row, marked changed.
    pub(crate) fn cluster_mut(&mut self, id: ClusterId) -> Option<&mut Cluster> {
        let c = self.clusters.get_mut(&id)?;
        self.dirty.insert(Key::Cluster(id));
        Some(c)
    }

    /// The cluster's status and reason, as of `at` (no-op for an unknown cluster).
    pub(crate) fn set_cluster_status(
        &mut self,
        id: ClusterId,
        status: ClusterStatus,
        reason: Option<String>,
        at: Timestamp,
    ) {
        if let Some(c) = self.cluster_mut(id) {
            c.status = status;
            c.status_reason = reason;
            c.updated_at = Some(at);
        }
    }

    /// Drops the cluster and every row it owns.
    pub(crate) fn remove_cluster(&mut self, id: ClusterId) {
        if let Some(old) = self.clusters.remove(&id) {
            self.unlist(&old);
        }
        self.nodegroups.remove(&id);
        self.unwritten_certs.insert(id, None);
        self.trustees.remove(&id);
        self.ops.remove(&id);
        for k in [
            Key::Cluster(id),
            Key::NodeGroups(id),
            Key::Certs(id),
            Key::Trustee(id),
            Key::Op(id),
        ] {
            self.mark(k);
        }
    }

    pub(crate) fn put_nodegroups(&mut self, id: ClusterId, ngs: Vec<NodeGroup>) {
        self.nodegroups.insert(id, ngs);
        self.mark(Key::NodeGroups(id));
    }

    /// The cluster's nodegroups, marked changed.
    pub(crate) fn nodegroups_mut(&mut self, id: ClusterId) -> Option<&mut Vec<NodeGroup>> {
        let ngs = self.nodegroups.get_mut(&id)?;
        self.dirty.insert(Key::NodeGroups(id));
        Some(ngs)
    }

    /// One nodegroup, its cluster's nodegroups marked changed when it exists.
    pub(crate) fn nodegroup_mut(
        &mut self,
        id: ClusterId,
        ng: NodeGroupId,
    ) -> Option<&mut NodeGroup> {
        let n = self
            .nodegroups
            .get_mut(&id)?
            .iter_mut()
            .find(|n| n.uuid == ng)?;
        self.dirty.insert(Key::NodeGroups(id));
        Some(n)
    }

    pub(crate) fn push_nodegroup(&mut self, id: ClusterId, n: NodeGroup) {
        self.nodegroups.entry(id).or_default().push(n);
        self.mark(Key::NodeGroups(id));
    }

    pub(crate) fn put_certs(&mut self, id: ClusterId, certs: ClusterCerts) {
        self.unwritten_certs.insert(id, Some(certs));
        self.mark(Key::Certs(id));
    }

    pub(crate) fn put_trustee(&mut self, id: ClusterId, t: TrusteeRecord) {
        self.trustees.insert(id, t);
        self.mark(Key::Trustee(id));
    }

    /// The trustee record, marked changed.
    pub(crate) fn trustee_mut(&mut self, id: ClusterId) -> Option<&mut TrusteeRecord> {
        let t = self.trustees.get_mut(&id)?;
        self.dirty.insert(Key::Trustee(id));
        Some(t)
    }

    /// Stores `op` as its cluster's active operation, replacing any other.
    pub(crate) fn put_operation(&mut self, op: Operation) {
        let id = op.cluster;
        self.ops.insert(id, op);
        self.mark(Key::Op(id));
    }

    pub(crate) fn remove_operation(&mut self, id: ClusterId) -> Option<Operation> {
        let op = self.ops.remove(&id)?;
        self.mark(Key::Op(id));
        Some(op)
    }

    pub(crate) fn put_quota(&mut self, q: Quota) {
        let k = (q.project_id.clone(), q.resource.clone());
        self.quotas.insert(k.clone(), q);
        self.mark(Key::Quota(k.0, k.1));
    }

    pub(crate) fn remove_quota(&mut self, project: &ProjectId, resource: &str) -> Option<Quota> {
        let k = (project.clone(), resource.to_string());
        let q = self.quotas.remove(&k)?;
        self.mark(Key::Quota(k.0, k.1));
        Some(q)
    }

    pub(crate) fn remember_request(&mut self, id: RequestId, index: u64, resp: ShardResponse) {
        self.requests.insert(id, index);
        self.unwritten_answers.insert(id, (index, resp));
        self.mark(Key::Request(id));
    }

    /// A stored request's index, when loading: its answer stays on disk.
    pub(crate) fn load_request(&mut self, id: RequestId, index: u64) {
        self.requests.insert(id, index);
    }

    /// Forgets the requests whose first apply's index is `stale`.
    pub(crate) fn forget_requests(&mut self, stale: impl Fn(u64) -> bool) {
        let old: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, i)| stale(**i))
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.requests.remove(&k);
            self.unwritten_answers.remove(&k);
            self.mark(Key::Request(k));
        }
    }

    pub(crate) fn put_canary(&mut self, key: &str, value: &str) {
        self.canaries.insert(key.to_string(), value.to_string());
        self.mark(Key::Canary(key.to_string()));
    }

    pub(crate) fn put_federation(&mut self, f: Federation) {
        let id = f.uuid;
        self.federations.insert(id, f);
        self.mark(Key::Federation(id));
    }

    pub(crate) fn remove_federation(&mut self, id: FederationId) -> Option<Federation> {
        let f = self.federations.remove(&id)?;
        self.mark(Key::Federation(id));
        Some(f)
    }

    pub(crate) fn push_notification(&mut self, n: Notification) {
        let id = n.id.clone();
        self.outbox.insert(id.clone(), n);
        self.mark(Key::Notification(id));
    }

    pub(crate) fn remove_notification(&mut self, id: &str) -> Option<Notification> {
        let n = self.outbox.remove(id)?;
        self.mark(Key::Notification(id.to_string()));
        Some(n)
    }

    pub(crate) fn put_tombstone(&mut self, t: Tombstone) {
        let key = t.key();
        self.tombstones.insert(key, t);
        self.mark(Key::Tombstone(key));
    }

    pub(crate) fn remove_tombstone(&mut self, key: TombstoneKey) -> Option<Tombstone> {
        let t = self.tombstones.remove(&key)?;
        self.mark(Key::Tombstone(key));
        Some(t)
    }

    pub(crate) fn mark_migrated(&mut self, name: &str) {
        self.migrations.insert(name.to_string());
        self.mark(Key::Migration(name.to_string()));
    }
}

/// What one command changed: the keys to write, and the new values of the stored rows among
/// them (a dirty stored key without one is deleted).
#[derive(Debug, Default)]
pub struct Dirty {
    pub keys: BTreeSet<Key>,
    pub certs: BTreeMap<ClusterId, Option<ClusterCerts>>,
    pub answers: BTreeMap<RequestId, (u64, ShardResponse)>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
