//! Project → shard placement. The hash is part of the on-disk contract: never change it.
use crate::ids::{ProjectId, ShardId};

/// Name recorded in the meta group at bootstrap.
pub const HASH_NAME: &str = "fnv1a64-v1";

/// FNV-1a 64-bit over the project id's UTF-8 bytes, modulo the shard count.
pub fn shard_of(project: &ProjectId, shards: u32) -> ShardId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in project.0.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ShardId((h % u64::from(shards.max(1))) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Golden values: a change here re-homes every project.
        assert_eq!(
            shard_of(&ProjectId::from(""), 16),
            ShardId((0xcbf2_9ce4_8422_2325u64 % 16) as u32)
        );
        assert_eq!(
            shard_of(&ProjectId::from("a"), 1_000_000),
            ShardId((0xaf63_dc4c_8601_ec8cu64 % 1_000_000) as u32)
        );
    }
}
