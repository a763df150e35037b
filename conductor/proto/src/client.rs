//! Forwarding client used by API nodes (and by conductors for cross-shard steps): finds the
//! leader of a shard, follows "not leader" hints, and retries within a deadline. Mutations carry
//! a request id, so a retry after an unknown outcome is applied once.
use crate::command::{ShardRequest, ShardResponse};
use crate::ids::{NodeId, ShardId};
use crate::meta::{
    MetaQuery, MetaQueryResult, MetaReply, MetaRequest, PlacementView, ServiceRecord,
};
use crate::query::{QueryResult, ShardQuery};
use crate::wire::{
    self, Done, Envelope, InternalError, MultiQuery, MultiQueryResult, NotLeader, SetMembers,
    SignCsr, SignResult, Topology, TransferLeader, UserToken,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Retry pacing while no leader answers. During a failover the new leader appears about one
/// election timeout after the old one died; a low cap keeps the latency this adds under 100 ms,
/// at the price of at most ten cheap 421 answers a second per waiting request.
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_CAP: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no conductor answered within {0:?}: {1}")]
    Unavailable(Duration, String),
    #[error("conductor rejected the request: {0}")]
    Rejected(String),
    /// The command needs a cluster version the operator has not finalized; for the user.
    #[error("{0}")]
    NotYetActive(String),
    /// The conductor shed the request (too many in flight): retrying at once would only add
    /// to the load, so the caller is told to come back later.
    #[error("conductor overloaded: {0}")]
    Overloaded(String),
    /// The conductor refused the user the request was forwarded for
    /// ([`wire::USER_REFUSED_HEADER`]); the reason is for the user.
    #[error("{0}")]
    UserRefused(String),
}

#[derive(Default)]
struct Cache {
    topology: Option<Topology>,
    /// Last known leader service address per Raft group (0 = meta, shard s = s + 1).
    leaders: HashMap<u64, String>,
    /// Round-robin cursor over seeds/nodes when no leader is known.
    cursor: usize,
}

#[derive(Clone)]
pub struct ConductorClient {
    http: magnum_net::InternalClient,
    seeds: Arc<Vec<String>>,
    cache: Arc<Mutex<Cache>>,
    deadline: Duration,
}

enum Attempt<T> {
    Done(T),
    Redirect(Option<String>),
    Retry(String),
}

impl ConductorClient {
    /// `seeds`: host:port of conductor service listeners; `tls`: this process's certificate.
    pub fn new(
        seeds: Vec<String>,
        deadline: Duration,
        tls: &magnum_net::Tls,
    ) -> Result<Self, ClientError> {
        Self::new_as(seeds, deadline, &wire::Caller::Tool, tls)
    }

    /// A client whose calls say who makes them (API nodes: their URL, for `version show`).
    pub fn new_as(
        seeds: Vec<String>,
        deadline: Duration,
        caller: &wire::Caller,
        tls: &magnum_net::Tls,
    ) -> Result<Self, ClientError> {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = reqwest::header::HeaderValue::from_str(&caller.header())
            .map_err(|e| ClientError::Rejected(format!("caller header: {e}")))?;
        headers.insert(wire::CALLER_HEADER, value);
        let http = magnum_net::InternalClient::new(tls, |b| {
            b.default_headers(headers.clone())
                .connect_timeout(Duration::from_millis(500))
                .timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(30))
                // Bounded: a burst through one API node opens at most this many idle
                // connections per conductor.
                .pool_max_idle_per_host(64)
        })
        .map_err(|e| ClientError::Rejected(e.to_string()))?;
        Ok(Self {
            http,
            seeds: Arc::new(seeds),
            cache: Arc::new(Mutex::new(Cache::default())),
            deadline,
        })
    }

    /// The TLS-configured HTTP client under this one, for direct calls to one conductor
    /// (digests, per-node views).
    pub fn http(&self) -> &magnum_net::InternalClient {
        &self.http
    }

    /// Cached topology, fetched on first use.
    pub async fn topology(&self) -> Result<Topology, ClientError> {
        if let Some(t) = self.lock().topology.clone() {
            return Ok(t);
        }
        self.refresh_topology().await
    }

    pub async fn shards(&self) -> Result<u32, ClientError> {
        Ok(self.topology().await?.shards)
    }

    pub async fn refresh_topology(&self) -> Result<Topology, ClientError> {
        let start = Instant::now();
        let mut last = String::from("no seeds");
        let mut backoff = Duration::from_millis(50);
        while start.elapsed() < self.deadline {
            for addr in self.candidates() {
                match self
                    .http
                    .send(&addr, wire::TOPOLOGY_PATH, |h, url| h.get(url))
                    .await
                {
                    Ok(r) if r.status().is_success() => match r.json::<Topology>().await {
                        // Not bootstrapped yet (or this node has not applied it): no shard count.
                        Ok(t) if t.shards == 0 => last = format!("{addr}: not bootstrapped yet"),
                        Ok(t) => {
                            let mut c = self.lock();
                            for g in &t.groups {
                                match t.leader_of_group(g.group) {
                                    Some(n) => c.leaders.insert(g.group, n.service.clone()),
                                    None => c.leaders.remove(&g.group),
                                };
                            }
                            c.topology = Some(t.clone());
                            return Ok(t);
                        }
                        Err(e) => last = format!("{addr}: bad topology: {e}"),
                    },
                    Ok(r) => last = format!("{addr}: HTTP {}", r.status()),
                    Err(e) => last = format!("{addr}: {e}"),
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
        Err(ClientError::Unavailable(self.deadline, last))
    }

    /// Forward a mutation to the shard's leader.
    pub async fn command(
        &self,
        shard: ShardId,
        req: &ShardRequest,
    ) -> Result<ShardResponse, ClientError> {
        self.command_for(None, shard, req).await
    }

    /// [`Self::command`] forwarded for `user` ([`Envelope::user`]).
    pub async fn command_for(
        &self,
        user: Option<&UserToken>,
        shard: ShardId,
        req: &ShardRequest,
    ) -> Result<ShardResponse, ClientError> {
        let group = Topology::group_of(shard);
        self.call(group, &wire::command_path(shard), req, user)
            .await
    }

    /// Forward a meta-group mutation to the meta leader.
    pub async fn meta_command(&self, req: &MetaRequest) -> Result<MetaReply, ClientError> {
        self.call(wire::META_GROUP, wire::META_COMMAND_PATH, req, None)
            .await
    }

    /// Conductor membership and replica placement, read on the meta leader.
    pub async fn placement(&self) -> Result<PlacementView, ClientError> {
        match self.meta_query(&MetaQuery::Placement).await? {
            MetaQueryResult::Placement(p) => Ok(p),
            other => Err(ClientError::Rejected(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Reconfigure a group's voters on its leader (the placement controller's step).
    pub async fn set_members(&self, group: u64, req: &SetMembers) -> Result<(), ClientError> {
        self.call::<_, Done>(group, &wire::members_path(group), req, None)
            .await
            .map(|_| ())
    }

    /// Ask a group's leader to hand leadership to `to`; returns once asked.
    pub async fn transfer_leader(&self, group: u64, to: NodeId) -> Result<(), ClientError> {
        self.call::<_, Done>(
            group,
            &wire::transfer_path(group),
            &TransferLeader { to },
            None,
        )
        .await
        .map(|_| ())
    }

    /// Linearizable read on the meta leader.
    pub async fn meta_query(&self, q: &MetaQuery) -> Result<MetaQueryResult, ClientError> {
        self.call(wire::META_GROUP, wire::META_QUERY_PATH, q, None)
            .await
    }

    /// The conductor registry, by id.
    pub async fn services(&self) -> Result<Vec<ServiceRecord>, ClientError> {
        match self.meta_query(&MetaQuery::Services).await? {
            MetaQueryResult::Services(v) => Ok(v),
            other => Err(ClientError::Rejected(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Sign a CSR with a cluster's CA, on the shard's leader.
    pub async fn sign(&self, shard: ShardId, req: &SignCsr) -> Result<SignResult, ClientError> {
        self.sign_for(None, shard, req).await
    }

    /// [`Self::sign`] forwarded for `user` ([`Envelope::user`]).
    pub async fn sign_for(
        &self,
        user: Option<&UserToken>,
        shard: ShardId,
        req: &SignCsr,
    ) -> Result<SignResult, ClientError> {
        let group = Topology::group_of(shard);
        self.call(group, &wire::sign_path(shard), req, user).await
    }

    /// Linearizable read on the shard's leader.
    pub async fn query(&self, shard: ShardId, q: &ShardQuery) -> Result<QueryResult, ClientError> {
        self.query_for(None, shard, q).await
    }

    /// [`Self::query`] forwarded for `user` ([`Envelope::user`]).
    pub async fn query_for(
        &self,
        user: Option<&UserToken>,
        shard: ShardId,
        q: &ShardQuery,
    ) -> Result<QueryResult, ClientError> {
        let group = Topology::group_of(shard);
        self.call(group, &wire::query_path(shard), q, user).await
    }

    /// The same query on every shard, in shard order: one [`wire::MULTI_QUERY_PATH`] request per
    /// conductor that leads some of them (by the cached leaders), then [`Self::query`] for each
    /// shard no batch answered (leader unknown or moved, or a node without the path).
    pub async fn query_all(&self, q: &ShardQuery) -> Result<Vec<QueryResult>, ClientError> {
        self.query_all_for(None, q).await
    }

    /// [`Self::query_all`] forwarded for `user` ([`Envelope::user`]).
    pub async fn query_all_for(
        &self,
        user: Option<&UserToken>,
        q: &ShardQuery,
    ) -> Result<Vec<QueryResult>, ClientError> {
        let shards = self.shards().await?;
        let mut by_leader: HashMap<String, Vec<ShardId>> = HashMap::new();
        let mut rest = Vec::new();
        {
            let c = self.lock();
            for s in (0..shards).map(ShardId) {
                match c.leaders.get(&Topology::group_of(s)) {
                    Some(addr) => by_leader.entry(addr.clone()).or_default().push(s),
                    None => rest.push(s),
                }
            }
        }
        let batches = by_leader
            .into_iter()
            .map(|(addr, shards)| self.query_batch(addr, shards, q, user));
        let mut got: Vec<Option<QueryResult>> = vec![None; shards as usize];
        for answers in futures::future::join_all(batches).await {
            for (s, a) in answers {
                match a {
                    Some(r) => got[s.0 as usize] = Some(r),
                    None => rest.push(s),
                }
            }
        }
        let singles = rest
            .into_iter()
            .map(|s| async move { (s, self.query_for(user, s, q).await) });
        for (s, r) in futures::future::join_all(singles).await {
            got[s.0 as usize] = Some(r?);
        }
        got.into_iter()
            .enumerate()
            .map(|(s, r)| {
                r.ok_or_else(|| ClientError::Rejected(format!("shard {s} was not answered")))
            })
            .collect()
    }

    /// One multi-shard query to `addr`; shards it did not answer come back as `None`.
    async fn query_batch(
        &self,
        addr: String,
        shards: Vec<ShardId>,
        q: &ShardQuery,
        user: Option<&UserToken>,
    ) -> Vec<(ShardId, Option<QueryResult>)> {
        let query = MultiQuery {
            shards: shards.clone(),
            query: q.clone(),
        };
        let body = Envelope::for_user(query, user.cloned());
        let answers = match self
            .http
            .send(&addr, wire::MULTI_QUERY_PATH, |h, url| {
                h.post(url).json(&body)
            })
            .await
        {
            Ok(r) if r.status().is_success() => r
                .json::<MultiQueryResult>()
                .await
                .ok()
                .map(|m| m.answers)
                .filter(|a| a.len() == shards.len()),
            _ => None,
        };
        match answers {
            Some(a) => shards.into_iter().zip(a).collect(),
            None => shards.into_iter().map(|s| (s, None)).collect(),
        }
    }

    /// Known leader of a shard (node id), if any; for tests and operators.
    pub async fn leader_of(&self, shard: ShardId) -> Result<Option<NodeId>, ClientError> {
        let t = self.refresh_topology().await?;
        Ok(t.leader_of(shard).map(|n| n.id))
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        group: u64,
        path: &str,
        body: &B,
        user: Option<&UserToken>,
    ) -> Result<T, ClientError> {
        let start = Instant::now();
        let envelope = Envelope::for_user(body, user.cloned());
        let mut backoff = RETRY_FIRST;
        let mut last = String::new();
        let mut target = self.target_for(group);
        while start.elapsed() < self.deadline {
            match self.attempt::<_, T>(&target, path, &envelope).await {
                Ok(Attempt::Done(v)) => return Ok(v),
                Ok(Attempt::Redirect(Some(addr))) if addr != target => {
                    self.lock().leaders.insert(group, addr.clone());
                    target = addr;
                    continue;
                }
                Ok(Attempt::Redirect(_)) => last = format!("{target}: no leader known"),
                Ok(Attempt::Retry(e)) => last = e,
                Err(e) => return Err(e),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_CAP);
            self.lock().leaders.remove(&group);
            target = self.next_candidate();
        }
        Err(ClientError::Unavailable(self.deadline, last))
    }

    async fn attempt<B: Serialize, T: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Envelope<&B>,
    ) -> Result<Attempt<T>, ClientError> {
        let resp = match self
            .http
            .send(addr, path, |h, url| h.post(url).json(body))
            .await
        {
            Ok(r) => r,
            Err(e) => return Ok(Attempt::Retry(format!("{addr}: {e}"))),
        };
        let status = resp.status().as_u16();
        let shed = status == 503 && resp.headers().contains_key(reqwest::header::RETRY_AFTER);
        let refused_user = resp.headers().contains_key(wire::USER_REFUSED_HEADER);
        if status == wire::NOT_LEADER_STATUS {
            let hint = resp.json::<NotLeader>().await.ok().and_then(|n| n.leader);
            return Ok(Attempt::Redirect(hint.map(|n| n.service)));
        }
        if (200..300).contains(&status) {
            return match resp.json::<T>().await {
                Ok(v) => Ok(Attempt::Done(v)),
                Err(e) => Ok(Attempt::Retry(format!("{addr}: undecodable answer: {e}"))),
            };
        }
        let raw = resp.text().await.unwrap_or_default();
        let text = serde_json::from_str::<InternalError>(&raw)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("HTTP {status}: {}", raw.trim()));
        if shed {
            return Err(ClientError::Overloaded(format!("{addr}: {text}")));
        }
        if status == 403 && refused_user {
            return Err(ClientError::UserRefused(text));
        }
        if status == 401 || status == 403 {
            // No certificate, or one whose role may not make this call: a deployment error
            // that retrying cannot fix.
            return Err(ClientError::Rejected(format!("{addr}: {text}")));
        }
        if status == wire::NOT_YET_ACTIVE_STATUS {
            return Err(ClientError::NotYetActive(text));
        }
        if status == 400 || status == 413 {
            // Malformed envelope, unsupported protocol version or a body over the limit:
            // retrying cannot help.
            return Err(ClientError::Rejected(text));
        }
        Ok(Attempt::Retry(format!("{addr}: {text}")))
    }

    fn target_for(&self, group: u64) -> String {
        if let Some(a) = self.lock().leaders.get(&group) {
            return a.clone();
        }
        self.next_candidate()
    }

    fn next_candidate(&self) -> String {
        let cands = self.candidates();
        let mut c = self.lock();
        c.cursor = c.cursor.wrapping_add(1);
        cands
            .get(c.cursor % cands.len().max(1))
            .cloned()
            .unwrap_or_default()
    }

    /// Known node addresses, seeds first, without duplicates.
    fn candidates(&self) -> Vec<String> {
        let mut out: Vec<String> = self.seeds.iter().cloned().collect();
        if let Some(t) = &self.lock().topology {
            for n in &t.nodes {
                if !out.contains(&n.service) {
                    out.push(n.service.clone());
                }
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding this lock cannot leave the cache inconsistent; keep going.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
