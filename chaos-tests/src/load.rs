//! A bounded client load of canary writes through `ConductorClient` (routing, 421 hints,
//! retries with one request id), recording every outcome with its time and latency.
use magnum_proto::{CommandOk, ConductorClient, RequestId, ShardCommand, ShardId, ShardRequest};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Instant,
    pub latency: Duration,
    pub shard: u32,
    pub key: String,
    /// `None` when acknowledged, the error otherwise.
    pub error: Option<String>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `clients` writers, each writing `prefix/<client>/<seq>` to shards in turn, pausing
    /// `pause` between writes; each write may retry for up to the client's deadline.
    pub fn start(
        client: &ConductorClient,
        shards: u32,
        clients: usize,
        prefix: &str,
        pause: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|c| {
                let (client, stop, samples) = (client.clone(), stop.clone(), samples.clone());
                let prefix = prefix.to_string();
                tokio::spawn(async move {
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let shard = ((c as u64 + seq) % u64::from(shards)) as u32;
                        let key = format!("{prefix}/{c}/{seq}");
                        let req = ShardRequest {
                            request_id: Some(RequestId::new_v4()),
                            command: ShardCommand::Canary {
                                key: key.clone(),
                                value: "v".repeat(200),
                            },
                        };
                        let t0 = Instant::now();
                        let error = match client.command(ShardId(shard), &req).await {
                            Ok(Ok(CommandOk::Done)) => None,
                            Ok(other) => Some(format!("{other:?}")),
                            Err(e) => Some(e.to_string()),
                        };
                        let s = Sample {
                            at: t0,
                            latency: t0.elapsed(),
                            shard,
                            key,
                            error,
                        };
                        samples.lock().unwrap().push(s);
                        seq += 1;
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            samples,
            tasks,
        }
    }

    /// Samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let s = self.samples.lock().unwrap().clone();
        s
    }
}

/// The `q`-quantile (0..=1) of latencies in milliseconds.
pub fn quantile_ms(samples: &[&Sample], q: f64) -> f64 {
    let mut v: Vec<f64> = samples
        .iter()
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}
