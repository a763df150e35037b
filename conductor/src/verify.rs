//! `magnum manage verify`: every replica of every group digests its persisted state at its
//! applied index (`GET /internal/v1/groups/{g}/digest`); replicas at the same index must agree.
use magnum_proto::wire::{group_digest_path, GroupDigest};
use magnum_proto::{ConductorClient, PlacementView};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Rounds of asking while the replicas' applied indexes differ (writes in flight).
const ATTEMPTS: usize = 10;
const PAUSE: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Differ,
    Halted,
    Unreachable,
}

/// The outcome for one group.
#[derive(Clone, Debug, Serialize)]
pub struct GroupCheck {
    pub group: u64,
    pub verdict: Verdict,
    /// The index the replicas were compared at.
    pub applied_index: Option<u64>,
    /// Replicas that agree (the largest set with one digest).
    pub equal: Vec<u64>,
    /// Replicas whose digest differs from `equal`'s at the same index.
    pub differ: Vec<u64>,
    /// Replicas at another index when the rounds ran out (not compared).
    pub other_index: Vec<u64>,
    pub halted: BTreeMap<u64, String>,
    pub unreachable: Vec<u64>,
    /// When replicas differ: the first keys whose values differ (or that some lack).
    pub differing_keys: Vec<String>,
}

/// How many differing keys a report names.
const KEYS_SHOWN: usize = 10;

impl GroupCheck {
    /// Two replicas compared equal and none differs.
    pub fn passes(&self) -> bool {
        self.equal.len() >= 2 && self.differ.is_empty()
    }
}

/// Checks every group; `Err` only if the placement cannot be read.
pub async fn verify(client: &ConductorClient) -> Result<Vec<GroupCheck>, String> {
    let pv = client.placement().await.map_err(|e| e.to_string())?;
    let http = client.http();
    let mut out = Vec::new();
    for group in std::iter::once(0).chain(1..=u64::from(pv.shards)) {
        out.push(check_group(http, &pv, group).await);
    }
    Ok(out)
}

async fn fetch(
    http: &magnum_net::InternalClient,
    addr: &str,
    group: u64,
    keys: bool,
) -> Option<GroupDigest> {
    let query = if keys { "?keys=true" } else { "" };
    let path = format!("{}{query}", group_digest_path(group));
    let get = |h: &reqwest::Client, url| h.get(url).timeout(Duration::from_secs(3));
    let resp = http.send(addr, &path, get).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

async fn check_group(
    http: &magnum_net::InternalClient,
    pv: &PlacementView,
    group: u64,
) -> GroupCheck {
    let replicas: Vec<(u64, String)> = pv
        .nodes
        .iter()
        .filter(|n| group == 0 || pv.groups.get(&group).is_some_and(|s| s.contains(&n.id)))
        .map(|n| (n.id.0, n.service.clone()))
        .collect();
    let mut answers = Vec::new();
    for attempt in 0..ATTEMPTS {
        let asks = replicas
            .iter()
            .map(|(id, addr)| async move { (*id, fetch(http, addr, group, false).await) });
        answers = futures::future::join_all(asks).await;
        let mut indexes = answers
            .iter()
            .filter_map(|(_, a)| a.as_ref().filter(|d| d.halted.is_none()))
            .map(|d| d.applied_index);
        let first = indexes.next();
        if indexes.all(|i| Some(i) == first) || attempt + 1 == ATTEMPTS {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    let mut c = judge(group, &answers);
    if c.verdict == Verdict::Differ {
        let compared: Vec<&(u64, String)> = replicas
            .iter()
            .filter(|(id, _)| c.equal.contains(id) || c.differ.contains(id))
            .collect();
        let asks = compared
            .iter()
            .map(|(id, addr)| async move { (*id, fetch(http, addr, group, true).await) });
        let keyed = futures::future::join_all(asks).await;
        c.differing_keys = differing_keys(&keyed);
    }
    c
}

/// Keys whose value hash is not the same on every replica that answered (best effort: the
/// replicas may have applied more since the digests were compared).
fn differing_keys(answers: &[(u64, Option<GroupDigest>)]) -> Vec<String> {
    let maps: Vec<&BTreeMap<String, String>> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref()?.keys.as_ref())
        .collect();
    let all: std::collections::BTreeSet<&String> = maps.iter().flat_map(|m| m.keys()).collect();
    all.into_iter()
        .filter(|k| {
            let first = maps.first().and_then(|m| m.get(*k));
            maps.iter().any(|m| m.get(*k) != first)
        })
        .take(KEYS_SHOWN)
        .map(|k| {
            let per: Vec<String> = answers
                .iter()
                .map(|(n, a)| {
                    let v = a.as_ref().and_then(|d| d.keys.as_ref()?.get(k));
                    format!("{n}:{}", v.map_or("absent", String::as_str))
                })
                .collect();
            format!("{k} ({})", per.join(" "))
        })
        .collect()
}

/// Compares the running replicas at the index most of them share.
pub fn judge(group: u64, answers: &[(u64, Option<GroupDigest>)]) -> GroupCheck {
    let mut c = GroupCheck {
        group,
        verdict: Verdict::Ok,
        applied_index: None,
        equal: Vec::new(),
        differ: Vec::new(),
        other_index: Vec::new(),
        halted: BTreeMap::new(),
        unreachable: Vec::new(),
        differing_keys: Vec::new(),
    };
    let mut by_index: BTreeMap<Option<u64>, Vec<&GroupDigest>> = BTreeMap::new();
    for (node, a) in answers {
        match a {
            None => c.unreachable.push(*node),
            Some(d) => match &d.halted {
                Some(why) => {
                    c.halted.insert(*node, why.clone());
                }
                None => by_index.entry(d.applied_index).or_default().push(d),
            },
        }
    }
    // The most replicas, then the highest index.
    let best = by_index
        .iter()
        .max_by_key(|(i, ds)| (ds.len(), **i))
        .map(|(i, _)| *i);
    for (i, ds) in &by_index {
        if Some(*i) != best {
            c.other_index.extend(ds.iter().map(|d| d.node.0));
        }
    }
    if let Some(i) = best {
        c.applied_index = i;
        let mut by_digest: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for d in by_index.get(&i).into_iter().flatten() {
            by_digest.entry(&d.digest).or_default().push(d.node.0);
        }
        let mut sets: Vec<Vec<u64>> = by_digest.into_values().collect();
        sets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut sets = sets.into_iter();
        c.equal = sets.next().unwrap_or_default();
        c.differ = sets.flatten().collect();
        if c.equal.len() == 1 && !c.differ.is_empty() {
            // No majority: name every replica compared.
            c.differ.append(&mut c.equal);
            c.differ.sort_unstable();
        }
    }
    c.verdict = if !c.differ.is_empty() {
        Verdict::Differ
    } else if !c.halted.is_empty() {
        Verdict::Halted
    } else if c.equal.len() < 2 {
        Verdict::Unreachable
    } else {
        Verdict::Ok
    };
    c
}
