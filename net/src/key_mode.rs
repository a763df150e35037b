//! Who may read a private key file, by PostgreSQL's rule for its server key: a key the running
//! user owns must be closed to group and others (`chmod 600`); a key root owns may also be
//! read by its group. The second case is how Kubernetes mounts a Secret for a pod with an
//! `fsGroup`: `root:<fsGroup>` mode 0440 whatever `defaultMode` says, the only way a non-root
//! container can read it without a shell to copy it.

/// Why `meta`'s mode lets too many read the key, or `None` when it is closed enough.
#[cfg(unix)]
pub fn too_open(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = meta.permissions().mode() & 0o777;
    let (closed, also) = match meta.uid() {
        0 => (0o037, " (owned by root, group read is allowed too: 640)"),
        _ => (0o077, ""),
    };
    (mode & closed != 0)
        .then(|| format!("mode {mode:o} lets others read the key; chmod 600 it{also}"))
}

#[cfg(not(unix))]
pub fn too_open(_meta: &std::fs::Metadata) -> Option<String> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::too_open;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn owner_only_always_passes_and_others_never() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "k").unwrap();
        let mode = |m| {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(m)).unwrap();
            too_open(&std::fs::metadata(&f).unwrap())
        };
        assert_eq!(mode(0o600), None);
        assert_eq!(mode(0o400), None);
        assert!(mode(0o604).is_some());
        assert!(mode(0o644).is_some());
        let root = std::fs::metadata(&f).unwrap().uid() == 0;
        // Group read: allowed for a root-owned key only (a Kubernetes Secret with fsGroup).
        assert_eq!(mode(0o440).is_none(), root);
        assert_eq!(mode(0o640).is_none(), root);
        assert!(mode(0o660).is_some(), "group write is never allowed");
    }
}
