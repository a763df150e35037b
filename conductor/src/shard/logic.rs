//! Glue between a shard's domain state and the Raft state machine store.
use crate::shard::persist;
use crate::shard::ShardState;
use magnum_proto::{ShardId, ShardRequest, ShardResponse};
use magnum_raft::{StateMachineLogic, StoredRows, WriteSet};

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

    /// Certificates: most of a shard's bytes, never kept in memory (`rows.rs`).
    fn stored_only(&self) -> &[&[u8]] {
        &[persist::CERTS_PREFIX]
    }

    /// Writes every row the command changed. A row that cannot be encoded, or a stored row the
    /// command reads that cannot be read, fails the apply (the store then stops the group):
    /// writing the rest would persist a state no replica has.
    ///
    /// An entry this build cannot decode fails the apply too: it is a command of a newer
    /// version, which newer replicas apply, so skipping it here would diverge. Every proposer
    /// serializes a typed `ShardRequest`, so garbage never reaches the log.
    fn apply(
        &mut self,
        index: u64,
        payload: &[u8],
        writes: &mut WriteSet,
        stored: &dyn StoredRows,
    ) -> Result<Vec<u8>, String> {
        let req = serde_json::from_slice::<ShardRequest>(payload).map_err(|e| {
            format!(
                "shard {}: undecodable command (written by a newer conductor?): {e}",
                self.state.shard
            )
        })?;
        let resp: ShardResponse = self
            .state
            .apply_request(index, &req, stored)
            .map_err(|e| format!("shard {}: stored rows unreadable: {e}", self.state.shard))?;
        for (key, row) in persist::take_writes(&mut self.state)? {
            match row {
                Some(v) => writes.put(key, v),
                None => writes.delete(key),
            }
        }
        serde_json::to_vec(&resp).map_err(|e| format!("shard response cannot be encoded: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_proto::{RequestId, ShardCommand};
    use magnum_raft::NoStoredRows;

    fn canary(key: &str) -> Vec<u8> {
        let req = ShardRequest {
            request_id: Some(RequestId::new_v4()),
            command: ShardCommand::Canary {
                key: key.into(),
                value: "v".into(),
            },
        };
        serde_json::to_vec(&req).unwrap()
    }

    #[test]
    fn a_row_that_cannot_be_encoded_fails_the_apply() {
        let mut l = ShardLogic::new(ShardId(0), 1);
        let mut ws = WriteSet::new();
        assert!(l.apply(1, &canary("a"), &mut ws, &NoStoredRows).is_ok());
        assert_eq!(ws.len(), 2, "the canary and the request id");

        persist::FAIL_ENCODING.set(true);
        let mut ws = WriteSet::new();
        let r = l.apply(2, &canary("b"), &mut ws, &NoStoredRows);
        persist::FAIL_ENCODING.set(false);
        let err = r.expect_err("the apply fails");
        assert!(err.contains("cannot be encoded"), "{err}");
    }

    #[test]
    fn an_undecodable_command_fails_the_apply_and_writes_nothing() {
        let mut l = ShardLogic::new(ShardId(0), 1);
        let mut ws = WriteSet::new();
        let future = br#"{"request_id":null,"command":{"SomeNewKind":{}}}"#;
        let err = l
            .apply(1, future, &mut ws, &NoStoredRows)
            .expect_err("the apply fails");
        assert!(err.contains("undecodable command"), "{err}");
        assert!(ws.is_empty());
        assert!(l.state.take_dirty().is_empty());
    }
}
