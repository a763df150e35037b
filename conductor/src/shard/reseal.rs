//! Sealing-key rotation, the apply side: `ShardCommand::Reseal` swaps each listed value for its
//! re-sealed form if the field still holds the value the leader read (compare and swap), so a
//! CA rotation or password change committed in between is never undone. The leader side is
//! `leader/reseal.rs`.
use crate::shard::rows::Rows;
use crate::shard::ShardState;
use magnum_proto::*;

/// Every sealed value the shard holds for `cluster`, by field.
pub fn sealed_values(rows: &Rows, cluster: ClusterId) -> Vec<(SealedField, &str)> {
    let mut out = Vec::new();
    if let Some(c) = rows.certs().get(&cluster) {
        out.push((SealedField::CaKey, c.ca_key.as_str()));
        out.push((SealedField::ClientKey, c.client_key.as_str()));
        let optional = [
            (SealedField::EtcdCaKey, &c.etcd_ca_key),
            (SealedField::FrontProxyCaKey, &c.front_proxy_ca_key),
            (
                SealedField::ServiceAccountPrivateKey,
                &c.service_account_private_key,
            ),
        ];
        for (f, v) in optional {
            if let Some(v) = v {
                out.push((f, v.as_str()));
            }
        }
    }
    if let Some(t) = rows.trustees().get(&cluster) {
        out.push((SealedField::TrusteePassword, t.password.as_str()));
    }
    if let Some(t) = rows.operation(cluster).and_then(|o| o.trustor.as_ref()) {
        out.push((SealedField::TrustorToken, t.token.as_str()));
    }
    out
}

impl ShardState {
    pub(super) fn reseal(&mut self, secrets: &[Resealed]) -> CommandOk {
        for s in secrets {
            let id = s.cluster;
            let holds = sealed_values(&self.rows, id)
                .iter()
                .any(|(f, v)| *f == s.field && *v == s.from);
            if !holds {
                continue;
            }
            let to = s.to.clone();
            match s.field {
                SealedField::TrusteePassword => {
                    if let Some(t) = self.rows.trustee_mut(id) {
                        t.password = to;
                    }
                }
                SealedField::TrustorToken => {
                    if let Some(mut op) = self.rows.operation(id).cloned() {
                        if let Some(t) = op.trustor.as_mut() {
                            t.token = to;
                        }
                        self.rows.put_operation(op);
                    }
                }
                cert => {
                    if let Some(mut c) = self.rows.certs().get(&id).cloned() {
                        match cert {
                            SealedField::CaKey => c.ca_key = to,
                            SealedField::ClientKey => c.client_key = to,
                            SealedField::EtcdCaKey => c.etcd_ca_key = Some(to),
                            SealedField::FrontProxyCaKey => c.front_proxy_ca_key = Some(to),
                            _ => c.service_account_private_key = Some(to),
                        }
                        self.rows.put_certs(id, c);
                    }
                }
            }
        }
        CommandOk::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_proto::fixtures::certs;

    #[test]
    fn a_value_is_replaced_only_while_it_holds_what_the_leader_read() {
        let p = ProjectId::from("p1");
        let mut t = fixtures::template(&p);
        t.uuid = Some(TemplateId::new_v4());
        let (c, ngs, op) = fixtures::cluster_rows(&t, "k8s", 1, 2);
        let id = c.uuid;
        let mut s = ShardState::new(ShardId(0), 1);
        let req = |command| ShardRequest {
            request_id: None,
            command,
        };
        let mut i = 0;
        let mut apply = |s: &mut ShardState, command| {
            i += 1;
            s.apply_request(i, &req(command))
        };
        apply(
            &mut s,
            ShardCommand::TakeOwnership {
                node: NodeId(1),
                epoch: 1,
            },
        )
        .unwrap();
        apply(
            &mut s,
            ShardCommand::CreateTemplate {
                template: t,
                max_per_project: None,
            },
        )
        .unwrap();
        apply(
            &mut s,
            ShardCommand::CreateCluster {
                cluster: c,
                nodegroups: ngs,
                operation: op,
            },
        )
        .unwrap();
        let mut bundle = certs();
        bundle.ca_key = "sealed:v1:old-ca".into();
        bundle.client_key = "sealed:v1:old-client".into();
        s.rows.put_certs(id, bundle);
        let swap = |field, from: &str, to: &str| Resealed {
            cluster: id,
            field,
            from: from.into(),
            to: to.into(),
        };
        let cmd = ShardCommand::Reseal {
            epoch: 1,
            secrets: vec![
                swap(SealedField::CaKey, "sealed:v1:old-ca", "sealed:v1:new-ca"),
                // Changed since the leader read it (a CA rotation): left as it is.
                swap(
                    SealedField::ClientKey,
                    "sealed:v1:stale",
                    "sealed:v1:new-client",
                ),
                // A field this cluster does not have: nothing happens.
                swap(SealedField::TrusteePassword, "x", "y"),
            ],
        };
        assert_eq!(apply(&mut s, cmd.clone()), Ok(CommandOk::Done));
        let held = s.rows.certs()[&id].clone();
        assert_eq!(held.ca_key, "sealed:v1:new-ca");
        assert_eq!(held.client_key, "sealed:v1:old-client");
        assert!(s.rows.trustees().get(&id).is_none());
        // A repeat changes nothing (the CA key no longer holds `from`).
        assert_eq!(apply(&mut s, cmd), Ok(CommandOk::Done));
        assert_eq!(s.rows.certs()[&id], held);
        // A leader of an older epoch is refused.
        let stale = ShardCommand::Reseal {
            epoch: 0,
            secrets: vec![],
        };
        assert!(matches!(
            apply(&mut s, stale),
            Err(CommandError::StaleEpoch { .. })
        ));
    }
}
