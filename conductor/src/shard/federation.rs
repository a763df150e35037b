//! Federations in the shard (reference §4.9): stored and completed at once. Membership changes
//! are applied against the row as it is at apply time, so two concurrent joins both land and a
//! repeated join is a 409 however the requests interleave.
use crate::shard::messages;
use crate::shard::ShardState;
use magnum_proto::*;

impl ShardState {
    pub(crate) fn create_federation(&mut self, f: &Federation) -> ShardResponse {
        if self.rows.federations().contains_key(&f.uuid) {
            return Err(CommandError::Conflict(messages::federation_exists(f.uuid)));
        }
        if shard_of(&f.project_id, self.shards) != self.shard {
            return Err(CommandError::BadRequest(format!(
                "Project {} does not live in shard {}.",
                f.project_id, self.shard
            )));
        }
        let mut f = f.clone();
        f.status = ClusterStatus::CREATE_COMPLETE;
        f.status_reason = None;
        f.updated_at = None;
        self.rows.put_federation(f.clone());
        Ok(CommandOk::Federation(Box::new(f)))
    }

    pub(crate) fn update_federation(
        &mut self,
        id: FederationId,
        change: &FederationChange,
        at: Timestamp,
    ) -> ShardResponse {
        let Some(f) = self.rows.federations().get(&id) else {
            return Err(CommandError::NotFound(messages::federation_not_found(
                &id.to_string(),
            )));
        };
        let mut f = f.clone();
        match change {
            FederationChange::Join { member } => {
                if f.member_ids.contains(member) {
                    return Err(CommandError::Conflict(messages::member_exists(
                        member, &f.name,
                    )));
                }
                f.member_ids.push(member.clone());
            }
            FederationChange::Leave { member } => {
                let Some(i) = f.member_ids.iter().position(|m| m == member) else {
                    return Err(CommandError::NotFound(messages::not_a_member(
                        member, &f.name,
                    )));
                };
                f.member_ids.remove(i);
            }
            FederationChange::Set {
                member_ids,
                properties,
            } => {
                if let Some(p) = properties {
                    if !p.contains_key("dns-zone") {
                        return Err(CommandError::BadRequest(
                            messages::FEDERATION_NO_DNS_ZONE.into(),
                        ));
                    }
                    f.properties = p.clone();
                }
                if let Some(m) = member_ids {
                    f.member_ids = m.clone();
                }
            }
        }
        f.status = ClusterStatus::UPDATE_COMPLETE;
        f.status_reason = None;
        f.updated_at = Some(at);
        self.rows.put_federation(f.clone());
        Ok(CommandOk::Federation(Box::new(f)))
    }

    pub(crate) fn delete_federation(&mut self, id: FederationId) -> ShardResponse {
        if self.rows.remove_federation(id).is_none() {
            return Err(CommandError::NotFound(messages::federation_not_found(
                &id.to_string(),
            )));
        }
        Ok(CommandOk::Done)
    }

    pub(crate) fn query_federations(&self, project: Option<&ProjectId>) -> QueryResult {
        QueryResult::Federations(
            self.rows
                .federations()
                .values()
                .filter(|f| project.is_none_or(|p| *p == f.project_id))
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_raft::NoStoredRows;
    use std::collections::BTreeMap;

    fn fed(project: &str) -> Federation {
        Federation {
            uuid: FederationId::new_v4(),
            name: "fed".into(),
            project_id: ProjectId::from(project),
            hostcluster_id: "h".into(),
            member_ids: vec![],
            status: ClusterStatus::CREATE_IN_PROGRESS,
            status_reason: None,
            properties: BTreeMap::from([("dns-zone".into(), "example.com.".into())]),
            created_at: Timestamp(1),
            updated_at: None,
        }
    }

    fn apply(s: &mut ShardState, i: u64, command: ShardCommand) -> ShardResponse {
        s.apply(
            i,
            &ShardRequest {
                request_id: Some(RequestId::new_v4()),
                command,
            },
        )
    }

    #[test]
    fn lifecycle_and_membership_rules() {
        let mut s = ShardState::new(ShardId(0), 1);
        let f = fed("p");
        let id = f.uuid;
        let created = apply(
            &mut s,
            1,
            ShardCommand::CreateFederation {
                federation: f.clone(),
            },
        );
        let Ok(CommandOk::Federation(row)) = created else {
            panic!("{created:?}")
        };
        assert_eq!(row.status, ClusterStatus::CREATE_COMPLETE);
        assert!(matches!(
            apply(&mut s, 2, ShardCommand::CreateFederation { federation: f }),
            Err(CommandError::Conflict(_))
        ));
        let join = |m: &str| ShardCommand::UpdateFederation {
            id,
            change: FederationChange::Join { member: m.into() },
            at: Timestamp(5),
        };
        assert!(apply(&mut s, 3, join("a")).is_ok());
        assert!(apply(&mut s, 4, join("b")).is_ok());
        assert!(matches!(
            apply(&mut s, 5, join("a")),
            Err(CommandError::Conflict(_))
        ));
        let leave = ShardCommand::UpdateFederation {
            id,
            change: FederationChange::Leave {
                member: "zz".into(),
            },
            at: Timestamp(6),
        };
        assert!(matches!(
            apply(&mut s, 6, leave),
            Err(CommandError::NotFound(_))
        ));
        let bad_props = ShardCommand::UpdateFederation {
            id,
            change: FederationChange::Set {
                member_ids: None,
                properties: Some(BTreeMap::new()),
            },
            at: Timestamp(7),
        };
        assert!(matches!(
            apply(&mut s, 7, bad_props),
            Err(CommandError::BadRequest(_))
        ));
        let QueryResult::Federations(all) = s
            .query(&ShardQuery::Federations { project: None }, &NoStoredRows)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(all[0].member_ids, vec!["a", "b"]);
        assert_eq!(all[0].status, ClusterStatus::UPDATE_COMPLETE);
        assert!(apply(&mut s, 8, ShardCommand::DeleteFederation { id }).is_ok());
        assert!(matches!(
            apply(&mut s, 9, ShardCommand::DeleteFederation { id }),
            Err(CommandError::NotFound(_))
        ));
    }

    #[test]
    fn rows_survive_a_reload() {
        let mut s = ShardState::new(ShardId(0), 1);
        let f = fed("p");
        apply(
            &mut s,
            1,
            ShardCommand::CreateFederation {
                federation: f.clone(),
            },
        )
        .unwrap();
        let t = crate::shard::persist::reload(&mut s);
        let QueryResult::Federations(all) = t
            .query(&ShardQuery::Federations { project: None }, &NoStoredRows)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].uuid, f.uuid);
    }
}
