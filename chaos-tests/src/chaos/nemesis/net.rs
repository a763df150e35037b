//! Network faults on the conductors' own hosts (nftables in their namespaces), and the probe
//! of an isolated conductor.
use super::procs::nft;
use super::{Nemesis, CONDUCTORS};
use magnum_proto::ShardId;
use rand::Rng;
use std::time::Duration;

impl Nemesis {
    /// Network faults on the conductors' own hosts, made with nftables in their namespaces.
    pub(super) async fn partition(&mut self, kind: &str, hold: Duration) -> (String, String) {
        let Some(ns) = self.d.opts.netns.clone() else {
            return ("none".into(), "no private hosts: partitions skipped".into());
        };
        let n = self.pick_target().await;
        let others: Vec<String> = CONDUCTORS
            .iter()
            .filter(|&&o| o != n)
            .map(|&o| ns.conductor(o))
            .collect();
        let set = format!("{{ {} }}", others.join(", "));
        let hub = ns.hub();
        let svc = self.d.port_base + 200 + n as u16;
        let sim = self.d.port_base;
        let (rules, target): (Vec<String>, String) = match kind {
            "partition_isolate" => (
                vec![
                    format!("add rule inet chaos input ip saddr {set} drop"),
                    format!("add rule inet chaos output ip daddr {set} drop"),
                ],
                format!("conductor-{n} cut from its peers"),
            ),
            "partition_bridge" => {
                // n loses one peer; the other peer still hears both (the bridge).
                let lost = others[self.rng.gen_range(0..others.len())].clone();
                (
                    vec![
                        format!("add rule inet chaos input ip saddr {lost} drop"),
                        format!("add rule inet chaos output ip daddr {lost} drop"),
                    ],
                    format!("conductor-{n} cut from {lost}"),
                )
            }
            "partition_one_way" => (
                vec![format!("add rule inet chaos output ip daddr {set} drop")],
                format!("conductor-{n} hears its peers, they do not hear it"),
            ),
            "partition_lossy" => {
                let pct = self.rng.gen_range(20..60);
                (
                    vec![
                        format!("add rule inet chaos input ip saddr {set} numgen random mod 100 < {pct} drop"),
                        format!("add rule inet chaos output ip daddr {set} numgen random mod 100 < {pct} drop"),
                    ],
                    format!("conductor-{n} loses {pct}% of packets to and from its peers"),
                )
            }
            "partition_api" => (
                vec![
                    format!("add rule inet chaos input ip saddr {hub} tcp dport {svc} drop"),
                    format!("add rule inet chaos output ip daddr {hub} tcp sport {svc} drop"),
                ],
                format!("the API node cut from conductor-{n}"),
            ),
            _ => (
                vec![format!(
                    "add rule inet chaos output ip daddr {hub} tcp dport {sim} drop"
                )],
                format!("conductor-{n} cut from Heat and Keystone"),
            ),
        };
        let namespace = ns.namespace(n);
        let mut note = String::new();
        for r in &rules {
            if let Err(e) = nft(&namespace, r) {
                note = e;
            }
        }
        // Past every lease the isolated node held, it must serve neither writes nor reads.
        let probe_after = Duration::from_millis(1200);
        if kind == "partition_isolate" && hold > probe_after + Duration::from_millis(500) {
            tokio::time::sleep(probe_after).await;
            self.probe_minority(n).await;
            tokio::time::sleep(hold - probe_after).await;
        } else {
            tokio::time::sleep(hold).await;
        }
        if let Err(e) = nft(&namespace, "flush table inet chaos") {
            note = e;
        }
        (target, note)
    }

    /// Sends a canary write and a linearizable read of every shard straight to conductor `n`
    /// (cut from its peers), as a client that reached only the minority would.
    async fn probe_minority(&self, n: u64) {
        use magnum_proto::wire::{command_path, query_path, Envelope};
        use magnum_proto::{RequestId, ShardCommand, ShardQuery, ShardRequest};
        let http = self.d.internal_http();
        let addr = self.d.conductor_service(n);
        for shard in 0..self.shared.shards {
            let shard = ShardId(shard);
            let write = ShardRequest {
                request_id: Some(RequestId::new_v4()),
                command: ShardCommand::Canary {
                    key: format!("minority/{n}"),
                    value: self.shared.rec.now().to_string(),
                },
            };
            let read = ShardQuery::Canaries {
                prefix: "minority/".into(),
            };
            let (write, read) = (Envelope::new(&write), Envelope::new(&read));
            let timeout = Duration::from_millis(1500);
            let w = http
                .send(&addr, &command_path(shard), |h, u| {
                    h.post(u).json(&write).timeout(timeout)
                })
                .await;
            let r = http
                .send(&addr, &query_path(shard), |h, u| {
                    h.post(u).json(&read).timeout(timeout)
                })
                .await;
            let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.minority_probes += 2;
            for (what, res) in [("write", w), ("linearizable read", r)] {
                let answer = res
                    .as_ref()
                    .map_or("no answer".into(), |r| r.status().as_u16().to_string());
                *l.minority_answers.entry(answer).or_default() += 1;
                if let Ok(resp) = res {
                    // A probe the node could not even parse proves nothing.
                    if matches!(resp.status().as_u16(), 400 | 404 | 405 | 415 | 422) {
                        l.violations.push(format!(
                            "minority probe refused as malformed ({}): the check is broken",
                            resp.status()
                        ));
                    }
                    if resp.status().is_success() {
                        l.violations.push(format!(
                            "conductor-{n}, cut from its peers, served a {what} of shard {}",
                            shard.0
                        ));
                    }
                }
            }
        }
    }
}
