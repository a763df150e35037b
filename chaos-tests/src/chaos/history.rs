//! The recorded history: every client call as invoke → ok / fail / unknown, with the times it
//! started and ended (µs since the run began) and what a read saw. One JSON line per call in
//! `OUTDIR/history.jsonl`, so a failed run can be re-checked offline.
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a client asked of one cluster, template or nodegroup (the object is its name: each name
/// is created once per run, so a create whose answer was lost can still be found by it). For a
/// template, `node_count` is its `docker_volume_size`; a nodegroup's is its own count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    Create {
        node_count: u32,
    },
    /// `PATCH /v1/clusters/{name}` replacing `/node_count`.
    Update {
        node_count: u32,
    },
    /// `POST /v1/clusters/{name}/actions/resize` of the default worker nodegroup; accepted
    /// also while an update runs (which it supersedes) or after one failed.
    Resize {
        node_count: u32,
    },
    Delete,
    /// `GET /v1/clusters/{name}` (`/v1/clustertemplates/{name}`).
    Read,
    /// The delete of a nodegroup's cluster, recorded in the nodegroup's history too (with the
    /// cluster delete's times and outcome): it takes every nodegroup with it.
    ClusterDelete,
    /// The object's entry in its project's `GET /v1/clusters`, or its absence from it: a
    /// listing is recorded as a read of each name that may exist and of each name listed.
    List,
}

impl Call {
    pub fn is_read(&self) -> bool {
        matches!(self, Call::Read | Call::List)
    }
}

/// What an object is. A template is a register: its `docker_volume_size` stands where a
/// cluster's worker count does, and it is created, updated and deleted at once (no Heat).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    Cluster,
    Template,
    /// A non-default nodegroup; the object is `<cluster>-<nodegroup>` (also its stack name's
    /// prefix).
    NodeGroup,
}

impl Kind {
    fn is_cluster(&self) -> bool {
        *self == Kind::Cluster
    }
}

/// What a read saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "seen", rename_all = "snake_case")]
pub enum Seen {
    /// 404.
    Absent,
    /// 200, with the default worker's count and the cluster's status.
    Present { node_count: u32, status: String },
}

impl Seen {
    pub fn present(node_count: u32, status: &str) -> Self {
        Seen::Present {
            node_count,
            status: status.to_string(),
        }
    }
}

/// How a call ended. `Fail` is a definite refusal (a 4xx: nothing changed); `Unknown` is a
/// timeout, a dropped connection or a 5xx, after which the call may or may not have happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Fail,
    Unknown,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Op {
    pub client: usize,
    pub object: String,
    #[serde(default, skip_serializing_if = "Kind::is_cluster")]
    pub kind: Kind,
    #[serde(flatten)]
    pub call: Call,
    pub invoke_us: u64,
    pub complete_us: u64,
    pub outcome: Outcome,
    /// The HTTP status, 0 when none came back.
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none", flatten)]
    pub seen: Option<Seen>,
    /// The error text of a failed or unknown call.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The history being recorded, shared by every client.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            ops: Arc::default(),
        }
    }

    /// µs since the run began.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn record(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Writes `ops` as JSON lines.
pub fn write_jsonl(path: &std::path::Path, ops: &[Op]) -> std::io::Result<()> {
    let mut text = String::new();
    for op in ops {
        text.push_str(&serde_json::to_string(op).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    std::fs::write(path, text)
}

/// Reads a history written by `write_jsonl`.
pub fn read_jsonl(path: &std::path::Path) -> std::io::Result<Vec<Op>> {
    std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
        .collect()
}
