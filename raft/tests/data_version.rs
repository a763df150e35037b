//! A data dir written by DataVersion 1 (`tests/fixtures/data-v1`, see its README) opens with
//! this build: it is upgraded at open, keeps every group's state and log, and its snapshot,
//! now a file, still brings a new replica up to date.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use magnum_raft::{NodeAddr, RaftConfig, RaftNode, StateMachineLogic, StoredRows, WriteSet};

/// `k=v` puts (the fixture's logic).
#[derive(Default)]
struct Kv(BTreeMap<Vec<u8>, Vec<u8>>);

impl StateMachineLogic for Kv {
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        self.0 = kv.collect();
        Ok(())
    }

    fn apply(
        &mut self,
        _index: u64,
        payload: &[u8],
        writes: &mut WriteSet,
        _stored: &dyn StoredRows,
    ) -> Result<Vec<u8>, String> {
        if let Some(pos) = payload.iter().position(|b| *b == b'=') {
            let (k, v) = (&payload[..pos], &payload[pos + 1..]);
            self.0.insert(k.to_vec(), v.to_vec());
            writes.put(k, v);
        }
        Ok(Vec::new())
    }
}

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-v1/raft.sled");
    std::fs::create_dir_all(to.join("raft.sled")).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join("raft.sled").join(e.file_name())).unwrap();
        }
    }
}

fn expected(prefix: &str, value: &str, n: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..n)
        .map(|i| {
            let k = if prefix == "k" {
                format!("k{i:02}")
            } else {
                format!("{prefix}{i}")
            };
            (k.into_bytes(), format!("{value}{i}").into_bytes())
        })
        .collect()
}

async fn serve(node: &std::sync::Arc<RaftNode>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    node.serve(l, tokio_util::sync::CancellationToken::new())
        .unwrap();
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_data_dir_is_upgraded_at_open_and_keeps_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    copy_fixture(&dir);

    let node = RaftNode::open(1, &dir, RaftConfig::default()).unwrap();
    let g1 = node.open_group(1, Kv::default()).await.unwrap();
    let g2 = node.open_group(2, Kv::default()).await.unwrap();
    // Straight from disk: the state, the snapshot (now a file) and the purge point.
    assert_eq!(g1.read_local(|kv| kv.0.clone()), expected("k", "v", 55));
    assert_eq!(g2.read_local(|kv| kv.0.clone()), expected("x", "y", 3));
    let stats = g1.log_stats();
    assert_eq!((stats.snapshot, stats.purged), (Some(39), Some(19)));
    let files: Vec<_> = std::fs::read_dir(dir.join("snapshots/g1"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");

    // The single voter re-elects itself and goes on writing.
    let mut rx = g1.watch();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.is_leader))
        .await
        .unwrap()
        .unwrap();
    g1.write(b"k55=v55".to_vec()).await.unwrap();

    // A new replica needs entries the log no longer has: it gets the converted snapshot.
    let learner = RaftNode::open(2, &tmp.path().join("n2"), RaftConfig::default()).unwrap();
    let l1 = learner.open_group(1, Kv::default()).await.unwrap();
    let addr = serve(&learner).await;
    let _ = serve(&node).await;
    let na = NodeAddr {
        raft: addr,
        service: String::new(),
    };
    g1.add_learner(2, na, false).await.unwrap();
    let target = g1.status().last_applied;
    let mut rx = l1.watch();
    tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|s| s.last_applied >= target),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(l1.snapshot_counts().installed, 1);
    assert_eq!(l1.read_local(|kv| kv.0.clone()), expected("k", "v", 56));
    drop((g1, g2, l1));
    node.shutdown().await;
    learner.shutdown().await;
    drop((node, learner));

    // Reopening the upgraded dir is a plain open.
    let node = RaftNode::open(1, &dir, RaftConfig::default()).unwrap();
    let g1 = node.open_group(1, Kv::default()).await.unwrap();
    assert_eq!(g1.read_local(|kv| kv.0.clone()), expected("k", "v", 56));
    drop(g1);
    node.shutdown().await;
}
