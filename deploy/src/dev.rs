//! `magnum dev`: cloud-sim, three conductors and one API node in this process, on localhost.
use crate::cli::DevArgs;
use crate::{api_config, cloud_auth, shutdown_signal, sim_config, DeployError};
use magnum_conductor::cloud::heat::HeatCloud;
use magnum_conductor::leader::LeaderConfig;
use magnum_conductor::node::{Conductor, ConductorConfig};
use magnum_raft::NodeAddr;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// cloud-sim's Keystone seeds this domain for cluster trustees.
const TRUSTEE_DOMAIN: &str = "magnum";

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub async fn run(d: DevArgs) -> Result<(), DeployError> {
    let api_url = format!("http://127.0.0.1:{}", d.api_port);
    let sim_args = crate::cli::CloudSimArgs {
        listen: SocketAddr::new(LOCALHOST, d.cloud_sim_port),
        container_infra_url: Some(format!("{api_url}/v1")),
        time_scale: d.time_scale,
        state_file: Some(d.data_dir.join("cloud-sim.json")),
        heat_url: None,
        max_stacks_per_tenant: magnum_cloud_sim::DEFAULT_MAX_STACKS_PER_TENANT,
        public_url: None,
        quotas: Default::default(),
        keystone: Default::default(),
        floating_ip_range: magnum_cloud_sim::DEFAULT_FLOATING_IP_RANGE.into(),
        bench_projects: 0,
    };
    std::fs::create_dir_all(&d.data_dir)?;
    let sim = magnum_cloud_sim::serve(sim_config(&sim_args))
        .await
        .map_err(|e| DeployError::CloudSim(e.to_string()))?;
    let auth = crate::cli::AuthArgs {
        auth_url: format!("{}/identity/v3", sim.base_url()),
        service_user: "magnum".into(),
        service_password: "secret".into(),
        service_project: "service".into(),
        service_domain: "Default".into(),
        region: None,
    };

    let port = |off: u16| SocketAddr::new(LOCALHOST, d.conductor_port_base + off);
    let peers: BTreeMap<u64, NodeAddr> = (1..=3u16)
        .map(|i| {
            (
                u64::from(i),
                NodeAddr {
                    raft: port(i).to_string(),
                    service: port(10 + i).to_string(),
                },
            )
        })
        .collect();
    // One sealing key for the three conductors, made on the first run and kept with the data.
    let cert_key =
        magnum_conductor::pki::sealing::CertKey::create_file(&d.data_dir.join("cert.key"))
            .map_err(|e| DeployError::Args(e.to_string()))?;
    // Mutual TLS on every internal port, as in production: a CA and a certificate per process.
    let tls_dir = d.data_dir.join("tls");
    crate::certs::local_pki(&tls_dir, &[1, 2, 3])?;
    let tls = |sub: &str, role| {
        magnum_net::Tls::load(&tls_dir.join(sub), magnum_net::Mode::Strict, role)
            .map_err(|e| DeployError::Args(e.to_string()))
    };
    let mut conductors = Vec::new();
    for i in 1..=3u16 {
        let dir = d.data_dir.join(format!("conductor-{i}"));
        let fresh = !dir.join("raft").exists();
        let cloud = HeatCloud::new(cloud_auth(&auth, Some(TRUSTEE_DOMAIN.into())))
            .map_err(|e| DeployError::Args(e.to_string()))?;
        let cfg = ConductorConfig {
            node_id: u64::from(i),
            data_dir: dir,
            raft_listen: port(i),
            service_listen: port(10 + i),
            peers: peers.clone(),
            shards: d.shards,
            replicas: magnum_conductor::membership::meta::DEFAULT_REPLICAS,
            bootstrap: fresh,
            raft: magnum_raft::RaftConfig {
                tls: tls(&format!("conductor-{i}"), magnum_net::Role::Conductor)?,
                ..magnum_raft::RaftConfig::default()
            },
            reconciler: LeaderConfig {
                poll: Duration::from_secs(1),
                // cloud-sim simulates each cluster's Kubernetes API for health polling.
                cluster_api_url: Some(format!(
                    "http://127.0.0.1:{}/sim/k8s/{{stack_id}}",
                    d.cloud_sim_port
                )),
                cert_key: cert_key.clone(),
                ..LeaderConfig::default()
            },
            cloud: Arc::new(cloud),
            heartbeat_interval: magnum_conductor::node::DEFAULT_HEARTBEAT_INTERVAL,
            max_in_flight: magnum_conductor::node::DEFAULT_MAX_IN_FLIGHT,
        };
        conductors.push(Conductor::start(cfg).await?);
    }

    let api_args = crate::cli::ApiArgs {
        config_files: Vec::new(),
        listen: SocketAddr::new(LOCALHOST, d.api_port),
        public_url: Some(api_url.clone()),
        conductors: peers.values().map(|a| a.service.clone()).collect(),
        auth: auth.clone(),
        max_in_flight: magnum_api::DEFAULT_MAX_IN_FLIGHT,
        max_connections: magnum_api::DEFAULT_MAX_CONNECTIONS,
        max_templates_per_project: magnum_api::config::DEFAULT_MAX_TEMPLATES_PER_PROJECT,
        max_limit: magnum_api::config::DEFAULT_MAX_LIMIT,
        default_create_timeout: magnum_api::config::DEFAULT_CREATE_TIMEOUT_MINUTES,
        token_cache: Default::default(),
        tls: crate::cli::TlsArgs {
            tls_dir: Some(tls_dir.join("api")),
            internal_tls: None,
        },
    };
    let api = magnum_api::serve(api_config(&api_args)?)
        .await
        .map_err(|e| DeployError::Api(e.to_string()))?;

    println!(
        "magnum dev is up: API {api_url}/v1, cloud-sim {}, data in {}",
        sim.base_url(),
        d.data_dir.display()
    );
    println!("Point the openstack CLI at it with:");
    println!("export OS_AUTH_TYPE=password");
    println!("export OS_AUTH_URL={}", auth.auth_url);
    println!("export OS_IDENTITY_API_VERSION=3");
    println!("export OS_USERNAME=admin");
    println!("export OS_PASSWORD=secret");
    println!("export OS_PROJECT_NAME=admin");
    println!("export OS_USER_DOMAIN_NAME=Default");
    println!("export OS_PROJECT_DOMAIN_NAME=Default");
    println!("export OS_REGION_NAME=RegionOne");
    println!(
        "Operator commands (magnum manage ...) need: export MAGNUM_TLS_DIR={} MAGNUM_CONDUCTORS={}",
        tls_dir.join("operator").display(),
        peers
            .values()
            .map(|a| a.service.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    println!("Then e.g.: openstack coe cluster template create --coe kubernetes --image fedora-coreos-40 --external-network public --flavor m1.small --master-flavor m1.small --keypair default k8s");
    println!("Press Ctrl-C to stop.");

    shutdown_signal().await;
    api.shutdown().await;
    for c in conductors {
        c.shutdown().await;
    }
    sim.shutdown().await;
    Ok(())
}
