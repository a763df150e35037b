//! Taking a backup: every group from its leader, then the manifest.
use super::{fail, file_name, hex, GroupFile, Manifest, FORMAT, MANIFEST};
use crate::membership::meta::MetaState;
use crate::node::ConductorError;
use magnum_proto::version::FEATURE_VERSION;
use magnum_proto::wire::{group_export_path, EXPORT_APPLIED_HEADER, EXPORT_PAIRS_HEADER};
use magnum_proto::ConductorClient;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Rounds over a group's replicas while none answers as leader (an election under way).
const ROUNDS: usize = 40;
const PAUSE: Duration = Duration::from_millis(250);
/// One group's transfer, however large.
const TRANSFER: Duration = Duration::from_secs(600);

/// Writes a backup of the deployment `client` reaches into `out` (new or empty).
pub async fn take(client: &ConductorClient, out: &Path) -> Result<Manifest, ConductorError> {
    let io = |what: &str, e: std::io::Error| fail(format!("{what} {}: {e}", out.display()));
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|e| io("read", e))?;
        if entries.next().is_some() {
            return Err(fail(format!("{} is not empty", out.display())));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| io("create", e))?;
    let pv = client
        .placement()
        .await
        .map_err(|e| fail(format!("reading the placement: {e}")))?;
    let mut groups = Vec::new();
    for group in std::iter::once(0).chain(1..=u64::from(pv.shards)) {
        let replicas: Vec<String> = pv
            .nodes
            .iter()
            .filter(|n| group == 0 || pv.groups.get(&group).is_some_and(|s| s.contains(&n.id)))
            .map(|n| n.service.clone())
            .collect();
        let f = fetch_group(client.http(), &replicas, group, out).await?;
        tracing::info!(
            group,
            applied = f.applied_index,
            pairs = f.pairs,
            bytes = f.bytes,
            "backed up"
        );
        groups.push(f);
    }
    let mut meta = MetaState::default();
    super::load_file(&mut meta, &out.join(file_name(0)))
        .map_err(|e| fail(format!("meta group file: {e}")))?;
    let layout = meta
        .bootstrap
        .clone()
        .ok_or_else(|| fail("the meta group has no bootstrap record: not a deployment yet"))?;
    let manifest = Manifest {
        format: FORMAT,
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| fail(e.to_string()))?,
        magnum_version: env!("CARGO_PKG_VERSION").to_string(),
        feature_version: FEATURE_VERSION,
        cluster_version: meta.cluster_version(),
        shards: layout.shards,
        hash: layout.hash,
        replicas: layout.replicas,
        groups,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| fail(e.to_string()))?;
    let tmp = out.join(format!("{MANIFEST}.partial"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, out.join(MANIFEST))?;
        std::fs::File::open(out)?.sync_all()
    };
    write().map_err(|e| io("write the manifest in", e))?;
    Ok(manifest)
}

/// Asks the group's replicas in turn until its leader answers, and saves what it sends.
async fn fetch_group(
    http: &magnum_net::InternalClient,
    replicas: &[String],
    group: u64,
    out: &Path,
) -> Result<GroupFile, ConductorError> {
    let path = group_export_path(group);
    let mut last = String::from("no replica");
    for _ in 0..ROUNDS {
        for addr in replicas {
            let get = |h: &reqwest::Client, url| h.get(url).timeout(TRANSFER);
            let resp = match http.send(addr, &path, get).await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
            };
            if resp.status().is_success() {
                return save(resp, group, out).await;
            }
            let status = resp.status();
            last = format!("{addr}: {status} {}", resp.text().await.unwrap_or_default());
            // A certificate without the operator role: asking again will not help.
            if status == reqwest::StatusCode::FORBIDDEN {
                return Err(fail(format!("group {group}: {last}")));
            }
        }
        tokio::time::sleep(PAUSE).await;
    }
    Err(fail(format!("group {group}: no leader answered ({last})")))
}

async fn save(
    mut resp: reqwest::Response,
    group: u64,
    out: &Path,
) -> Result<GroupFile, ConductorError> {
    let header = |name: &str| -> Result<u64, ConductorError> {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| fail(format!("group {group}: the answer lacks {name}")))
    };
    let (applied_index, pairs) = (header(EXPORT_APPLIED_HEADER)?, header(EXPORT_PAIRS_HEADER)?);
    let name = file_name(group);
    let (tmp, dest) = (out.join(format!("{name}.partial")), out.join(&name));
    let io = |e: std::io::Error| fail(format!("group {group}: {e}"));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    let mut sha = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| fail(format!("group {group}: transfer: {e}")))?
    {
        sha.update(&chunk);
        file.write_all(&chunk).map_err(io)?;
        bytes += chunk.len() as u64;
    }
    file.sync_all().map_err(io)?;
    // The trailer's count and checksum: a transfer cut short is caught here, not at restore.
    let mut read = 0u64;
    for p in magnum_raft::backup::read_pairs(&tmp).map_err(io)? {
        p.map_err(|e| fail(format!("group {group}: received file: {e}")))?;
        read += 1;
    }
    if read != pairs {
        return Err(fail(format!(
            "group {group}: received {read} pairs, the leader sent {pairs}"
        )));
    }
    std::fs::rename(&tmp, &dest).map_err(io)?;
    Ok(GroupFile {
        group,
        file: name,
        applied_index,
        pairs,
        bytes,
        sha256: hex(&sha.finalize()),
    })
}
