//! Deterministic Heat stack names.
//!
//! Upstream Magnum names a cluster stack `sanitise(name[:30]) + "-" + <12 random base32 chars>`. A
//! random suffix makes a retried create produce a second stack, so here the suffix is derived from
//! the cluster uuid: a repeated create hits Heat's 409 `StackExists` for the same name and the caller
//! adopts the existing stack instead of creating a duplicate.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Length of the id suffix (60 bits in base32).
pub const SHORT_ID_LEN: usize = 12;

/// Prefix used when the sanitised name is empty or does not start with a letter.
const FALLBACK_PREFIX: &str = "k8s";

/// 12 lower-case RFC 4648 base32 characters: the first 60 bits of SHA-256 over the uuid's 16 bytes.
pub fn short_id(uuid: Uuid) -> String {
    let digest = Sha256::digest(uuid.as_bytes());
    // 8 bytes give 13 base32 characters; the first 12 carry exactly the first 60 bits.
    let mut encoded = base32::encode(
        base32::Alphabet::Rfc4648Lower { padding: false },
        &digest[..8],
    );
    encoded.truncate(SHORT_ID_LEN);
    encoded
}

/// Upstream's sanitising: first `max_chars` characters, `_` and `.` become `-`, only
/// `[A-Za-z0-9-]` kept, lower-cased.
fn sanitise(name: &str, max_chars: usize) -> String {
    name.chars()
        .take(max_chars)
        .map(|c| if c == '_' || c == '.' { '-' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn with_suffix(prefix: String, uuid: Uuid) -> String {
    let prefix = match prefix.chars().next() {
        None => FALLBACK_PREFIX.to_string(),
        Some(c) if c.is_ascii_alphabetic() => prefix,
        Some('-') => format!("{FALLBACK_PREFIX}{prefix}"),
        Some(_) => format!("{FALLBACK_PREFIX}-{prefix}"),
    };
    format!("{prefix}-{}", short_id(uuid))
}

/// The cluster stack's name, e.g. `prod-cluster-<12 chars>`. Always matches Heat's
/// `^[a-zA-Z][a-zA-Z0-9_.-]{0,254}$` and depends only on its inputs.
pub fn stack_name(cluster_name: &str, cluster_uuid: Uuid) -> String {
    with_suffix(sanitise(cluster_name, 30), cluster_uuid)
}

/// A nodegroup stack's name, upstream's `name[:20]-nodegroup[:9]` plus the id of the nodegroup uuid.
pub fn nodegroup_stack_name(
    cluster_name: &str,
    nodegroup_name: &str,
    nodegroup_uuid: Uuid,
) -> String {
    let prefix = format!(
        "{}-{}",
        sanitise(cluster_name, 20),
        sanitise(nodegroup_name, 9)
    );
    with_suffix(prefix, nodegroup_uuid)
}

/// Heat's stack name rule `^[a-zA-Z][a-zA-Z0-9_.-]{0,254}$`.
pub fn is_valid_stack_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= 255
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap()
    }

    #[test]
    fn golden_values_are_stable() {
        let id = u("5d12f6fd-a196-4bf0-ae4c-1f639a523a52");
        // Changing these breaks adoption of stacks created by older versions: never change them.
        assert_eq!(short_id(id), "d4fuhtcddl3u");
        assert_eq!(
            stack_name("k8s-prod_cluster.v1", id),
            "k8s-prod-cluster-v1-d4fuhtcddl3u"
        );
        assert_eq!(
            nodegroup_stack_name("k8s-prod", "gpu_workers", id),
            "k8s-prod-gpu-worke-d4fuhtcddl3u"
        );
    }

    #[test]
    fn deterministic_and_distinct() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        assert_eq!(stack_name("x", a), stack_name("x", a));
        assert_ne!(stack_name("x", a), stack_name("x", b));
        assert_eq!(short_id(a).len(), SHORT_ID_LEN);
    }

    #[test]
    fn sanitising_follows_upstream() {
        let id = u("00000000-0000-0000-0000-000000000001");
        let suffix = short_id(id);
        assert_eq!(
            stack_name("My_Cluster.Name!", id),
            format!("my-cluster-name-{suffix}")
        );
        // Truncated to 30 characters before sanitising.
        let long = "a".repeat(40);
        assert_eq!(
            stack_name(&long, id),
            format!("{}-{suffix}", "a".repeat(30))
        );
    }

    #[test]
    fn always_starts_with_a_letter() {
        let id = u("00000000-0000-0000-0000-000000000002");
        let suffix = short_id(id);
        assert_eq!(stack_name("", id), format!("k8s-{suffix}"));
        assert_eq!(stack_name("!!!", id), format!("k8s-{suffix}"));
        assert_eq!(stack_name("9lives", id), format!("k8s-9lives-{suffix}"));
        assert_eq!(stack_name("_x", id), format!("k8s-x-{suffix}"));
        assert_eq!(stack_name("ünïcode", id), format!("ncode-{suffix}"));
    }

    #[test]
    fn matches_heats_regex() {
        let names = [
            "",
            "-",
            "9",
            "a",
            "Z_z.z-z",
            "ü",
            "x".repeat(300).as_str(),
            "日本語",
            "a b c",
            "__..--",
        ]
        .map(str::to_string);
        for n in names {
            for _ in 0..5 {
                let s = stack_name(&n, Uuid::new_v4());
                assert!(is_valid_stack_name(&s), "{s:?} from {n:?}");
                let s = nodegroup_stack_name(&n, &n, Uuid::new_v4());
                assert!(is_valid_stack_name(&s), "{s:?} from {n:?}");
            }
        }
        assert!(!is_valid_stack_name("1abc"));
        assert!(!is_valid_stack_name(""));
        assert!(!is_valid_stack_name("a b"));
    }
}
