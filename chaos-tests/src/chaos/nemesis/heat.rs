//! Heat faults through cloud-sim's admin API, drawn alongside the process-level ones.
use super::Nemesis;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

impl Nemesis {
    /// Heat faults through cloud-sim, one every `period` on average, until `stop`.
    pub async fn run_heat_faults(&mut self, stop: Arc<AtomicBool>, period: Duration) {
        let off = std::env::var("MAGNUM_CHAOS_HEAT").is_ok_and(|v| v == "0");
        while !stop.load(Ordering::SeqCst) && !off {
            let (kind, spec) = self.heat_fault();
            let start = self.shared.rec.now();
            let ok = self
                .d
                .http
                .post(format!("{}/sim/heat/faults", self.d.sim))
                .json(&spec)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                self.heat_posted += 1;
                self.record(kind, spec.to_string(), start, String::new());
            }
            let ms = self.rng.gen_range(0..2 * period.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// The Heat fault kinds `heat_fault` draws from.
    pub const HEAT_FAULTS: [&'static str; 5] = [
        "heat_5xx",
        "heat_409",
        "heat_lost_response",
        "heat_slow",
        "heat_resource_failure",
    ];

    fn heat_fault(&mut self) -> (&'static str, Value) {
        let writes = [
            ("POST", "*/stacks"),
            ("PATCH", "*/stacks/*"),
            ("DELETE", "*/stacks/*"),
        ];
        let (m, p) = *writes.choose(&mut self.rng).unwrap_or(&writes[0]);
        match self.rng.gen_range(0..6) {
            0 => (
                "heat_5xx",
                json!({"kind": "api_error", "method": m, "path_glob": p, "status": 503}),
            ),
            1 => (
                "heat_5xx",
                json!({"kind": "api_error", "method": "GET", "path_glob": "*/stacks/*", "status": 500}),
            ),
            2 => (
                "heat_409",
                json!({"kind": "api_error", "method": "PATCH", "path_glob": "*/stacks/*", "status": 409,
                       "message": "Stack is in progress"}),
            ),
            3 => (
                "heat_lost_response",
                json!({"kind": "lost_response", "method": m, "path_glob": p}),
            ),
            4 => (
                "heat_slow",
                json!({"kind": "response_delay", "method": "*", "path_glob": "*/stacks*",
                       "seconds": self.rng.gen_range(1.0..6.0)}),
            ),
            _ => {
                let action = if self.rng.gen_bool(0.5) {
                    "CREATE"
                } else {
                    "UPDATE"
                };
                (
                    "heat_resource_failure",
                    json!({"kind": "resource_fail", "resource_type": "OS::Nova::Server",
                           "action": action, "message": "No valid host was found"}),
                )
            }
        }
    }

    /// Heat faults that fired: posted minus those still waiting (cleared at the end).
    pub async fn heat_fired(&self) -> u64 {
        let left = self
            .d
            .http
            .get(format!("{}/sim/heat/faults", self.d.sim))
            .send()
            .await;
        let left = match left {
            Ok(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["faults"].as_array().map(|a| a.len() as u64))
                .unwrap_or(0),
            Err(_) => 0,
        };
        self.heat_posted.saturating_sub(left)
    }
}
