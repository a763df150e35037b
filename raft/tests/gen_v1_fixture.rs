//! Generator of `tests/fixtures/data-v1`: a data dir written by the DataVersion 1 code (the
//! format of every release before the v1 → v2 upgrade). Run once, at the commit that added it:
//!
//! ```sh
//! cargo test -p magnum-raft --test gen_v1_fixture -- --ignored
//! ```
//!
//! Later versions write another format, so this generator must not be re-run on them; the
//! upgrade tests (`tests/data_version.rs`) open a copy of the committed output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use magnum_raft::{NodeAddr, RaftConfig, RaftNode, StateMachineLogic, WriteSet};

/// `k=v` puts.
#[derive(Default)]
struct Kv(BTreeMap<Vec<u8>, Vec<u8>>);

impl StateMachineLogic for Kv {
    fn load(&mut self, kv: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        self.0 = kv.collect();
        Ok(())
    }

    fn apply(&mut self, _index: u64, payload: &[u8], writes: &mut WriteSet) -> Vec<u8> {
        if let Some(pos) = payload.iter().position(|b| *b == b'=') {
            let (k, v) = (&payload[..pos], &payload[pos + 1..]);
            self.0.insert(k.to_vec(), v.to_vec());
            writes.put(k, v);
        }
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "generates the committed v1 fixture; run by hand only at the commit that added it"]
async fn generate_v1_fixture() {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-v1");
    let _ = std::fs::remove_dir_all(&out);
    let cfg = RaftConfig {
        snapshot_logs_since_last: 20,
        ..RaftConfig::default()
    };
    let node = RaftNode::open(1, &out, cfg).unwrap();
    // A single voter: never contacted over the network.
    let members = BTreeMap::from([(
        1,
        NodeAddr {
            raft: "127.0.0.1:1".into(),
            service: "127.0.0.1:2".into(),
        },
    )]);
    let g1 = node.open_group(1, Kv::default()).await.unwrap();
    let g2 = node.open_group(2, Kv::default()).await.unwrap();
    for g in [&g1, &g2] {
        g.initialize(members.clone()).await.unwrap();
        let mut rx = g.watch();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.is_leader))
            .await
            .unwrap()
            .unwrap();
    }
    // Group 1: 50 puts → a snapshot (every 20 entries) and purged logs; then 5 more in the log.
    for i in 0..50 {
        g1.write(format!("k{i:02}=v{i}").into_bytes())
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while g1.log_stats().purged.is_none() {
        assert!(Instant::now() < deadline, "{:?}", g1.log_stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 50..55 {
        g1.write(format!("k{i:02}=v{i}").into_bytes())
            .await
            .unwrap();
    }
    // Group 2: a few puts, no snapshot.
    for i in 0..3 {
        g2.write(format!("x{i}=y{i}").into_bytes()).await.unwrap();
    }
    println!("g1 {:?} {:?}", g1.status(), g1.log_stats());
    println!("g2 {:?} {:?}", g2.status(), g2.log_stats());
    drop((g1, g2));
    node.shutdown().await;
}
