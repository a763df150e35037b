//! Typed identifiers.
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);
        impl $name {
            pub fn new_v4() -> Self { Self(Uuid::new_v4()) }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { self.0.fmt(f) }
        }
    };
}

uuid_id!(/// A cluster's uuid.
    ClusterId);
uuid_id!(/// A cluster template's uuid.
    TemplateId);
uuid_id!(/// A nodegroup's uuid.
    NodeGroupId);
uuid_id!(/// One durable operation on a cluster.
    OpId);
uuid_id!(/// A federation's uuid.
    FederationId);
uuid_id!(/// Client request id carried by every forwarded mutation; the shard dedups on it.
    RequestId);

/// Bytes 12..14 of a uuid made by [`ClusterId::in_shard`]; bytes 14..16 hold the shard.
const SHARD_TAG: [u8; 2] = *b"MG";

impl ClusterId {
    /// A random (v4) uuid that names its shard in its last four bytes, so that a look-up by
    /// uuid alone (an admin's) asks that shard instead of every shard; 90 random bits remain.
    /// A shard past `u16::MAX` gets a plain v4 uuid.
    pub fn in_shard(shard: ShardId) -> Self {
        let mut b = *Uuid::new_v4().as_bytes();
        if let Ok(s) = u16::try_from(shard.0) {
            b[12..14].copy_from_slice(&SHARD_TAG);
            b[14..16].copy_from_slice(&s.to_be_bytes());
        }
        Self(Uuid::from_bytes(b))
    }

    /// The shard [`Self::in_shard`] wrote, if the uuid carries one. A hint to check: a uuid
    /// made elsewhere (before this, or by upstream) carries the tag by chance 1 in 65,536.
    pub fn shard_hint(&self) -> Option<ShardId> {
        let b = self.0.as_bytes();
        (b[12..14] == SHARD_TAG).then(|| ShardId(u32::from(u16::from_be_bytes([b[14], b[15]]))))
    }
}

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self { Self(s.to_string()) }
        }
    };
}

string_id!(/// Keystone project id.
    ProjectId);
string_id!(/// Keystone user id.
    UserId);

/// A data shard (Raft group `shard + 1`; group 0 is the meta group).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A conductor node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_uuid_names_its_shard_and_stays_a_v4_uuid() {
        for s in [0, 1, 15, 255, 65_535] {
            let id = ClusterId::in_shard(ShardId(s));
            assert_eq!(id.shard_hint(), Some(ShardId(s)));
            assert_eq!(id.0.get_version_num(), 4);
            assert_eq!(id.0.get_variant(), uuid::Variant::RFC4122);
            assert_ne!(id, ClusterId::in_shard(ShardId(s)));
        }
        assert_eq!(ClusterId::in_shard(ShardId(65_536)).shard_hint(), None);
        let plain = ClusterId(Uuid::parse_str("6a1b5c4e-3f2d-4e1a-9b7c-0d1e2f3a4b5c").unwrap());
        assert_eq!(plain.shard_hint(), None);
    }
}
