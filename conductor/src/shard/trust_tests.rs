//! The trustee's life in the shard state: made after the certificates (the trustor's token
//! dropped with it), its password replaced by a credential rotation, deleted after the stack.
use crate::shard::persist;
use crate::shard::ShardState;
use magnum_proto::fixtures::certs;
use magnum_proto::*;

struct Shard {
    s: ShardState,
    c: ClusterId,
    i: u64,
}

impl Shard {
    fn new(trustor: bool) -> Self {
        let mut x = Shard {
            s: ShardState::new(ShardId(0), 1),
            c: ClusterId::new_v4(),
            i: 0,
        };
        let t = fixtures::template(&ProjectId::from("p1"));
        x.cmd(ShardCommand::CreateTemplate {
            template: t.clone(),
            max_per_project: None,
        })
        .unwrap();
        let (c, nodegroups, mut operation) = fixtures::cluster_rows(&t, "k8s", 1, 2);
        x.c = c.uuid;
        if trustor {
            operation.trustor = Some(Trustor {
                user_id: "u1".into(),
                roles: vec!["member".into()],
                token: "sealed:v1:token".into(),
            });
        }
        x.cmd(ShardCommand::CreateCluster {
            cluster: c,
            nodegroups,
            operation,
        })
        .unwrap();
        x.cmd(ShardCommand::TakeOwnership {
            node: NodeId(1),
            epoch: 1,
        })
        .unwrap();
        x
    }

    fn cmd(&mut self, command: ShardCommand) -> ShardResponse {
        self.i += 1;
        let req = ShardRequest {
            request_id: Some(RequestId::new_v4()),
            command,
        };
        self.s.apply(self.i, &req)
    }

    fn op(&self) -> Operation {
        self.s.operation(self.c).cloned().expect("an operation")
    }

    fn adv(&mut self, event: OpEvent) {
        let (cluster, op) = (self.c, self.op().id);
        self.cmd(ShardCommand::Advance {
            epoch: 1,
            cluster,
            op,
            event,
            at: Timestamp(5),
        })
        .unwrap();
    }

    /// The request of a command that starts an operation (the shard builds the operation).
    fn new_op(&self) -> OperationRequest {
        let t = fixtures::template(&ProjectId::from("p1"));
        fixtures::cluster_rows(&t, "k8s", 1, 2).2
    }

    /// Create up to CREATE_COMPLETE, the trustee step included.
    fn created(&mut self, trustee: Option<TrusteeRecord>) {
        self.adv(OpEvent::CertsGenerated { certs: certs() });
        self.adv(OpEvent::TrusteeCreated { trustee });
        self.adv(OpEvent::StackCreateIntent);
        self.adv(OpEvent::StackCreated {
            stack_id: "sid".into(),
        });
        self.adv(OpEvent::CreateFinished {
            status: ClusterStatus::CREATE_COMPLETE,
            reason: None,
            outputs: StackOutputs::default(),
        });
    }
}

fn trustee(password: &str) -> TrusteeRecord {
    TrusteeRecord {
        user_id: "tu1".into(),
        username: "c_p1".into(),
        domain_id: "d1".into(),
        password: password.into(),
        trust_id: "tr1".into(),
    }
}

#[test]
fn the_trustee_is_made_before_the_stack_and_the_token_dropped_with_it() {
    let mut x = Shard::new(true);
    x.adv(OpEvent::CertsGenerated { certs: certs() });
    assert_eq!(x.op().step, Step::CreateTrustee);
    assert!(x.op().trustor.is_some());
    x.adv(OpEvent::TrusteeCreated {
        trustee: Some(trustee("sealed:v1:pw1")),
    });
    assert!(matches!(x.op().step, Step::CreateStack { attempt: 0, .. }));
    assert!(x.op().trustor.is_none(), "the token leaves the state");
    assert_eq!(x.s.trustee(x.c), Some(&trustee("sealed:v1:pw1")));
    // The record is persisted and reloads; queries never carry it.
    let loaded = persist::reload(&mut x.s);
    assert_eq!(loaded.trustee(x.c), x.s.trustee(x.c));
    assert_eq!(x.s.view(x.c).unwrap().trustee, None);
}

#[test]
fn without_a_trustor_the_create_goes_straight_to_the_stack() {
    let mut x = Shard::new(false);
    x.adv(OpEvent::CertsGenerated { certs: certs() });
    assert!(matches!(x.op().step, Step::CreateStack { .. }));
}

#[test]
fn credential_rotation_replaces_the_password_then_updates_the_stack() {
    let mut x = Shard::new(true);
    x.created(Some(trustee("sealed:v1:pw1")));
    let rotate = x.new_op();
    x.cmd(ShardCommand::RotateCredential {
        id: x.c,
        operation: rotate,
        at: Timestamp(6),
    })
    .unwrap();
    assert_eq!(x.op().kind, OpKind::RotateCredential);
    assert_eq!(x.op().step, Step::RotateTrusteePassword);
    let v = x.s.view(x.c).unwrap();
    assert_eq!(v.cluster.status, ClusterStatus::UPDATE_IN_PROGRESS);
    x.adv(OpEvent::TrusteePasswordRotated {
        password: "sealed:v1:pw2".into(),
    });
    assert_eq!(x.op().step, Step::UpdateStack { attempt: 0 });
    assert_eq!(x.s.trustee(x.c).unwrap().password, "sealed:v1:pw2");
    x.adv(OpEvent::StackUpdateIntent);
    x.adv(OpEvent::StackUpdateRequested {
        stack_id: "sid".into(),
    });
    x.adv(OpEvent::UpdateFinished {
        status: ClusterStatus::UPDATE_COMPLETE,
        reason: None,
        outputs: StackOutputs::default(),
    });
    assert!(x.s.operation(x.c).is_none());
    assert_eq!(
        x.s.view(x.c).unwrap().cluster.status,
        ClusterStatus::UPDATE_COMPLETE
    );
}

#[test]
fn credential_rotation_needs_a_trustee() {
    let mut x = Shard::new(false);
    x.created(None);
    let rotate = x.new_op();
    let r = x.cmd(ShardCommand::RotateCredential {
        id: x.c,
        operation: rotate,
        at: Timestamp(6),
    });
    assert_eq!(
        r,
        Err(CommandError::BadRequest(
            "Credential rotation is not supported by driver.".into()
        ))
    );
}

#[test]
fn the_trustee_goes_after_the_stack_then_the_row() {
    let mut x = Shard::new(true);
    x.created(Some(trustee("sealed:v1:pw1")));
    let c = x.c;
    x.cmd(ShardCommand::DeleteCluster {
        id: c,
        op: OpId::new_v4(),
        at: Timestamp(7),
        deadline: Timestamp(1000),
    })
    .unwrap();
    x.adv(OpEvent::StackDeleteIntent);
    x.adv(OpEvent::DeleteFinished);
    assert_eq!(x.op().step, Step::DeleteTrustee);
    assert!(x.s.trustee(c).is_some());
    x.adv(OpEvent::TrusteeDeleted);
    assert!(x.s.view(c).is_none());
    assert!(x.s.trustee(c).is_none());
}

/// `(event_type, outcome)` of the notifications queued since `from`.
fn notified(s: &ShardState, from: usize) -> Vec<(String, String)> {
    s.outbox()
        .skip(from)
        .map(|n| {
            let outcome = n.payload["outcome"].as_str().unwrap_or("").to_string();
            (n.event_type.clone(), outcome)
        })
        .collect()
}

#[test]
fn rotations_are_notified_as_cluster_updates_once_per_transition() {
    let update = |outcome: &str| ("magnum.cluster.update".to_string(), outcome.to_string());
    let mut x = Shard::new(true);
    x.created(Some(trustee("sealed:v1:pw1")));
    let before = x.s.outbox().count();
    // A credential rotation that Keystone refuses for good fails the update.
    let rotate = x.new_op();
    x.cmd(ShardCommand::RotateCredential {
        id: x.c,
        operation: rotate,
        at: Timestamp(6),
    })
    .unwrap();
    x.adv(OpEvent::Failed {
        reason: "Keystone said no".into(),
    });
    assert_eq!(
        x.s.view(x.c).unwrap().cluster.status,
        ClusterStatus::UPDATE_FAILED
    );
    // A CA rotation after it (UPDATE_FAILED is not a rotatable status for CAs).
    let ca = x.new_op();
    assert!(x
        .cmd(ShardCommand::RotateCa {
            id: x.c,
            operation: ca,
            at: Timestamp(7),
        })
        .is_err());
    // The credential gate takes UPDATE_FAILED: a second try succeeds.
    let rotate = x.new_op();
    x.cmd(ShardCommand::RotateCredential {
        id: x.c,
        operation: rotate,
        at: Timestamp(8),
    })
    .unwrap();
    x.adv(OpEvent::TrusteePasswordRotated {
        password: "sealed:v1:pw2".into(),
    });
    x.adv(OpEvent::StackUpdateIntent);
    x.adv(OpEvent::StackUpdateRequested {
        stack_id: "sid".into(),
    });
    x.adv(OpEvent::UpdateFinished {
        status: ClusterStatus::UPDATE_COMPLETE,
        reason: None,
        outputs: StackOutputs::default(),
    });
    // Then a CA rotation from UPDATE_COMPLETE.
    let ca = x.new_op();
    x.cmd(ShardCommand::RotateCa {
        id: x.c,
        operation: ca,
        at: Timestamp(9),
    })
    .unwrap();
    x.adv(OpEvent::CertsRotated { certs: certs() });
    x.adv(OpEvent::StackUpdateIntent);
    x.adv(OpEvent::StackUpdateRequested {
        stack_id: "sid".into(),
    });
    x.adv(OpEvent::UpdateFinished {
        status: ClusterStatus::UPDATE_COMPLETE,
        reason: None,
        outputs: StackOutputs::default(),
    });
    assert_eq!(
        notified(&x.s, before),
        vec![
            update("pending"),
            update("failure"),
            update("pending"),
            update("success"),
            update("pending"),
            update("success"),
        ]
    );
}
