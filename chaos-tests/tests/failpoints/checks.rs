//! What each case checks after the operation ended: cloud-sim's Heat and Keystone ledgers.
use super::{stacks_named, Case, Deployment, Env, Op, NODEGROUP, UPGRADE_BATCH, UPGRADE_TAG};
use serde_json::Value;
use std::collections::BTreeSet;

/// Exactly one accepted stack create per stack name (the cluster's, and its nodegroup's for the
/// nodegroup cases); a live cluster stack with the intended worker count, or none after a
/// delete; the nodegroup's stack live after its create, gone after its delete.
pub async fn check_ledger(env: &Env, case: &Case) -> Result<(), String> {
    let all = env.d.sim_stacks().await;
    let stacks = stacks_named(&env.d, &case.name).await;
    let ng_prefix = format!("{}-{NODEGROUP}-", case.name);
    let is_ng = |s: &Value| {
        s["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(&ng_prefix))
    };
    let names: BTreeSet<&str> = stacks.iter().filter_map(|s| s["name"].as_str()).collect();
    for name in &names {
        let creates = all["creates_by_name"][name].as_u64().unwrap_or(0);
        if creates != 1 {
            return Err(format!("{creates} stack creates accepted for {name}"));
        }
    }
    let ng_names = names.iter().filter(|n| n.starts_with(&ng_prefix)).count();
    let has_ng = matches!(case.op, Op::NodeGroupCreate | Op::NodeGroupDelete);
    if names.len() - ng_names != 1 || ng_names != usize::from(has_ng) {
        return Err(format!("unexpected stack names {names:?}"));
    }
    let live: Vec<&Value> = stacks.iter().filter(|s| s["deleted"] != true).collect();
    let live_ng = live.iter().filter(|s| is_ng(s)).count();
    if live_ng != usize::from(case.op == Op::NodeGroupCreate) {
        return Err(format!("{live_ng} live nodegroup stacks: {live:?}"));
    }
    let live_cluster: Vec<&&Value> = live.iter().filter(|s| !is_ng(s)).collect();
    if case.op == Op::Delete {
        return match live_cluster.as_slice() {
            [] => Ok(()),
            l => Err(format!("orphan stack after delete: {l:?}")),
        };
    }
    let [stack] = live_cluster.as_slice() else {
        return Err(format!("expected one live cluster stack, got {live:?}"));
    };
    let want = if matches!(case.op, Op::Update | Op::Resize) {
        2
    } else {
        1
    };
    let params = stack_parameters(env, case.project, stack).await?;
    let got = number(&params["number_of_minions"]).ok_or("no number_of_minions")?;
    if got != want {
        return Err(format!("stack number_of_minions {got}, intent {want}"));
    }
    if case.op == Op::Upgrade {
        // Every version parameter carries the new tag, nodes replaced per the asked batch size.
        for k in ["kube_tag", "master_kube_tag", "minion_kube_tag"] {
            if params[k] != UPGRADE_TAG {
                return Err(format!("stack {k} {}, want {UPGRADE_TAG}", params[k]));
            }
        }
        let batch = number(&params["update_max_batch_size"]);
        if batch != Some(UPGRADE_BATCH) {
            return Err(format!(
                "stack update_max_batch_size {batch:?}, want {UPGRADE_BATCH}"
            ));
        }
    }
    Ok(())
}

/// Heat shows number parameters as strings.
fn number(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

pub async fn check_trustee(env: &Env, case: &Case, cluster: &str) -> Result<(), String> {
    let name = format!("{cluster}_{}", env.projects[case.project].0);
    let l = env.d.sim_keystone_ledger().await;
    let made = l["users_created"][&name].as_u64().unwrap_or(0);
    if made != 1 {
        return Err(format!("{made} trustee users made for {name}"));
    }
    let users: Vec<&Value> = l["users"]
        .as_array()
        .map(|u| u.iter().filter(|u| u["name"] == name.as_str()).collect())
        .unwrap_or_default();
    match (case.op, users.as_slice()) {
        (Op::Delete, []) => Ok(()),
        (Op::Delete, u) => Err(format!("trustee outlived its cluster: {u:?}")),
        (_, [u]) => {
            let id = u["id"].as_str().unwrap_or_default();
            let made = l["trusts_created"][id].as_u64().unwrap_or(0);
            let live = l["trusts"].as_array().map_or(0, |t| {
                t.iter().filter(|t| t["trustee_user_id"] == id).count()
            });
            if (made, live) == (1, 1) {
                Ok(())
            } else {
                Err(format!("{made} trusts made and {live} live for {name}"))
            }
        }
        (_, u) => Err(format!("expected one trustee named {name}, got {u:?}")),
    }
}

async fn stack_parameters(env: &Env, p: usize, stack: &Value) -> Result<Value, String> {
    let url = format!(
        "{}/heat-api/v1/{}/stacks/{}/{}",
        env.d.sim,
        stack["project_id"].as_str().unwrap_or_default(),
        stack["name"].as_str().unwrap_or_default(),
        stack["id"].as_str().unwrap_or_default()
    );
    let v: Value = env
        .d
        .http
        .get(url)
        .header("X-Auth-Token", &env.tokens[p])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match &v["stack"]["parameters"] {
        Value::Object(_) => Ok(v["stack"]["parameters"].clone()),
        _ => Err(format!("no stack parameters in {v}")),
    }
}

/// `(kind, "<site>:<when>")` of every site the conductors printed for stacks named `prefix*`,
/// in first-seen order.
pub fn sites_seen(d: &Deployment, prefix: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for n in 1..=3 {
        for line in d.log(&format!("conductor-{n}")).lines() {
            let Some(rest) = line.split("FAILPOINT-SITE ").nth(1) else {
                continue;
            };
            let mut it = rest.split_whitespace();
            let (Some(point), Some(stack)) = (it.next(), it.next()) else {
                continue;
            };
            if !stack.starts_with(prefix) {
                continue;
            }
            let Some((kind, site)) = point.split_once(':') else {
                continue;
            };
            let entry = (kind.to_string(), site.to_string());
            // Errors are not part of the happy path the matrix walks.
            if !seen.contains(&entry) && !site.starts_with("TransientError") {
                seen.push(entry);
            }
        }
    }
    seen
}

/// Parameter `key` of the live cluster stack of the cluster named `name`.
pub async fn live_stack_parameter(env: &Env, p: usize, name: &str, key: &str) -> Value {
    let stacks = stacks_named(&env.d, name).await;
    let ng_prefix = format!("{name}-{NODEGROUP}-");
    let live = stacks.iter().find(|s| {
        s["deleted"] != true
            && s["name"]
                .as_str()
                .is_some_and(|n| !n.starts_with(&ng_prefix))
    });
    let stack = live.expect("a live cluster stack");
    let params = stack_parameters(env, p, stack)
        .await
        .expect("its parameters");
    params[key].clone()
}
