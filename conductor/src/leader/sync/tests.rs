//! The status sync's mapping, and its commands in the shard state machine.
use super::*;
use crate::shard::ng_tests::{EPOCH, T};
use magnum_drivers::openstack::status_of;
use magnum_proto::fixtures;
use ClusterStatus::*;

fn state(status: &str, reason: Option<&str>) -> StackState {
    StackState {
        status: status_of(status).unwrap(),
        reason: reason.map(str::to_string),
        outputs: None,
        parameters: Default::default(),
        updated: None,
    }
}

/// A status the sync saw on its previous look.
fn seen(status: &str) -> Option<HeatStatus> {
    Some(status_of(status).unwrap())
}

fn cur(status: ClusterStatus) -> Current<'static> {
    Current {
        status,
        reason: None,
    }
}

#[test]
fn vanished_stack_fails_the_row_once() {
    let d = decide(cur(CREATE_COMPLETE), "s1", None, None, false, false).unwrap();
    assert_eq!(d.status, CREATE_FAILED);
    assert_eq!(
        d.reason.as_deref(),
        Some("Stack with id s1 not found in Heat.")
    );
    let written = Current {
        status: d.status,
        reason: d.reason.as_deref(),
    };
    assert_eq!(
        decide(written, "s1", None, None, false, false),
        None,
        "written once"
    );
    let gone = state("DELETE_COMPLETE", None);
    let d = decide(
        cur(UPDATE_IN_PROGRESS),
        "s1",
        Some(&gone),
        None,
        false,
        false,
    )
    .unwrap();
    assert_eq!(d.status, UPDATE_FAILED);
    let deleting = state("DELETE_IN_PROGRESS", None);
    let last = seen("UPDATE_COMPLETE");
    assert_eq!(
        decide(
            cur(UPDATE_COMPLETE),
            "s1",
            Some(&deleting),
            last,
            false,
            false
        ),
        None
    );
}

/// A row left in progress with no operation (its update superseded by a resize of another
/// nodegroup) is settled by its settled stack at the first look; a finished row is not.
#[test]
fn a_row_left_in_progress_takes_its_settled_stack_at_the_first_look() {
    let done = state("UPDATE_COMPLETE", None);
    let d = decide_nodegroup(
        cur(UPDATE_IN_PROGRESS),
        "n1",
        Some(&done),
        None,
        false,
        false,
    )
    .unwrap();
    assert_eq!(d.status, UPDATE_COMPLETE);
    assert!(d.with_outputs);
    let failed = state("UPDATE_FAILED", Some("boom"));
    let d = decide(
        cur(UPDATE_IN_PROGRESS),
        "s1",
        Some(&failed),
        None,
        false,
        false,
    )
    .unwrap();
    assert_eq!(
        (d.status, d.reason.as_deref()),
        (UPDATE_FAILED, Some("boom"))
    );
    // Still moving: nothing to copy yet.
    let moving = state("UPDATE_IN_PROGRESS", None);
    assert_eq!(
        decide(
            cur(UPDATE_IN_PROGRESS),
            "s1",
            Some(&moving),
            None,
            false,
            false
        ),
        None
    );
    // A conductor's verdict on a finished row stays at the first look.
    assert_eq!(
        decide(cur(CREATE_FAILED), "s1", Some(&done), None, false, false),
        None
    );
}

#[test]
fn changed_stack_is_copied() {
    let c = cur(CREATE_COMPLETE);
    let failed = state("UPDATE_FAILED", Some("boom"));
    assert_eq!(
        decide(c, "s", Some(&failed), None, false, false),
        None,
        "first look only records"
    );
    assert_eq!(
        decide(c, "s", Some(&failed), seen("UPDATE_FAILED"), false, false),
        None,
        "unchanged stack: the row's own verdict stays"
    );
    let d = decide(c, "s", Some(&failed), seen("CREATE_COMPLETE"), false, false).unwrap();
    assert_eq!(d.status, UPDATE_FAILED);
    assert_eq!(d.reason.as_deref(), Some("boom"));
    assert!(!d.with_outputs);
    let ok = state("UPDATE_COMPLETE", Some("ok"));
    let last = seen("UPDATE_IN_PROGRESS");
    let d = decide(cur(UPDATE_IN_PROGRESS), "s", Some(&ok), last, false, false).unwrap();
    assert_eq!(d.status, UPDATE_COMPLETE);
    assert_eq!(d.reason, None);
    assert!(d.with_outputs);
    let same = state("CREATE_COMPLETE", None);
    assert_eq!(
        decide(c, "s", Some(&same), seen("CHECK_COMPLETE"), true, false),
        None
    );
}

/// A first look (a new leader) copies a settled change made in Heat after the row was last
/// written, never one still moving (a conductor's deadline verdict may have left it so).
#[test]
fn a_first_look_copies_a_settled_change_made_after_the_row() {
    let c = cur(CREATE_COMPLETE);
    let failed = state("UPDATE_FAILED", Some("boom"));
    let d = decide(c, "s", Some(&failed), None, false, true).unwrap();
    assert_eq!(
        (d.status, d.reason.as_deref()),
        (UPDATE_FAILED, Some("boom"))
    );
    let moving = state("UPDATE_IN_PROGRESS", None);
    assert_eq!(decide(c, "s", Some(&moving), None, false, true), None);
    // With a previous look, that look decides, not the update time.
    assert_eq!(
        decide(c, "s", Some(&failed), seen("UPDATE_FAILED"), false, true),
        None
    );
}

#[test]
fn heat_update_times_are_compared_with_the_row_less_the_skew() {
    let since = Timestamp(1_776_000_000_000_000); // 2026-04-12T13:20:00Z
    assert_eq!(updated_after(None, since), Some(false), "never updated");
    assert_eq!(
        updated_after(Some("2026-04-12T13:30:00Z"), since),
        Some(true)
    );
    assert_eq!(
        updated_after(Some("2026-04-12T13:30:00"), since),
        Some(true),
        "no zone: UTC"
    );
    assert_eq!(
        updated_after(Some("2026-04-12T13:30:00.25"), since),
        Some(true)
    );
    assert_eq!(
        updated_after(Some("2026-04-12T13:19:30Z"), since),
        Some(true),
        "within the skew"
    );
    assert_eq!(
        updated_after(Some("2026-04-12T13:10:00Z"), since),
        Some(false)
    );
    assert_eq!(updated_after(Some("yesterday"), since), None);
}

/// Which stacks a round looks at: everything moving or lately written each round, the rest
/// once per idle period.
#[test]
fn idle_stacks_are_looked_at_once_per_period() {
    let idle = Duration::from_secs(900);
    let (now, wall) = (Instant::now(), Timestamp::now());
    let handle = StackHandle {
        name: "n".into(),
        id: "s".into(),
    };
    let st = |status, since: Timestamp| StackToSync {
        ng: None,
        handle: handle.clone(),
        current: cur(status),
        since,
    };
    let old = wall.plus_secs(-3600);
    let seen_at = |status: &str, next: Instant| Seen {
        status: Some(status_of(status).unwrap()),
        updated: None,
        next,
    };
    let later = now + Duration::from_secs(60);
    let settled = seen_at("CREATE_COMPLETE", later);
    assert!(
        due(&st(CREATE_COMPLETE, old), None, now, wall, idle),
        "first look"
    );
    assert!(
        !due(&st(CREATE_COMPLETE, old), Some(&settled), now, wall, idle),
        "idle, not yet"
    );
    assert!(
        due(&st(CREATE_COMPLETE, old), Some(&settled), later, wall, idle),
        "idle, due"
    );
    assert!(
        due(
            &st(CREATE_COMPLETE, wall.plus_secs(-60)),
            Some(&settled),
            now,
            wall,
            idle
        ),
        "lately written"
    );
    assert!(
        due(
            &st(UPDATE_IN_PROGRESS, old),
            Some(&settled),
            now,
            wall,
            idle
        ),
        "row in progress"
    );
    let moving = seen_at("UPDATE_IN_PROGRESS", later);
    assert!(
        due(&st(CREATE_COMPLETE, old), Some(&moving), now, wall, idle),
        "stack moving"
    );
    let gone = Seen {
        status: None,
        updated: None,
        next: later,
    };
    assert!(
        !due(&st(CREATE_FAILED, old), Some(&gone), now, wall, idle),
        "gone: idle"
    );
    assert!(
        due(
            &st(CREATE_COMPLETE, old),
            Some(&settled),
            now,
            wall,
            Duration::ZERO
        ),
        "zero: every round"
    );
    assert!((0.0..1.0).contains(&phase("s")));
}

#[test]
fn stalled_in_progress_times_out() {
    let s = state("UPDATE_IN_PROGRESS", None);
    let last = seen("UPDATE_IN_PROGRESS");
    let c = cur(UPDATE_IN_PROGRESS);
    assert_eq!(decide(c, "s", Some(&s), last, false, false), None);
    let d = decide(c, "s", Some(&s), last, true, false).unwrap();
    assert_eq!(d.status, UPDATE_FAILED);
    assert!(d.reason.unwrap().contains("timed out"));
}

#[test]
fn nodegroup_stack_mapping() {
    // Vanished: the same failure as a cluster's, with upstream's reason.
    let d = decide_nodegroup(cur(CREATE_COMPLETE), "n1", None, None, false, false).unwrap();
    assert_eq!(d.status, CREATE_FAILED);
    assert_eq!(
        d.reason.as_deref(),
        Some("Stack with id n1 not found in Heat.")
    );
    // Vanished while deleting: the delete is complete (the row goes).
    let d = decide_nodegroup(cur(DELETE_IN_PROGRESS), "n1", None, None, false, false).unwrap();
    assert_eq!((d.status, d.reason), (DELETE_COMPLETE, None));
    // Changed and stalled, as for the cluster stack.
    let failed = state("UPDATE_FAILED", Some("quota"));
    let last = seen("CREATE_COMPLETE");
    let d = decide_nodegroup(
        cur(CREATE_COMPLETE),
        "n1",
        Some(&failed),
        last,
        false,
        false,
    )
    .unwrap();
    assert_eq!(
        (d.status, d.reason.as_deref()),
        (UPDATE_FAILED, Some("quota"))
    );
    let busy = state("UPDATE_IN_PROGRESS", None);
    let last = seen("UPDATE_IN_PROGRESS");
    let c = cur(UPDATE_IN_PROGRESS);
    assert_eq!(
        decide_nodegroup(c, "n1", Some(&busy), last, false, false),
        None
    );
    let d = decide_nodegroup(c, "n1", Some(&busy), last, true, false).unwrap();
    assert_eq!(d.status, UPDATE_FAILED);
}

#[test]
fn cluster_stack_is_compared_with_the_default_master() {
    let t = fixtures::template(&ProjectId::from("p"));
    let (mut c, mut ngs, _) = fixtures::cluster_rows(&t, "c", 1, 1);
    c.status = UPDATE_FAILED;
    c.status_reason = Some("ng1 failed".into());
    for n in ngs.iter_mut() {
        n.status = Some(CREATE_COMPLETE);
    }
    let mut view = ClusterView {
        cluster: c,
        nodegroups: ngs,
        trustee: None,
        template_labels: None,
    };
    // Only default nodegroups: the cluster's own status.
    assert_eq!(cluster_current(&view).status, UPDATE_FAILED);
    let mut extra = view.nodegroups[1].clone();
    extra.is_default = false;
    extra.name = "ng1".into();
    extra.status = Some(CREATE_FAILED);
    view.nodegroups.push(extra);
    let c = cluster_current(&view);
    assert_eq!((c.status, c.reason), (CREATE_COMPLETE, None));
    // A default worker left in progress (its update superseded by a resize of ng1) is the row
    // the cluster stack settles.
    let worker = view
        .nodegroups
        .iter_mut()
        .find(|n| n.is_default && !n.is_master())
        .unwrap();
    worker.status = Some(UPDATE_IN_PROGRESS);
    assert_eq!(cluster_current(&view).status, UPDATE_IN_PROGRESS);
}

fn sync_ng(x: &mut T, name: &str, status: ClusterStatus, reason: Option<&str>) -> ShardResponse {
    let (cluster, nodegroup) = (x.c, x.ng(name).uuid);
    x.cmd(ShardCommand::SyncNodeGroupStatus {
        epoch: EPOCH,
        cluster,
        nodegroup,
        status,
        reason: reason.map(str::to_string),
        node_addresses: None,
        at: Timestamp(9),
    })
}

#[test]
fn nodegroup_sync_writes_the_row_and_aggregates() {
    let mut x = T::new();
    x.finish_create();
    x.ng_created("ng1", CREATE_COMPLETE, None);
    x.ng_created("ng2", CREATE_COMPLETE, None);
    assert_eq!(x.view().cluster.status, UPDATE_COMPLETE);

    let gone = "Stack with id ng1-stack not found in Heat.";
    sync_ng(&mut x, "ng1", CREATE_FAILED, Some(gone)).unwrap();
    let n = x.ng("ng1");
    assert_eq!(
        (n.status, n.status_reason.as_deref()),
        (Some(CREATE_FAILED), Some(gone))
    );
    assert_eq!(
        x.ng("ng2").status,
        Some(CREATE_COMPLETE),
        "others untouched"
    );
    assert_eq!(x.ng("default-worker").status, Some(CREATE_COMPLETE));
    let c = x.view().cluster;
    assert_eq!(
        (c.status, c.status_reason.as_deref()),
        (UPDATE_FAILED, Some("ng1 failed"))
    );

    // A stalled one: in progress wins the aggregate, then its timeout fails it.
    sync_ng(&mut x, "ng2", UPDATE_IN_PROGRESS, None).unwrap();
    assert_eq!(x.view().cluster.status, UPDATE_IN_PROGRESS);
    sync_ng(&mut x, "ng2", UPDATE_FAILED, Some("timed out")).unwrap();
    let c = x.view().cluster;
    assert_eq!(
        (c.status, c.status_reason.as_deref()),
        (UPDATE_FAILED, Some("ng1 failed, ng2 failed"))
    );

    // Copied back to complete; DELETE_COMPLETE drops the row.
    sync_ng(&mut x, "ng2", UPDATE_COMPLETE, None).unwrap();
    let ng1 = x.ng("ng1").uuid;
    sync_ng(&mut x, "ng1", DELETE_COMPLETE, None).unwrap();
    let v = x.view();
    assert!(v.nodegroups.iter().all(|n| n.uuid != ng1), "row dropped");
    assert_eq!(
        (v.cluster.status, v.cluster.status_reason),
        (UPDATE_COMPLETE, None)
    );
}

#[test]
fn nodegroup_sync_is_fenced() {
    let mut x = T::new();
    // The create operation still owns the cluster.
    let (cluster, master) = (x.c, x.ng("default-master").uuid);
    let cmd = |epoch, nodegroup| ShardCommand::SyncNodeGroupStatus {
        epoch,
        cluster,
        nodegroup,
        status: UPDATE_FAILED,
        reason: None,
        node_addresses: None,
        at: Timestamp(9),
    };
    assert_eq!(x.cmd(cmd(EPOCH, master)), Err(CommandError::StaleOperation));
    x.finish_create();
    x.ng_created("ng1", CREATE_COMPLETE, None);
    let ng1 = x.ng("ng1").uuid;
    assert!(matches!(
        x.cmd(cmd(EPOCH + 1, ng1)),
        Err(CommandError::StaleEpoch { .. })
    ));
    // The default nodegroups follow the cluster stack only.
    assert!(matches!(
        x.cmd(cmd(EPOCH, master)),
        Err(CommandError::NotFound(_))
    ));
    assert_eq!(x.ng("ng1").status, Some(CREATE_COMPLETE));
    assert_eq!(x.ng("default-master").status, Some(CREATE_COMPLETE));
}
