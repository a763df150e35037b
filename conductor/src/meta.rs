//! The meta group (Raft group 0): bootstrap parameters every node must agree on. Conductor
//! registry, placement and the committed cluster version join it in later milestones.
use magnum_raft::{StateMachineLogic, WriteSet};
use serde::{Deserialize, Serialize};

const BOOTSTRAP_KEY: &[u8] = b"bootstrap";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub shards: u32,
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Fix the shard count and hash once; a repeat with the same values is a no-op.
    Bootstrap(Bootstrap),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaResponse {
    Ok(Bootstrap),
    Conflict(Bootstrap),
    Undecodable,
}

#[derive(Debug, Default)]
pub struct MetaState {
    pub bootstrap: Option<Bootstrap>,
}

impl StateMachineLogic for MetaState {
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        self.bootstrap = None;
        for (k, v) in kv {
            if k == BOOTSTRAP_KEY {
                self.bootstrap = Some(serde_json::from_slice(&v).map_err(|e| e.to_string())?);
            }
        }
        Ok(())
    }

    fn apply(&mut self, _index: u64, payload: &[u8], writes: &mut WriteSet) -> Vec<u8> {
        let resp = match serde_json::from_slice::<MetaCommand>(payload) {
            Ok(MetaCommand::Bootstrap(b)) => match &self.bootstrap {
                Some(cur) if *cur != b => MetaResponse::Conflict(cur.clone()),
                Some(cur) => MetaResponse::Ok(cur.clone()),
                None => {
                    if let Ok(v) = serde_json::to_vec(&b) {
                        writes.put(BOOTSTRAP_KEY, v);
                    }
                    self.bootstrap = Some(b.clone());
                    MetaResponse::Ok(b)
                }
            },
            Err(_) => MetaResponse::Undecodable,
        };
        serde_json::to_vec(&resp).unwrap_or_default()
    }
}
