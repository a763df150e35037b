//! The operations' REST calls and the wait for their terminal status.
use super::{Env, Op, NODEGROUP, UPGRADE_BATCH};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Creates cluster `name`. A 503 (no shard leader answered in time, as on a starved machine)
/// leaves the outcome unknown: the command may still commit, so the cluster is looked for by
/// name for a while before the create is sent again.
pub async fn create(env: &Env, p: usize, name: &str) -> String {
    let body = json!({"name": name, "cluster_template_id": env.templates[p],
                      "master_count": 1, "node_count": 1});
    let token = Some(env.tokens[p].as_str());
    for _ in 0..5 {
        let (s, v) = env
            .d
            .call(Method::POST, "/clusters", token, Some(body.clone()))
            .await;
        if s == 202 {
            return v["uuid"].as_str().unwrap().to_string();
        }
        assert_eq!(s, 503, "cluster create: {v}");
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (s, v) = env
                .d
                .call(Method::GET, &format!("/clusters/{name}"), token, None)
                .await;
            if s == 200 {
                return v["uuid"].as_str().unwrap().to_string();
            }
        }
    }
    panic!("cluster create {name}: conductors unavailable 5 times");
}

pub async fn set_count(env: &Env, p: usize, id: &str, n: u32) {
    let body = json!([{"op": "replace", "path": "/node_count", "value": n}]);
    let (s, v) = env
        .d
        .call(
            Method::PATCH,
            &format!("/clusters/{id}"),
            Some(&env.tokens[p]),
            Some(body),
        )
        .await;
    assert_eq!(s, 202, "PATCH node_count: {v}");
    env.d
        .wait_cluster(&env.tokens[p], id, Duration::from_secs(60), |_, v| {
            v["status"] == "UPDATE_COMPLETE" && v["node_count"] == n
        })
        .await;
}

/// Starts `op` on an existing cluster of node count 1 (update and resize go to 2).
pub async fn start_op(env: &Env, p: usize, id: &str, op: Op) {
    let token = &env.tokens[p];
    let d = &env.d;
    let (s, v) = match op {
        Op::Create => unreachable!("create has no existing cluster"),
        Op::Update => {
            let body = json!([{"op": "replace", "path": "/node_count", "value": 2}]);
            d.call(
                Method::PATCH,
                &format!("/clusters/{id}"),
                Some(token),
                Some(body),
            )
            .await
        }
        Op::Resize => {
            let rq = d
                .http
                .post(format!("{}/clusters/{id}/actions/resize", d.api))
                .json(&json!({"node_count": 2}));
            send(rq, token, "1.7").await
        }
        Op::Upgrade => {
            let body = json!({
                "cluster_template": env.upgrade_templates[p],
                "max_batch_size": UPGRADE_BATCH,
            });
            let rq = d
                .http
                .post(format!("{}/clusters/{id}/actions/upgrade", d.api))
                .json(&body);
            send(rq, token, "latest").await
        }
        Op::Delete => {
            d.call(
                Method::DELETE,
                &format!("/clusters/{id}"),
                Some(token),
                None,
            )
            .await
        }
        Op::NodeGroupCreate => {
            let rq = d
                .http
                .post(format!("{}/clusters/{id}/nodegroups", d.api))
                .json(&json!({"name": NODEGROUP, "node_count": 1}));
            send(rq, token, "latest").await
        }
        Op::NodeGroupDelete => {
            let url = format!("{}/clusters/{id}/nodegroups/{NODEGROUP}", d.api);
            send(d.http.delete(url), token, "latest").await
        }
        Op::RotateCa => {
            let url = format!("{}/certificates/{id}", d.api);
            send(d.http.patch(url), token, "latest").await
        }
        Op::RotateCredential => {
            let url = format!("{}/credentials/{id}", d.api);
            send(d.http.patch(url), token, "latest").await
        }
    };
    assert!(s == 202 || s == 204, "{op:?} on {id}: {s} {v}");
}

/// Sends `rq` with the token and microversion; the status and JSON body.
async fn send(rq: reqwest::RequestBuilder, token: &str, version: &str) -> (u16, Value) {
    let r = rq
        .header("X-Auth-Token", token)
        .header(
            "OpenStack-API-Version",
            format!("container-infra {version}"),
        )
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Waits for the terminal status `op` must end in; `Err` on a wrong one or a timeout.
pub async fn wait_terminal(env: &Env, p: usize, id: &str, op: Op) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // A pooled connection can be cut while a node crashes: ask again, it is a read.
        let path = match op {
            Op::NodeGroupCreate | Op::NodeGroupDelete => {
                format!("/clusters/{id}/nodegroups/{NODEGROUP}")
            }
            _ => format!("/clusters/{id}"),
        };
        let Some((s, v)) = get_path(env, p, &path).await else {
            if Instant::now() > deadline {
                return Err("API unreachable for 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let status = v["status"].as_str().unwrap_or("").to_string();
        match op {
            Op::Delete | Op::NodeGroupDelete if s == 404 => return Ok("gone".into()),
            Op::NodeGroupCreate if status == "CREATE_COMPLETE" => return Ok(status),
            Op::Create if status == "CREATE_COMPLETE" => return Ok(status),
            Op::RotateCa | Op::RotateCredential if status == "UPDATE_COMPLETE" => {
                return Ok(status)
            }
            Op::Update | Op::Resize if status == "UPDATE_COMPLETE" => {
                return if v["node_count"] == 2 {
                    Ok(status)
                } else {
                    Err(format!(
                        "UPDATE_COMPLETE with node_count {}",
                        v["node_count"]
                    ))
                };
            }
            // Magnum has no UPGRADE_* status (reference §6.5): an upgrade ends UPDATE_COMPLETE,
            // and the cluster must have moved to the new template.
            Op::Upgrade if status == "UPDATE_COMPLETE" => {
                let want = env.upgrade_templates[p].as_str();
                return if v["cluster_template_id"] == want {
                    Ok(status)
                } else {
                    Err(format!(
                        "{status} with cluster_template_id {}, want {want}",
                        v["cluster_template_id"]
                    ))
                };
            }
            _ if status.ends_with("_FAILED") => {
                return Err(format!("{status}: {}", v["status_reason"]))
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(format!("no terminal status after 120 s: {s} {status}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn get_path(env: &Env, p: usize, path: &str) -> Option<(u16, Value)> {
    let r = env
        .d
        .http
        .get(format!("{}{path}", env.d.api))
        .header("X-Auth-Token", &env.tokens[p])
        .header("OpenStack-API-Version", "container-infra latest")
        .send()
        .await
        .ok()?;
    let s = r.status().as_u16();
    Some((s, r.json().await.unwrap_or(Value::Null)))
}
