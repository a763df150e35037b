//! The `Backend` seam: how the API reaches shard leaders. The production implementation is
//! [`magnum_proto::ConductorClient`], which finds leaders, follows "not leader" hints and
//! retries (with the same request id) within its deadline.
use async_trait::async_trait;
use magnum_proto::wire::{SignCsr, SignResult, UserToken};
use magnum_proto::{
    ClientError, ConductorClient, QueryResult, ServiceRecord, ShardId, ShardQuery, ShardRequest,
    ShardResponse,
};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No conductor answered within the deadline: 503.
    #[error("conductors unavailable: {0}")]
    Unavailable(String),
    /// A conductor refused the request as malformed (protocol mismatch): 500.
    #[error("conductor rejected the request: {0}")]
    Rejected(String),
    /// The command needs a cluster version not finalized yet: 409 with the conductor's reason.
    #[error("{0}")]
    NotYetActive(String),
    /// The conductor refused the user (its own check of the forwarded token): 403.
    #[error("{0}")]
    UserRefused(String),
    /// The conductor shed the request (too many in flight): 503 with Retry-After.
    #[error("conductor overloaded: {0}")]
    Overloaded(String),
}

impl From<ClientError> for BackendError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unavailable(..) => Self::Unavailable(e.to_string()),
            ClientError::Rejected(m) => Self::Rejected(m),
            ClientError::NotYetActive(m) => Self::NotYetActive(m),
            ClientError::Overloaded(m) => Self::Overloaded(m),
            ClientError::UserRefused(m) => Self::UserRefused(m),
        }
    }
}

/// Each call is made for a user, whose token goes with it: the conductor validates it itself
/// and serves only what that user may see and change.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Number of data shards (fixed at bootstrap). Fallible because the production client
    /// learns it from a conductor on first use.
    async fn shards(&self) -> Result<u32, BackendError>;
    /// Forward a mutation to the shard's leader; `Ok(Err(_))` is the shard's own rejection.
    async fn command(
        &self,
        user: &UserToken,
        shard: ShardId,
        req: &ShardRequest,
    ) -> Result<ShardResponse, BackendError>;
    /// Linearizable read on the shard's leader.
    async fn query(
        &self,
        user: &UserToken,
        shard: ShardId,
        q: &ShardQuery,
    ) -> Result<QueryResult, BackendError>;
    /// The same linearizable read on every shard, in shard order.
    async fn query_all(
        &self,
        user: &UserToken,
        q: &ShardQuery,
    ) -> Result<Vec<QueryResult>, BackendError> {
        let n = self.shards().await?;
        let futs = (0..n).map(|s| self.query(user, ShardId(s), q));
        futures::future::join_all(futs).await.into_iter().collect()
    }
    /// Sign a CSR with a cluster's CA on the shard's leader.
    async fn sign(
        &self,
        user: &UserToken,
        shard: ShardId,
        req: &SignCsr,
    ) -> Result<SignResult, BackendError>;
    /// Whether the conductors answer now (the readiness probe), not from a cache.
    async fn ready(&self) -> Result<(), BackendError> {
        self.shards().await.map(|_| ())
    }
    /// The conductor registry (linearizable read on the meta leader). Backends without one
    /// report no conductors.
    async fn services(&self) -> Result<Vec<ServiceRecord>, BackendError> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl Backend for ConductorClient {
    async fn shards(&self) -> Result<u32, BackendError> {
        Ok(ConductorClient::shards(self).await?)
    }

    async fn command(
        &self,
        user: &UserToken,
        shard: ShardId,
        req: &ShardRequest,
    ) -> Result<ShardResponse, BackendError> {
        Ok(self.command_for(Some(user), shard, req).await?)
    }

    async fn query(
        &self,
        user: &UserToken,
        shard: ShardId,
        q: &ShardQuery,
    ) -> Result<QueryResult, BackendError> {
        Ok(self.query_for(Some(user), shard, q).await?)
    }

    async fn query_all(
        &self,
        user: &UserToken,
        q: &ShardQuery,
    ) -> Result<Vec<QueryResult>, BackendError> {
        Ok(self.query_all_for(Some(user), q).await?)
    }

    async fn services(&self) -> Result<Vec<ServiceRecord>, BackendError> {
        Ok(ConductorClient::services(self).await?)
    }

    async fn ready(&self) -> Result<(), BackendError> {
        self.refresh_topology().await?;
        Ok(())
    }

    async fn sign(
        &self,
        user: &UserToken,
        shard: ShardId,
        req: &SignCsr,
    ) -> Result<SignResult, BackendError> {
        Ok(self.sign_for(Some(user), shard, req).await?)
    }
}
