//! Storage proof under crashes: clients write canaries to every shard while conductors are
//! SIGKILLed and restarted, one at a time, more than 50 times (leaders of the written shards and
//! followers, every node). At the end, and again after all three are killed and restarted, every
//! acknowledged write is read back through a linearizable query; and the vote audit of every
//! node, across all its restarts, shows that no node ever voted twice in a term.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_chaos_tests::{Deployment, Options};
use magnum_proto::{
    ClientError, ConductorClient, QueryResult, RequestId, ShardCommand, ShardId, ShardQuery,
    ShardRequest,
};
use magnum_raft::vote_audit;
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KILLS: usize = 54;
const SHARDS: u32 = 4;
const WRITERS_PER_SHARD: usize = 2;
/// Every shard must ack a write within this long after a restart, or the test fails (liveness).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);
const TEST_BUDGET: Duration = Duration::from_secs(420);

/// Writes acknowledged so far, per shard: key → value.
type Acked = Arc<Mutex<BTreeMap<u32, BTreeMap<String, String>>>>;

struct Writers {
    stop: Arc<AtomicBool>,
    acked: Acked,
    /// Acks per shard (for progress checks without locking the map).
    acks: Arc<Vec<AtomicU64>>,
    unknown: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start_writers(client: &ConductorClient) -> Writers {
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let acks = Arc::new((0..SHARDS).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
    let unknown = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for shard in 0..SHARDS {
        for w in 0..WRITERS_PER_SHARD {
            let (client, stop, acked, acks, unknown) = (
                client.clone(),
                stop.clone(),
                acked.clone(),
                acks.clone(),
                unknown.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let key = format!("crash/{shard}/{w}/{i}");
                    let value = uuid::Uuid::new_v4().simple().to_string();
                    let req = ShardRequest {
                        request_id: Some(RequestId::new_v4()),
                        command: ShardCommand::Canary {
                            key: key.clone(),
                            value: value.clone(),
                        },
                    };
                    match client.command(ShardId(shard), &req).await {
                        Ok(Ok(_)) => {
                            acked
                                .lock()
                                .unwrap()
                                .entry(shard)
                                .or_default()
                                .insert(key, value);
                            acks[shard as usize].fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(Err(e)) => panic!("canary {key} rejected: {e:?}"),
                        // Outcome unknown (deadline passed mid-failover): not counted as acked.
                        Err(ClientError::Unavailable(..)) => {
                            unknown.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("canary {key}: {e}"),
                    }
                }
            }));
        }
    }
    Writers {
        stop,
        acked,
        acks,
        unknown,
        tasks,
    }
}

/// Reads every shard's canaries linearizably and checks each acknowledged write is there.
async fn verify_acked(client: &ConductorClient, acked: &BTreeMap<u32, BTreeMap<String, String>>) {
    for (shard, want) in acked {
        let q = ShardQuery::Canaries {
            prefix: format!("crash/{shard}/"),
        };
        let got = match client.query(ShardId(*shard), &q).await.unwrap() {
            QueryResult::Canaries(m) => m,
            other => panic!("unexpected answer {other:?}"),
        };
        let lost: Vec<_> = want
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        assert!(
            lost.is_empty(),
            "shard {shard}: {} of {} acknowledged writes lost, e.g. {:?}",
            lost.len(),
            want.len(),
            &lost[..lost.len().min(5)]
        );
    }
}

/// Waits until every shard acknowledged a write after `since` (per-shard counts).
async fn wait_progress(w: &Writers, since: &[u64], d: &Deployment) {
    let start = Instant::now();
    loop {
        let stalled: Vec<usize> = (0..SHARDS as usize)
            .filter(|&s| w.acks[s].load(Ordering::SeqCst) <= since[s])
            .collect();
        if stalled.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < PROGRESS_TIMEOUT,
            "shards {stalled:?} acknowledged no write for {PROGRESS_TIMEOUT:?}; logs in {}",
            d.dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The shard's leader; a few tries, as a kill a moment ago may still be electing one.
async fn leader_of(client: &ConductorClient, shard: ShardId) -> Option<u64> {
    for _ in 0..50 {
        if let Some(n) = client.leader_of(shard).await.unwrap() {
            return Some(n.0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_writes_survive_repeated_sigkill_and_no_node_votes_twice() {
    let started = Instant::now();
    let d = Deployment::up(
        "crashloop",
        Options {
            shards: SHARDS,
            // A snapshot every 20 entries (keeping 20): a node down for a second catches up by
            // snapshot, and kills land mid-build and mid-install too.
            raft_args: "--vote-audit --snapshot-logs 20".into(),
            ..Options::default()
        },
    );
    let client = ConductorClient::new(
        (1..=3).map(|i| d.conductor_service(i)).collect(),
        Duration::from_secs(10),
        &d.operator_tls(),
    )
    .unwrap();
    let writers = start_writers(&client);
    let mut kills_of = BTreeMap::<u64, usize>::new();
    let (mut leader_kills, mut follower_kills) = (0, 0);
    let mut rng = rand::thread_rng();
    for i in 0..KILLS {
        let shard = ShardId(i as u32 % SHARDS);
        let leader = leader_of(&client, shard).await;
        let victim = match leader {
            Some(l) if i % 2 == 0 => {
                leader_kills += 1;
                l
            }
            _ => {
                // The follower killed least so far, so every node gets its share.
                let mut others: Vec<u64> = (1..=3).filter(|n| Some(*n) != leader).collect();
                others.sort_by_key(|n| (kills_of.get(n).copied().unwrap_or(0), rng.gen::<u8>()));
                follower_kills += usize::from(leader.is_some());
                others[0]
            }
        };
        let acks_before: Vec<u64> = writers
            .acks
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect();
        d.kill_conductor(victim);
        *kills_of.entry(victim).or_default() += 1;
        // Down for a moment (an election may be running), then back.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..600))).await;
        d.start("conductor", Some(victim));
        d.wait_conductor_up(victim, Duration::from_secs(30)).await;
        wait_progress(&writers, &acks_before, &d).await;
        // Let it run a random while so the next kill lands at any point (catch-up, snapshot…).
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..900))).await;
        assert!(
            started.elapsed() < TEST_BUDGET,
            "over budget after {i} kills"
        );
    }

    writers.stop.store(true, Ordering::SeqCst);
    for t in writers.tasks {
        t.await.unwrap();
    }
    let acked = writers.acked.lock().unwrap().clone();
    let total: usize = acked.values().map(|m| m.len()).sum();
    verify_acked(&client, &acked).await;

    // All three die at once and come back: still everything.
    for n in 1..=3 {
        d.kill_conductor(n);
    }
    for n in 1..=3 {
        d.start("conductor", Some(n));
    }
    for n in 1..=3 {
        d.wait_conductor_up(n, Duration::from_secs(30)).await;
    }
    verify_acked(&client, &acked).await;

    let mut audits = Vec::new();
    for n in 1..=3u64 {
        let path = d.conductor_dir(n).join("raft").join(vote_audit::AUDIT_FILE);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let sum = vote_audit::check(&text)
            .unwrap_or_else(|v| panic!("node {n} voted twice or lost a vote: {v:#?}"));
        // At least one boot line per group per start: the audit really spans every restart.
        // (More is possible: a replica reopened within a process, or a start the test did not
        // count because the previous process was still exiting; each opens from disk, which
        // is what the audit checks.)
        let starts = 1 + kills_of.get(&n).copied().unwrap_or(0) + 1;
        assert!(
            sum.boots >= starts * (SHARDS as usize + 1),
            "node {n}: {sum:?}, {starts} starts"
        );
        audits.push((n, sum));
    }

    assert!(kills_of.values().sum::<usize>() >= 50);
    assert!(
        leader_kills >= 20 && follower_kills >= 20,
        "{leader_kills} / {follower_kills}"
    );
    assert!(
        kills_of.len() == 3 && kills_of.values().all(|&k| k >= 5),
        "{kills_of:?}"
    );
    println!(
        "MEASURE crash loop: {} SIGKILLs ({leader_kills} of a written shard's leader, \
         {follower_kills} of a follower; per node {kills_of:?}), {total} acknowledged writes all \
         read back (also after killing all three), {} writes with unknown outcome, in {} s",
        kills_of.values().sum::<usize>(),
        writers.unknown.load(Ordering::SeqCst),
        started.elapsed().as_secs()
    );
    let logs: String = (1..=3).map(|n| d.log(&format!("conductor-{n}"))).collect();
    println!(
        "MEASURE snapshots during the crash loop: {} built, {} installed, {} interrupted installs \
         finished at restart",
        logs.matches("built snapshot").count(),
        logs.matches("installed snapshot").count(),
        logs.matches("finishing an interrupted snapshot install")
            .count()
    );
    assert!(
        logs.contains("installed snapshot"),
        "no follower caught up by snapshot"
    );
    for (n, s) in audits {
        println!(
            "MEASURE vote audit node {n}: {} votes saved, {} group starts, {} announced but never \
             persisted, {} moves to a higher candidate within a term, max term {}",
            s.saved, s.boots, s.unpersisted, s.same_term_moves, s.max_term
        );
    }
}
