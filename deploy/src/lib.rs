//! Process wiring for the `magnum` binary: each subcommand builds its crate's config from the
//! command line and runs until SIGINT/SIGTERM. `magnum dev` runs the whole topology in one process.
//!
//! Owns: command-line parsing, process lifecycle, the dev topology. Must not know: domain rules,
//! Raft internals, wire formats (it only passes configuration through).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod certs;
pub mod cli;
pub mod config_file;
mod dev;
mod manage;
mod manage_backup;
mod manage_version;
mod peers;

use cli::{ApiArgs, AuthArgs, CloudSimArgs, Command, ConductorArgs, ManageCommand, VersionCommand};
use magnum_conductor::cloud::heat::{CloudAuth, HeatCloud};
use magnum_conductor::leader::notify::{Notifier, NotifySink};
use magnum_conductor::leader::LeaderConfig;
use magnum_conductor::node::{Conductor, ConductorConfig};
use magnum_conductor::pki::sealing::CertKey;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Args(String),
    #[error("api: {0}")]
    Api(String),
    #[error("conductor: {0}")]
    Conductor(#[from] magnum_conductor::node::ConductorError),
    #[error("cloud-sim: {0}")]
    CloudSim(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn,hyper=warn")
    });
    // stderr: `magnum manage ... --json` keeps stdout for its answer.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn run(cli: cli::Cli) -> Result<(), DeployError> {
    match cli.command {
        Command::Api(a) => run_api(a).await,
        Command::Conductor(c) => run_conductor(c).await,
        Command::CloudSim(s) => run_cloud_sim(s).await,
        Command::Dev(d) => dev::run(d).await,
        Command::Manage(ManageCommand::Status { target, json }) => {
            manage::status(&target, json).await
        }
        Command::Manage(ManageCommand::Verify { target, json }) => {
            manage::verify(&target, json).await
        }
        Command::Manage(ManageCommand::Certs(cmd)) => certs::run(cmd),
        Command::Manage(ManageCommand::Backup { out, target }) => {
            manage_backup::backup(&target, &out).await
        }
        Command::Manage(ManageCommand::Restore {
            backup,
            check,
            data_dir,
            node_id,
            peers,
            replicas,
        }) => manage_backup::restore(&backup, check, data_dir, node_id, &peers, replicas),
        Command::Manage(ManageCommand::Conductor(cmd)) => manage::conductor(cmd).await,
        Command::Manage(ManageCommand::Version(VersionCommand::Show { target, json })) => {
            manage_version::show(&target, json).await
        }
        Command::Manage(ManageCommand::Version(VersionCommand::Finalize { target })) => {
            manage_version::finalize(&target).await
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub(crate) fn cloud_auth(a: &AuthArgs, trustee_domain: Option<String>) -> CloudAuth {
    CloudAuth {
        auth_url: a.auth_url.clone(),
        user: a.service_user.clone(),
        password: a.service_password.clone(),
        project: a.service_project.clone(),
        domain: a.service_domain.clone(),
        region: a.region.clone(),
        trustee_domain,
    }
}

pub(crate) fn api_config(a: &ApiArgs) -> Result<magnum_api::ApiConfig, DeployError> {
    Ok(magnum_api::ApiConfig {
        listen: a.listen,
        public_url: a.public_url.clone(),
        conductors: a.conductors.clone(),
        auth_url: a.auth.auth_url.clone(),
        service_user: a.auth.service_user.clone(),
        service_password: a.auth.service_password.clone(),
        service_project: a.auth.service_project.clone(),
        service_domain: a.auth.service_domain.clone(),
        max_in_flight: a.max_in_flight,
        max_connections: a.max_connections,
        tls: a.tls.load(magnum_net::Role::Api, certs::Legacy::Allowed)?,
        token_cache_ttl: a.token_cache.ttl(),
        invalid_token_cache_ttl: a.token_cache.invalid_ttl(),
        // Glance/Nova/Neutron endpoints of this region when the catalog has several.
        region: a.auth.region.clone(),
        validation: magnum_api::ValidationSettings {
            max_templates_per_project: a.max_templates_per_project,
            max_limit: usize::try_from(a.max_limit).unwrap_or(usize::MAX),
            default_create_timeout: a.default_create_timeout,
            ..Default::default()
        },
        ..magnum_api::ApiConfig::default()
    })
}

async fn run_api(a: ApiArgs) -> Result<(), DeployError> {
    let server = magnum_api::serve(api_config(&a)?)
        .await
        .map_err(|e| DeployError::Api(e.to_string()))?;
    tracing::info!(addr = %server.local_addr, "api listening");
    shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}

pub(crate) fn conductor_config(c: &ConductorArgs) -> Result<ConductorConfig, DeployError> {
    let peers = peers::parse(&c.peers).map_err(DeployError::Args)?;
    if !peers.contains_key(&c.node_id) {
        return Err(DeployError::Args(format!(
            "--peer list must include this node ({})",
            c.node_id
        )));
    }
    let cloud = HeatCloud::new(cloud_auth(&c.auth, c.trustee_domain.clone()))
        .map_err(|e| DeployError::Args(e.to_string()))?;
    let Some(key_file) = &c.cert_key_file else {
        return Err(DeployError::Args(
            "--cert-key-file (or MAGNUM_CERT_KEY_FILE) is required: the key that seals cluster \
             private keys; `(umask 077; openssl rand -hex 32 > FILE)` makes one"
                .into(),
        ));
    };
    let load = |f: &std::path::PathBuf| {
        CertKey::from_file(f).map_err(|e| DeployError::Args(e.to_string()))
    };
    let previous = c
        .previous_cert_key_files
        .iter()
        .map(load)
        .collect::<Result<Vec<_>, _>>()?;
    let cert_key = load(key_file)?.with_previous(previous);
    let sink: NotifySink = c.notification_sink.parse().map_err(DeployError::Args)?;
    // A data dir from before mutual TLS keeps working in plain mode (loudly) after the binary
    // upgrade; a new one needs a certificate or an explicit `--internal-tls plain`.
    let legacy = match c.data_dir.join("raft").exists() {
        true => certs::Legacy::Allowed,
        false => certs::Legacy::Refused,
    };
    let mut raft = c.raft.config();
    raft.tls = c.tls.load(magnum_net::Role::Conductor, legacy)?;
    if let Some(id) = raft.tls.identity() {
        if id.conductor_id() != Some(c.node_id) {
            return Err(DeployError::Args(format!(
                "--tls-dir holds {id}'s certificate, this is conductor {}",
                c.node_id
            )));
        }
    }
    Ok(ConductorConfig {
        node_id: c.node_id,
        data_dir: c.data_dir.clone(),
        raft_listen: c.raft_listen,
        service_listen: c.service_listen,
        peers,
        shards: c.shards,
        replicas: c.replicas,
        // A data dir without Raft state is a first start.
        bootstrap: c.bootstrap || (c.bootstrap_if_new && !c.data_dir.join("raft").exists()),
        raft,
        reconciler: LeaderConfig {
            poll: Duration::from_millis(c.poll_interval_ms),
            sync: Duration::from_millis(c.sync_interval_ms),
            idle_sync: Duration::from_secs(c.idle_sync_interval_secs),
            stalled_after: Duration::from_secs(c.stalled_after_secs),
            health: Duration::from_millis(c.health_interval_ms),
            reap_grace: Duration::from_secs(c.orphan_stack_grace_secs),
            reap_retention: Duration::from_secs(c.orphan_stack_retention_secs),
            cluster_api_url: c.cluster_api_url.clone(),
            cert_key,
            notifier: Notifier::new(sink, format!("container-infra.conductor-{}", c.node_id)),
            ..LeaderConfig::default()
        },
        cloud: Arc::new(cloud),
        heartbeat_interval: magnum_conductor::node::DEFAULT_HEARTBEAT_INTERVAL,
        max_in_flight: c.max_in_flight,
    })
}

/// `--insecure-bench-key-pool FILE`: every cluster key from then on comes from FILE's keys.
fn use_bench_key_pool(file: &std::path::Path) -> Result<usize, DeployError> {
    use magnum_conductor::pki::certs::{read_bench_key_file, reuse_keys_for_benchmarks, CertError};
    let bad = |e: CertError| {
        DeployError::Args(format!("--insecure-bench-key-pool {}: {e}", file.display()))
    };
    let pems = read_bench_key_file(file).map_err(bad)?;
    let n = pems.len();
    reuse_keys_for_benchmarks(pems).map_err(bad)?;
    Ok(n)
}

async fn run_conductor(c: ConductorArgs) -> Result<(), DeployError> {
    let config = conductor_config(&c)?;
    if let Some(file) = &c.insecure_bench_key_pool {
        let keys = use_bench_key_pool(file)?;
        tracing::warn!(
            keys,
            "INSECURE: cluster certificate keys are reused from {} instead of generated; \
             clusters share CA private keys. For benchmarks only",
            file.display()
        );
    }
    let conductor = Conductor::start(config).await?;
    shutdown_signal().await;
    // SIGTERM (systemd, Kubernetes, `local-cluster.sh stop`): drain, hand leaderships off,
    // then stop, so a rolling restart costs each shard a transfer instead of an election.
    let kept = conductor.stop_gracefully().await;
    if !kept.is_empty() {
        tracing::warn!(groups = ?kept, "stopped while still leading");
    }
    Ok(())
}

pub(crate) fn sim_config(s: &CloudSimArgs) -> magnum_cloud_sim::SimConfig {
    magnum_cloud_sim::SimConfig {
        listen: s.listen,
        container_infra_url: s.container_infra_url.clone(),
        time_scale: s.time_scale,
        state_file: s.state_file.clone(),
        heat_url: s.heat_url.clone(),
        max_stacks_per_tenant: s.max_stacks_per_tenant,
        public_url: s.public_url.clone(),
        keystone: s.keystone.external(),
        floating_ip_range: Some(s.floating_ip_range.clone()),
        bench_projects: s.bench_projects,
    }
}

async fn run_cloud_sim(s: CloudSimArgs) -> Result<(), DeployError> {
    let sim = magnum_cloud_sim::serve_with(sim_config(&s), s.quotas.quotas())
        .await
        .map_err(|e| DeployError::CloudSim(e.to_string()))?;
    tracing::info!(url = sim.base_url(), "cloud-sim listening");
    shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    fn conductor(extra: &[&str]) -> ConductorArgs {
        let mut argv = vec![
            "magnum",
            "conductor",
            "--node-id",
            "1",
            "--data-dir",
            "/tmp/x",
            "--raft-listen",
            "127.0.0.1:1",
            "--service-listen",
            "127.0.0.1:2",
            "--peer",
            "1=127.0.0.1:1@127.0.0.1:2",
            "--auth-url",
            "http://127.0.0.1:5000/v3",
            "--service-password",
            "p",
        ];
        argv.extend(extra);
        match cli::Cli::try_parse_from(argv).unwrap().command {
            Command::Conductor(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_bench_key_pool_flag_parses_and_is_hidden() {
        assert_eq!(conductor(&[]).insecure_bench_key_pool, None);
        let c = conductor(&["--insecure-bench-key-pool", "/k.pem"]);
        assert_eq!(
            c.insecure_bench_key_pool,
            Some(std::path::PathBuf::from("/k.pem"))
        );
        let mut cmd = cli::Cli::command();
        let help = cmd
            .find_subcommand_mut("conductor")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains("insecure-bench-key-pool"), "{help}");
    }

    /// Only refusals here: a pool that took would hold for every test of this process.
    #[test]
    fn a_missing_or_bad_key_pool_file_is_a_clear_error() {
        let e = use_bench_key_pool(std::path::Path::new("/nonexistent/pool.pem")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("--insecure-bench-key-pool /nonexistent/pool.pem"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no keys here\n").unwrap();
        assert!(use_bench_key_pool(&empty)
            .unwrap_err()
            .to_string()
            .contains("no keys"));
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let msg = use_bench_key_pool(&bad).unwrap_err().to_string();
        assert!(msg.contains("key 0"), "{msg}");
        assert_eq!(magnum_conductor::pki::certs::bench_key_pool_size(), None);
    }
}
