//! Where replicas and leaders should be: pure functions of the conductor membership and the
//! current placement, so every node computes the same answer and tests need no cluster.
use magnum_proto::{NodeEntry, NodeId, NodeState};
use std::collections::{BTreeMap, BTreeSet};

/// Group id → nodes hosting a replica.
pub type Placement = BTreeMap<u64, BTreeSet<NodeId>>;

/// Nodes that may hold replicas: every node not being removed.
fn eligible(nodes: &BTreeMap<NodeId, NodeEntry>) -> BTreeSet<NodeId> {
    nodes
        .values()
        .filter(|n| n.state != NodeState::Leaving)
        .map(|n| n.id)
        .collect()
}

fn counts(placement: &Placement, nodes: &BTreeSet<NodeId>) -> BTreeMap<NodeId, usize> {
    let mut c: BTreeMap<NodeId, usize> = nodes.iter().map(|n| (*n, 0)).collect();
    for set in placement.values() {
        for n in set {
            if let Some(v) = c.get_mut(n) {
                *v += 1;
            }
        }
    }
    c
}

/// The wanted replica sets of `groups`: `replicas` per group (fewer if there are fewer nodes),
/// none on a leaving node, counts per node differing by at most one, moving as few replicas
/// away from where they are as that allows.
pub fn desired(
    nodes: &BTreeMap<NodeId, NodeEntry>,
    current: &Placement,
    groups: &[u64],
    replicas: usize,
) -> Placement {
    let ok = eligible(nodes);
    let r = replicas.min(ok.len());
    let mut out: Placement = groups
        .iter()
        .map(|g| {
            let keep = current
                .get(g)
                .map(|s| s.intersection(&ok).copied().collect())
                .unwrap_or_default();
            (*g, keep)
        })
        .collect();
    let mut count = counts(&out, &ok);
    for g in groups {
        let Some(set) = out.get_mut(g) else { continue };
        while set.len() > r {
            // Shed the replica on the busiest node (ties: highest id).
            let Some(n) = set.iter().copied().max_by_key(|n| (count[n], *n)) else {
                break;
            };
            set.remove(&n);
            *count.entry(n).or_default() -= 1;
        }
        while set.len() < r {
            let Some(n) = ok
                .iter()
                .copied()
                .filter(|n| !set.contains(n))
                .min_by_key(|n| (count[n], *n))
            else {
                break;
            };
            set.insert(n);
            *count.entry(n).or_default() += 1;
        }
    }
    // Even out: move one replica at a time from the busiest node to the idlest one that does
    // not host that group yet. Each move lowers the spread, so this ends.
    for _ in 0..groups.len() * replicas.max(1) {
        let Some((&hi, &hi_n)) = count
            .iter()
            .max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n)))
        else {
            break;
        };
        let Some((&lo, &lo_n)) = count.iter().min_by_key(|(n, c)| (**c, **n)) else {
            break;
        };
        if hi_n <= lo_n + 1 {
            break;
        }
        let Some(set) = out
            .values_mut()
            .find(|s| s.contains(&hi) && !s.contains(&lo))
        else {
            break;
        };
        set.remove(&hi);
        set.insert(lo);
        *count.entry(hi).or_default() -= 1;
        *count.entry(lo).or_default() += 1;
    }
    out
}

/// The meta group's voters: 3, or 5 once there are five eligible nodes, keeping current voters.
pub fn meta_voters(
    nodes: &BTreeMap<NodeId, NodeEntry>,
    current: &BTreeSet<NodeId>,
) -> BTreeSet<NodeId> {
    let ok = eligible(nodes);
    let want = if ok.len() >= 5 { 5 } else { ok.len().min(3) };
    let mut v: BTreeSet<NodeId> = current.intersection(&ok).copied().collect();
    while v.len() > want {
        let Some(last) = v.iter().next_back().copied() else {
            break;
        };
        v.remove(&last);
    }
    for n in &ok {
        if v.len() >= want {
            break;
        }
        v.insert(*n);
    }
    v
}

/// One leadership move: hand `group` from its leader to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub group: u64,
    pub to: NodeId,
}

/// The next leadership transfer that spreads leaders evenly over active nodes, or `None` when
/// they are spread: first every group led by a draining or leaving node, then groups of nodes
/// leading more than their share. `voters` says which nodes can take over each group.
pub fn next_transfer(
    nodes: &BTreeMap<NodeId, NodeEntry>,
    leaders: &BTreeMap<u64, NodeId>,
    voters: &BTreeMap<u64, BTreeSet<NodeId>>,
) -> Option<Transfer> {
    let active: BTreeSet<NodeId> = nodes
        .values()
        .filter(|n| n.state == NodeState::Active)
        .map(|n| n.id)
        .collect();
    if active.is_empty() {
        return None;
    }
    let mut led: BTreeMap<NodeId, usize> = active.iter().map(|n| (*n, 0)).collect();
    for l in leaders.values() {
        if let Some(c) = led.get_mut(l) {
            *c += 1;
        }
    }
    let target = |g: u64, led: &BTreeMap<NodeId, usize>| {
        voters
            .get(&g)?
            .iter()
            .filter(|n| active.contains(n))
            .min_by_key(|n| (led.get(n).copied().unwrap_or(0), **n))
            .copied()
    };
    for (g, l) in leaders {
        if !active.contains(l) {
            if let Some(to) = target(*g, &led) {
                return Some(Transfer { group: *g, to });
            }
        }
    }
    let share = leaders.len().div_ceil(active.len());
    for (g, l) in leaders {
        let mine = led.get(l).copied().unwrap_or(0);
        if mine <= share {
            continue;
        }
        if let Some(to) = target(*g, &led) {
            if led.get(&to).copied().unwrap_or(0) + 1 < mine {
                return Some(Transfer { group: *g, to });
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
