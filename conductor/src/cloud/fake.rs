//! An in-memory `Cloud` for the conductor's tests (feature `testing`): each stack action
//! completes a little after it was sent, creates can be slowed down on the "server" side, and
//! counters record what reached the cloud.
use crate::cloud::heat_status::DELETE_COMPLETE;
use crate::cloud::{
    Cloud, CloudError, Glance, HeatStatus, Look, StackAction, StackHandle, StackState, StackUpdate,
    Target, TokenUser,
};
use async_trait::async_trait;
use magnum_drivers::openstack::StackState as Phase;
use magnum_proto::{ClusterView, NodeGroup, ProjectId, StackOutputs};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
struct Stack {
    id: String,
    status: HeatStatus,
    /// When the action in progress completes (seen at the next read).
    ready: Instant,
}

#[derive(Default)]
pub struct FakeCloud {
    /// By stack name.
    stacks: Arc<Mutex<HashMap<String, Stack>>>,
    /// Cluster stacks created.
    pub creates: Arc<Mutex<u32>>,
    /// Nodegroup stacks created.
    pub ng_creates: Arc<Mutex<u32>>,
    /// Create calls received, cluster and nodegroup stacks (the server may still be working on
    /// them).
    pub create_calls: Mutex<u32>,
    create_delay: Duration,
    /// The cluster's worker count at each `update_stack` received.
    pub updates: Mutex<Vec<u32>>,
    /// Stacks `update_stack` PATCHed, in order.
    pub patched: Mutex<Vec<String>>,
    /// Parameter-only stack updates received (CA rotation).
    pub param_patches: Mutex<Vec<BTreeMap<String, serde_json::Value>>>,
    /// Stacks deleted, in order.
    pub deleted: Mutex<Vec<String>>,
    /// The user tokens Keystone knows, and whom they speak for.
    pub tokens: Mutex<HashMap<String, TokenUser>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

const fn status(action: StackAction, state: Phase) -> HeatStatus {
    HeatStatus { action, state }
}

impl FakeCloud {
    /// Stack creates take effect `delay` after they arrive; the work goes on even if the caller
    /// gives up, as with a real Heat.
    pub fn with_create_delay(delay: Duration) -> Self {
        Self {
            create_delay: delay,
            ..Self::default()
        }
    }

    /// Names of the stacks not deleted or being deleted.
    pub fn live_stacks(&self) -> Vec<String> {
        lock(&self.stacks)
            .iter()
            .filter(|(_, s)| s.status.action != StackAction::Delete)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The id of the stack with this name.
    pub fn stack_id(&self, name: &str) -> Option<String> {
        lock(&self.stacks).get(name).map(|s| s.id.clone())
    }

    /// A create that takes effect after `create_delay`, counted in `created`; a live stack of
    /// the same name makes it a conflict.
    async fn create(
        &self,
        name: String,
        created: &Arc<Mutex<u32>>,
    ) -> Result<StackHandle, CloudError> {
        *lock(&self.create_calls) += 1;
        let (stacks, created, delay) = (self.stacks.clone(), created.clone(), self.create_delay);
        let server = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut s = lock(&stacks);
            if s.get(&name).is_some_and(|st| st.status != DELETE_COMPLETE) {
                return Err(CloudError::Conflict(name));
            }
            *lock(&created) += 1;
            let id = uuid::Uuid::new_v4().to_string();
            let stack = Stack {
                id: id.clone(),
                status: status(StackAction::Create, Phase::InProgress),
                ready: Instant::now() + Duration::from_millis(300),
            };
            s.insert(name.clone(), stack);
            Ok(StackHandle { name, id })
        });
        server
            .await
            .map_err(|e| CloudError::Transient(e.to_string()))?
    }

    /// Starts an update; Heat's 409 while another action runs.
    fn start_update(&self, name: &str) -> Result<(), CloudError> {
        match lock(&self.stacks).get_mut(name) {
            Some(s) if s.status.is_in_progress() => {
                Err(CloudError::Transient(format!("409: stack is {}", s.status)))
            }
            Some(s) => {
                s.status = status(StackAction::Update, Phase::InProgress);
                s.ready = Instant::now() + Duration::from_millis(200);
                Ok(())
            }
            None => Err(CloudError::Permanent("stack not found".into())),
        }
    }
}

#[async_trait]
impl Cloud for FakeCloud {
    async fn token_user(&self, token: &str) -> Result<Option<TokenUser>, CloudError> {
        Ok(lock(&self.tokens).get(token).cloned())
    }

    fn stack_name(&self, c: &ClusterView) -> String {
        let uuid = c.cluster.uuid.0.simple().to_string();
        format!("{}-{}", c.cluster.name, &uuid[..12])
    }

    async fn create_stack(&self, target: &Target<'_>) -> Result<StackHandle, CloudError> {
        self.create(self.stack_name(target.view), &self.creates)
            .await
    }

    async fn create_nodegroup_stack(
        &self,
        target: &Target<'_>,
        ng: &NodeGroup,
    ) -> Result<StackHandle, CloudError> {
        let name = self.nodegroup_stack_name(target.view, ng);
        self.create(name, &self.ng_creates).await
    }

    async fn find_stack(
        &self,
        _project: &ProjectId,
        name_or_id: &str,
    ) -> Result<Option<StackHandle>, CloudError> {
        let s = lock(&self.stacks);
        Ok(s.iter()
            .find(|(n, st)| {
                (*n == name_or_id && st.status != DELETE_COMPLETE) || st.id == name_or_id
            })
            .map(|(n, st)| StackHandle {
                name: n.clone(),
                id: st.id.clone(),
            }))
    }

    /// As a listing would: live stacks only, status but no outputs.
    async fn look_stack(&self, _project: &ProjectId, h: &StackHandle) -> Look {
        let mut s = lock(&self.stacks);
        let Some(st) = s.get_mut(&h.name).filter(|st| st.id == h.id) else {
            return Look::NotListed;
        };
        if st.status.is_in_progress() && Instant::now() >= st.ready {
            st.status.state = Phase::Complete;
        }
        if st.status == DELETE_COMPLETE {
            return Look::NotListed;
        }
        Look::Listed(Glance {
            status: st.status,
            reason: None,
            updated: None,
        })
    }

    async fn get_stack(
        &self,
        target: &Target<'_>,
        h: &StackHandle,
        _with_outputs: bool,
    ) -> Result<Option<StackState>, CloudError> {
        let mut s = lock(&self.stacks);
        let Some(st) = s.get_mut(&h.name) else {
            return Ok(None);
        };
        if st.status.is_in_progress() && Instant::now() >= st.ready {
            st.status.state = Phase::Complete;
        }
        let outputs = StackOutputs {
            api_address: Some("https://10.0.0.2:6443".into()),
            master_addresses: vec!["10.0.0.2".into()],
            node_addresses: (0..target.view.node_count())
                .map(|i| format!("10.0.0.{}", 10 + i))
                .collect(),
            coe_version: None,
        };
        Ok(Some(StackState {
            status: st.status,
            reason: None,
            outputs: Some(outputs),
            parameters: BTreeMap::new(),
            updated: None,
        }))
    }

    async fn update_stack(
        &self,
        target: &Target<'_>,
        h: &StackHandle,
        _update: &StackUpdate,
    ) -> Result<(), CloudError> {
        lock(&self.updates).push(target.view.node_count());
        lock(&self.patched).push(h.name.clone());
        self.start_update(&h.name)
    }

    async fn patch_parameters(
        &self,
        _target: &Target<'_>,
        h: &StackHandle,
        parameters: BTreeMap<String, serde_json::Value>,
        _rollback: bool,
    ) -> Result<(), CloudError> {
        lock(&self.param_patches).push(parameters);
        self.start_update(&h.name)
    }

    async fn delete_stack(&self, _project: &ProjectId, h: &StackHandle) -> Result<(), CloudError> {
        if let Some(s) = lock(&self.stacks).get_mut(&h.name) {
            if s.status.action != StackAction::Delete {
                lock(&self.deleted).push(h.name.clone());
            }
            s.status = status(StackAction::Delete, Phase::InProgress);
            s.ready = Instant::now() + Duration::from_millis(100);
        }
        Ok(())
    }
}
