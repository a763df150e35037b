//! Linearizability of one cluster's history (Wing & Gong's search with Lowe's memoisation, as
//! Porcupine does it): is there one order of the calls, each taking effect at an instant between
//! its invoke and its answer, in which every answer is what the model below would give?
//!
//! Definite refusals (`Fail`) changed nothing and are left out. A call whose outcome is unknown
//! may take effect at any instant after its invoke, or never: its answer is placed at infinity
//! and the search succeeds once every call that was answered is placed.
//!
//! The model is a cluster as the API shows it: absent, present with its default worker count,
//! deleting (`DELETE_*`), gone. Two transitions happen without a client call and are allowed
//! where the system makes them: a delete finishes (a read sees 404 after `DELETE_*`), and an
//! update or resize that failed puts the previous count back (reference §6.6): a read may see the count
//! before the last accepted update only together with the status `UPDATE_FAILED`, and after
//! that never the newer count again.
//!
//! A nodegroup fits it as a cluster does (its resize fails the same way), with one more
//! transition: its cluster's delete, recorded in its history too, shows it `DELETE_*` then
//! absent, or leaves it absent if it never existed.
//!
//! A template fits the same model as a register: its `docker_volume_size` is the count, and its
//! reads never show `UPDATE_FAILED` or `DELETE_*`, so neither transition can be taken for it.
use super::history::{Call, Op, Outcome, Seen};
use std::collections::HashSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Absent,
    /// `revert`: the count a failed update would put back.
    Present {
        node_count: u32,
        revert: Option<u32>,
    },
    Deleting,
    Gone,
}

/// The model's answer to `call` seen as `seen` in `state`: the next state, or `None` if no
/// correct system could have answered so.
pub fn step(state: State, call: &Call, seen: Option<&Seen>) -> Option<State> {
    use State::*;
    match (call, state) {
        (Call::Create { node_count }, Absent) => Some(Present {
            node_count: *node_count,
            revert: None,
        }),
        (Call::Create { .. }, _) => None,
        (Call::Update { node_count: n }, Present { node_count, revert }) => Some(Present {
            node_count: *n,
            // An update to the same count is answered without an operation.
            revert: if *n == node_count {
                revert
            } else {
                Some(node_count)
            },
        }),
        (Call::Update { .. }, _) => None,
        // Always an operation, even to the same count; its failure puts back the count it
        // found, which may be that of the update it superseded.
        (Call::Resize { node_count: n }, Present { node_count, .. }) => Some(Present {
            node_count: *n,
            revert: Some(node_count),
        }),
        (Call::Resize { .. }, _) => None,
        (Call::Delete, Present { .. } | Deleting) => Some(Deleting),
        (Call::Delete, _) => None,
        // Its cluster's delete: whatever the nodegroup's state, it goes (if it ever was).
        (Call::ClusterDelete, Present { .. } | Deleting) => Some(Deleting),
        (Call::ClusterDelete, Absent | Gone) => Some(state),
        (Call::Read | Call::List, _) => read(state, seen?),
    }
}

fn read(state: State, seen: &Seen) -> Option<State> {
    use State::*;
    let (n, status) = match seen {
        Seen::Absent => {
            return match state {
                Absent | Gone => Some(state),
                Deleting => Some(Gone),
                Present { .. } => None,
            }
        }
        Seen::Present { node_count, status } => (*node_count, status.as_str()),
    };
    let deleting = status.starts_with("DELETE_");
    match state {
        Deleting if deleting => Some(Deleting),
        Present { node_count, revert } if !deleting && n == node_count => {
            Some(Present { node_count, revert })
        }
        Present {
            revert: Some(r), ..
        } if status == "UPDATE_FAILED" && n == r => Some(Present {
            node_count: r,
            revert: None,
        }),
        _ => None,
    }
}

/// Why a history is not linearizable: the longest prefix of answered calls the search could
/// place, and the first answered call it could not.
#[derive(Clone, Debug)]
pub struct Violation {
    pub object: String,
    pub placed: usize,
    pub stuck_at: Option<Op>,
}

/// Stops a pathological history from running the search forever; such an object is reported
/// as unchecked, not as passed.
const MAX_STEPS: u64 = 5_000_000;

#[derive(Debug)]
pub enum Verdict {
    Linearizable,
    NotLinearizable(Violation),
    /// The search hit `MAX_STEPS`.
    Unchecked,
}

/// One entry of the event list: a call or an answer of op `op`.
#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    call: bool,
    prev: usize,
    next: usize,
}

/// Checks the history of one object (all ops must name the same object).
pub fn check(ops: &[Op]) -> Verdict {
    let ops: Vec<&Op> = ops.iter().filter(|o| o.outcome != Outcome::Fail).collect();
    if ops.is_empty() {
        return Verdict::Linearizable;
    }
    let object = ops[0].object.clone();
    // Events by time; at a tie, calls first (the more permissive order). Unknown answers last.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, o) in ops.iter().enumerate() {
        events.push((o.invoke_us, true, i));
        let end = match o.outcome {
            Outcome::Unknown => u64::MAX,
            _ => o.complete_us.max(o.invoke_us),
        };
        events.push((end, false, i));
    }
    events.sort_by_key(|&(t, call, i)| (t, !call, i));
    // A doubly linked list with a head sentinel at index 0.
    let n = events.len();
    let mut list: Vec<Entry> = Vec::with_capacity(n + 1);
    list.push(Entry {
        op: usize::MAX,
        call: false,
        prev: 0,
        next: if n > 0 { 1 } else { 0 },
    });
    let mut call_at = vec![0usize; ops.len()];
    let mut ret_at = vec![0usize; ops.len()];
    for (k, &(_, call, op)) in events.iter().enumerate() {
        let idx = k + 1;
        list.push(Entry {
            op,
            call,
            prev: idx - 1,
            next: if idx < n { idx + 1 } else { 0 },
        });
        if call {
            call_at[op] = idx;
        } else {
            ret_at[op] = idx;
        }
    }
    let answered = |i: usize| ops[i].outcome == Outcome::Ok;
    let mut definite_left = (0..ops.len()).filter(|&i| answered(i)).count();
    let words = ops.len().div_ceil(64);
    let mut placed = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = State::Absent;
    let mut best = 0usize;
    let mut best_stuck: Option<usize> = None;
    let mut entry = list[0].next;
    let mut steps = 0u64;

    let unlink = |list: &mut Vec<Entry>, i: usize| {
        let (p, nx) = (list[i].prev, list[i].next);
        list[p].next = nx;
        list[nx].prev = p;
    };
    let relink = |list: &mut Vec<Entry>, i: usize| {
        let (p, nx) = (list[i].prev, list[i].next);
        list[p].next = i;
        list[nx].prev = i;
    };

    loop {
        if definite_left == 0 {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > MAX_STEPS {
            return Verdict::Unchecked;
        }
        if entry == 0 {
            // Only unknown calls' answers remain ahead (at infinity) with definite calls
            // still unplaced: impossible, since a definite answer precedes infinity. Guard.
            return Verdict::NotLinearizable(Violation {
                object,
                placed: best,
                stuck_at: best_stuck.map(|i| ops[i].clone()),
            });
        }
        let e = list[entry];
        if e.call {
            let op = ops[e.op];
            let next = step(state, &op.call, op.seen.as_ref());
            let mut moved = false;
            if let Some(s) = next {
                let mut key = placed.clone();
                key[e.op / 64] |= 1 << (e.op % 64);
                if seen.insert((key.clone(), s)) {
                    stack.push((entry, state));
                    state = s;
                    placed = key;
                    unlink(&mut list, call_at[e.op]);
                    unlink(&mut list, ret_at[e.op]);
                    if answered(e.op) {
                        definite_left -= 1;
                    }
                    if stack.len() > best {
                        best = stack.len();
                        best_stuck = None;
                    }
                    entry = list[0].next;
                    moved = true;
                }
            }
            if !moved {
                entry = e.next;
            }
        } else {
            // An answer reached before its call was placed: undo the last placement.
            if stack.len() == best && best_stuck.is_none() {
                best_stuck = Some(e.op);
            }
            let Some((at, prior)) = stack.pop() else {
                return Verdict::NotLinearizable(Violation {
                    object,
                    placed: best,
                    stuck_at: best_stuck.map(|i| ops[i].clone()),
                });
            };
            let op = list[at].op;
            relink(&mut list, ret_at[op]);
            relink(&mut list, call_at[op]);
            placed[op / 64] &= !(1 << (op % 64));
            if answered(op) {
                definite_left += 1;
            }
            state = prior;
            entry = list[at].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, t: (u64, u64), outcome: Outcome, seen: Option<Seen>) -> Op {
        Op {
            client: 0,
            object: "c".into(),
            kind: Default::default(),
            call,
            invoke_us: t.0,
            complete_us: t.1,
            outcome,
            status: 0,
            seen,
            detail: String::new(),
        }
    }
    fn present(n: u32) -> Option<Seen> {
        Some(Seen::present(n, "UPDATE_COMPLETE"))
    }
    fn ok(v: Verdict) -> bool {
        matches!(v, Verdict::Linearizable)
    }

    #[test]
    fn a_sequential_history_is_linearizable() {
        let h = vec![
            op(Call::Read, (0, 1), Outcome::Ok, Some(Seen::Absent)),
            op(Call::Create { node_count: 1 }, (2, 3), Outcome::Ok, None),
            op(Call::Read, (4, 5), Outcome::Ok, present(1)),
            op(Call::Update { node_count: 3 }, (6, 7), Outcome::Ok, None),
            op(Call::Read, (8, 9), Outcome::Ok, present(3)),
            op(Call::Delete, (10, 11), Outcome::Ok, None),
            op(
                Call::Read,
                (12, 13),
                Outcome::Ok,
                Some(Seen::present(3, "DELETE_IN_PROGRESS")),
            ),
            op(Call::Read, (14, 15), Outcome::Ok, Some(Seen::Absent)),
        ];
        assert!(ok(check(&h)));
    }

    /// The planted stale read: after an acknowledged update to 3, a later read sees 1.
    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_caught() {
        let h = vec![
            op(Call::Create { node_count: 1 }, (0, 1), Outcome::Ok, None),
            op(Call::Update { node_count: 3 }, (2, 3), Outcome::Ok, None),
            op(Call::Read, (4, 5), Outcome::Ok, present(3)),
            op(Call::Update { node_count: 5 }, (6, 7), Outcome::Ok, None),
            op(Call::Read, (8, 9), Outcome::Ok, present(3)),
        ];
        match check(&h) {
            Verdict::NotLinearizable(v) => {
                let stuck = v.stuck_at.expect("the op it stuck at");
                assert_eq!(stuck.invoke_us, 8, "{stuck:?}");
            }
            other => panic!("not caught: {other:?}"),
        }
    }

    /// A template as a register (reads show no status), and listings as reads: a listing that
    /// still shows a template's old size, or a deleted cluster, after the write was answered.
    #[test]
    fn stale_template_reads_and_stale_listings_are_caught() {
        let size = |n| Some(Seen::present(n, ""));
        let template = vec![
            op(Call::Create { node_count: 10 }, (0, 1), Outcome::Ok, None),
            op(Call::Update { node_count: 20 }, (2, 3), Outcome::Ok, None),
            op(Call::Read, (4, 5), Outcome::Ok, size(20)),
            op(Call::Delete, (6, 7), Outcome::Ok, None),
            op(Call::Read, (8, 9), Outcome::Ok, Some(Seen::Absent)),
        ];
        assert!(ok(check(&template)));
        let mut stale = template.clone();
        stale[2].seen = size(10);
        assert!(!ok(check(&stale)), "old size after the update");
        let mut back = template.clone();
        back.push(op(Call::Read, (10, 11), Outcome::Ok, size(20)));
        assert!(
            !ok(check(&back)),
            "present after the delete and a read of its absence"
        );

        let listed = vec![
            op(Call::Create { node_count: 2 }, (0, 1), Outcome::Ok, None),
            op(Call::List, (2, 3), Outcome::Ok, present(2)),
            op(Call::Delete, (4, 5), Outcome::Ok, None),
            op(Call::List, (6, 7), Outcome::Ok, Some(Seen::Absent)),
        ];
        assert!(ok(check(&listed)));
        let mut stale = listed.clone();
        stale[3].seen = present(2);
        assert!(!ok(check(&stale)), "listed as it was before the delete");
    }

    /// A nodegroup goes with its cluster: deleting, then absent; one that never existed stays
    /// absent; one seen alive after its cluster's delete was answered is caught.
    #[test]
    fn a_cluster_delete_takes_its_nodegroups() {
        let h = vec![
            op(Call::Create { node_count: 2 }, (0, 1), Outcome::Ok, None),
            op(Call::Resize { node_count: 3 }, (2, 3), Outcome::Ok, None),
            op(Call::ClusterDelete, (4, 5), Outcome::Ok, None),
            op(
                Call::Read,
                (6, 7),
                Outcome::Ok,
                Some(Seen::present(3, "DELETE_IN_PROGRESS")),
            ),
            op(Call::Read, (8, 9), Outcome::Ok, Some(Seen::Absent)),
        ];
        assert!(ok(check(&h)));
        let never = vec![
            op(
                Call::Create { node_count: 2 },
                (0, 1),
                Outcome::Unknown,
                None,
            ),
            op(Call::ClusterDelete, (4, 5), Outcome::Ok, None),
            op(Call::Read, (8, 9), Outcome::Ok, Some(Seen::Absent)),
        ];
        assert!(ok(check(&never)));
        let mut alive = h.clone();
        alive[3].seen = present(3);
        assert!(!ok(check(&alive)));
    }

    #[test]
    fn a_lost_acknowledged_create_and_a_resurrection_are_caught() {
        let lost = vec![
            op(Call::Create { node_count: 1 }, (0, 1), Outcome::Ok, None),
            op(Call::Read, (2, 3), Outcome::Ok, Some(Seen::Absent)),
        ];
        assert!(!ok(check(&lost)));
        let back = vec![
            op(Call::Create { node_count: 1 }, (0, 1), Outcome::Ok, None),
            op(Call::Delete, (2, 3), Outcome::Ok, None),
            op(Call::Read, (4, 5), Outcome::Ok, Some(Seen::Absent)),
            op(Call::Read, (6, 7), Outcome::Ok, present(1)),
        ];
        assert!(!ok(check(&back)));
    }

    #[test]
    fn concurrent_calls_may_take_effect_in_either_order() {
        // The read overlaps the update: it may see either count.
        for seen in [1, 3] {
            let h = vec![
                op(Call::Create { node_count: 1 }, (0, 1), Outcome::Ok, None),
                op(Call::Update { node_count: 3 }, (2, 10), Outcome::Ok, None),
                op(Call::Read, (3, 4), Outcome::Ok, present(seen)),
            ];
            assert!(ok(check(&h)), "saw {seen}");
        }
    }

    #[test]
    fn an_unknown_call_may_happen_late_or_never_and_a_refusal_never() {
        let base = || {
            vec![
                op(Call::Create { node_count: 1 }, (0, 1), Outcome::Ok, None),
                op(
                    Call::Update { node_count: 4 },
                    (2, 3),
                    Outcome::Unknown,
                    None,
                ),
            ]
        };
        let mut late = base();
        late.push(op(Call::Read, (5, 6), Outcome::Ok, present(1)));
        late.push(op(Call::Read, (7, 8), Outcome::Ok, present(4)));
        assert!(ok(check(&late)));
        let mut never = base();
        never.push(op(Call::Read, (9, 10), Outcome::Ok, present(1)));
        assert!(ok(check(&never)));
        let refused = vec![
            op(Call::Create { node_count: 1 }, (0, 1), Outcome::Ok, None),
            op(Call::Update { node_count: 4 }, (2, 3), Outcome::Fail, None),
            op(Call::Read, (5, 6), Outcome::Ok, present(4)),
        ];
        assert!(!ok(check(&refused)));
    }

    #[test]
    fn a_failed_update_puts_the_count_back_once() {
        let mut h = vec![
            op(Call::Create { node_count: 2 }, (0, 1), Outcome::Ok, None),
            op(Call::Update { node_count: 5 }, (2, 3), Outcome::Ok, None),
            op(Call::Read, (4, 5), Outcome::Ok, present(5)),
            op(
                Call::Read,
                (6, 7),
                Outcome::Ok,
                Some(Seen::present(2, "UPDATE_FAILED")),
            ),
        ];
        assert!(ok(check(&h)));
        // Back to 5 after the revert was seen: a stale read.
        h.push(op(Call::Read, (8, 9), Outcome::Ok, present(5)));
        assert!(!ok(check(&h)));
    }

    /// A resize that supersedes a running update and then fails puts back the update's count,
    /// not the one before it; a resize of a cluster that is not there is no resize.
    #[test]
    fn a_failed_resize_puts_back_the_count_it_found() {
        let mut h = vec![
            op(Call::Create { node_count: 2 }, (0, 1), Outcome::Ok, None),
            op(Call::Update { node_count: 5 }, (2, 3), Outcome::Ok, None),
            op(Call::Resize { node_count: 1 }, (4, 5), Outcome::Ok, None),
            op(Call::Read, (6, 7), Outcome::Ok, present(1)),
            op(
                Call::Read,
                (8, 9),
                Outcome::Ok,
                Some(Seen::present(5, "UPDATE_FAILED")),
            ),
        ];
        assert!(ok(check(&h)));
        // The count before the update is not what a failed resize puts back.
        h[4] = op(
            Call::Read,
            (8, 9),
            Outcome::Ok,
            Some(Seen::present(2, "UPDATE_FAILED")),
        );
        assert!(!ok(check(&h)));
        let nothing = vec![
            op(Call::Resize { node_count: 1 }, (0, 1), Outcome::Ok, None),
            op(Call::Read, (2, 3), Outcome::Ok, Some(Seen::Absent)),
        ];
        assert!(!ok(check(&nothing)));
    }
}
