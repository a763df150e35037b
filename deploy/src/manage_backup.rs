//! `magnum manage backup OUT` and `magnum manage restore IN` (magnum_conductor::backup).
use crate::cli::Conductors;
use crate::manage::client;
use crate::DeployError;
use magnum_conductor::backup::{restore as restore_impl, take};
use std::path::{Path, PathBuf};

fn err(e: impl std::fmt::Display) -> DeployError {
    DeployError::Args(e.to_string())
}

pub async fn backup(target: &Conductors, out: &Path) -> Result<(), DeployError> {
    let started = std::time::Instant::now();
    let m = take::take(&client(target)?, out).await.map_err(err)?;
    for g in &m.groups {
        println!(
            "group {:>3}  index {:<8} {:>8} pairs {:>12} bytes  {}",
            g.group, g.applied_index, g.pairs, g.bytes, g.file
        );
    }
    println!(
        "backup of {} shards (cluster version {}) written to {} in {:.1} s",
        m.shards,
        m.cluster_version,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn restore(
    backup: &Path,
    check_only: bool,
    data_dir: Option<PathBuf>,
    node_id: Option<u64>,
    peers: &[String],
    replicas: Option<u32>,
) -> Result<(), DeployError> {
    let checked = restore_impl::check(backup).map_err(err)?;
    let m = &checked.manifest;
    println!(
        "backup {}: {} shards, cluster version {}, taken {} by magnum {}: every check passed",
        backup.display(),
        m.shards,
        m.cluster_version,
        m.created_at,
        m.magnum_version
    );
    if check_only {
        return Ok(());
    }
    let (Some(data_dir), Some(node_id)) = (data_dir, node_id) else {
        return Err(err("--data-dir and --node-id are required unless --check"));
    };
    let peers = crate::peers::parse(peers).map_err(DeployError::Args)?;
    let target = restore_impl::Target {
        data_dir,
        node_id,
        peers,
        replicas,
    };
    let done = restore_impl::restore(&checked, &target).map_err(err)?;
    println!(
        "node {node_id}: wrote {} with {} groups; start it with the same --peer list and the \
         sealing key of the backed-up deployment (--cert-key-file)",
        target.data_dir.display(),
        done.groups.len()
    );
    Ok(())
}
