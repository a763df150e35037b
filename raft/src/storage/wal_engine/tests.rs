//! The wal engine against the engine contract, and its recovery rules: flushed writes survive,
//! a torn tail is cut to a prefix of the writes, damage elsewhere is refused, checkpoints keep
//! every tree and let old segments go.

use super::*;
use crate::storage::engine::check_contract;
use std::time::Instant;

fn put(tree: &Arc<dyn KvTree>, k: u32, v: &[u8]) {
    futures::executor::block_on(tree.apply_batch(WriteBatch {
        ops: vec![BatchOp::Put(k.to_be_bytes().to_vec(), v.to_vec())],
    }))
    .unwrap();
}

fn keys(tree: &Arc<dyn KvTree>) -> Vec<u32> {
    tree.range(Bound::Unbounded, Bound::Unbounded)
        .map(|kv| {
            let (k, _) = kv.unwrap();
            u32::from_be_bytes([k[0], k[1], k[2], k[3]])
        })
        .collect()
}

fn segments(dir: &Path) -> Vec<u64> {
    numbered(dir, "seg-", ".wal").unwrap()
}

#[tokio::test]
async fn meets_the_engine_contract() {
    let dir = tempfile::tempdir().unwrap();
    let engine = WalEngine::open(dir.path()).unwrap();
    check_contract(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_flushes_all_answer_and_everything_flushed_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Arc::new(WalEngine::open(dir.path()).unwrap());
        let trees: Vec<Arc<dyn KvTree>> = (0..4)
            .map(|g| engine.open_tree(&format!("g{g}/log")).unwrap())
            .collect();
        let mut tasks = Vec::new();
        for i in 0..256u32 {
            let (engine, t) = (engine.clone(), trees[i as usize % 4].clone());
            tasks.push(tokio::spawn(async move {
                let mut b = WriteBatch::default();
                b.put(i.to_be_bytes(), *b"v");
                b.put((i + 1000).to_be_bytes(), *b"w");
                t.apply_batch(b).await.unwrap();
                engine.flush().await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
    let engine = WalEngine::open(dir.path()).unwrap();
    let mut names = engine.tree_names().unwrap();
    names.sort();
    assert_eq!(names, ["__root__", "g0/log", "g1/log", "g2/log", "g3/log"]);
    for g in 0..4u32 {
        let t = engine.open_tree(&format!("g{g}/log")).unwrap();
        let want: Vec<u32> = (0..256)
            .filter(|i| i % 4 == g)
            .chain((0..256).filter(|i| i % 4 == g).map(|i| i + 1000))
            .collect();
        assert_eq!(keys(&t), want);
    }
}

#[test]
fn a_torn_tail_is_cut_to_a_prefix_of_the_writes_at_every_length() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = WalEngine::open(dir.path()).unwrap();
        let t = engine.open_tree("t").unwrap();
        for k in 0..20u32 {
            put(&t, k, &[7; 100]);
        }
        engine.flush_blocking().unwrap();
    }
    let seg = segment_path(dir.path(), *segments(dir.path()).last().unwrap());
    let whole = fs::read(&seg).unwrap();
    // Every length a crash could leave, record boundaries and mid-record alike.
    for len in (0..=whole.len()).step_by(13).chain([whole.len() - 1]) {
        let copy = tempfile::tempdir().unwrap();
        for f in fs::read_dir(dir.path()).unwrap() {
            let f = f.unwrap().path();
            if f.file_name().unwrap() != "LOCK" {
                fs::copy(&f, copy.path().join(f.file_name().unwrap())).unwrap();
            }
        }
        let torn = segment_path(copy.path(), *segments(dir.path()).last().unwrap());
        fs::write(&torn, &whole[..len]).unwrap();
        let engine = WalEngine::open(copy.path()).unwrap();
        let got = match engine.tree_names().unwrap().contains(&"t".to_string()) {
            true => keys(&engine.open_tree("t").unwrap()),
            false => Vec::new(),
        };
        let n = got.len() as u32;
        assert_eq!(got, (0..n).collect::<Vec<_>>(), "a prefix at length {len}");
        // The engine goes on writing after the cut, and that survives the next open.
        let t = engine.open_tree("t").unwrap();
        put(&t, 999, b"after");
        engine.flush_blocking().unwrap();
        drop(engine);
        let engine = WalEngine::open(copy.path()).unwrap();
        let again = keys(&engine.open_tree("t").unwrap());
        assert_eq!(again.len() as u32, n + 1, "length {len}");
        assert_eq!(again.last(), Some(&999));
    }
}

#[test]
fn damage_before_the_last_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2u32 {
        let engine = WalEngine::open(dir.path()).unwrap();
        put(&engine.open_tree("t").unwrap(), round, b"v");
        engine.flush_blocking().unwrap();
    }
    // Three segments now: two written, one fresh. Flip a byte in the first.
    let first = segment_path(dir.path(), segments(dir.path())[0]);
    let mut bytes = fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&first, bytes).unwrap();
    let err = WalEngine::open(dir.path()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("damaged"), "{err}");
}

#[test]
fn a_missing_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3u32 {
        let engine = WalEngine::open(dir.path()).unwrap();
        put(&engine.open_tree("t").unwrap(), round, b"v");
        engine.flush_blocking().unwrap();
    }
    fs::remove_file(segment_path(dir.path(), segments(dir.path())[1])).unwrap();
    let err = WalEngine::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn checkpoints_keep_every_tree_and_let_old_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = WalEngine::open_with(dir.path(), 4096, 256).unwrap();
        let keep = engine.open_tree("keep").unwrap();
        let gone = engine.open_tree("gone").unwrap();
        put(&gone, 1, b"x");
        for k in 0..200u32 {
            put(&keep, k, &[1; 64]);
            if k % 10 == 0 {
                let mut b = WriteBatch::default();
                b.delete(k.saturating_sub(5).to_be_bytes());
                futures::executor::block_on(keep.apply_batch(b)).unwrap();
            }
            engine.flush_blocking().unwrap();
            if k == 100 {
                engine.drop_tree("gone").unwrap();
                // A stale handle of a dropped tree is refused, not logged.
                assert!(gone.insert(b"k", b"v").is_err());
            }
        }
        // Let the last checkpoint finish.
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.log.checkpointing.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let ckpts = numbered(dir.path(), "ckpt-", "").unwrap();
        assert_eq!(ckpts.len(), 1, "older checkpoints are removed");
        assert!(
            segments(dir.path()).iter().all(|s| *s >= ckpts[0]),
            "segments a checkpoint covers are removed"
        );
    }
    let engine = WalEngine::open_with(dir.path(), 4096, 256).unwrap();
    let mut names = engine.tree_names().unwrap();
    names.sort();
    assert_eq!(names, ["__root__", "keep"]);
    let want: Vec<u32> = (0..200)
        .filter(|k| !(0..200).step_by(10).any(|d: u32| d.saturating_sub(5) == *k))
        .collect();
    assert_eq!(keys(&engine.open_tree("keep").unwrap()), want);
    // Tree ids go on after the highest recovered one.
    let fresh = engine.open_tree("fresh").unwrap();
    put(&fresh, 5, b"y");
    engine.flush_blocking().unwrap();
    drop((fresh, engine));
    let engine = WalEngine::open(dir.path()).unwrap();
    assert_eq!(keys(&engine.open_tree("fresh").unwrap()), [5]);
    assert_eq!(keys(&engine.open_tree("keep").unwrap()), want);
}

#[test]
fn open_waits_for_the_previous_holder_of_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let first = WalEngine::open(dir.path()).unwrap();
    first.root().insert(b"k", b"v").unwrap();
    first.flush_blocking().unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
    });
    let second = WalEngine::open(dir.path()).unwrap();
    holder.join().unwrap();
    assert_eq!(second.root().get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn records_round_trip_and_garbage_is_refused() {
    let ops = vec![
        BatchOp::Put(b"k".to_vec(), b"v".to_vec()),
        BatchOp::Delete(Vec::new()),
        BatchOp::Put(Vec::new(), vec![0; 300]),
    ];
    assert_eq!(
        decode(&encode_batch(7, &ops)).unwrap(),
        Record::Batch(7, ops)
    );
    assert_eq!(
        decode(&encode_create(3, "g3/sm")).unwrap(),
        Record::Create(3, "g3/sm".into())
    );
    assert_eq!(decode(&encode_drop(9)).unwrap(), Record::Drop(9));
    for bad in [
        &[][..],
        &[9],
        &[TAG_BATCH, 1, 0, 0, 0, 5, 0, 0, 0],
        &[TAG_DROP, 1],
    ] {
        assert!(decode(bad).is_err(), "{bad:?}");
    }
    let mut trailing = encode_drop(1);
    trailing.push(0);
    assert!(decode(&trailing).is_err());
    // A frame whose length runs past the end, or whose checksum fails, ends the good ones.
    let mut buf = Vec::new();
    frame(&encode_drop(1), &mut buf);
    let good = buf.len();
    frame(&encode_drop(2), &mut buf);
    let n = buf.len();
    buf[n - 1] ^= 1;
    assert_eq!(read_frames(&buf).1, good);
    assert_eq!(read_frames(&buf[..good + 3]).1, good);
}

/// Batches written while fuzzy checkpoints copy the tree a few pairs at a time, then a crash
/// (the engine dropped with writes never flushed): what recovery finds is exactly the state
/// after some batch, never part of one.
#[test]
fn checkpoints_taken_under_writes_recover_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let engine = Arc::new(WalEngine::open_with(dir.path(), 2048, 64).unwrap());
        let t = engine.open_tree("t").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flusher = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    engine.flush_blocking().unwrap();
                }
            })
        };
        // "a" and "z" bracket every other key, so a chunk boundary falls between them.
        let mut last = 0u32;
        for i in 1..=3000u32 {
            let mut b = WriteBatch::default();
            b.put(*b"a", i.to_be_bytes());
            b.put(format!("m{:02}", i % 50).into_bytes(), i.to_be_bytes());
            b.put(*b"z", i.to_be_bytes());
            futures::executor::block_on(t.apply_batch(b)).unwrap();
            last = i;
        }
        stop.store(true, Ordering::SeqCst);
        flusher.join().unwrap();
        engine.flush_blocking().unwrap();
        // More batches that no flush makes durable: the "crash" may lose them, whole.
        for i in 3001..=3100u32 {
            let mut b = WriteBatch::default();
            b.put(*b"a", i.to_be_bytes());
            b.put(*b"z", i.to_be_bytes());
            futures::executor::block_on(t.apply_batch(b)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.log.checkpointing.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!numbered(dir.path(), "ckpt-", "").unwrap().is_empty());
        last
    };
    let engine = WalEngine::open(dir.path()).unwrap();
    let t = engine.open_tree("t").unwrap();
    let get = |k: &[u8]| u32::from_be_bytes(t.get(k).unwrap().unwrap().try_into().unwrap());
    let a = get(b"a");
    assert_eq!(a, get(b"z"), "a batch recovered whole");
    assert!(a >= last, "every flushed batch survives ({a} < {last})");
    for r in 0..50u32 {
        // The last batch up to 3000 with this residue (3001.. wrote no m key).
        let want = (1..=a.min(3000)).rev().find(|i| i % 50 == r).unwrap();
        assert_eq!(get(format!("m{r:02}").as_bytes()), want, "m{r:02}");
    }
}

/// A checkpoint copying a tree while batches land in it unflushed, then a crash right after
/// the checkpoint: its chunks hold halves of batches no segment had yet, and recovery must
/// still find whole batches (the checkpoint goes into place only after a flush).
#[test]
fn a_checkpoint_never_leaves_half_a_batch() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = Arc::new(WalEngine::open_with(dir.path(), u64::MAX, 16).unwrap());
            let t = engine.open_tree("t").unwrap();
            for k in 0..200u32 {
                put(&t, k, b"pad");
            }
            engine.flush_blocking().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let written = Arc::new(std::sync::atomic::AtomicU32::new(0));
            let writer = {
                let (t, stop, written) = (t.clone(), stop.clone(), written.clone());
                std::thread::spawn(move || {
                    let mut i = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        written.store(i, Ordering::SeqCst);
                        // Keys of their own: no later write repairs a half batch.
                        let mut b = WriteBatch::default();
                        b.put([&[0x10u8][..], &i.to_be_bytes()].concat(), *b"a");
                        b.put([&[0xf0u8][..], &i.to_be_bytes()].concat(), *b"z");
                        futures::executor::block_on(t.apply_batch(b)).unwrap();
                    }
                })
            };
            // The writer counts a batch before it applies it: at 11, ten are applied.
            while written.load(Ordering::SeqCst) < 11 {
                std::thread::yield_now();
            }
            let ckpt = engine.begin_checkpoint(true).unwrap();
            ckpt.run().unwrap();
            stop.store(true, Ordering::SeqCst);
            writer.join().unwrap();
        }
        let engine = WalEngine::open(dir.path()).unwrap();
        let t = engine.open_tree("t").unwrap();
        let side = |tag: u8| -> Vec<Vec<u8>> {
            t.scan_prefix(&[tag])
                .map(|kv| kv.unwrap().0[1..].to_vec())
                .collect()
        };
        let (a, z) = (side(0x10), side(0xf0));
        assert!(
            a.len() >= 10,
            "the batches flushed before the checkpoint survive"
        );
        assert!(
            a == z,
            "half batches: {} firsts, {} seconds",
            a.len(),
            z.len()
        );
    }
}

/// A value of `n` bytes that differs by `k` and `round` throughout.
fn large(k: u32, round: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(k) as u8 ^ round)
        .collect()
}

fn checkpoint(engine: &WalEngine) {
    engine.begin_checkpoint(true).unwrap().run().unwrap();
    engine.log.checkpointing.store(false, Ordering::SeqCst);
}

fn mem_tree(engine: &WalEngine, name: &str) -> Arc<MemTree> {
    engine.trees().get(name).unwrap().clone()
}

/// Large values leave memory at a checkpoint and read back the same through every read, before
/// and after a reopen, over a second checkpoint that copies them from the first (removed) one,
/// and with some overwritten or deleted in between. Small values stay in memory.
#[test]
fn large_values_are_spilled_by_a_checkpoint_and_read_back_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let size = |k: u32| {
        if k.is_multiple_of(4) {
            100
        } else {
            SPILL_AT + k as usize * 37
        }
    };
    let mut want: BTreeMap<u32, Vec<u8>> = (0..40).map(|k| (k, large(k, 0, size(k)))).collect();
    let check = |engine: &WalEngine, want: &BTreeMap<u32, Vec<u8>>| {
        let t = engine.open_tree("t").unwrap();
        for (k, v) in want {
            assert_eq!(
                t.get(&k.to_be_bytes()).unwrap().as_ref(),
                Some(v),
                "get {k}"
            );
        }
        let all: BTreeMap<u32, Vec<u8>> = t
            .range(Bound::Unbounded, Bound::Unbounded)
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (u32::from_be_bytes(k.try_into().unwrap()), v)
            })
            .collect();
        assert_eq!(&all, want, "range");
        assert_eq!(t.scan_prefix(&[0, 0, 0]).count(), want.len(), "scan_prefix");
        let (k, v) = t.last().unwrap().unwrap();
        assert_eq!(
            Some(&v),
            want.get(&u32::from_be_bytes(k.try_into().unwrap()))
        );
    };
    let spills =
        |want: &BTreeMap<u32, Vec<u8>>| want.values().filter(|v| v.len() >= SPILL_AT).count();
    {
        let engine = WalEngine::open_with(dir.path(), u64::MAX, 4096).unwrap();
        let t = engine.open_tree("t").unwrap();
        for (k, v) in &want {
            put(&t, *k, v);
        }
        engine.flush_blocking().unwrap();
        assert_eq!(
            mem_tree(&engine, "t").spilled(),
            0,
            "in memory until a checkpoint"
        );
        checkpoint(&engine);
        assert_eq!(mem_tree(&engine, "t").spilled(), spills(&want));
        check(&engine, &want);
        // Overwrites (small ↔ large) and deletes, then a checkpoint that copies the rest from
        // the first one, which it removes.
        for k in (1..40).step_by(3) {
            let v = large(k, 1, size(k + 1));
            put(&t, k, &v);
            want.insert(k, v);
        }
        let mut b = WriteBatch::default();
        b.delete(5u32.to_be_bytes());
        futures::executor::block_on(t.apply_batch(b)).unwrap();
        want.remove(&5);
        engine.flush_blocking().unwrap();
        check(&engine, &want);
        checkpoint(&engine);
        assert_eq!(numbered(dir.path(), "ckpt-", "").unwrap().len(), 1);
        assert_eq!(mem_tree(&engine, "t").spilled(), spills(&want));
        check(&engine, &want);
    }
    let engine = WalEngine::open(dir.path()).unwrap();
    assert_eq!(
        mem_tree(&engine, "t").spilled(),
        spills(&want),
        "a reopen leaves them in the checkpoint"
    );
    check(&engine, &want);
}

/// A value overwritten after the checkpoint copied it keeps the new value: the swing sees it
/// is no longer the value copied.
#[test]
fn a_write_racing_a_checkpoint_is_not_swung_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = WalEngine::open_with(dir.path(), u64::MAX, 4096).unwrap();
    let t = engine.open_tree("t").unwrap();
    let mt = mem_tree(&engine, "t");
    let (old, new) = (large(1, 0, 2 * SPILL_AT), large(1, 1, 2 * SPILL_AT));
    put(&t, 1, &old);
    put(&t, 2, &old);
    let copied = |k: u32| mt.read().get(&k.to_be_bytes()[..]).unwrap().clone();
    let (c1, c2) = (copied(1), copied(2));
    put(&t, 1, &new);
    let file = Arc::new(File::open(dir.path().join("LOCK")).unwrap());
    mt.swing(vec![
        (
            1u32.to_be_bytes().to_vec(),
            c1,
            Spill::new(file.clone(), 0, 8),
        ),
        (2u32.to_be_bytes().to_vec(), c2, Spill::new(file, 0, 8)),
    ]);
    assert_eq!(
        t.get(&1u32.to_be_bytes()).unwrap(),
        Some(new),
        "the later write wins"
    );
    assert_eq!(mt.spilled(), 1, "the untouched value is swung");
}

/// A spilled record damaged on disk is a read error, never other bytes, and the checkpoint
/// holding it is refused at the next open.
#[test]
fn a_damaged_spill_is_an_error() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let v = large(7, 0, 3 * SPILL_AT);
    {
        let engine = WalEngine::open_with(dir.path(), u64::MAX, 4096).unwrap();
        let t = engine.open_tree("t").unwrap();
        put(&t, 7, &v);
        engine.flush_blocking().unwrap();
        checkpoint(&engine);
        assert_eq!(t.get(&7u32.to_be_bytes()).unwrap(), Some(v.clone()));
        let ckpt = checkpoint_path(dir.path(), numbered(dir.path(), "ckpt-", "").unwrap()[0]);
        let bytes = fs::read(&ckpt).unwrap();
        let at = bytes.windows(64).position(|w| w == &v[1000..1064]).unwrap();
        let f = fs::OpenOptions::new().write(true).open(&ckpt).unwrap();
        f.write_all_at(&[bytes[at] ^ 0xff], at as u64).unwrap();
        f.sync_all().unwrap();
        let err = t.get(&7u32.to_be_bytes()).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        assert!(t
            .range(Bound::Unbounded, Bound::Unbounded)
            .any(|kv| kv.is_err()));
    }
    let err = WalEngine::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("damaged"), "{err}");
}
