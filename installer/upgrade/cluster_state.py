"""The cluster's state the upgrade plans from, read through the platform's Kubernetes adapter (the one client,
installer.deploy.platform_step.adapters): the shapes installer.upgrade.cluster_checks and skew take."""
from __future__ import annotations

from installer.deploy import platform_step
from installer.deploy.state import kubeconfig_path

LONGHORN_NS = "longhorn-system"


def read_state(kube) -> dict:
    """NodeList, PodList and PodDisruptionBudgetList (as {"items": [...]}), the text of /readyz/etcd, and
    Longhorn's VolumeList (None where Longhorn's CRD is not installed)."""
    volumes = kube.list("longhorn.io/v1beta2", "Volume", LONGHORN_NS, optional=True)
    return {
        "nodes": {"items": kube.list("v1", "Node")},
        "pods": {"items": kube.list("v1", "Pod")},
        "pdbs": {"items": kube.list("policy/v1", "PodDisruptionBudget")},
        "readyzEtcd": kube.read("/readyz/etcd"),
        "longhorn": None if volumes is None else {"items": volumes},
    }


def cluster_state(cluster: str) -> dict:
    """read_state on the cluster whose kubeconfig `medai install` fetched."""
    return read_state(platform_step.adapters(kubeconfig_path(cluster), None)[1])
