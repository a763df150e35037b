//! A bounded pool for the conductor's CPU-heavy steps (RSA key generation for a create or a CA
//! rotation: hundreds of milliseconds of one core each). At most `limit()` run at once in the
//! whole process, however many operations are active, and each on tokio's blocking pool. A
//! burst of creates therefore waits here, every operation durable in its shard, instead of
//! running a hundred key generations at once and starving Raft of the CPU its heartbeats, votes
//! and log flushes need (a starved leader loses its followers and elections churn).
use std::sync::OnceLock;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("CPU pool closed")]
    Closed,
    #[error("CPU task failed: {0}")]
    Task(String),
}

/// How many CPU-heavy steps may run at once: all cores but one, at least one, so one core is
/// always left to Raft and the listeners.
pub fn limit() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

fn pool() -> &'static Semaphore {
    static POOL: OnceLock<Semaphore> = OnceLock::new();
    POOL.get_or_init(|| Semaphore::new(limit()))
}

/// Runs `f` on the blocking pool once a slot is free.
pub async fn run<T, F>(f: F) -> Result<T, CpuError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let _slot = pool().acquire().await.map_err(|_| CpuError::Closed)?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CpuError::Task(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_runs_more_than_the_limit_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (running, peak) = (running.clone(), peak.clone());
            tasks.push(tokio::spawn(run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            })));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= limit());
        assert!(peak.load(Ordering::SeqCst) >= 1);
    }
}
