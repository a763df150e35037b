//! Whom the service listener serves a request for. Conductors and operators are trusted with
//! every shard. An API node acts for the user whose Keystone token it forwards
//! ([`wire::Envelope::user`]), and the conductor checks that user itself: a member's reads are
//! narrowed to its project's rows and the public templates, its commands may touch only its
//! project's rows, and an admin may do what the API allows admins. So a compromised API node
//! reaches only the projects of the users whose requests it has seen, for as long as their
//! tokens live, instead of every project.
use super::{ServiceState, SvcError};
use crate::cloud::TokenUser;
use crate::shard::rows::Rows;
use crate::shard::ShardState;
use magnum_net::{Peer, Role};
use magnum_proto::wire::UserToken;
use magnum_proto::{ProjectId, QueryResult, ShardCommand, ShardQuery};
use magnum_raft::StoredRows;

pub(super) enum Caller {
    /// A conductor or operator certificate; a network the operator chose to trust (plain or
    /// permissive mode, where anyone may present any role anyway); or an API node of a release
    /// before cluster version 2, which forwards no token.
    Trusted,
    /// A user with the admin role (`context_is_admin`): every project, as through the API.
    Admin,
    /// A user scoped to this project.
    Member(ProjectId),
}

impl Caller {
    /// Who `peer` calls for, validating the forwarded token with Keystone (cached by the cloud
    /// for a minute, as the API node caches it).
    pub(super) async fn of(
        s: &ServiceState,
        peer: &Peer,
        user: Option<&UserToken>,
    ) -> Result<Self, SvcError> {
        match peer {
            Peer::Verified(id) if matches!(id.role, Role::Conductor | Role::Operator) => {
                return Ok(Self::Trusted)
            }
            Peer::Plain => return Ok(Self::Trusted),
            Peer::Verified(_) | Peer::Anonymous => {}
        }
        let Some(token) = user else {
            if s.meta().read_local(|m| m.active_version()).get() < 2 {
                return Ok(Self::Trusted);
            }
            return Err(SvcError::UserRefused(
                "The request carries no user token for the conductor to check.".into(),
            ));
        };
        match s.cloud.token_user(&token.0).await {
            Ok(Some(u)) if u.is_admin() => Ok(Self::Admin),
            Ok(Some(TokenUser {
                project_id: Some(p),
                ..
            })) => Ok(Self::Member(ProjectId(p))),
            Ok(Some(_)) => Err(SvcError::UserRefused(
                "The user's token is not scoped to a project.".into(),
            )),
            Ok(None) => Err(SvcError::UserRefused(
                "The user's token is not valid.".into(),
            )),
            Err(e) => Err(SvcError::Unavailable(format!(
                "Keystone could not validate the user's token: {e}"
            ))),
        }
    }

    /// Whether the caller may have what `project`'s rows hold.
    pub(super) fn sees(&self, project: &ProjectId) -> bool {
        match self {
            Self::Trusted | Self::Admin => true,
            Self::Member(p) => p == project,
        }
    }

    /// The query as this caller may ask it: a member's project-wide reads narrowed to its own
    /// project (templates keep the public ones, as Magnum shows them to everyone); operator
    /// reads refused to users.
    pub(super) fn narrow(&self, q: &ShardQuery) -> Result<ShardQuery, SvcError> {
        use ShardQuery as Q;
        if matches!(q, Q::Operations | Q::Ownership | Q::Canaries { .. })
            && !matches!(self, Self::Trusted)
        {
            return Err(SvcError::UserRefused(
                "This read is for operators, not users.".into(),
            ));
        }
        let Self::Member(me) = self else {
            return Ok(q.clone());
        };
        let mine = Some(me.clone());
        Ok(match q.clone() {
            Q::Templates { include_public, .. } => Q::Templates {
                project: mine,
                include_public,
            },
            Q::Clusters { .. } => Q::Clusters { project: mine },
            Q::ClustersPage {
                after, desc, limit, ..
            } => Q::ClustersPage {
                project: mine,
                after,
                desc,
                limit,
            },
            Q::ClusterKeysPage {
                after,
                desc,
                limit,
                views,
                ..
            } => Q::ClusterKeysPage {
                project: mine,
                after,
                desc,
                limit,
                views,
            },
            Q::Quotas { .. } => Q::Quotas { project: mine },
            Q::Stats { .. } => Q::Stats { project: mine },
            Q::Federations { .. } => Q::Federations { project: mine },
            other => other,
        })
    }

    /// What of `q`'s answer the caller may see, for the reads by id that [`Self::narrow`]
    /// cannot scope: another project's cluster is as absent as a missing one.
    pub(super) fn answer(
        &self,
        st: &ShardState,
        stored: &dyn StoredRows,
        q: &ShardQuery,
    ) -> Result<QueryResult, String> {
        let r = st.query(q, stored)?;
        if !matches!(self, Self::Member(_)) {
            return Ok(r);
        }
        Ok(match (q, r) {
            (_, QueryResult::Cluster(Some(v))) if !self.sees(&v.cluster.project_id) => {
                QueryResult::Cluster(None)
            }
            (_, QueryResult::Clusters(mut v)) => {
                v.retain(|c| self.sees(&c.cluster.project_id));
                QueryResult::Clusters(v)
            }
            (_, QueryResult::ClusterKeysAndViews { keys, mut views }) => {
                views.retain(|c| self.sees(&c.cluster.project_id));
                QueryResult::ClusterKeysAndViews { keys, views }
            }
            (ShardQuery::CaCert { id, .. }, QueryResult::CaCert(Some(_)))
                if !st
                    .rows()
                    .cluster(*id)
                    .is_some_and(|c| self.sees(&c.project_id)) =>
            {
                QueryResult::CaCert(None)
            }
            (_, r) => r,
        })
    }

    /// Whether the caller may propose `cmd`: every project it writes or whose row it changes
    /// must be the member's own; quotas are the admin's (Magnum's policy); operators' and the
    /// leader's own kinds are no user's. A row this replica does not hold passes: the shard
    /// answers 404 for it in apply, and uuids are not reused.
    pub(super) fn may_propose(&self, cmd: &ShardCommand, rows: &Rows) -> Result<(), SvcError> {
        let refuse = |why: &str| Err(SvcError::UserRefused(why.into()));
        let projects = match touched(cmd, rows) {
            Touches::Projects(p) => p,
            Touches::AdminOnly if matches!(self, Self::Member(_)) => {
                return refuse("Only an admin may do this.")
            }
            Touches::AdminOnly => Vec::new(),
            Touches::NoUser if !matches!(self, Self::Trusted) => {
                return refuse("This command is not for users.")
            }
            Touches::NoUser => Vec::new(),
        };
        if projects.iter().flatten().all(|p| self.sees(p)) {
            return Ok(());
        }
        refuse("The user's token is not scoped to the project this changes.")
    }
}

/// Whose rows a command writes.
enum Touches {
    /// The projects it writes for and of the rows it changes; `None` for a row this replica
    /// does not hold.
    Projects(Vec<Option<ProjectId>>),
    AdminOnly,
    /// Operators' probes and the shard leader's own commands.
    NoUser,
}

/// An exhaustive match, so a new command kind has to say whose rows it touches.
fn touched(cmd: &ShardCommand, rows: &Rows) -> Touches {
    use ShardCommand as S;
    let cluster = |id| rows.cluster(id).map(|c| c.project_id.clone());
    let template = |id| rows.templates().get(&id).map(|t| owner(&t.project_id));
    let federation = |id| rows.federations().get(&id).map(|f| f.project_id.clone());
    let projects = match cmd {
        S::CreateTemplate { template: t, .. } => vec![Some(owner(&t.project_id))],
        S::UpdateTemplate { template: t, .. } => {
            vec![Some(owner(&t.project_id)), t.uuid.and_then(template)]
        }
        S::DeleteTemplate { id } => vec![template(*id)],
        S::CreateCluster {
            cluster: c,
            nodegroups,
            ..
        } => std::iter::once(&c.project_id)
            .chain(nodegroups.iter().map(|n| &n.project_id))
            .map(|p| Some(p.clone()))
            .collect(),
        S::DeleteCluster { id, .. }
        | S::UpdateCluster { id, .. }
        | S::ResizeCluster { id, .. }
        | S::SetHealth { id, .. }
        | S::UpgradeCluster { id, .. }
        | S::RotateCa { id, .. }
        | S::RotateCredential { id, .. } => vec![cluster(*id)],
        S::CreateNodeGroup { nodegroup: n, .. } => {
            vec![Some(n.project_id.clone()), cluster(n.cluster_id)]
        }
        S::UpdateNodeGroup { cluster: id, .. } | S::DeleteNodeGroup { cluster: id, .. } => {
            vec![cluster(*id)]
        }
        S::CreateFederation { federation: f } => vec![Some(f.project_id.clone())],
        S::UpdateFederation { id, .. } | S::DeleteFederation { id } => vec![federation(*id)],
        S::CreateQuota { .. } | S::UpdateQuota { .. } | S::DeleteQuota { .. } => {
            return Touches::AdminOnly
        }
        S::Canary { .. }
        | S::TakeOwnership { .. }
        | S::Advance { .. }
        | S::SyncStatus { .. }
        | S::SyncNodeGroupStatus { .. }
        | S::ObserveHealth { .. }
        | S::NotificationsDelivered { .. }
        | S::RestoreStackIds { .. }
        | S::Reseal { .. }
        | S::RememberDeletedStacks { .. }
        | S::ForgetDeletedStacks { .. } => return Touches::NoUser,
    };
    Touches::Projects(projects)
}

/// A template's project; one without (the API always sets it) is no member's.
fn owner(p: &Option<ProjectId>) -> ProjectId {
    p.clone().unwrap_or_else(|| ProjectId(String::new()))
}
