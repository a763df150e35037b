use crate::shard::persist;
use crate::shard::ShardState;
use magnum_proto::fixtures::certs;
use magnum_proto::*;

const SHARDS: u32 = 1;

fn project() -> ProjectId {
    ProjectId::from("p1")
}

fn template() -> ClusterTemplate {
    magnum_proto::fixtures::template(&project())
}

fn cluster(t: &ClusterTemplate) -> (Cluster, Vec<NodeGroup>, OperationRequest) {
    magnum_proto::fixtures::cluster_rows(t, "k8s", 1, 2)
}

fn req(command: ShardCommand) -> ShardRequest {
    ShardRequest {
        request_id: Some(RequestId::new_v4()),
        command,
    }
}

fn advance(
    s: &mut ShardState,
    i: u64,
    epoch: u64,
    c: ClusterId,
    op: OpId,
    event: OpEvent,
) -> ShardResponse {
    s.apply(
        i,
        &ShardRequest {
            request_id: None,
            command: ShardCommand::Advance {
                epoch,
                cluster: c,
                op,
                event,
                at: Timestamp(2),
            },
        },
    )
}

fn setup() -> (ShardState, ClusterTemplate, ClusterId, OpId) {
    let mut s = ShardState::new(ShardId(0), SHARDS);
    let t = template();
    s.apply(
        1,
        &req(ShardCommand::CreateTemplate {
            template: t.clone(),
            max_per_project: None,
        }),
    )
    .unwrap();
    let (c, ngs, op) = cluster(&t);
    let (cid, oid) = (c.uuid, op.id);
    s.apply(
        2,
        &req(ShardCommand::CreateCluster {
            cluster: c,
            nodegroups: ngs,
            operation: op,
        }),
    )
    .unwrap();
    s.apply(
        3,
        &req(ShardCommand::TakeOwnership {
            node: NodeId(1),
            epoch: 1,
        }),
    )
    .unwrap();
    (s, t, cid, oid)
}

#[test]
fn create_runs_through_its_steps() {
    let (mut s, _, c, op) = setup();
    advance(
        &mut s,
        4,
        1,
        c,
        op,
        OpEvent::CertsGenerated { certs: certs() },
    )
    .unwrap();
    assert!(matches!(
        s.operation(c).unwrap().step,
        Step::CreateStack { attempt: 0, .. }
    ));
    advance(&mut s, 5, 1, c, op, OpEvent::StackCreateIntent).unwrap();
    advance(
        &mut s,
        6,
        1,
        c,
        op,
        OpEvent::StackCreated {
            stack_id: "sid".into(),
        },
    )
    .unwrap();
    let outputs = StackOutputs {
        api_address: Some("https://10.0.0.1:6443".into()),
        master_addresses: vec!["172.24.4.2".into()],
        node_addresses: vec!["172.24.4.3".into(), "172.24.4.4".into()],
        coe_version: Some("v1.30.0".into()),
    };
    advance(
        &mut s,
        7,
        1,
        c,
        op,
        OpEvent::CreateFinished {
            status: ClusterStatus::CREATE_COMPLETE,
            reason: None,
            outputs,
        },
    )
    .unwrap();
    let v = s.view(c).unwrap();
    assert_eq!(v.cluster.status, ClusterStatus::CREATE_COMPLETE);
    assert_eq!(v.cluster.stack_id.as_deref(), Some("sid"));
    assert_eq!(v.node_addresses().len(), 2);
    assert_eq!(v.master_addresses(), vec!["172.24.4.2".to_string()]);
    assert!(s.operation(c).is_none());
}

#[test]
fn stale_epoch_and_stale_operation_are_rejected() {
    let (mut s, _, c, op) = setup();
    assert_eq!(
        advance(
            &mut s,
            4,
            0,
            c,
            op,
            OpEvent::CertsGenerated { certs: certs() }
        ),
        Err(CommandError::StaleEpoch { current: 1 })
    );
    s.apply(
        5,
        &req(ShardCommand::TakeOwnership {
            node: NodeId(2),
            epoch: 2,
        }),
    )
    .unwrap();
    // The old owner's epoch no longer writes.
    assert!(matches!(
        advance(&mut s, 6, 1, c, op, OpEvent::StackCreateIntent),
        Err(CommandError::StaleEpoch { .. })
    ));
    // A lower epoch can't take ownership back.
    assert!(s
        .apply(
            7,
            &req(ShardCommand::TakeOwnership {
                node: NodeId(1),
                epoch: 2
            })
        )
        .is_err());
    assert_eq!(
        advance(&mut s, 8, 2, c, OpId::new_v4(), OpEvent::StackCreateIntent),
        Err(CommandError::StaleOperation)
    );
}

#[test]
fn out_of_step_events_are_ignored() {
    let (mut s, _, c, op) = setup();
    advance(
        &mut s,
        4,
        1,
        c,
        op,
        OpEvent::StackCreated {
            stack_id: "x".into(),
        },
    )
    .unwrap();
    assert_eq!(s.operation(c).unwrap().step, Step::GenerateCerts);
    assert_eq!(s.view(c).unwrap().cluster.stack_id, None);
}

#[test]
fn delete_supersedes_create_and_removes_everything() {
    let (mut s, t, c, _) = setup();
    let del = OpId::new_v4();
    let cmd = ShardCommand::DeleteCluster {
        id: c,
        op: del,
        at: Timestamp(3),
        deadline: Timestamp(9),
    };
    s.apply(4, &req(cmd)).unwrap();
    assert_eq!(
        s.view(c).unwrap().cluster.status,
        ClusterStatus::DELETE_IN_PROGRESS
    );
    assert_eq!(s.operation(c).unwrap().kind, OpKind::Delete);
    // The template is in use until the cluster is gone.
    let del_t = ShardCommand::DeleteTemplate {
        id: t.uuid.unwrap(),
    };
    assert!(matches!(
        s.apply(5, &req(del_t.clone())),
        Err(CommandError::BadRequest(_))
    ));
    advance(
        &mut s,
        6,
        1,
        c,
        del,
        OpEvent::StackDeleteRequested {
            stack_id: "sid".into(),
        },
    )
    .unwrap();
    advance(&mut s, 7, 1, c, del, OpEvent::DeleteFinished).unwrap();
    assert_eq!(s.operation(c).unwrap().step, Step::DeleteTrustee);
    advance(&mut s, 8, 1, c, del, OpEvent::TrusteeDeleted).unwrap();
    assert!(s.view(c).is_none());
    s.apply(9, &req(del_t)).unwrap();
}

#[test]
fn duplicate_request_id_applies_once() {
    let mut s = ShardState::new(ShardId(0), SHARDS);
    let r = req(ShardCommand::CreateTemplate {
        template: template(),
        max_per_project: None,
    });
    let first = s.apply(1, &r);
    assert!(first.is_ok());
    // Without dedup this would be a 409 for the duplicate uuid.
    assert_eq!(s.apply(2, &r), first);
}

#[test]
fn templates_per_project_are_bounded_in_apply() {
    let mut s = ShardState::new(ShardId(0), SHARDS);
    let create = |project: &str, limit: Option<u32>| {
        let mut t = magnum_proto::fixtures::template(&ProjectId::from(project));
        t.uuid = Some(TemplateId::new_v4());
        req(ShardCommand::CreateTemplate {
            template: t,
            max_per_project: limit,
        })
    };
    s.apply(1, &create("p1", Some(2))).unwrap();
    s.apply(2, &create("p1", Some(2))).unwrap();
    let refused = s.apply(3, &create("p1", Some(2)));
    assert!(
        matches!(&refused, Err(CommandError::Forbidden(m)) if m.contains("templates per project, 2")),
        "{refused:?}"
    );
    // Per project; and an entry without the bound (written before it existed) has none.
    s.apply(4, &create("p2", Some(2))).unwrap();
    s.apply(5, &create("p1", None)).unwrap();
    let owned = |p: &str| {
        s.rows
            .templates()
            .values()
            .filter(|t| t.project_id == Some(ProjectId::from(p)))
            .count()
    };
    assert_eq!((owned("p1"), owned("p2")), (3, 1));
}

#[test]
fn quota_is_enforced_in_apply() {
    let mut s = ShardState::new(ShardId(0), SHARDS);
    let t = template();
    s.apply(
        1,
        &req(ShardCommand::CreateTemplate {
            template: t.clone(),
            max_per_project: None,
        }),
    )
    .unwrap();
    for i in 0..DEFAULT_CLUSTER_QUOTA {
        let (c, ngs, op) = cluster(&t);
        s.apply(
            10 + u64::from(i),
            &req(ShardCommand::CreateCluster {
                cluster: c,
                nodegroups: ngs,
                operation: op,
            }),
        )
        .unwrap();
    }
    let (c, ngs, op) = cluster(&t);
    let r = s.apply(
        100,
        &req(ShardCommand::CreateCluster {
            cluster: c,
            nodegroups: ngs,
            operation: op,
        }),
    );
    assert!(
        matches!(r, Err(CommandError::Forbidden(m)) if m.contains("maximum clusters per project, 20"))
    );
}

#[test]
fn in_use_template_updates_follow_the_rules() {
    let (mut s, t, _, _) = setup();
    let current = |s: &ShardState| match s.ask(&ShardQuery::Templates {
        project: None,
        include_public: true,
    }) {
        QueryResult::Templates(v) => v.into_iter().next().unwrap(),
        _ => unreachable!(),
    };
    let mut rename = current(&s);
    rename.name = Some("renamed".into());
    s.apply(
        4,
        &req(ShardCommand::UpdateTemplate {
            template: rename,
            at: Timestamp(5),
        }),
    )
    .unwrap();
    let mut image = current(&s);
    image.image_id = Some("other".into());
    let r = s.apply(
        5,
        &req(ShardCommand::UpdateTemplate {
            template: image,
            at: Timestamp(6),
        }),
    );
    assert!(matches!(r, Err(CommandError::BadRequest(_))));
    // A stale version is a conflict, not a silent overwrite.
    let mut stale = t.clone();
    stale.name = Some("stale".into());
    let r = s.apply(
        6,
        &req(ShardCommand::UpdateTemplate {
            template: stale,
            at: Timestamp(7),
        }),
    );
    assert!(matches!(r, Err(CommandError::Conflict(_))));
}

#[test]
fn persisted_rows_reload_to_the_same_state() {
    let (mut s, _, c, op) = setup();
    advance(
        &mut s,
        4,
        1,
        c,
        op,
        OpEvent::CertsGenerated { certs: certs() },
    )
    .unwrap();
    s.apply(5, &req(canary("probe/a", "1"))).unwrap();
    let loaded = persist::reload(&mut s);
    assert_eq!(loaded, s);
}

fn canary(key: &str, value: &str) -> ShardCommand {
    ShardCommand::Canary {
        key: key.into(),
        value: value.into(),
    }
}

#[test]
fn canaries_overwrite_are_bounded_and_listed_by_prefix() {
    let mut s = ShardState::new(ShardId(0), SHARDS);
    for (i, (k, v)) in [("a/1", "x"), ("a/2", "y"), ("b/1", "z"), ("a/1", "w")]
        .into_iter()
        .enumerate()
    {
        s.apply(i as u64 + 1, &req(canary(k, v))).unwrap();
    }
    let QueryResult::Canaries(rows) = s.ask(&ShardQuery::Canaries {
        prefix: "a/".into(),
    }) else {
        panic!("wrong result")
    };
    let rows: Vec<_> = rows.into_iter().collect();
    assert_eq!(
        rows,
        vec![("a/1".into(), "w".into()), ("a/2".into(), "y".into())]
    );
    let long = "k".repeat(CANARY_MAX_KEY + 1);
    for bad in [canary("", "v"), canary(&long, "v")] {
        let r = s.apply(9, &req(bad));
        assert!(matches!(r, Err(CommandError::BadRequest(_))), "{r:?}");
    }
    let big = "v".repeat(CANARY_MAX_VALUE + 1);
    assert!(s.apply(10, &req(canary("k", &big))).is_err());
}

fn quota(limit: u32) -> Quota {
    Quota {
        id: 0,
        project_id: project(),
        resource: "Cluster".into(),
        hard_limit: limit,
        created_at: Timestamp(1),
        updated_at: None,
    }
}

#[test]
fn quotas_are_unique_per_resource_and_limit_cluster_creates() {
    let mut s = ShardState::new(ShardId(0), SHARDS);
    let t = template();
    s.apply(
        1,
        &req(ShardCommand::CreateTemplate {
            template: t.clone(),
            max_per_project: None,
        }),
    )
    .unwrap();
    let Ok(CommandOk::Quota(q)) = s.apply(7, &req(ShardCommand::CreateQuota { quota: quota(1) }))
    else {
        panic!("quota not created")
    };
    assert_eq!(q.id, 7 * u64::from(SHARDS) * 16);
    let dup = s.apply(8, &req(ShardCommand::CreateQuota { quota: quota(5) }));
    assert!(matches!(dup, Err(CommandError::Conflict(_))), "{dup:?}");
    let (c, ngs, op) = cluster(&t);
    let create = |c: Cluster| ShardCommand::CreateCluster {
        cluster: c,
        nodegroups: ngs.clone(),
        operation: op.clone(),
    };
    s.apply(9, &req(create(c.clone()))).unwrap();
    let (mut c2, _, _) = cluster(&t);
    c2.name = "second".into();
    let over = s.apply(10, &req(create(c2.clone())));
    assert!(matches!(over, Err(CommandError::Forbidden(_))), "{over:?}");
    let up = ShardCommand::UpdateQuota {
        project_id: project(),
        resource: "Cluster".into(),
        hard_limit: 2,
        at: Timestamp(3),
    };
    let Ok(CommandOk::Quota(q)) = s.apply(11, &req(up)) else {
        panic!("not updated")
    };
    assert_eq!(
        (q.hard_limit, q.updated_at, q.id),
        (2, Some(Timestamp(3)), 7 * 16)
    );
    s.apply(12, &req(create(c2))).unwrap();
    let QueryResult::Stats { clusters, nodes } = s.ask(&ShardQuery::Stats {
        project: Some(project()),
    }) else {
        panic!()
    };
    // 1 master + 2 workers each.
    assert_eq!((clusters, nodes), (2, 6));
    let del = ShardCommand::DeleteQuota {
        project_id: project(),
        resource: "Cluster".into(),
    };
    s.apply(13, &req(del.clone())).unwrap();
    assert!(matches!(
        s.apply(14, &req(del)),
        Err(CommandError::NotFound(_))
    ));
    let QueryResult::Quotas(qs) = s.ask(&ShardQuery::Quotas { project: None }) else {
        panic!()
    };
    assert!(qs.is_empty());
}

/// `ClustersPage` (and `ClusterKeysPage` then `ClustersById`) return exactly what sorting
/// every cluster and cutting after the marker would, in both directions, for every marker and
/// several limits, with equal `created_at`s (ordered by uuid) and another project's clusters
/// in the shard.
#[test]
fn clusters_page_is_the_full_sort_cut_after_the_marker() {
    let mut s = ShardState::new(ShardId(0), SHARDS);
    let t = template();
    s.apply(
        1,
        &req(ShardCommand::CreateTemplate {
            template: t.clone(),
            max_per_project: None,
        }),
    )
    .unwrap();
    let mut other = template();
    other.uuid = Some(TemplateId::new_v4());
    other.project_id = Some(ProjectId::from("p2"));
    s.apply(
        2,
        &req(ShardCommand::CreateTemplate {
            template: other.clone(),
            max_per_project: None,
        }),
    )
    .unwrap();
    for i in 0..13u64 {
        let tpl = if i % 4 == 3 { &other } else { &t };
        let (mut c, ngs, op) = magnum_proto::fixtures::cluster_rows(tpl, &format!("c{i}"), 1, 1);
        c.created_at = Timestamp(1000 + (i as i64 / 3)); // three share each second
        s.apply(
            10 + i,
            &req(ShardCommand::CreateCluster {
                cluster: c,
                nodegroups: ngs,
                operation: op,
            }),
        )
        .unwrap();
    }
    let ids = |r: QueryResult| match r {
        QueryResult::Clusters(v) => v.into_iter().map(|v| v.cluster.uuid).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    for project in [None, Some(project())] {
        for (desc, after, rest) in super::rows_tests::list_cuts(s.rows(), project.as_ref()) {
            for limit in [0u32, 1, 2, 5, 100] {
                let got = ids(s.ask(&ShardQuery::ClustersPage {
                    project: project.clone(),
                    after,
                    desc,
                    limit,
                }));
                let want: Vec<_> = rest.iter().take(limit as usize).map(|k| k.1).collect();
                assert_eq!(
                    got, want,
                    "project {project:?} desc {desc} after {after:?} limit {limit}"
                );
                // The keys-first pair answers the same page.
                let keys_page = |views| ShardQuery::ClusterKeysPage {
                    project: project.clone(),
                    after,
                    desc,
                    limit,
                    views,
                };
                let QueryResult::ClusterKeys(keys) = s.ask(&keys_page(0)) else {
                    panic!()
                };
                let key_ids: Vec<_> = keys.iter().map(|(_, id)| *id).collect();
                assert_eq!(key_ids, want, "keys: desc {desc} after {after:?} {limit}");
                assert!(keys.iter().all(|k| rest.contains(k)));
                // With the views of the first two: the same keys, and those views.
                let QueryResult::ClusterKeysAndViews { keys: k2, views } = s.ask(&keys_page(2))
                else {
                    panic!()
                };
                assert_eq!(k2, keys);
                let view_ids: Vec<_> = views.iter().map(|v| v.cluster.uuid).collect();
                assert_eq!(view_ids, want.iter().take(2).copied().collect::<Vec<_>>());
                let mut asked = key_ids;
                asked.insert(0, ClusterId::new_v4()); // not in this shard: skipped
                let by_id = ids(s.ask(&ShardQuery::ClustersById { ids: asked }));
                assert_eq!(by_id, want);
            }
        }
    }
}
