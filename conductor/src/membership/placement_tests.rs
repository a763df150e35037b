use super::*;

fn nodes(spec: &[(u64, NodeState)]) -> BTreeMap<NodeId, NodeEntry> {
    spec.iter()
        .map(|(id, state)| {
            (
                NodeId(*id),
                NodeEntry {
                    id: NodeId(*id),
                    raft: format!("r{id}"),
                    service: format!("s{id}"),
                    state: *state,
                },
            )
        })
        .collect()
}

fn active(ids: &[u64]) -> BTreeMap<NodeId, NodeEntry> {
    nodes(
        &ids.iter()
            .map(|i| (*i, NodeState::Active))
            .collect::<Vec<_>>(),
    )
}

fn set(ids: &[u64]) -> BTreeSet<NodeId> {
    ids.iter().map(|i| NodeId(*i)).collect()
}

fn groups(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

fn per_node(p: &Placement) -> BTreeMap<NodeId, usize> {
    let mut c = BTreeMap::new();
    for s in p.values() {
        for n in s {
            *c.entry(*n).or_default() += 1;
        }
    }
    c
}

fn moved(a: &Placement, b: &Placement) -> usize {
    a.iter().map(|(g, s)| s.difference(&b[g]).count()).sum()
}

#[test]
fn three_nodes_host_everything() {
    let p = desired(&active(&[1, 2, 3]), &Placement::new(), &groups(16), 3);
    assert!(p.values().all(|s| *s == set(&[1, 2, 3])));
}

#[test]
fn adding_nodes_spreads_replicas_evenly_with_few_moves() {
    let g = groups(16);
    let p3 = desired(&active(&[1, 2, 3]), &Placement::new(), &g, 3);
    let p4 = desired(&active(&[1, 2, 3, 4]), &p3, &g, 3);
    let c = per_node(&p4);
    assert_eq!(c.values().sum::<usize>(), 48);
    assert!(
        c.values().max().unwrap() - c.values().min().unwrap() <= 1,
        "{c:?}"
    );
    assert!(p4.values().all(|s| s.len() == 3));
    // Node 4 takes its 12 replicas; nothing else moves.
    assert_eq!(moved(&p3, &p4), 12);
    let p5 = desired(&active(&[1, 2, 3, 4, 5]), &p4, &g, 3);
    let c = per_node(&p5);
    assert!(
        c.values().max().unwrap() - c.values().min().unwrap() <= 1,
        "{c:?}"
    );
    assert!(moved(&p4, &p5) <= 10);
    // Stable: recomputing changes nothing.
    assert_eq!(desired(&active(&[1, 2, 3, 4, 5]), &p5, &g, 3), p5);
}

#[test]
fn a_leaving_node_loses_every_replica_and_a_draining_one_keeps_them() {
    let g = groups(16);
    let p4 = desired(&active(&[1, 2, 3, 4]), &Placement::new(), &g, 3);
    let leaving = nodes(&[
        (1, NodeState::Active),
        (2, NodeState::Active),
        (3, NodeState::Active),
        (4, NodeState::Leaving),
    ]);
    let p = desired(&leaving, &p4, &g, 3);
    assert!(p.values().all(|s| *s == set(&[1, 2, 3])));
    let draining = nodes(&[
        (1, NodeState::Active),
        (2, NodeState::Active),
        (3, NodeState::Active),
        (4, NodeState::Draining),
    ]);
    assert_eq!(desired(&draining, &p4, &g, 3), p4);
}

#[test]
fn fewer_nodes_than_replicas_uses_them_all() {
    let p = desired(&active(&[7]), &Placement::new(), &groups(3), 3);
    assert!(p.values().all(|s| *s == set(&[7])));
}

#[test]
fn meta_voters_keep_current_ones_and_grow_to_five() {
    assert_eq!(
        meta_voters(&active(&[1, 2, 3, 4]), &set(&[2, 3, 4])),
        set(&[2, 3, 4])
    );
    assert_eq!(
        meta_voters(&active(&[1, 2, 3, 4]), &set(&[])),
        set(&[1, 2, 3])
    );
    assert_eq!(
        meta_voters(&active(&[1, 2, 3, 4, 5]), &set(&[1, 2, 3])),
        set(&[1, 2, 3, 4, 5])
    );
    let leaving = nodes(&[
        (1, NodeState::Leaving),
        (2, NodeState::Active),
        (3, NodeState::Active),
        (4, NodeState::Active),
    ]);
    assert_eq!(meta_voters(&leaving, &set(&[1, 2, 3])), set(&[2, 3, 4]));
}

#[test]
fn transfers_drain_first_then_balance() {
    let all = set(&[1, 2, 3]);
    let voters: BTreeMap<u64, BTreeSet<NodeId>> =
        groups(6).into_iter().map(|g| (g, all.clone())).collect();
    let leaders: BTreeMap<u64, NodeId> = groups(6).into_iter().map(|g| (g, NodeId(1))).collect();
    // All on node 1: move one to the idlest node.
    let t = next_transfer(&active(&[1, 2, 3]), &leaders, &voters).unwrap();
    assert_eq!(
        t,
        Transfer {
            group: 1,
            to: NodeId(2)
        }
    );
    // Balanced: nothing to do.
    let spread: BTreeMap<u64, NodeId> = groups(6)
        .into_iter()
        .map(|g| (g, NodeId(g % 3 + 1)))
        .collect();
    assert_eq!(next_transfer(&active(&[1, 2, 3]), &spread, &voters), None);
    // Node 2 drains: each of its groups moves to an active node.
    let drain = nodes(&[
        (1, NodeState::Active),
        (2, NodeState::Draining),
        (3, NodeState::Active),
    ]);
    let t = next_transfer(&drain, &spread, &voters).unwrap();
    assert_eq!(spread[&t.group], NodeId(2));
    assert_ne!(t.to, NodeId(2));
}
