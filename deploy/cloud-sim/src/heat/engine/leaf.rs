//! Simulated physical resources: per-type latency, injected and intrinsic failures, and the
//! resource records' final states.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::failure::{EResult, EngineError, Failure};
use super::prepare::LeafJob;
use super::Run;
use crate::heat::{resources, Action, HeatState, Status};
use crate::util::lock;
use crate::Sim;

/// Simulated latency of one resource action, in (scaled) seconds.
fn latency(sim: &Sim, impl_type: &str, action: Action, props: &Value) -> f64 {
    let configured = {
        let rt = lock(&sim.runtime);
        rt.latencies
            .get(&(impl_type.to_string(), action.as_str().to_string()))
            .or_else(|| rt.latencies.get(&(impl_type.to_string(), "*".to_string())))
            .copied()
    };
    let base = configured.unwrap_or_else(|| {
        if impl_type == "OS::Heat::TestResource" {
            resources::test_resource_wait(props, action)
                .unwrap_or_else(|| resources::default_latency(impl_type, action))
        } else {
            resources::default_latency(impl_type, action)
        }
    });
    (base * sim.time_scale).max(0.0)
}

async fn sleep_secs(secs: f64) {
    if secs > 0.0 && secs.is_finite() {
        tokio::time::sleep(Duration::from_secs_f64(secs.min(1.0e7))).await;
    }
}

/// Spend the simulated time of `op` on a resource of `impl_type`. Returns the injected fault
/// `(error type, message)` for it, if any (taken when the action starts).
pub(super) async fn simulate(
    sim: &Sim,
    impl_type: &str,
    op: Action,
    props: &Value,
) -> Option<(String, String)> {
    let wait = latency(sim, impl_type, op, props);
    let fault = lock(&sim.faults).take_resource(impl_type, op);
    sleep_secs(wait).await;
    fault
}

/// Create or update a leaf resource: wait, then fail or build its physical state.
pub(super) async fn run_leaf(run: Run, stack_id: Uuid, name: String, job: LeafJob) -> EResult<()> {
    let LeafJob {
        impl_type,
        op,
        props,
        fingerprint,
    } = job;
    let fault = simulate(&run.sim, &impl_type, op, &props).await;
    let failure = fault.or_else(|| resources::intrinsic_failure(&impl_type, &name, &props, op));
    if let Some((err_type, message)) = failure {
        let f = Failure::of_resource(op, &name, err_type, message);
        run.write(|st| fail_resource(st, stack_id, &name, op, &f))?;
        return Err(EngineError::Failed(f));
    }
    run.write(|st| {
        let prev = st
            .stacks
            .get(&stack_id)
            .and_then(|s| s.resources.get(&name))
            .filter(|r| !r.physical_id.is_empty())
            .cloned();
        let built = resources::build(st, stack_id, &name, &impl_type, &props, prev.as_ref());
        finish_resource(st, stack_id, &name, op, &fingerprint, Some(built));
    })
}

/// Mark resource `name` `{op}_COMPLETE` (with its physical state when it is a leaf).
pub(super) fn finish_resource(
    st: &mut HeatState,
    stack_id: Uuid,
    name: &str,
    op: Action,
    fingerprint: &str,
    built: Option<resources::Built>,
) {
    let Some(stack) = st.stacks.get_mut(&stack_id) else {
        return;
    };
    let Some(res) = stack.resources.get_mut(name) else {
        return;
    };
    res.status = Status::Complete;
    res.reason = "state changed".into();
    res.fingerprint = fingerprint.to_string();
    if let Some(b) = built {
        res.physical_id = b.physical_id;
        res.attrs = b.attrs;
    }
    let (t, p) = (res.rtype.clone(), res.physical_id.clone());
    stack.add_event(name, &t, &p, op, Status::Complete, "state changed");
}

/// Mark resource `name` `{op}_FAILED` with the failure's text.
pub(super) fn fail_resource(
    st: &mut HeatState,
    stack_id: Uuid,
    name: &str,
    op: Action,
    f: &Failure,
) {
    let Some(stack) = st.stacks.get_mut(&stack_id) else {
        return;
    };
    let Some(res) = stack.resources.get_mut(name) else {
        return;
    };
    res.action = op;
    res.status = Status::Failed;
    res.reason = f.text();
    let (t, p, r) = (
        res.rtype.clone(),
        res.physical_id.clone(),
        res.reason.clone(),
    );
    stack.add_event(name, &t, &p, op, Status::Failed, &r);
}
