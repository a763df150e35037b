//! Row ⇄ key/value encoding of a shard's state for the Raft state machine store. Values are JSON
//! behind a one-byte format tag so that a later `DataVersion` can migrate them row by row.
use crate::shard::rows::Dirty;
use crate::shard::{Key, Rows, ShardState};
use magnum_proto::*;
use magnum_raft::StoredRows;
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

const FORMAT_JSON_V1: u8 = 1;
/// The keys of certificate rows (`Key::Certs`).
pub const CERTS_PREFIX: &[u8] = b"k/";

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
        Key::Certs(id) => with(CERTS_PREFIX, &id.0),
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

/// A row's key and its new value (`None`: deleted).
pub type RowWrite = (Vec<u8>, Option<Vec<u8>>);

/// The rows the last command changed, as the store writes them, and the state forgets the
/// stored rows' values. A row that cannot be encoded is an error.
pub fn take_writes(state: &mut ShardState) -> Result<Vec<RowWrite>, String> {
    let dirty = state.take_dirty();
    let rows = state.rows();
    let mut out = Vec::with_capacity(dirty.keys.len());
    for k in &dirty.keys {
        let v = row(rows, &dirty, k)
            .map_err(|e| format!("shard {}: row {k:?} cannot be encoded: {e}", state.shard))?;
        out.push((encode_key(k), v));
    }
    Ok(out)
}

/// The current value of a key, `None` when the row is gone.
fn row(rows: &Rows, dirty: &Dirty, k: &Key) -> Result<Option<Vec<u8>>, serde_json::Error> {
    fn some<T: Serialize>(v: Option<&T>) -> Result<Option<Vec<u8>>, serde_json::Error> {
        v.map(enc).transpose()
    }
    match k {
        Key::Ownership => enc(&(rows.epoch(), rows.owner())).map(Some),
        Key::Template(id) => some(rows.templates().get(id)),
        Key::Cluster(id) => some(rows.clusters().get(id)),
        Key::NodeGroups(id) => some(rows.all_nodegroups().get(id)),
        Key::Certs(id) => some(dirty.certs.get(id).and_then(Option::as_ref)),
        Key::Trustee(id) => some(rows.trustees().get(id)),
        Key::Op(id) => some(rows.operations().get(id)),
        Key::Request(id) => some(dirty.answers.get(id)),
        Key::Federation(id) => some(rows.federations().get(id)),
        Key::Canary(name) => some(rows.canaries().get(name)),
        Key::Notification(id) => some(rows.outbox().get(id)),
        Key::Quota(p, r) => some(rows.quotas().get(&(p.clone(), r.clone()))),
        Key::Migration(name) => some(rows.migrated(name).then_some(&true)),
        Key::Tombstone(id) => some(rows.tombstones().get(id)),
    }
}

/// A stored row's value as the store holds it.
fn stored<T: DeserializeOwned>(stored: &dyn StoredRows, k: &Key) -> Result<Option<T>, String> {
    match stored.get(&encode_key(k))? {
        Some(v) => dec(&v).map(Some).map_err(|e| format!("row {k:?}: {e}")),
        None => Ok(None),
    }
}

/// The cluster's certificates as the state sees them: its change not yet written first (the
/// command being applied, or every command of a state kept in memory only), then the store.
pub fn certs(
    rows: &Rows,
    from: &dyn StoredRows,
    id: ClusterId,
) -> Result<Option<ClusterCerts>, String> {
    match rows.unwritten_certs(id) {
        Some(c) => Ok(c.cloned()),
        None => stored_certs(from, id),
    }
}

/// The cluster's certificates as stored, for readers outside the state machine.
pub fn stored_certs(from: &dyn StoredRows, id: ClusterId) -> Result<Option<ClusterCerts>, String> {
    stored(from, &Key::Certs(id))
}

/// The answer remembered for a request (stored rows), with the index of its first apply.
pub(crate) fn answer(
    rows: &Rows,
    from: &dyn StoredRows,
    id: RequestId,
) -> Result<Option<(u64, ShardResponse)>, String> {
    match rows.unwritten_answer(id) {
        Some(a) => Ok(Some(a.clone())),
        None => stored(from, &Key::Request(id)),
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
            // Certificates stay on disk: the readers read them there (`certs`).
            Some(b"k/") => {}
            Some(b"u/") => rows.put_trustee(ClusterId(uuid_after(&k, 2)?), dec(&v)?),
            Some(b"o/") => rows.put_operation(dec(&v)?),
            // The answer stays on disk; its index is read, the rest skipped unparsed.
            Some(b"r/") => {
                let (index, _): (u64, serde::de::IgnoredAny) = dec(&v)?;
                rows.load_request(RequestId(uuid_after(&k, 2)?), index);
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

/// Test hook: the rows written since the last take, loaded into a fresh state (a replica
/// restarted from them).
#[cfg(test)]
pub(crate) fn reload(state: &mut ShardState) -> ShardState {
    let mut kv: Vec<(Vec<u8>, Vec<u8>)> = take_writes(state)
        .unwrap()
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    kv.sort();
    let mut loaded = ShardState::new(state.shard, state.shards);
    load(&mut loaded, &mut kv.into_iter()).unwrap();
    loaded
}
