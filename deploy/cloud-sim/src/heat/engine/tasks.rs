//! The resource tasks of one stack running in parallel (creates, updates or deletes).

use tokio::task::JoinSet;
use tracing::Instrument;

use super::failure::{merge, EResult, EngineError, Failure};
use super::BoxFut;
use crate::heat::Action;

/// Named tasks in a `JoinSet`, keeping the first failure (a cancellation wins).
pub(super) struct Tasks {
    set: JoinSet<(String, EResult<()>)>,
    /// Blamed for a task that panicked or was aborted.
    action: Action,
    failure: Option<EngineError>,
}

impl Tasks {
    pub(super) fn new(action: Action) -> Tasks {
        Tasks {
            set: JoinSet::new(),
            action,
            failure: None,
        }
    }

    /// No task failed so far (so more may start).
    pub(super) fn healthy(&self) -> bool {
        self.failure.is_none()
    }

    /// Run `fut`, the work on resource `name`, in the current span.
    pub(super) fn spawn(&mut self, name: String, fut: BoxFut<EResult<()>>) {
        self.set
            .spawn(async move { (name, fut.await) }.in_current_span());
    }

    /// Wait for the next task to end and keep its failure. `None` when no task is left;
    /// `Some(Some(name))` for a task that returned (successfully unless no longer
    /// [`Tasks::healthy`]), `Some(None)` for one that panicked.
    pub(super) async fn next(&mut self) -> Option<Option<String>> {
        match self.set.join_next().await? {
            Ok((name, result)) => {
                if let Err(e) = result {
                    self.fail(e);
                }
                Some(Some(name))
            }
            Err(e) => {
                let f = Failure::internal(self.action, format!("engine task failed: {e}"));
                self.fail(EngineError::Failed(f));
                Some(None)
            }
        }
    }

    fn fail(&mut self, e: EngineError) {
        self.failure = Some(merge(self.failure.take(), e));
    }

    /// The outcome once every task ended.
    pub(super) fn finish(self) -> EResult<()> {
        match self.failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
