//! The operation × driver matrix (issue 5): every cluster operation through the REST API on every
//! COE driver, the drivers concurrently in one deployment. Each driver's cluster goes create →
//! PATCH node_count → resize (nodes_to_remove) → nodegroup create/update/delete → upgrade → CA
//! rotate → credential rotate → delete. An operation the driver supports must reach its terminal
//! status with the effect visible on the Heat stack; one it does not must answer the exact 4xx
//! up front and change nothing (cluster row, nodegroups, CA, every stack in cloud-sim's ledger).
//! The test prints the matrix and fails on any unexpected cell.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
mod drivers_matrix;

use std::sync::Arc;
use std::time::Instant;

use drivers_matrix::{Cell, Cluster, Op, Want, OPS};
use magnum_chaos_tests::{Deployment, Options};
use serde_json::{json, Value};

pub struct Case {
    pub driver: &'static str,
    /// The cluster's name: short and distinct, so `<name>-` selects its stacks (the nodegroup's
    /// stack name starts with the cluster name's first 20 characters).
    pub name: &'static str,
    pub template: Value,
    /// `(scheme://, :port)` of api_address.
    pub api: (&'static str, &'static str),
    /// The stack parameters holding the worker count and the workers to remove.
    pub count_param: &'static str,
    pub remove_param: &'static str,
    /// Upstream's FedoraKubernetesDriver: nodegroup stacks and upgrades.
    pub fedora_k8s: bool,
    /// The 400 detail of a CA rotation, `None` where it is supported.
    pub ca_refusal: Option<&'static str>,
}

const BASE_CA: &str = "'rotate_ca_certificate' is not supported by this driver.";
const NON_TLS_CA: &str = "Rotating the CA certificate on a non-TLS cluster is not supported";

impl Case {
    fn want(&self, op: Op) -> Want {
        let supported = match op {
            Op::NgCreate => self.fedora_k8s,
            Op::NgDelete if !self.fedora_k8s => return Want::NotApplicable,
            Op::Upgrade => self.fedora_k8s,
            Op::RotateCa => {
                return self
                    .ca_refusal
                    .map_or(Want::Ok, |m| Want::Refused(400, m.to_string()))
            }
            _ => true,
        };
        let d = self.driver;
        match (supported, op) {
            (true, _) => Want::Ok,
            (false, Op::NgCreate) => Want::Refused(
                400,
                format!("Creating nodegroups is not supported by the {d} driver."),
            ),
            (false, _) => Want::Refused(
                400,
                format!("Upgrading a cluster that uses the {d} driver is not supported."),
            ),
        }
    }
}

fn cases() -> Vec<Case> {
    let t = |extra: Value| {
        let mut body = json!({
            "external_network_id": "public", "flavor_id": "m1.small",
            "master_flavor_id": "m1.small", "keypair_id": "default",
            "labels": {"kube_tag": "v1.27.3"}
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let k8s = ("number_of_minions", "minions_to_remove");
    let case =
        |driver, name, template, api, params: (&'static str, &'static str), fedora_k8s, ca| Case {
            driver,
            name,
            template,
            api,
            count_param: params.0,
            remove_param: params.1,
            fedora_k8s,
            ca_refusal: ca,
        };
    vec![
        case(
            "k8s_fedora_coreos_v1",
            "mx-fcos",
            t(json!({"coe": "kubernetes", "image_id": "fedora-coreos-40"})),
            ("https://", ":6443"),
            k8s,
            true,
            None,
        ),
        case(
            "k8s_fedora_atomic_v1",
            "mx-fatomic",
            t(json!({"coe": "kubernetes", "image_id": "fedora-atomic-29", "docker_volume_size": 5})),
            ("https://", ":6443"),
            k8s,
            true,
            Some("Rotating the CA certificate is not supported for cluster with cluster_distro: fedora-atomic."),
        ),
        case(
            "k8s_coreos_v1",
            "mx-coreos",
            t(json!({"coe": "kubernetes", "image_id": "coreos-stable", "network_driver": "calico", "tls_disabled": true})),
            ("http://", ":8080"),
            k8s,
            false,
            Some(NON_TLS_CA),
        ),
        case(
            "k8s_fedora_ironic_v1",
            "mx-ironic",
            t(json!({"coe": "kubernetes", "image_id": "fedora-ironic", "server_type": "bm",
                     "flavor_id": "baremetal", "master_flavor_id": "baremetal"})),
            ("https://", ":6443"),
            k8s,
            false,
            Some(BASE_CA),
        ),
        case(
            "swarm_fedora_atomic_v1",
            "mx-swarm1",
            t(json!({"coe": "swarm", "image_id": "fedora-atomic-29", "network_driver": "flannel"})),
            ("tcp://", ":2376"),
            ("number_of_nodes", "nodes_to_remove"),
            false,
            Some(BASE_CA),
        ),
        case(
            "swarm_fedora_atomic_v2",
            "mx-swarm2",
            t(json!({"coe": "swarm-mode", "image_id": "fedora-atomic-29", "tls_disabled": true})),
            ("tcp://", ":2375"),
            ("number_of_nodes", "nodes_to_remove"),
            false,
            Some(NON_TLS_CA),
        ),
        case(
            "mesos_ubuntu_v1",
            "mx-mesos",
            t(json!({"coe": "mesos", "image_id": "ubuntu-mesos", "volume_driver": "rexray"})),
            ("http://", ":5050"),
            ("number_of_slaves", "slaves_to_remove"),
            false,
            Some(BASE_CA),
        ),
        case(
            "dcos_centos_v1",
            "mx-dcos",
            t(json!({"coe": "dcos", "image_id": "centos-dcos"})),
            ("https://", ":443"),
            ("number_of_slaves", "slaves_to_remove"),
            false,
            Some(BASE_CA),
        ),
    ]
}

/// One driver's column: every operation in order; after a failure the rest are not run.
async fn run(d: Arc<Deployment>, tok: String, case: Case) -> Vec<Cell> {
    let mut cl = match Cluster::new(d, tok, case).await {
        Ok(c) => c,
        Err(e) => return vec![Cell::Fail(format!("templates: {e}"))],
    };
    let mut cells = Vec::new();
    for op in OPS {
        if cells.iter().any(|c| matches!(c, Cell::Fail(_))) {
            cells.push(Cell::NotRun);
            continue;
        }
        let t0 = Instant::now();
        let cell = match cl.case.want(op) {
            Want::NotApplicable => Ok(Cell::NotApplicable),
            Want::Ok => cl
                .run(op)
                .await
                .map(|()| Cell::Ok(t0.elapsed().as_millis())),
            Want::Refused(status, detail) => cl
                .refused(op, status, &detail)
                .await
                .map(|()| Cell::Refused(status)),
        };
        let cell = cell.unwrap_or_else(Cell::Fail);
        eprintln!("{} {}: {}", cl.case.driver, op.label(), cell.detail());
        cells.push(cell);
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_on_every_driver_through_the_api() {
    let started = Instant::now();
    let d = Arc::new(Deployment::up("drivers", Options::default()));
    let tok = d.token("demo", "demo").await;
    let setup = started.elapsed();
    let cases = cases();
    let names: Vec<&str> = cases.iter().map(|c| c.driver).collect();
    let tasks: Vec<_> = cases
        .into_iter()
        .map(|c| tokio::spawn(run(d.clone(), tok.clone(), c)))
        .collect();
    let mut columns = Vec::new();
    for t in tasks {
        columns.push(match t.await {
            Ok(cells) => cells,
            Err(e) => vec![Cell::Fail(format!("panicked: {e}"))],
        });
    }
    let table = drivers_matrix::table(&names, &columns);
    eprintln!(
        "\n{table}\n{} operations × {} drivers: setup {:?}, matrix {:?}",
        OPS.len(),
        names.len(),
        setup,
        started.elapsed() - setup
    );
    let failures: Vec<String> = names
        .iter()
        .zip(&columns)
        .flat_map(|(n, cells)| {
            cells.iter().filter_map(move |c| match c {
                Cell::Fail(e) => Some(format!("{n}: {e}")),
                _ => None,
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{failures:#?}\nlogs in {}",
        d.dir.display()
    );
}
