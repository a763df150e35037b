//! Restoring: check the whole backup, then write one initial conductor's data dir.
use super::{fail, hex, Manifest, FORMAT, MANIFEST};
use crate::membership::meta::{Bootstrap, MetaCommand, MetaState};
use crate::node::{initial_layout, ConductorError};
use crate::shard::logic::ShardLogic;
use magnum_proto::version::FEATURE_VERSION;
use magnum_proto::{NodeId, ShardId};
use magnum_raft::backup::{self, Seed};
use magnum_raft::{NoStoredRows, NodeAddr, StateMachineLogic, WriteSet};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A backup that passed every check.
#[derive(Debug)]
pub struct Checked {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// The new deployment, as its conductors will be started.
#[derive(Clone, Debug)]
pub struct Target {
    /// The conductor's `--data-dir`.
    pub data_dir: PathBuf,
    pub node_id: u64,
    /// Every initial conductor of the new deployment (its `--peer` list).
    pub peers: BTreeMap<u64, NodeAddr>,
    /// Replicas per shard; the backed-up deployment's when absent.
    pub replicas: Option<u32>,
}

/// Reads and checks everything in `dir` without writing: the manifest, each file's size,
/// checksum and trailer, the shard layout, the versions, and that this build can load every
/// row. Each refusal says what is wrong.
pub fn check(dir: &Path) -> Result<Checked, ConductorError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fail(format!(
            "{} has no {MANIFEST}: not a backup, or one that did not finish",
            dir.display()
        )),
        _ => fail(format!("{}: {e}", path.display())),
    })?;
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| {
        fail(format!(
            "{}: not a manifest this build reads: {e}",
            path.display()
        ))
    })?;
    if m.format != FORMAT {
        return Err(fail(format!(
            "backup format {} (this build reads format {FORMAT})",
            m.format
        )));
    }
    if m.cluster_version > FEATURE_VERSION {
        return Err(fail(format!(
            "the backup's cluster version {} is newer than this build supports ({FEATURE_VERSION}): \
             restore with the release that took it (magnum {}) or a later one",
            m.cluster_version, m.magnum_version
        )));
    }
    let listed: Vec<u64> = m.groups.iter().map(|g| g.group).collect();
    let wanted: Vec<u64> = (0..=u64::from(m.shards)).collect();
    if listed != wanted {
        return Err(fail(format!(
            "the manifest lists groups {listed:?}; a deployment of {} shards has groups 0..={}",
            m.shards, m.shards
        )));
    }
    for g in &m.groups {
        check_file(dir, g)?;
    }
    let meta = load_meta(&dir.join(&m.groups[0].file))?;
    let b = meta
        .bootstrap
        .as_ref()
        .ok_or_else(|| fail("the meta group has no bootstrap record"))?;
    if (b.shards, &b.hash, b.replicas) != (m.shards, &m.hash, m.replicas) {
        return Err(fail(format!(
            "the manifest says {} shards ({}, {} replicas) but the meta group {} ({}, {})",
            m.shards, m.hash, m.replicas, b.shards, b.hash, b.replicas
        )));
    }
    if meta.cluster_version() != m.cluster_version {
        return Err(fail(format!(
            "the manifest says cluster version {} but the meta group {}",
            m.cluster_version,
            meta.cluster_version()
        )));
    }
    for g in &m.groups[1..] {
        let shard = ShardId(u32::try_from(g.group - 1).map_err(|e| fail(e.to_string()))?);
        let mut logic = ShardLogic::new(shard, m.shards);
        super::load_file(&mut logic, &dir.join(&g.file)).map_err(|e| {
            fail(format!(
                "group {}: rows this build cannot read: {e}",
                g.group
            ))
        })?;
    }
    Ok(Checked {
        dir: dir.to_path_buf(),
        manifest: m,
    })
}

fn check_file(dir: &Path, g: &super::GroupFile) -> Result<(), ConductorError> {
    let path = dir.join(&g.file);
    let what = |e: String| fail(format!("group {} ({}): {e}", g.group, path.display()));
    if g.file.contains('/') || g.file.contains("..") {
        return Err(what("not a file name".into()));
    }
    let mut f = std::fs::File::open(&path).map_err(|e| what(e.to_string()))?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| what(e.to_string()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        size += n as u64;
    }
    if size != g.bytes {
        return Err(what(format!(
            "{size} bytes, the manifest says {}: truncated or replaced",
            g.bytes
        )));
    }
    let sum = hex(&sha.finalize());
    if sum != g.sha256 {
        return Err(what(format!(
            "SHA-256 {sum} does not match the manifest's {}: the file is corrupt",
            g.sha256
        )));
    }
    let mut pairs = 0u64;
    for p in backup::read_pairs(&path).map_err(|e| what(e.to_string()))? {
        p.map_err(|e| what(format!("{e}: the file is corrupt")))?;
        pairs += 1;
    }
    if pairs != g.pairs {
        return Err(what(format!(
            "{pairs} pairs, the manifest says {}",
            g.pairs
        )));
    }
    Ok(())
}

fn load_meta(path: &Path) -> Result<MetaState, ConductorError> {
    let mut meta = MetaState::default();
    super::load_file(&mut meta, path)
        .map_err(|e| fail(format!("group 0: rows this build cannot read: {e}")))?;
    Ok(meta)
}

/// What [`restore`] wrote.
#[derive(Debug)]
pub struct Restored {
    /// The groups seeded in this data dir and the index each starts from.
    pub groups: Vec<(u64, u64)>,
}

/// Writes `target`'s data dir from a checked backup: the data shards placed on this node as
/// backed up, and the meta group built as a fresh bootstrap of `target.peers` would build it,
/// with the backup's shard layout and cluster version. Run it for every initial conductor
/// with the same peers; they then start (without bootstrapping) from the same state.
pub fn restore(backup: &Checked, target: &Target) -> Result<Restored, ConductorError> {
    let m = &backup.manifest;
    if !target.peers.contains_key(&target.node_id) {
        return Err(fail(format!(
            "node {} is not among the peers {:?}",
            target.node_id,
            target.peers.keys().collect::<Vec<_>>()
        )));
    }
    let raft_dir = target.data_dir.join("raft");
    if raft_dir.exists() {
        return Err(fail(format!(
            "{} already holds a conductor's data; restore writes new data dirs only",
            target.data_dir.display()
        )));
    }
    let replicas = target.replicas.unwrap_or(m.replicas);
    let (nodes, placement) = initial_layout(&target.peers, m.shards, replicas);
    // The meta group a bootstrap of these peers would write, at the backed-up version.
    let mut meta = MetaState::default();
    let mut rows = BTreeMap::new();
    let commands = [
        MetaCommand::Bootstrap(Bootstrap {
            shards: m.shards,
            hash: m.hash.clone(),
            replicas,
            cluster_version: Some(m.cluster_version),
        }),
        MetaCommand::InitPlacement {
            nodes,
            placement: placement.clone(),
        },
    ];
    for (i, cmd) in commands.iter().enumerate() {
        let payload = serde_json::to_vec(cmd).map_err(|e| fail(e.to_string()))?;
        let mut ws = WriteSet::new();
        meta.apply(i as u64 + 1, &payload, &mut ws, &NoStoredRows)
            .map_err(|e| fail(format!("building the meta group: {e}")))?;
        for (k, v) in ws.into_ops() {
            match v {
                Some(v) => rows.insert(k, v),
                None => rows.remove(&k),
            };
        }
    }
    // Owner only from the start, as the conductor keeps it: it holds every project's rows.
    let dir_err = |e: std::io::Error| fail(format!("{}: {e}", target.data_dir.display()));
    std::fs::create_dir_all(&target.data_dir).map_err(dir_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target.data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(dir_err)?;
    }
    let meta_file = target.data_dir.join("restore-meta.pairs");
    backup::write_pairs(&meta_file, rows).map_err(|e| fail(format!("meta group: {e}")))?;
    let mut seeds = vec![Seed {
        group: 0,
        members: target.peers.clone(),
        applied_index: m.groups[0].applied_index,
        file: meta_file.clone(),
    }];
    for g in &m.groups[1..] {
        let set = placement.get(&g.group).cloned().unwrap_or_default();
        if !set.contains(&NodeId(target.node_id)) {
            continue;
        }
        seeds.push(Seed {
            group: g.group,
            members: set
                .iter()
                .filter_map(|n| target.peers.get(&n.0).map(|a| (n.0, a.clone())))
                .collect(),
            applied_index: g.applied_index,
            file: backup.dir.join(&g.file),
        });
    }
    // A restored dir starts on the default engine; a conductor keeps what it finds.
    let seeded = backup::seed_data_dir(
        &raft_dir,
        target.node_id,
        magnum_raft::Engine::default(),
        &seeds,
    );
    let _ = std::fs::remove_file(&meta_file);
    seeded?;
    Ok(Restored {
        groups: seeds.iter().map(|s| (s.group, s.applied_index)).collect(),
    })
}
