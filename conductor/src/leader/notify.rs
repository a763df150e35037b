//! Delivery of a shard's notification outbox (`state_notify`) by its leader, as oslo.messaging
//! notifications (`message_id`, `publisher_id`, `event_type`, `priority`, `payload`,
//! `timestamp`). Each message is delivered before its removal is committed, so a failover in
//! between delivers it again with the same `message_id`: the sink's idempotency key.
use magnum_proto::Notification;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where notifications go (`--notification-sink`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NotifySink {
    /// A tracing line per notification (target `magnum::notification`).
    #[default]
    Log,
    /// One JSON line per notification, appended to the file.
    File(PathBuf),
    /// `POST` of the JSON message, header `Idempotency-Key: <message_id>`; any 2xx delivers.
    Webhook(String),
}

impl FromStr for NotifySink {
    type Err = String;

    /// `log`, `file:PATH`, or an `http://` / `https://` URL.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "log" {
            Ok(NotifySink::Log)
        } else if let Some(p) = s.strip_prefix("file:") {
            Ok(NotifySink::File(PathBuf::from(p)))
        } else if s.starts_with("http://") || s.starts_with("https://") {
            Ok(NotifySink::Webhook(s.to_string()))
        } else {
            Err(format!(
                "notification sink must be log, file:PATH or an http(s) URL, got {s:?}"
            ))
        }
    }
}

#[derive(Clone, Debug)]
pub struct Notifier {
    pub sink: NotifySink,
    /// `publisher_id`: upstream's `container-infra.<host>`.
    pub publisher_id: String,
    http: reqwest::Client,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new(NotifySink::Log, "container-infra.magnum".into())
    }
}

impl Notifier {
    pub fn new(sink: NotifySink, publisher_id: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            sink,
            publisher_id,
            http,
        }
    }

    fn message(&self, n: &Notification) -> serde_json::Value {
        json!({
            "message_id": n.id,
            "publisher_id": self.publisher_id,
            "event_type": n.event_type,
            "priority": n.priority,
            "payload": n.payload,
            "timestamp": n.at.to_magnum(),
        })
    }

    /// Delivers one notification; an error means "not delivered, try again later".
    pub async fn deliver(&self, n: &Notification) -> Result<(), String> {
        let msg = self.message(n);
        match &self.sink {
            NotifySink::Log => {
                tracing::info!(target: "magnum::notification", message = %msg, "notification");
                Ok(())
            }
            NotifySink::File(path) => {
                let path = path.clone();
                let line = format!("{msg}\n");
                tokio::task::spawn_blocking(move || {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)?;
                    // One write of one line: appends from several processes never interleave.
                    f.write_all(line.as_bytes())?;
                    f.sync_data()
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
            NotifySink::Webhook(url) => {
                let r = self
                    .http
                    .post(url)
                    .header("Idempotency-Key", &n.id)
                    .json(&msg)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("webhook answered {}", r.status()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_parse() {
        assert_eq!("log".parse::<NotifySink>().unwrap(), NotifySink::Log);
        assert_eq!(
            "file:/tmp/n.jsonl".parse::<NotifySink>().unwrap(),
            NotifySink::File("/tmp/n.jsonl".into())
        );
        assert!(matches!(
            "http://127.0.0.1:1/n".parse::<NotifySink>().unwrap(),
            NotifySink::Webhook(_)
        ));
        assert!("kafka:x".parse::<NotifySink>().is_err());
    }
}
