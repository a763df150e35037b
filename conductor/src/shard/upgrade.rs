//! Cluster upgrade (`POST /v1/clusters/{id}/actions/upgrade`, reference §6.5): a rolling
//! stack update of one nodegroup to the version labels of another template. Upstream's Heat
//! driver refuses upgrades; here it is an update operation whose PATCH carries the new tags.
use crate::shard::messages;
use crate::shard::ShardState;
use magnum_proto::*;
use std::cmp::Ordering;

/// The version labels an upgrade moves; a downgrade of any of them is refused.
pub const VERSION_LABELS: [&str; 4] = [
    "kube_tag",
    "kube_version",
    "master_kube_tag",
    "minion_kube_tag",
];

/// Numeric components of a tag (`v1.28.9-rancher1` → [1, 28, 9, 1]); `None` without digits.
fn version_parts(tag: &str) -> Option<Vec<u64>> {
    let parts: Vec<u64> = tag
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    (!parts.is_empty()).then_some(parts)
}

/// `Less` when `new` is older than `old`; tags without numbers compare equal (not checked).
pub fn compare_tags(new: &str, old: &str) -> Ordering {
    match (version_parts(new), version_parts(old)) {
        (Some(n), Some(o)) => n.cmp(&o),
        _ => Ordering::Equal,
    }
}

impl ShardState {
    pub(crate) fn upgrade_cluster(
        &mut self,
        id: ClusterId,
        ng: NodeGroupId,
        new: &ClusterTemplate,
        max_batch_size: u32,
        req: &OperationRequest,
        at: Timestamp,
    ) -> ShardResponse {
        let c = self.quiet_cluster(id, "Upgrading a cluster")?;
        let Some(new_id) = new.uuid else {
            return Err(CommandError::BadRequest(
                "A cluster template needs a uuid.".into(),
            ));
        };
        if max_batch_size == 0 {
            return Err(CommandError::BadRequest(
                "max_batch_size must be at least 1.".into(),
            ));
        }
        let Some(n) = self.rows.nodegroup(id, ng) else {
            return Err(CommandError::NotFound(messages::nodegroup_not_found(
                &ng.to_string(),
            )));
        };
        if !n.is_default && new_id != c.cluster_template_id {
            return Err(CommandError::Conflict(
                messages::template_invalid_for_upgrade(
                    "a non-default nodegroup can only be upgraded to the cluster's template",
                ),
            ));
        }
        let old = &req.template;
        let same_driver = old.coe == new.coe
            && old.server_type == new.server_type
            && old.cluster_distro == new.cluster_distro
            && old.driver == new.driver;
        if !same_driver {
            return Err(CommandError::BadRequest(
                "The new cluster template must use the same driver (coe, server type, \
                 distro) as the cluster's."
                    .into(),
            ));
        }
        let Some(kube_tag) = new.labels.get("kube_tag").filter(|t| !t.is_empty()) else {
            return Err(CommandError::Conflict(
                messages::template_invalid_for_upgrade("the template has no kube_tag label"),
            ));
        };
        for key in VERSION_LABELS {
            let current = n.labels.get(key).or_else(|| c.labels.get(key));
            let wanted = if key == "kube_tag" {
                Some(kube_tag)
            } else {
                new.labels.get(key)
            };
            if let (Some(cur), Some(want)) = (current, wanted) {
                if compare_tags(want, cur) == Ordering::Less {
                    return Err(CommandError::BadRequest(messages::invalid_version(
                        key, want,
                    )));
                }
            }
        }
        let is_default = n.is_default;
        let spec = UpgradeSpec {
            template_id: new_id,
            labels: new.labels.clone(),
            kube_tag: kube_tag.clone(),
            max_batch_size,
        };
        if let Some(ngs) = self.rows.nodegroups_mut(id) {
            for n in ngs
                .iter_mut()
                .filter(|n| n.uuid == ng || (is_default && n.is_default))
            {
                n.status = Some(ClusterStatus::UPDATE_IN_PROGRESS);
                n.status_reason = None;
                n.updated_at = Some(at);
            }
        }
        self.rows
            .set_cluster_status(id, ClusterStatus::UPDATE_IN_PROGRESS, None, at);
        let mut op = Operation::new(OpKind::Upgrade, id, req, self.stack_name(id));
        op.nodegroup = Some(ng);
        op.upgrade = Some(spec);
        self.rows.put_operation(op);
        Ok(CommandOk::Done)
    }

    /// A successful upgrade: the nodegroup(s) take the new version labels; upgrading the
    /// default nodegroups moves the cluster to the new template and its labels.
    pub(crate) fn complete_upgrade(
        &mut self,
        id: ClusterId,
        ng: Option<NodeGroupId>,
        up: &UpgradeSpec,
    ) {
        let Some(c) = self.rows.cluster(id) else {
            return;
        };
        let is_default = self
            .rows
            .nodegroups(id)
            .iter()
            .find(|n| Some(n.uuid) == ng)
            .is_none_or(|n| n.is_default);
        let mut labels = c.labels.clone();
        labels.extend(up.labels.clone());
        labels.insert("kube_tag".into(), up.kube_tag.clone());
        if is_default {
            if let Some(c) = self.rows.cluster_mut(id) {
                c.cluster_template_id = up.template_id;
                c.labels = labels.clone();
                c.coe_version = Some(up.kube_tag.clone());
            }
        }
        if let Some(ngs) = self.rows.nodegroups_mut(id) {
            for n in ngs
                .iter_mut()
                .filter(|n| Some(n.uuid) == ng || (is_default && n.is_default))
            {
                if is_default {
                    n.labels = labels.clone();
                    continue;
                }
                for key in VERSION_LABELS {
                    if let Some(v) = up.labels.get(key) {
                        n.labels.insert(key.to_string(), v.clone());
                    }
                }
                n.labels.insert("kube_tag".into(), up.kube_tag.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_compare_numerically() {
        assert_eq!(compare_tags("v1.28.9", "v1.27.3"), Ordering::Greater);
        assert_eq!(compare_tags("v1.9.0", "v1.10.0"), Ordering::Less);
        assert_eq!(compare_tags("v1.28.9", "1.28.9"), Ordering::Equal);
        assert_eq!(compare_tags("latest", "v1.2"), Ordering::Equal);
        assert_eq!(
            compare_tags("v1.28.9-rancher2", "v1.28.9-rancher1"),
            Ordering::Greater
        );
    }
}
