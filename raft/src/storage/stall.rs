//! Disk-stall detection, as CockroachDB's `max_sync_duration`: a flush that has not returned
//! after a limit will not (sled 0.34, after its background flush met a full disk, waits on for
//! ever; a kernel stuck in writeback does the same to an fdatasync), and a node whose log cannot
//! become durable only holds its groups back. Shared by every engine: each publishes when its
//! running flush began in a [`Busy`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How often the watcher looks.
const STALL_CHECK: Duration = Duration::from_secs(1);

/// When the running flush began (ms since [`clock`]'s origin, plus one); 0 when idle.
pub(crate) type Busy = Arc<AtomicU64>;

/// A process-local monotonic clock in ms.
pub(crate) fn clock() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    u64::try_from(ORIGIN.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Marks a flush running in `busy` until dropped.
pub(crate) struct Running<'a>(&'a AtomicU64);

impl<'a> Running<'a> {
    pub(crate) fn start(busy: &'a AtomicU64) -> Self {
        busy.store(clock() + 1, Ordering::SeqCst);
        Self(busy)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

/// How long the running flush has been watched while this process ran. A process frozen as a
/// whole (SIGSTOP, a VM stall) stalls its watcher too: the time between two checks counts at
/// most twice `STALL_CHECK`, so waking from a long pause with a flush in flight is no stall.
#[derive(Default)]
pub(crate) struct StallWatch {
    flush: u64,
    watched_ms: u64,
}

impl StallWatch {
    /// `busy`: the flusher's `busy_since` now; `step_ms`: time since the previous check.
    pub(crate) fn observe(&mut self, busy: u64, step_ms: u64) -> u64 {
        if busy == 0 || busy != self.flush {
            *self = Self {
                flush: busy,
                watched_ms: 0,
            };
            return 0;
        }
        let cap = 2 * u64::try_from(STALL_CHECK.as_millis()).unwrap_or(u64::MAX);
        self.watched_ms += step_ms.min(cap);
        self.watched_ms
    }
}

/// Ends the process (status [`crate::EXIT_STORAGE_FAILURE`]) once a flush has been running
/// longer than `limit`, so that its supervisor restarts it. The watching thread ends with the
/// engine (the last strong handle of `busy`).
pub(crate) fn exit_on_stall(busy: &Busy, limit: Duration) -> std::io::Result<()> {
    let busy = Arc::downgrade(busy);
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    std::thread::Builder::new()
        .name("raft-stall-watch".into())
        .spawn(move || {
            let mut watch = StallWatch::default();
            let mut last = clock();
            loop {
                std::thread::sleep(STALL_CHECK);
                let Some(busy) = busy.upgrade() else { return };
                let now = clock();
                let stalled = watch.observe(busy.load(Ordering::SeqCst), now - last) > limit_ms;
                last = now;
                if stalled {
                    tracing::error!(
                        limit_s = limit.as_secs(),
                        "disk stall: a flush of the Raft store has not returned in time; \
                         exiting so that the supervisor restarts this conductor"
                    );
                    std::process::exit(crate::EXIT_STORAGE_FAILURE);
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_counts_only_time_the_process_ran_with_the_same_flush_in_flight() {
        let mut w = StallWatch::default();
        assert_eq!(w.observe(0, 1000), 0, "idle");
        assert_eq!(w.observe(7, 1000), 0, "a flush is first seen");
        assert_eq!(w.observe(7, 1000), 1000);
        assert_eq!(w.observe(7, 1100), 2100);
        // Woken from a 60-s pause with the flush still in flight: two checks' worth at most.
        assert_eq!(w.observe(7, 60_000), 4100);
        assert_eq!(w.observe(9, 1000), 0, "the next flush starts from zero");
        assert_eq!(w.observe(0, 1000), 0, "idle again");
        let mut w = StallWatch::default();
        w.observe(3, 0);
        let watched = (0..25).map(|_| w.observe(3, 1000)).last();
        assert_eq!(watched, Some(25_000), "a real stall adds up");
    }
}
