//! The typed handle that proposes to the meta group (`crate::propose` has the shard's and the
//! shared error type). Every meta write of the node goes through [`MetaLeader::propose`].
use crate::membership::meta::{MetaCommand, MetaResponse, MetaState};
use crate::propose::{ActiveVersion, ProposeError};
use magnum_proto::version::{Kind, SET_CLUSTER_VERSION_DECODERS};
use magnum_proto::CommandError;
use magnum_raft::Group;

#[derive(Clone)]
pub struct MetaLeader {
    group: Group<MetaState>,
    active: ActiveVersion,
}

impl MetaLeader {
    pub fn new(group: Group<MetaState>) -> Self {
        let active = group.read_local(|m| m.active_version());
        Self { group, active }
    }

    /// The cell the meta state keeps current; shard handles share it.
    pub fn active(&self) -> &ActiveVersion {
        &self.active
    }

    /// A `Rejected` answer becomes [`ProposeError::Rejected`] (`BadRequest`, the operator's
    /// message); `Undecodable` a codec error.
    pub async fn propose(&self, cmd: MetaCommand) -> Result<MetaResponse, ProposeError> {
        self.active.check(Kind::Meta(&cmd))?;
        if let MetaCommand::SetClusterVersion { version } = cmd {
            self.check_support(version)?;
        }
        let payload = serde_json::to_vec(&cmd).map_err(|e| ProposeError::Codec(e.to_string()))?;
        let bytes = self.group.write(payload).await?;
        match serde_json::from_slice::<MetaResponse>(&bytes) {
            Ok(MetaResponse::Rejected(m)) => {
                Err(ProposeError::Rejected(CommandError::BadRequest(m)))
            }
            Ok(MetaResponse::Undecodable) => {
                Err(ProposeError::Codec("meta command undecodable".into()))
            }
            Ok(r) => Ok(r),
            Err(e) => Err(ProposeError::Codec(format!("undecodable meta answer: {e}"))),
        }
    }

    /// A conductor before versioning cannot decode `SetClusterVersion` (its replica would halt),
    /// and a version some conductor does not support must not become active: both are checked
    /// here, on the leader's registry, because `apply` cannot check them deterministically.
    fn check_support(&self, version: u32) -> Result<(), ProposeError> {
        let needed = version.max(SET_CLUSTER_VERSION_DECODERS);
        let now = magnum_proto::Timestamp::now();
        let laggards = self.group.read_local(|m| m.laggards(needed, now));
        if laggards.is_empty() {
            return Ok(());
        }
        Err(ProposeError::Rejected(CommandError::BadRequest(format!(
            "cluster version {version} needs every conductor to support version {needed}: {}",
            laggards.join(", ")
        ))))
    }
}
