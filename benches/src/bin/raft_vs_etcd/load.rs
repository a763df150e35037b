//! Closed-loop load: N clients, each issuing one write at a time over a shared keep-alive
//! HTTP/JSON pool, against either the conductors (through `ConductorClient`) or etcd's gateway.
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use magnum_proto::{CommandOk, ConductorClient, RequestId, ShardCommand, ShardId, ShardRequest};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-request deadline. A point ends at most this long after its window (a request in flight
/// is awaited, not cancelled, so that no connection is torn down mid-request).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

pub enum Target {
    /// etcd's HTTP/JSON gateway, `POST /v3/kv/put`; client `i` uses `put_urls[i % n]`.
    Etcd {
        http: reqwest::Client,
        put_urls: Vec<String>,
    },
    /// Canary writes on the conductors; client `i`'s request `j` goes to `shards[(i + j) % n]`.
    Magnum {
        client: ConductorClient,
        shards: Vec<ShardId>,
    },
}

#[derive(Serialize)]
struct EtcdPut<'a> {
    key: &'a str,
    value: &'a str,
}

impl Target {
    pub fn etcd(put_urls: Vec<String>, tls: Option<&Path>) -> Result<Self> {
        // Same pool shape as ConductorClient's: keep-alive, one connection per busy client.
        let http = etcd_http(tls)?
            .connect_timeout(Duration::from_millis(500))
            .timeout(REQUEST_DEADLINE)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Target::Etcd { http, put_urls })
    }

    pub fn magnum(seeds: Vec<String>, shards: Vec<ShardId>) -> Result<Self> {
        let tls = operator_tls()?;
        let client = ConductorClient::new(seeds, REQUEST_DEADLINE, &tls)?;
        Ok(Target::Magnum { client, shards })
    }

    /// One committed write of `value` under this client's key.
    pub async fn put(&self, key: &Key, seq: u64, value: &Value) -> Result<()> {
        match self {
            Target::Etcd { http, put_urls } => {
                let put_url = put_urls
                    .get(key.client % put_urls.len().max(1))
                    .context("no etcd endpoint")?;
                let body = EtcdPut {
                    key: &key.b64,
                    value: &value.b64,
                };
                let resp = http.post(put_url).json(&body).send().await?;
                let status = resp.status();
                let v: serde_json::Value = resp.json().await?;
                // A committed put answers 200 with the header of the new revision.
                if !status.is_success() || v.get("header").is_none() {
                    bail!("etcd put: HTTP {status}: {v}");
                }
                Ok(())
            }
            Target::Magnum { client, shards } => {
                let n = shards.len().max(1) as u64;
                let shard = shards
                    .get(((key.client as u64 + seq) % n) as usize)
                    .copied()
                    .unwrap_or_default();
                let req = ShardRequest {
                    request_id: Some(RequestId::new_v4()),
                    command: ShardCommand::Canary {
                        key: key.plain.clone(),
                        value: value.plain.clone(),
                    },
                };
                match client.command(shard, &req).await? {
                    Ok(CommandOk::Done) => Ok(()),
                    other => Err(anyhow!("canary write: {other:?}")),
                }
            }
        }
    }
}

pub struct Key {
    client: usize,
    plain: String,
    b64: String,
}

impl Key {
    pub fn new(client: usize) -> Self {
        let plain = format!("bench/c{client}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&plain);
        Key { client, plain, b64 }
    }
}

/// The written value: `bytes` printable bytes (the same for both systems; etcd gets it base64'd
/// as its gateway requires).
pub struct Value {
    plain: String,
    b64: String,
}

impl Value {
    pub fn new(bytes: usize) -> Self {
        let plain: String = (0..bytes)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&plain);
        Value { plain, b64 }
    }
}

/// One measured point.
pub struct Sample {
    pub writes_per_s: f64,
    /// Latency of every write that started in the window and finished before its end (ms).
    pub latencies_ms: Vec<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Runs `clients` closed-loop writers for `warmup + window`; counts the writes that started
/// after the warm-up and completed inside the window.
pub async fn run_point(
    target: Arc<Target>,
    value: Arc<Value>,
    clients: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Sample> {
    let begin = Instant::now();
    let from = begin + warmup;
    let end = from + window;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let target = target.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let key = Key::new(c);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut seq = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let res = target.put(&key, seq, &value).await;
                seq += 1;
                let t1 = Instant::now();
                if t1 > end {
                    break;
                }
                if t0 < from {
                    continue;
                }
                match res {
                    Ok(()) => lat.push((t1 - t0).as_secs_f64() * 1e3),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut latencies_ms = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (lat, e, fe) = t.await.context("load client task")?;
        latencies_ms.extend(lat);
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    Ok(Sample {
        writes_per_s: latencies_ms.len() as f64 / window.as_secs_f64(),
        latencies_ms,
        errors,
        first_error,
    })
}

/// Nearest-rank percentile of a sorted sample, `q` in (0, 1].
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// An HTTP client for etcd's gateway: with `tls` (a directory holding `node.crt`, `node.key`
/// and `ca.crt`) it presents that client certificate and trusts only that CA, as etcd members
/// run with `--client-cert-auth` require.
pub fn etcd_http(tls: Option<&Path>) -> Result<reqwest::ClientBuilder> {
    let b = reqwest::Client::builder();
    let Some(dir) = tls else {
        return Ok(b);
    };
    let read = |f: &str| {
        let p = dir.join(f);
        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
    };
    let mut pem = read("node.crt")?;
    pem.extend(read("node.key")?);
    Ok(b.tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&read("ca.crt")?)?)
        .identity(reqwest::Identity::from_pem(&pem)?))
}

/// Finds the etcd leader's client URL among `endpoints` (maintenance status of each member).
pub async fn etcd_leader(endpoints: &[String], tls: Option<&Path>) -> Result<String> {
    let http = etcd_http(tls)?.timeout(Duration::from_secs(2)).build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for ep in endpoints {
            let url = format!("{ep}/v3/maintenance/status");
            let Ok(resp) = http.post(&url).body("{}").send().await else {
                continue;
            };
            let Ok(v) = resp.json::<serde_json::Value>().await else {
                continue;
            };
            let me = v["header"]["member_id"].as_str();
            let leader = v["leader"].as_str();
            if me.is_some() && me == leader {
                return Ok(ep.clone());
            }
        }
        if Instant::now() > deadline {
            bail!("no etcd member reports itself leader: {endpoints:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `etcdserver` version as its `/version` endpoint reports it.
pub async fn etcd_version(endpoint: &str, tls: Option<&Path>) -> Result<String> {
    let http = etcd_http(tls)?.timeout(Duration::from_secs(2)).build()?;
    let v: serde_json::Value = http
        .get(format!("{endpoint}/version"))
        .send()
        .await?
        .json()
        .await?;
    Ok(v["etcdserver"].as_str().unwrap_or("unknown").to_string())
}

/// Where the operator's certificate lives when the conductors run mutual TLS.
pub const TLS_DIR_ENV: &str = "MAGNUM_TLS_DIR";

/// The operator certificate of `MAGNUM_TLS_DIR` (local-cluster.sh's openrc sets it) when the
/// deployment runs mutual TLS; plain otherwise.
pub fn operator_tls() -> Result<magnum_net::Tls> {
    Ok(match std::env::var_os(TLS_DIR_ENV) {
        Some(dir) => magnum_net::Tls::load(
            std::path::Path::new(&dir),
            magnum_net::Mode::Strict,
            magnum_net::Role::Operator,
        )?,
        None => magnum_net::Tls::plain(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
