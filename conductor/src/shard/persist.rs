//! Row ⇄ key/value encoding of a shard's state for the Raft state machine store. Values are JSON
//! behind a one-byte format tag so that a later `DataVersion` can migrate them row by row.
use crate::shard::{Key, ShardState};
use magnum_proto::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

const FORMAT_JSON_V1: u8 = 1;

pub fn encode_key(k: &Key) -> Vec<u8> {
    fn with(prefix: &[u8], id: &Uuid) -> Vec<u8> {
        let mut v = prefix.to_vec();
        v.extend_from_slice(id.as_bytes());
        v
    }
    match k {
        Key::Ownership => b"own".to_vec(),
        Key::Template(id) => with(b"t/", &id.0),
        Key::Cluster(id) => with(b"c/", &id.0),
        Key::NodeGroups(id) => with(b"n/", &id.0),
        Key::Certs(id) => with(b"k/", &id.0),
        Key::Trustee(id) => with(b"u/", &id.0),
        Key::Op(id) => with(b"o/", &id.0),
        Key::Request(id) => with(b"r/", &id.0),
        Key::Federation(id) => with(b"f/", &id.0),
        // A nodegroup's after its cluster's (load reads the key from the row).
        Key::Tombstone((id, ng)) => {
            let mut v = with(b"d/", &id.0);
            if let Some(ng) = ng {
                v.extend_from_slice(ng.0.as_bytes());
            }
            v
        }
        Key::Notification(id) => {
            let mut v = b"e/".to_vec();
            v.extend_from_slice(id.as_bytes());
            v
        }
        Key::Canary(name) => {
            let mut v = b"p/".to_vec();
            v.extend_from_slice(name.as_bytes());
            v
        }
        Key::Migration(name) => {
            let mut v = b"m/".to_vec();
            v.extend_from_slice(name.as_bytes());
            v
        }
        Key::Quota(p, r) => {
            let mut v = b"q/".to_vec();
            v.extend_from_slice(p.0.as_bytes());
            v.push(0);
            v.extend_from_slice(r.as_bytes());
            v
        }
    }
}

/// A row's bytes. Plain data into a Vec should never fail to serialise; if it does, the error
/// must stop the apply: skipping or deleting the row would lose it on restart.
pub(crate) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    #[cfg(test)]
    if FAIL_ENCODING.get() {
        return Err(serde::ser::Error::custom(
            "encoding failure injected by a test",
        ));
    }
    let mut out = vec![FORMAT_JSON_V1];
    serde_json::to_writer(&mut out, v)?;
    Ok(out)
}

#[cfg(test)]
thread_local! {
    /// Test hook: every row of this thread fails to encode while set.
    pub(crate) static FAIL_ENCODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) fn dec<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&FORMAT_JSON_V1, rest)) => serde_json::from_slice(rest).map_err(|e| e.to_string()),
        Some((tag, _)) => Err(format!("unknown row format {tag}")),
        None => Err("empty row".into()),
    }
}

/// The current value of a key, `None` when the row is gone, or why it cannot be encoded.
pub fn row(state: &ShardState, k: &Key) -> Result<Option<Vec<u8>>, serde_json::Error> {
    fn some<T: Serialize>(v: Option<&T>) -> Result<Option<Vec<u8>>, serde_json::Error> {
        v.map(enc).transpose()
    }
    let rows = state.rows();
    match k {
        Key::Ownership => enc(&(rows.epoch(), rows.owner())).map(Some),
        Key::Template(id) => some(rows.templates().get(id)),
        Key::Cluster(id) => some(rows.clusters().get(id)),
        Key::NodeGroups(id) => some(rows.all_nodegroups().get(id)),
        Key::Certs(id) => some(rows.certs().get(id)),
        Key::Trustee(id) => some(rows.trustees().get(id)),
        Key::Op(id) => some(rows.operations().get(id)),
        Key::Request(id) => some(rows.requests().get(id)),
        Key::Federation(id) => some(rows.federations().get(id)),
        Key::Canary(name) => some(rows.canaries().get(name)),
        Key::Notification(id) => some(rows.outbox().get(id)),
        Key::Quota(p, r) => some(rows.quotas().get(&(p.clone(), r.clone()))),
        Key::Migration(name) => some(rows.migrated(name).then_some(&true)),
        Key::Tombstone(id) => some(rows.tombstones().get(id)),
    }
}

fn uuid_after(key: &[u8], prefix: usize) -> Result<Uuid, String> {
    Uuid::from_slice(&key[prefix..]).map_err(|e| format!("bad key {key:?}: {e}"))
}

/// Rebuild a shard's state from its persisted rows.
pub fn load(
    state: &mut ShardState,
    kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<(), String> {
    let (shard, shards) = (state.shard, state.shards);
    *state = ShardState::new(shard, shards);
    let rows = &mut state.rows;
    for (k, v) in kv {
        match k.get(..2) {
            _ if k == b"own" => {
                let (epoch, owner) = dec(&v)?;
                rows.set_ownership(epoch, owner);
            }
            Some(b"t/") => rows.put_template(TemplateId(uuid_after(&k, 2)?), dec(&v)?),
            Some(b"c/") => rows.insert_cluster(dec(&v)?),
            Some(b"n/") => rows.put_nodegroups(ClusterId(uuid_after(&k, 2)?), dec(&v)?),
            Some(b"k/") => rows.put_certs(ClusterId(uuid_after(&k, 2)?), dec(&v)?),
            Some(b"u/") => rows.put_trustee(ClusterId(uuid_after(&k, 2)?), dec(&v)?),
            Some(b"o/") => rows.put_operation(dec(&v)?),
            Some(b"r/") => {
                let (index, resp) = dec(&v)?;
                rows.remember_request(RequestId(uuid_after(&k, 2)?), index, resp);
            }
            Some(b"f/") => rows.put_federation(dec(&v)?),
            Some(b"d/") => rows.put_tombstone(dec(&v)?),
            Some(b"q/") => rows.put_quota(dec(&v)?),
            Some(b"e/") => rows.push_notification(dec(&v)?),
            Some(b"p/") => {
                let name = String::from_utf8(k[2..].to_vec()).map_err(|e| e.to_string())?;
                let value: String = dec(&v)?;
                rows.put_canary(&name, &value);
            }
            Some(b"m/") => {
                let name = String::from_utf8(k[2..].to_vec()).map_err(|e| e.to_string())?;
                rows.mark_migrated(&name);
            }
            // Keys of the storage layer itself (e.g. last applied) are not ours.
            _ => {}
        }
    }
    state.take_dirty();
    Ok(())
}
