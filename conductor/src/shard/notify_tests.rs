use crate::shard::persist;
use crate::shard::ShardState;
use magnum_proto::*;

fn req(command: ShardCommand) -> ShardRequest {
    ShardRequest {
        request_id: Some(RequestId::new_v4()),
        command,
    }
}

fn adv(s: &mut ShardState, i: u64, c: ClusterId, op: OpId, event: OpEvent) {
    let r = ShardRequest {
        request_id: None,
        command: ShardCommand::Advance {
            epoch: 1,
            cluster: c,
            op,
            event,
            at: Timestamp(9),
        },
    };
    s.apply(i, &r).unwrap();
}

fn kinds(s: &ShardState) -> Vec<(String, String)> {
    s.outbox()
        .map(|n| {
            (
                n.event_type.clone(),
                n.payload["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn transitions_queue_cadf_notifications_in_the_same_command() {
    let p = ProjectId::from("p1");
    let t = magnum_proto::fixtures::template(&p);
    let (c, ngs, op) = magnum_proto::fixtures::cluster_rows(&t, "k8s", 1, 2);
    let (cid, oid) = (c.uuid, op.id);
    let mut s = ShardState::new(ShardId(0), 1);
    s.apply(
        1,
        &req(ShardCommand::CreateTemplate {
            template: t,
            max_per_project: None,
        }),
    )
    .unwrap();
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
    assert_eq!(
        kinds(&s),
        vec![("magnum.cluster.create".into(), "pending".into())]
    );
    let n = s.outbox().next().unwrap().clone();
    assert_eq!(n.id, "magnum-s0-00000000000000000002-0");
    assert_eq!(n.priority, "INFO");
    let p = &n.payload;
    assert_eq!(
        p["typeURI"],
        "http://schemas.dmtf.org/cloud/audit/1.0/event"
    );
    assert_eq!(p["eventType"], "activity");
    assert_eq!(p["action"], "create");
    assert_eq!(p["target"]["id"], cid.to_string());
    assert_eq!(p["target"]["typeURI"], "service/magnum/cluster");
    assert_eq!(p["observer"]["typeURI"], "service/magnum/cluster");
    assert_eq!(p["initiator"]["typeURI"], "service/security/account/user");
    let data = &p["target"]["attachments"][0]["content"];
    assert_eq!(data["status"], "CREATE_IN_PROGRESS");
    assert_eq!(data["node_count"], 2);
    assert!(data
        .as_object()
        .unwrap()
        .contains_key("docker_volume_size:"));

    adv(
        &mut s,
        4,
        cid,
        oid,
        OpEvent::CertsGenerated {
            certs: ClusterCerts {
                ca_cert: "c".into(),
                ca_key: "k".into(),
                client_cert: "cc".into(),
                client_key: "ck".into(),
                etcd_ca_cert: None,
                etcd_ca_key: None,
                front_proxy_ca_cert: None,
                front_proxy_ca_key: None,
                service_account_key: None,
                service_account_private_key: None,
            },
        },
    );
    adv(&mut s, 5, cid, oid, OpEvent::StackCreateIntent);
    adv(
        &mut s,
        6,
        cid,
        oid,
        OpEvent::StackCreated {
            stack_id: "s".into(),
        },
    );
    assert_eq!(s.outbox().count(), 1, "intermediate steps notify nothing");
    adv(
        &mut s,
        7,
        cid,
        oid,
        OpEvent::CreateFinished {
            status: ClusterStatus::CREATE_FAILED,
            reason: Some("boom".into()),
            outputs: StackOutputs::default(),
        },
    );
    let last = s.outbox().last().unwrap().clone();
    assert_eq!(last.priority, "ERROR");
    assert_eq!(last.payload["outcome"], "failure");
    assert_eq!(
        last.payload["target"]["attachments"][0]["content"]["status_reason"],
        "boom"
    );

    let del = OpId::new_v4();
    s.apply(
        8,
        &req(ShardCommand::DeleteCluster {
            id: cid,
            op: del,
            at: Timestamp(10),
            deadline: Timestamp(1000),
        }),
    )
    .unwrap();
    adv(&mut s, 9, cid, del, OpEvent::StackDeleteIntent);
    adv(&mut s, 10, cid, del, OpEvent::DeleteFinished);
    adv(&mut s, 11, cid, del, OpEvent::TrusteeDeleted);
    assert_eq!(
        kinds(&s),
        vec![
            ("magnum.cluster.create".into(), "pending".into()),
            ("magnum.cluster.create".into(), "failure".into()),
            ("magnum.cluster.delete".into(), "pending".into()),
            ("magnum.cluster.delete".into(), "success".into()),
        ]
    );

    // The outbox is persisted like any row, and delivery (current epoch only) empties it.
    let loaded = persist::reload(&mut s);
    assert_eq!(kinds(&loaded), kinds(&s));
    let ids: Vec<String> = s.outbox().map(|n| n.id.clone()).collect();
    let stale = ShardCommand::NotificationsDelivered {
        epoch: 0,
        ids: ids.clone(),
    };
    assert!(s.apply(11, &req(stale)).is_err());
    let ok = ShardCommand::NotificationsDelivered { epoch: 1, ids };
    s.apply(12, &req(ok)).unwrap();
    assert_eq!(s.outbox().count(), 0);
}
