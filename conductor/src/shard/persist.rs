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
        Key::Quota(p, r) => {
            let mut v = b"q/".to_vec();
            v.extend_from_slice(p.0.as_bytes());
            v.push(0);
            v.extend_from_slice(r.as_bytes());
            v
        }
    }
}

pub(crate) fn enc<T: Serialize>(v: &T) -> Option<Vec<u8>> {
    let mut out = vec![FORMAT_JSON_V1];
    // Serialising plain data into a Vec cannot fail; a failure would be a bug, so skip the row.
    serde_json::to_writer(&mut out, v).ok()?;
    Some(out)
}

pub(crate) fn dec<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&FORMAT_JSON_V1, rest)) => serde_json::from_slice(rest).map_err(|e| e.to_string()),
        Some((tag, _)) => Err(format!("unknown row format {tag}")),
        None => Err("empty row".into()),
    }
}

/// The current value of a key, or `None` when the row is gone.
pub fn row(state: &ShardState, k: &Key) -> Option<Vec<u8>> {
    let rows = state.rows();
    match k {
        Key::Ownership => enc(&(rows.epoch(), rows.owner())),
        Key::Template(id) => rows.templates().get(id).and_then(enc),
        Key::Cluster(id) => rows.clusters().get(id).and_then(enc),
        Key::NodeGroups(id) => rows.all_nodegroups().get(id).and_then(enc),
        Key::Certs(id) => rows.certs().get(id).and_then(enc),
        Key::Trustee(id) => rows.trustees().get(id).and_then(enc),
        Key::Op(id) => rows.operations().get(id).and_then(enc),
        Key::Request(id) => rows.requests().get(id).and_then(enc),
        Key::Federation(id) => rows.federations().get(id).and_then(enc),
        Key::Canary(name) => rows.canaries().get(name).and_then(enc),
        Key::Notification(id) => rows.outbox().get(id).and_then(enc),
        Key::Quota(p, r) => rows.quotas().get(&(p.clone(), r.clone())).and_then(enc),
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
            Some(b"q/") => rows.put_quota(dec(&v)?),
            Some(b"e/") => rows.push_notification(dec(&v)?),
            Some(b"p/") => {
                let name = String::from_utf8(k[2..].to_vec()).map_err(|e| e.to_string())?;
                let value: String = dec(&v)?;
                rows.put_canary(&name, &value);
            }
            // Keys of the storage layer itself (e.g. last applied) are not ours.
            _ => {}
        }
    }
    state.take_dirty();
    Ok(())
}
