//! Run cloud-sim standalone: `cargo run -p magnum-cloud-sim --example cloud_sim -- [ADDR] [TIME_SCALE] [STATE_FILE]`
//! (defaults 127.0.0.1:5000, 1.0, none). Prints the `openstack` CLI environment and serves
//! until Ctrl-C.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use magnum_cloud_sim::{serve, SimConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:5000".into())
        .parse()?;
    let time_scale = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let state_file = args.next().map(PathBuf::from);
    let sim = serve(SimConfig {
        listen,
        container_infra_url: None,
        time_scale,
        state_file,
        heat_url: None,
        ..Default::default()
    })
    .await?;
    println!("export OS_AUTH_URL={}/identity/v3", sim.base_url());
    println!("export OS_USERNAME=admin OS_PASSWORD=secret OS_PROJECT_NAME=admin");
    println!("export OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3 OS_REGION_NAME=RegionOne");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
