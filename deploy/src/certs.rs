//! `magnum manage certs` and the `--tls-dir`/`--internal-tls` flags of every process.

use magnum_net::{certs, Identity, Mode, Role, Tls};

use crate::cli::{CertsCommand, TlsArgs};
use crate::DeployError;

/// Whether a process without `--tls-dir` may still start in plain mode: a conductor whose data
/// dir predates mutual TLS (the binary upgrade stays a pure rolling restart), API nodes and
/// operator tools (clients: the conductors decide what they accept).
pub(crate) enum Legacy {
    Allowed,
    Refused,
}

impl TlsArgs {
    /// This process's TLS for `role`.
    pub(crate) fn load(&self, role: Role, legacy: Legacy) -> Result<Tls, DeployError> {
        let bad = |e: magnum_net::NetError| DeployError::Args(format!("--tls-dir: {e}"));
        match (&self.tls_dir, self.internal_tls) {
            (Some(dir), None | Some(Mode::Strict)) => {
                Tls::load(dir, Mode::Strict, role).map_err(bad)
            }
            (Some(dir), Some(Mode::Permissive)) => {
                tracing::warn!(
                    "internal TLS is permissive: plain HTTP is still accepted on the internal ports; switch to strict once every node has its certificate"
                );
                Tls::load(dir, Mode::Permissive, role).map_err(bad)
            }
            (_, Some(Mode::Plain)) => {
                insecure_warning("--internal-tls plain");
                Ok(Tls::plain())
            }
            (None, Some(mode)) => Err(DeployError::Args(format!(
                "--internal-tls {mode} needs --tls-dir (`magnum manage certs issue` makes one)"
            ))),
            (None, None) => match legacy {
                Legacy::Allowed => {
                    insecure_warning("no --tls-dir");
                    Ok(Tls::plain())
                }
                Legacy::Refused => Err(DeployError::Args(
                    "no --tls-dir: give this conductor a certificate (`magnum manage certs init` \
                     and `issue --role conductor`, see SECURITY.md), or pass --internal-tls \
                     plain to run the internal plane unauthenticated"
                        .into(),
                )),
            },
        }
    }
}

fn insecure_warning(why: &str) {
    tracing::error!(
        "INSECURE ({why}): the internal plane runs without TLS; anyone who reaches the Raft and \
         service ports can read every project's clusters, sign certificates and drive the \
         conductors. See SECURITY.md to turn mutual TLS on."
    );
}

/// A CA and one certificate per process under `dir` (`ca/`, `conductor-<id>/`, `api/`,
/// `operator/`), made once and kept: what `magnum dev` runs with.
pub(crate) fn local_pki(dir: &std::path::Path, conductors: &[u64]) -> Result<(), DeployError> {
    let e = |e: magnum_net::NetError| DeployError::Args(e.to_string());
    let ca = dir.join("ca");
    if !ca.join(certs::CA_KEY).exists() {
        certs::init_ca(&ca).map_err(e)?;
    }
    let mut nodes: Vec<(String, Identity)> = conductors
        .iter()
        .map(|id| {
            Identity::new(Role::Conductor, id.to_string()).map(|i| (format!("conductor-{id}"), i))
        })
        .collect::<Result<_, _>>()
        .map_err(e)?;
    nodes.push(("api".into(), Identity::new(Role::Api, "dev").map_err(e)?));
    nodes.push((
        "operator".into(),
        Identity::new(Role::Operator, "dev").map_err(e)?,
    ));
    for (sub, id) in nodes {
        let out = dir.join(sub);
        if !out.join(certs::NODE_CERT).exists() {
            certs::issue(
                &ca,
                &out,
                &id,
                &["127.0.0.1".into(), "localhost".into()],
                certs::NODE_DAYS,
            )
            .map_err(e)?;
        }
    }
    Ok(())
}

pub(crate) fn run(cmd: CertsCommand) -> Result<(), DeployError> {
    let e = |e: magnum_net::NetError| DeployError::Args(e.to_string());
    match cmd {
        CertsCommand::Init { ca_dir } => {
            certs::init_ca(&ca_dir).map_err(e)?;
            println!("CA created in {} (keep ca.key offline)", ca_dir.display());
        }
        CertsCommand::Issue {
            ca_dir,
            role,
            name,
            out,
            hosts,
            days,
        } => {
            let id = Identity::new(role, name).map_err(e)?;
            certs::issue(&ca_dir, &out, &id, &hosts, days).map_err(e)?;
            println!("{id}: certificate for {days} days in {}", out.display());
        }
        CertsCommand::Rotate {
            ca_dir,
            node_dir,
            hosts,
            days,
        } => {
            certs::rotate(&ca_dir, &node_dir, &hosts, days).map_err(e)?;
            println!(
                "reissued {} (the node reloads it within 5 s, or at once on SIGHUP)",
                node_dir.display()
            );
        }
        CertsCommand::RotateCa { ca_dir } => {
            certs::rotate_ca(&ca_dir).map_err(e)?;
            println!(
                "new CA in {}; now `trust` every node, wait 5 s (or SIGHUP them), then `rotate` every node",
                ca_dir.display()
            );
        }
        CertsCommand::Trust { ca_dir, node_dir } => {
            certs::trust(&ca_dir, &node_dir).map_err(e)?;
            println!(
                "{} trusts the bundle of {}",
                node_dir.display(),
                ca_dir.display()
            );
        }
        CertsCommand::Show { node_dir } => {
            let (id, not_after) = certs::describe(&node_dir).map_err(e)?;
            println!("{id}  expires {not_after}");
        }
        CertsCommand::Local {
            dir,
            conductors,
            sealing_key,
        } => {
            local_pki(&dir, &conductors)?;
            if let Some(key) = sealing_key {
                magnum_conductor::pki::sealing::CertKey::create_file(&key)
                    .map_err(|e| DeployError::Args(e.to_string()))?;
            }
            println!("PKI in {}", dir.display());
        }
    }
    Ok(())
}
