//! Batched stack looks. Every poller of this conductor (the reconcilers' waits, status sync) asks
//! "how is stack X?" here first; the asks made within [`LINGER`] of each other go to Heat as
//! listings filtered by id, [`PAGE`] stacks a call, instead of one GET each. Upstream's rule,
//! every conductor GETs every in-progress stack every 10 s, costs Heat one request per stack and
//! conductor per poll; here 1,000 stacks in progress cost about ten listings a poll.
//!
//! An optimisation, never a verdict: a stack the listing does not show may be deleted or merely
//! hidden from listings (`NotListed`), and a listing that fails or that Heat's policy refuses
//! answers `Unbatched`; either way the caller GETs the stack as it would without the feed. After
//! a refusal the feed stays off for [`REFUSED_BACKOFF`], then tries again (an operator may have
//! changed the policy meanwhile).
use crate::cloud::{CloudError, Glance, Look, StackHandle};
use async_trait::async_trait;
use futures::StreamExt;
use magnum_proto::ProjectId;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// How long asks gather before they are listed: short against any poll interval (2 s for the
/// reconciler, 10 s for sync), long enough that pollers waking on their own timers share a call
/// (at 100 ms, 100 stacks in progress polled every 2 s shared a listing 11 at a time).
pub const LINGER: Duration = Duration::from_millis(250);
/// Stacks asked per listing: Heat's `max_stacks_per_page` default (a Heat configured lower
/// answers in pages, which the client follows).
pub const PAGE: usize = 100;
/// Listings of one gathering in flight at once.
const CONCURRENT_LISTS: usize = 4;
/// Asks one gathering takes at most; later ones wait for the next.
const MAX_ASKS: usize = 40 * PAGE;
/// How long the feed stays off after Heat refused the listing.
pub const REFUSED_BACKOFF: Duration = Duration::from_secs(600);

/// Lists stacks across projects by id.
#[async_trait]
pub trait Lister: Send + Sync + 'static {
    /// The listed stacks among `ids` (at most [`PAGE`]), by id; `project` is the one the URL
    /// names (any, for an admin). `Ok(None)`: the cloud refuses such listings.
    async fn list(
        &self,
        project: &ProjectId,
        ids: &[String],
    ) -> Result<Option<HashMap<String, Glance>>, CloudError>;
}

struct Ask {
    project: ProjectId,
    id: String,
    reply: oneshot::Sender<Look>,
}

/// One conductor's feed: cheap to share, its task stops when the last handle is dropped.
pub struct Feed {
    tx: mpsc::UnboundedSender<Ask>,
    refused_until: Arc<Mutex<Option<Instant>>>,
}

impl Feed {
    /// Starts the gathering task (on the current runtime).
    pub fn spawn(lister: Arc<dyn Lister>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let refused_until = Arc::new(Mutex::new(None));
        tokio::spawn(run(lister, rx, refused_until.clone()));
        Self { tx, refused_until }
    }

    pub async fn look(&self, project: &ProjectId, stack: &StackHandle) -> Look {
        if refused(&self.refused_until) {
            count(&STATS.unbatched);
            return Look::Unbatched;
        }
        let (reply, answer) = oneshot::channel();
        let ask = Ask {
            project: project.clone(),
            id: stack.id.clone(),
            reply,
        };
        if self.tx.send(ask).is_err() {
            return Look::Unbatched;
        }
        answer.await.unwrap_or(Look::Unbatched)
    }
}

fn refused(until: &Mutex<Option<Instant>>) -> bool {
    let mut u = until.lock().unwrap_or_else(|e| e.into_inner());
    match *u {
        Some(t) if Instant::now() < t => true,
        Some(_) => {
            *u = None;
            false
        }
        None => false,
    }
}

async fn run(
    lister: Arc<dyn Lister>,
    mut rx: mpsc::UnboundedReceiver<Ask>,
    refused_until: Arc<Mutex<Option<Instant>>>,
) {
    while let Some(first) = rx.recv().await {
        let mut asks = vec![first];
        let gathered = tokio::time::sleep(LINGER);
        tokio::pin!(gathered);
        while asks.len() < MAX_ASKS {
            tokio::select! {
                _ = &mut gathered => break,
                ask = rx.recv() => match ask {
                    Some(a) => asks.push(a),
                    None => break,
                },
            }
        }
        let looks = serve(&lister, &asks, &refused_until).await;
        for a in asks {
            let look = looks.get(&a.id).cloned().unwrap_or(Look::Unbatched);
            count(match look {
                Look::Listed(_) => &STATS.listed,
                Look::NotListed => &STATS.not_listed,
                Look::Unbatched => &STATS.unbatched,
            });
            let _ = a.reply.send(look);
        }
    }
}

/// Lists the asked stacks, [`PAGE`] a call; what each ask gets, by stack id.
async fn serve(
    lister: &Arc<dyn Lister>,
    asks: &[Ask],
    refused_until: &Mutex<Option<Instant>>,
) -> HashMap<String, Look> {
    let mut ids: Vec<String> = asks.iter().map(|a| a.id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let project = asks[0].project.clone();
    let chunks: Vec<Vec<String>> = ids.chunks(PAGE).map(<[String]>::to_vec).collect();
    let lists = futures::stream::iter(chunks)
        .map(|chunk| {
            let (lister, project) = (lister.clone(), project.clone());
            async move {
                let listed = lister.list(&project, &chunk).await;
                (chunk, listed)
            }
        })
        .buffer_unordered(CONCURRENT_LISTS)
        .collect::<Vec<_>>()
        .await;
    let mut looks = HashMap::new();
    for (chunk, listed) in lists {
        match listed {
            Ok(Some(mut found)) => {
                count(&STATS.lists_ok);
                for id in chunk {
                    let look = found.remove(&id).map_or(Look::NotListed, Look::Listed);
                    looks.insert(id, look);
                }
            }
            Ok(None) => {
                count(&STATS.lists_refused);
                let mut u = refused_until.lock().unwrap_or_else(|e| e.into_inner());
                if u.is_none() {
                    warn!(
                        retry_in_s = REFUSED_BACKOFF.as_secs(),
                        "Heat refused a listing across projects (policy stacks:global_index): \
                         stacks are polled one GET each"
                    );
                }
                *u = Some(Instant::now() + REFUSED_BACKOFF);
            }
            Err(e) => {
                count(&STATS.lists_failed);
                warn!(error = %e, stacks = chunk.len(), "stack listing failed; GETs instead");
            }
        }
    }
    looks
}

/// This process's counters (every feed of the process together), for `/metrics`.
struct Stats {
    listed: AtomicU64,
    not_listed: AtomicU64,
    unbatched: AtomicU64,
    lists_ok: AtomicU64,
    lists_refused: AtomicU64,
    lists_failed: AtomicU64,
}

static STATS: Stats = Stats {
    listed: AtomicU64::new(0),
    not_listed: AtomicU64::new(0),
    unbatched: AtomicU64::new(0),
    lists_ok: AtomicU64::new(0),
    lists_refused: AtomicU64::new(0),
    lists_failed: AtomicU64::new(0),
};

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Prometheus text of the feed's counters.
pub fn metrics_text() -> String {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    let name = "magnum_heat_stack_looks_total";
    let _ = writeln!(
        out,
        "# HELP {name} Stack status looks by pollers, by what answered them (listed: a shared listing; not_listed and unbatched: a GET of its own followed).\n# TYPE {name} counter"
    );
    for (result, c) in [
        ("listed", &STATS.listed),
        ("not_listed", &STATS.not_listed),
        ("unbatched", &STATS.unbatched),
    ] {
        let _ = writeln!(out, "{name}{{result=\"{result}\"}} {}", get(c));
    }
    let name = "magnum_heat_stack_lists_total";
    let _ = writeln!(
        out,
        "# HELP {name} Heat stack listings (up to {PAGE} stacks each) sent for looks, by outcome.\n# TYPE {name} counter"
    );
    for (outcome, c) in [
        ("ok", &STATS.lists_ok),
        ("refused", &STATS.lists_refused),
        ("failed", &STATS.lists_failed),
    ] {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {}", get(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::heat_status;
    use std::sync::atomic::AtomicUsize;

    /// Lists the ids it knows, counting calls; refuses when told to.
    struct FakeLister {
        known: Vec<String>,
        calls: AtomicUsize,
        refuse: bool,
        fail: bool,
    }

    #[async_trait]
    impl Lister for FakeLister {
        async fn list(
            &self,
            _project: &ProjectId,
            ids: &[String],
        ) -> Result<Option<HashMap<String, Glance>>, CloudError> {
            assert!(ids.len() <= PAGE, "a listing asks at most a page");
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.refuse {
                return Ok(None);
            }
            if self.fail {
                return Err(CloudError::Transient("503".into()));
            }
            let glance = Glance {
                status: heat_status::DELETE_IN_PROGRESS,
                reason: None,
                updated: None,
            };
            Ok(Some(
                ids.iter()
                    .filter(|i| self.known.contains(i))
                    .map(|i| (i.clone(), glance.clone()))
                    .collect(),
            ))
        }
    }

    fn lister(known: usize, refuse: bool, fail: bool) -> Arc<FakeLister> {
        Arc::new(FakeLister {
            known: (0..known).map(|i| format!("s{i}")).collect(),
            calls: AtomicUsize::new(0),
            refuse,
            fail,
        })
    }

    fn handle(i: usize) -> StackHandle {
        StackHandle {
            name: format!("n{i}"),
            id: format!("s{i}"),
        }
    }

    async fn look_all(feed: &Feed, n: usize) -> Vec<Look> {
        let p = ProjectId("p".into());
        let hs: Vec<StackHandle> = (0..n).map(handle).collect();
        futures::future::join_all(hs.iter().map(|h| feed.look(&p, h))).await
    }

    #[tokio::test]
    async fn concurrent_looks_share_listings_of_a_page_each() {
        let l = lister(300, false, false);
        let feed = Feed::spawn(l.clone());
        // 350 asks (50 unknown to the cloud) → 4 listings, not 350 GETs.
        let looks = look_all(&feed, 350).await;
        assert_eq!(l.calls.load(Ordering::SeqCst), 4);
        assert!(looks[..300].iter().all(|l| matches!(l, Look::Listed(_))));
        assert!(looks[300..].iter().all(|l| *l == Look::NotListed));
    }

    #[tokio::test]
    async fn a_refused_listing_turns_the_feed_off_for_a_while() {
        let l = lister(10, true, false);
        let feed = Feed::spawn(l.clone());
        assert!(look_all(&feed, 10)
            .await
            .iter()
            .all(|l| *l == Look::Unbatched));
        assert_eq!(l.calls.load(Ordering::SeqCst), 1);
        // Off: answered at once, Heat not asked again.
        assert!(look_all(&feed, 10)
            .await
            .iter()
            .all(|l| *l == Look::Unbatched));
        assert_eq!(l.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_listing_sends_its_asks_to_get() {
        let l = lister(10, false, true);
        let feed = Feed::spawn(l.clone());
        assert!(look_all(&feed, 10)
            .await
            .iter()
            .all(|l| *l == Look::Unbatched));
        // Not a refusal: the next look lists again.
        look_all(&feed, 1).await;
        assert_eq!(l.calls.load(Ordering::SeqCst), 2);
    }
}
