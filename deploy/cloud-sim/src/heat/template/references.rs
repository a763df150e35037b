//! Reference checks of validation: references to unknown resources and dependency cycles.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::heat::intrinsics;

/// The first `get_resource`/`get_attr` naming an unknown resource, with Heat's path to it
/// (`res.Properties.key.sub[0].x`).
pub(super) fn bad_reference(
    v: &Value,
    known: &dyn Fn(&str) -> bool,
    path: String,
    depth: usize,
) -> Option<(String, String)> {
    if depth > 64 {
        return None;
    }
    if let Some(o) = v.as_object() {
        if o.len() == 1 {
            let target = match (o.get("get_resource"), o.get("get_attr")) {
                (Some(Value::String(t)), _) => Some(t),
                (_, Some(Value::Array(a))) => match a.first() {
                    Some(Value::String(t)) => Some(t),
                    _ => None,
                },
                _ => None,
            };
            if let Some(t) = target.filter(|t| !known(t)) {
                return Some((t.clone(), path));
            }
        }
        for (k, x) in o {
            let p = if intrinsics::is_function(k) {
                path.clone()
            } else {
                format!("{path}.{k}")
            };
            if let Some(found) = bad_reference(x, known, p, depth + 1) {
                return Some(found);
            }
        }
    } else if let Some(a) = v.as_array() {
        for (i, x) in a.iter().enumerate() {
            if let Some(found) = bad_reference(x, known, format!("{path}[{i}]"), depth + 1) {
                return Some(found);
            }
        }
    }
    None
}

/// The resources on (or behind) a dependency cycle, if any, as `a, b`.
pub(super) fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    // Kahn's algorithm: whatever cannot be ordered is on (or behind) a cycle.
    let mut indeg: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, deps) in graph {
        indeg.insert(
            n.as_str(),
            deps.iter().filter(|d| graph.contains_key(*d)).count(),
        );
    }
    let mut ready: Vec<&str> = indeg
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut done = BTreeSet::new();
    while let Some(n) = ready.pop() {
        done.insert(n);
        for (m, deps) in graph {
            if deps.contains(n) && !done.contains(m.as_str()) {
                if let Some(d) = indeg.get_mut(m.as_str()) {
                    *d = d.saturating_sub(1);
                    if *d == 0 {
                        ready.push(m.as_str());
                    }
                }
            }
        }
    }
    let rest: Vec<&str> = graph
        .keys()
        .map(String::as_str)
        .filter(|n| !done.contains(n))
        .collect();
    if rest.is_empty() {
        None
    } else {
        Some(rest.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles() {
        let mut g = BTreeMap::new();
        g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
        g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
        g.insert("c".to_string(), BTreeSet::new());
        assert_eq!(find_cycle(&g), Some("a, b".to_string()));
    }
}
