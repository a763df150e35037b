//! Glue between a shard's domain state and the Raft state machine store.
use crate::shard::persist;
use crate::shard::ShardState;
use magnum_proto::{CommandError, ShardId, ShardRequest, ShardResponse};
use magnum_raft::{StateMachineLogic, WriteSet};

#[derive(Debug)]
pub struct ShardLogic {
    pub state: ShardState,
}

impl ShardLogic {
    pub fn new(shard: ShardId, shards: u32) -> Self {
        Self {
            state: ShardState::new(shard, shards),
        }
    }
}

impl StateMachineLogic for ShardLogic {
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        persist::load(&mut self.state, kv)
    }

    fn apply(&mut self, index: u64, payload: &[u8], writes: &mut WriteSet) -> Vec<u8> {
        let resp: ShardResponse = match serde_json::from_slice::<ShardRequest>(payload) {
            Ok(req) => self.state.apply_request(index, &req),
            // Deterministic on every replica: the same bytes fail the same way.
            Err(e) => Err(CommandError::Internal(format!("undecodable command: {e}"))),
        };
        for k in self.state.take_dirty() {
            let key = persist::encode_key(&k);
            match persist::row(&self.state, &k) {
                Some(v) => writes.put(key, v),
                None => writes.delete(key),
            }
        }
        serde_json::to_vec(&resp).unwrap_or_default()
    }
}
