//! Inputs of the nodegroup and upgrade calls of a [`crate::Driver`]: plain values, so that any
//! driver can build its own stack for a nodegroup or its own upgrade PATCH.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A Kubernetes node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTaint {
    /// Taint key.
    pub key: String,
    /// Taint value (optional).
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// A non-default nodegroup, which gets a stack of its own beside the cluster stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeGroupSpec {
    /// Nodegroup uuid (the source of its stack name's suffix).
    pub uuid: Uuid,
    /// Nodegroup name.
    pub name: String,
    /// Role (`worker` or any non-master role).
    pub role: String,
    /// Number of nodes.
    pub node_count: u32,
    /// Autoscaler minimum.
    pub min_node_count: u32,
    /// Autoscaler maximum (`None`: unbounded).
    pub max_node_count: Option<u32>,
    /// Flavor (name or id); `None` takes the cluster's.
    pub flavor_id: Option<String>,
    /// Image; `None` takes the cluster's.
    pub image_id: Option<String>,
    /// Docker volume size in GB.
    pub docker_volume_size: Option<u32>,
    /// The nodegroup's labels (the cluster's, merged at create).
    pub labels: BTreeMap<String, String>,
    /// Kubernetes labels of the nodes.
    pub node_labels: BTreeMap<String, String>,
    /// Kubernetes taints of the nodes.
    pub node_taints: Vec<NodeTaint>,
}

/// A rolling upgrade of a stack to a new Kubernetes version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeSpec {
    /// The new template's `kube_tag`.
    pub kube_tag: String,
    /// How many nodes are replaced at once.
    pub max_batch_size: u32,
}

/// `k=v,k2=v2` (kubelet `--node-labels`).
pub fn node_labels_arg(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `key=value:Effect,key2:Effect` (kubelet `--register-with-taints`).
pub fn node_taints_arg(taints: &[NodeTaint]) -> String {
    taints
        .iter()
        .map(|t| match &t.value {
            Some(v) => format!("{}={}:{}", t.key, v, t.effect),
            None => format!("{}:{}", t.key, t.effect),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_arguments() {
        let l = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        assert_eq!(node_labels_arg(&l), "a=1,b=2");
        let t = vec![
            NodeTaint {
                key: "gpu".into(),
                value: Some("yes".into()),
                effect: "NoSchedule".into(),
            },
            NodeTaint {
                key: "spot".into(),
                value: None,
                effect: "NoExecute".into(),
            },
        ];
        assert_eq!(node_taints_arg(&t), "gpu=yes:NoSchedule,spot:NoExecute");
    }
}
