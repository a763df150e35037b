//! The shard's small rows: cluster templates (reference §5.3), quotas (§4.8) and canaries.
use crate::shard::messages;
use crate::shard::ShardState;
use magnum_proto::*;

impl ShardState {
    pub(super) fn create_template(
        &mut self,
        t: &ClusterTemplate,
        max_per_project: Option<u32>,
    ) -> ShardResponse {
        let Some(id) = t.uuid else {
            return Err(CommandError::BadRequest(
                "A cluster template needs a uuid.".into(),
            ));
        };
        if self.rows.templates().contains_key(&id) {
            return Err(CommandError::Conflict(messages::template_exists(id)));
        }
        if let Some(limit) = max_per_project {
            let owned = self
                .rows
                .templates()
                .values()
                .filter(|x| x.project_id == t.project_id)
                .count() as u64;
            if owned >= u64::from(limit) {
                return Err(CommandError::Forbidden(messages::template_limit(limit)));
            }
        }
        let mut t = t.clone();
        t.version = 0;
        self.rows.put_template(id, t.clone());
        Ok(CommandOk::Template(Box::new(t)))
    }

    pub(super) fn update_template(
        &mut self,
        new: &ClusterTemplate,
        at: Timestamp,
    ) -> ShardResponse {
        let Some(id) = new.uuid else {
            return Err(CommandError::BadRequest(
                "A cluster template needs a uuid.".into(),
            ));
        };
        let Some(old) = self.rows.templates().get(&id) else {
            return Err(CommandError::NotFound(messages::template_not_found(
                &id.to_string(),
            )));
        };
        if old.version != new.version {
            return Err(CommandError::Conflict(
                messages::template_concurrent_update(id),
            ));
        }
        if self.template_in_use(id) && !in_use_change_allowed(old, new) {
            return Err(CommandError::BadRequest(messages::template_referenced(id)));
        }
        let mut t = new.clone();
        t.version = old.version + 1;
        t.updated_at = Some(at);
        // Identity and ownership never change through an update.
        t.project_id = old.project_id.clone();
        t.user_id = old.user_id.clone();
        t.created_at = old.created_at;
        self.rows.put_template(id, t.clone());
        Ok(CommandOk::Template(Box::new(t)))
    }

    pub(super) fn delete_template(&mut self, id: TemplateId) -> ShardResponse {
        if !self.rows.templates().contains_key(&id) {
            return Err(CommandError::NotFound(messages::template_not_found(
                &id.to_string(),
            )));
        }
        if self.template_in_use(id) {
            return Err(CommandError::BadRequest(messages::template_referenced(id)));
        }
        self.rows.remove_template(id);
        Ok(CommandOk::Done)
    }

    fn template_in_use(&self, id: TemplateId) -> bool {
        self.rows
            .clusters()
            .values()
            .any(|c| c.cluster_template_id == id)
    }

    pub(super) fn create_quota(&mut self, id: u64, q: &Quota) -> ShardResponse {
        let k = (q.project_id.clone(), q.resource.clone());
        if self.rows.quotas().contains_key(&k) {
            return Err(CommandError::Conflict(messages::quota_exists(
                &q.project_id,
                &q.resource,
            )));
        }
        let mut q = q.clone();
        q.id = id;
        q.updated_at = None;
        self.rows.put_quota(q.clone());
        Ok(CommandOk::Quota(q))
    }

    pub(super) fn update_quota(
        &mut self,
        project: &ProjectId,
        resource: &str,
        hard_limit: u32,
        at: Timestamp,
    ) -> ShardResponse {
        let k = (project.clone(), resource.to_string());
        let Some(q) = self.rows.quotas().get(&k) else {
            return Err(CommandError::NotFound(messages::quota_not_found(
                project, resource,
            )));
        };
        let mut q = q.clone();
        q.hard_limit = hard_limit;
        q.updated_at = Some(at);
        self.rows.put_quota(q.clone());
        Ok(CommandOk::Quota(q))
    }

    pub(super) fn delete_quota(&mut self, project: &ProjectId, resource: &str) -> ShardResponse {
        match self.rows.remove_quota(project, resource) {
            Some(_) => Ok(CommandOk::Done),
            None => Err(CommandError::NotFound(messages::quota_not_found(
                project, resource,
            ))),
        }
    }

    pub(super) fn canary(&mut self, key: &str, value: &str) -> ShardResponse {
        if key.is_empty() || key.len() > CANARY_MAX_KEY || value.len() > CANARY_MAX_VALUE {
            return Err(CommandError::BadRequest(format!(
                "A canary key must have 1 to {CANARY_MAX_KEY} bytes and its value at most \
                 {CANARY_MAX_VALUE}."
            )));
        }
        self.rows.put_canary(key, value);
        Ok(CommandOk::Done)
    }
}

/// Reference §5.3: a template referenced by clusters may only change its name alone, become
/// public alone, change `hidden` alone, or set non-null tags alone.
fn in_use_change_allowed(old: &ClusterTemplate, new: &ClusterTemplate) -> bool {
    let mut a = old.clone();
    let b = new.clone();
    let mut changed = Vec::new();
    if a.name != b.name {
        changed.push("name");
        a.name = b.name.clone();
    }
    if a.public != b.public {
        changed.push("public");
        a.public = b.public;
    }
    if a.hidden != b.hidden {
        changed.push("hidden");
        a.hidden = b.hidden;
    }
    if a.tags != b.tags {
        changed.push("tags");
        a.tags = b.tags.clone();
    }
    a.updated_at = b.updated_at;
    a.version = b.version;
    a.project_id = b.project_id.clone();
    a.user_id = b.user_id.clone();
    a.created_at = b.created_at;
    if a != b {
        return false; // something outside the allowed set changed
    }
    match changed.as_slice() {
        [] | ["name"] | ["hidden"] => true,
        ["public"] => new.public,
        ["tags"] => new.tags.is_some(),
        _ => false,
    }
}
