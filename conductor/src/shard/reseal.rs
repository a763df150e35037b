//! Sealing-key rotation, the apply side: `ShardCommand::Reseal` swaps each listed value for its
//! re-sealed form if the field still holds the value the leader read (compare and swap), so a
//! CA rotation or password change committed in between is never undone. The leader side is
//! `leader/reseal.rs`.
use crate::shard::rows::Rows;
use crate::shard::ShardState;
use magnum_proto::*;
use std::collections::{BTreeMap, BTreeSet};

/// Every sealed value the shard holds for `cluster`, by field: those of its certificates
/// (`certs`, a stored row the caller reads) and of its rows in memory.
pub fn sealed_values<'a>(
    rows: &'a Rows,
    certs: Option<&'a ClusterCerts>,
    cluster: ClusterId,
) -> Vec<(SealedField, &'a str)> {
    let mut out = sealed_cert_values(certs);
    out.extend(sealed_row_values(rows, cluster));
    out
}

/// The sealed keys of a cluster's certificates, by field.
pub fn sealed_cert_values(certs: Option<&ClusterCerts>) -> Vec<(SealedField, &str)> {
    let mut out = Vec::new();
    if let Some(c) = certs {
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
    out
}

/// The sealed values of a cluster's rows in memory (trustee password, trustor token), by field.
pub fn sealed_row_values(rows: &Rows, cluster: ClusterId) -> Vec<(SealedField, &str)> {
    let mut out = Vec::new();
    if let Some(t) = rows.trustees().get(&cluster) {
        out.push((SealedField::TrusteePassword, t.password.as_str()));
    }
    if let Some(t) = rows.operation(cluster).and_then(|o| o.trustor.as_ref()) {
        out.push((SealedField::TrustorToken, t.token.as_str()));
    }
    out
}

impl ShardState {
    /// `certs`: the stored certificates of the clusters whose keys `secrets` names.
    pub(super) fn reseal(
        &mut self,
        secrets: &[Resealed],
        mut certs: BTreeMap<ClusterId, ClusterCerts>,
    ) -> CommandOk {
        let mut changed = BTreeSet::new();
        for s in secrets {
            let id = s.cluster;
            let holds = sealed_values(&self.rows, certs.get(&id), id)
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
                    if let Some(c) = certs.get_mut(&id) {
                        match cert {
                            SealedField::CaKey => c.ca_key = to,
                            SealedField::ClientKey => c.client_key = to,
                            SealedField::EtcdCaKey => c.etcd_ca_key = Some(to),
                            SealedField::FrontProxyCaKey => c.front_proxy_ca_key = Some(to),
                            _ => c.service_account_private_key = Some(to),
                        }
                        changed.insert(id);
                    }
                }
            }
        }
        for id in changed {
            if let Some(c) = certs.remove(&id) {
                self.rows.put_certs(id, c);
            }
        }
        CommandOk::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::persist::stored_certs;
    use crate::shard::rows_tests::write_dirty;
    use magnum_proto::fixtures::certs;

    /// The certificates are read from the stored rows (as a replica's store holds them after
    /// each command), and a command that swaps two keys of one cluster writes both.
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
        let mut disk = BTreeMap::new();
        let mut apply = |s: &mut ShardState, disk: &mut BTreeMap<_, _>, command| {
            i += 1;
            let r = s.apply_request(i, &req(command), disk).unwrap();
            write_dirty(s, disk);
            r
        };
        apply(
            &mut s,
            &mut disk,
            ShardCommand::TakeOwnership {
                node: NodeId(1),
                epoch: 1,
            },
        )
        .unwrap();
        apply(
            &mut s,
            &mut disk,
            ShardCommand::CreateTemplate {
                template: t,
                max_per_project: None,
            },
        )
        .unwrap();
        apply(
            &mut s,
            &mut disk,
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
        write_dirty(&mut s, &mut disk);
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
        assert_eq!(apply(&mut s, &mut disk, cmd.clone()), Ok(CommandOk::Done));
        let held = stored_certs(&disk, id).unwrap().unwrap();
        assert_eq!(held.ca_key, "sealed:v1:new-ca");
        assert_eq!(held.client_key, "sealed:v1:old-client");
        assert!(s.rows.trustees().get(&id).is_none());
        // A repeat changes nothing (the CA key no longer holds `from`).
        assert_eq!(apply(&mut s, &mut disk, cmd), Ok(CommandOk::Done));
        assert_eq!(stored_certs(&disk, id).unwrap().unwrap(), held);
        // Two keys of one cluster in one command: both swapped.
        let both = ShardCommand::Reseal {
            epoch: 1,
            secrets: vec![
                swap(SealedField::CaKey, "sealed:v1:new-ca", "sealed:v2:ca"),
                swap(
                    SealedField::ClientKey,
                    "sealed:v1:old-client",
                    "sealed:v2:client",
                ),
            ],
        };
        assert_eq!(apply(&mut s, &mut disk, both), Ok(CommandOk::Done));
        let held = stored_certs(&disk, id).unwrap().unwrap();
        assert_eq!(
            (held.ca_key.as_str(), held.client_key.as_str()),
            ("sealed:v2:ca", "sealed:v2:client")
        );
        // A leader of an older epoch is refused.
        let stale = ShardCommand::Reseal {
            epoch: 0,
            secrets: vec![],
        };
        assert!(matches!(
            apply(&mut s, &mut disk, stale),
            Err(CommandError::StaleEpoch { .. })
        ));
    }
}
