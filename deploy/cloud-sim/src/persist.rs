//! Optional persistence of Heat stacks, Keystone tokens and created users and trusts in one
//! JSON file, written
//! (atomically, coalesced) after changes and read back at start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::error::SimError;
use crate::heat::{bump_seq, HeatState};
use crate::keystone::state::IdentityState;
use crate::keystone::tokens::TokenRecord;
use crate::util::lock;
use crate::Sim;

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    tokens: HashMap<String, TokenRecord>,
    heat: HeatState,
    // Absent in files written before users and trusts existed.
    #[serde(default)]
    identity: IdentityState,
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    tokens: &'a HashMap<String, TokenRecord>,
    heat: &'a HeatState,
    identity: &'a IdentityState,
}

fn file_err(path: &Path, message: impl Into<String>) -> SimError {
    SimError::StateFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Tokens, Heat state and created users/trusts read from a state file.
pub(crate) type Loaded = (HashMap<String, TokenRecord>, HeatState, IdentityState);

/// Read a state file; `Ok(None)` when it does not exist yet.
pub(crate) fn load(path: &Path) -> Result<Option<Loaded>, SimError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_err(path, e.to_string())),
    };
    let snap: Snapshot = serde_json::from_str(&text).map_err(|e| file_err(path, e.to_string()))?;
    if snap.version != VERSION {
        return Err(file_err(
            path,
            format!("unsupported version {}", snap.version),
        ));
    }
    let max_seq = snap
        .heat
        .stacks
        .values()
        .flat_map(|s| std::iter::once(s.seq).chain(s.events.iter().map(|e| e.seq)))
        .max()
        .unwrap_or(0);
    bump_seq(max_seq);
    Ok(Some((snap.tokens, snap.heat, snap.identity)))
}

/// Write the current state (temp file + rename).
pub(crate) fn save(sim: &Sim) -> Result<(), SimError> {
    let Some(path) = &sim.state_file else {
        return Ok(());
    };
    let (tokens, identity) = {
        let ks = lock(&sim.keystone);
        (ks.tokens.clone(), ks.ident.clone())
    };
    let text = {
        let heat = lock(&sim.heat);
        serde_json::to_string(&SnapshotRef {
            version: VERSION,
            tokens: &tokens,
            heat: &heat,
            identity: &identity,
        })
        .map_err(|e| file_err(path, e.to_string()))?
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| file_err(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e.to_string()))?;
    Ok(())
}

/// The background writer: waits for change notifications and saves, coalescing bursts.
pub(crate) fn spawn_writer(sim: Arc<Sim>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Coalesce bursts; with a large state, back off so that saving never takes more than
        // about a fifth of the time.
        let mut pause = Duration::from_millis(100);
        loop {
            sim.persist_notify.notified().await;
            tokio::time::sleep(pause).await;
            let s = sim.clone();
            let started = std::time::Instant::now();
            let res = tokio::task::spawn_blocking(move || save(&s)).await;
            pause =
                (started.elapsed() * 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "saving state failed"),
                Err(e) => tracing::warn!(error = %e, "state writer task failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_state_file_from_before_users_and_trusts_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let old = serde_json::json!({"version": VERSION, "tokens": {},
            "heat": serde_json::to_value(HeatState::default()).unwrap()});
        std::fs::write(&path, old.to_string()).unwrap();
        let (tokens, _, identity) = load(&path).unwrap().unwrap();
        assert!(tokens.is_empty() && identity.users.is_empty() && identity.trusts.is_empty());
    }
}
