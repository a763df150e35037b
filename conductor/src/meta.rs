//! The meta group (Raft group 0): bootstrap parameters every node must agree on, and the
//! conductor registry (`GET /v1/mservices`). Placement and the committed cluster version join it
//! in later milestones.
use crate::persist::{dec, enc};
use magnum_proto::meta::CONDUCTOR_BINARY;
use magnum_proto::{ServiceRecord, Timestamp};
use magnum_raft::{StateMachineLogic, WriteSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const BOOTSTRAP_KEY: &[u8] = b"bootstrap";
/// Registry rows: this prefix, then the node id big-endian.
const SERVICE_PREFIX: &[u8] = b"svc/";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub shards: u32,
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Fix the shard count and hash once; a repeat with the same values is a no-op.
    Bootstrap(Bootstrap),
    /// Upsert a conductor's registry row and count one more report. The time comes in the
    /// command so that `apply` stays deterministic.
    Heartbeat {
        node: u64,
        host: String,
        version: String,
        at: Timestamp,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaResponse {
    Ok(Bootstrap),
    Conflict(Bootstrap),
    Service(ServiceRecord),
    Undecodable,
}

#[derive(Debug, Default)]
pub struct MetaState {
    pub bootstrap: Option<Bootstrap>,
    /// The conductor registry by node id.
    pub services: BTreeMap<u64, ServiceRecord>,
}

fn service_key(node: u64) -> Vec<u8> {
    let mut k = SERVICE_PREFIX.to_vec();
    k.extend_from_slice(&node.to_be_bytes());
    k
}

impl MetaState {
    fn heartbeat(
        &mut self,
        node: u64,
        host: String,
        version: String,
        at: Timestamp,
    ) -> ServiceRecord {
        let rec = self.services.entry(node).or_insert_with(|| ServiceRecord {
            id: node,
            host: host.clone(),
            binary: CONDUCTOR_BINARY.to_string(),
            report_count: 0,
            created_at: at,
            updated_at: at,
            version: version.clone(),
        });
        rec.host = host;
        rec.version = version;
        rec.report_count = rec.report_count.saturating_add(1);
        // A late beat with an older clock never moves the row back in time.
        rec.updated_at = rec.updated_at.max(at);
        rec.clone()
    }
}

impl StateMachineLogic for MetaState {
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        self.bootstrap = None;
        self.services.clear();
        for (k, v) in kv {
            if k == BOOTSTRAP_KEY {
                self.bootstrap = Some(serde_json::from_slice(&v).map_err(|e| e.to_string())?);
            } else if k.starts_with(SERVICE_PREFIX) {
                let rec: ServiceRecord = dec(&v)?;
                self.services.insert(rec.id, rec);
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
            Ok(MetaCommand::Heartbeat {
                node,
                host,
                version,
                at,
            }) => {
                let rec = self.heartbeat(node, host, version, at);
                if let Some(v) = enc(&rec) {
                    writes.put(service_key(node), v);
                }
                MetaResponse::Service(rec)
            }
            Err(_) => MetaResponse::Undecodable,
        };
        serde_json::to_vec(&resp).unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "meta_tests.rs"]
mod tests;
