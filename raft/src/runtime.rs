//! The node's own tokio runtime for consensus: openraft's core, replication and state-machine
//! tasks, the Raft listener with its connections, and the RPC client's connections all run here,
//! on threads no application task can occupy. Sharing the application's runtime, a heartbeat
//! waited in a worker's queue behind whatever the application spawned (a thousand operations
//! being driven, JSON rendering, forwarded requests); followers then missed heartbeats and
//! elections churned under a burst of creates (issue 14). The application still talks to its
//! groups from its own runtime: proposals and reads travel over channels, which cross runtimes.
use std::future::Future;
use std::io;
use tokio::runtime::{Handle, Runtime};

/// Worker threads of the Raft runtime when the config does not say: consensus work is small
/// per message (no CPU-heavy step runs here), two threads keep one long apply from delaying a
/// heartbeat.
pub const DEFAULT_RAFT_THREADS: usize = 2;

pub(crate) struct RaftRuntime {
    /// `None` only while dropping.
    rt: Option<Runtime>,
}

impl RaftRuntime {
    pub(crate) fn new(node: u64, threads: usize) -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(format!("raft-{node}"))
            .enable_all()
            .build()?;
        Ok(Self { rt: Some(rt) })
    }

    pub(crate) fn handle(&self) -> &Handle {
        match &self.rt {
            Some(rt) => rt.handle(),
            None => unreachable!("the runtime is taken only in drop"),
        }
    }

    /// Runs `f` as a task of the Raft runtime, so whatever it spawns (openraft spawns its core
    /// and workers from `Raft::new`) lives there too.
    pub(crate) async fn run<F>(&self, f: F) -> io::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(f).await.map_err(io::Error::other)
    }

    /// Starts `f` on the Raft runtime and returns at once.
    pub(crate) fn spawn<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle().spawn(f);
    }

    /// Re-registers a listener with the Raft runtime's IO driver (a socket is polled by the
    /// driver of the runtime that registered it) and spawns `serve` there.
    pub(crate) fn serve<T>(
        &self,
        listener: tokio::net::TcpListener,
        serve: impl FnOnce(tokio::net::TcpListener) -> T,
    ) -> io::Result<T> {
        let std = listener.into_std()?;
        let _in_raft = self.handle().enter();
        Ok(serve(tokio::net::TcpListener::from_std(std)?))
    }
}

impl Drop for RaftRuntime {
    fn drop(&mut self) {
        // The last reference may go from inside the application's runtime, where a blocking
        // shutdown would panic. `RaftNode::shutdown` already stopped and awaited the groups.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn spawned_work_runs_on_raft_threads_while_the_caller_is_busy() {
        let rt = RaftRuntime::new(7, 1).unwrap();
        // What `run` starts, and what that spawns, is on a `raft-7` thread.
        let names = rt
            .run(async {
                let inner = tokio::spawn(async { std::thread::current().name().map(String::from) });
                (
                    std::thread::current().name().map(String::from),
                    inner.await.unwrap(),
                )
            })
            .await
            .unwrap();
        assert_eq!(names, (Some("raft-7".into()), Some("raft-7".into())));
        // A ticker on the Raft runtime keeps ticking while the caller's only worker is blocked.
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t = ticks.clone();
        rt.run(async move {
            tokio::spawn(async move {
                loop {
                    t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            });
        })
        .await
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(ticks.load(std::sync::atomic::Ordering::SeqCst) > 10);
        drop(rt); // from inside a runtime: must not panic
    }
}
