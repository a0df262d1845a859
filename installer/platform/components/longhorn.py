"""Longhorn: replicas across the storage nodes, a drain policy that never drops the last replica."""
from __future__ import annotations

from installer.platform.flows import GPU_TOLERATION, NODES, Flow, api, dns

NAME = "longhorn"
NAMESPACE = "longhorn-system"
DRAIN_POLICIES = ("block-if-contains-last-replica", "allow-if-replica-is-stopped", "always-allow",
                  "block-for-eviction", "block-for-eviction-if-contains-last-replica")
DEFAULTS = {
    "medai_longhorn_replicas": None,  # None: min(3, storage nodes); more than the storage nodes is refused
    "medai_longhorn_node_drain_policy": "block-for-eviction-if-contains-last-replica",
    "medai_longhorn_default_class": True,
    # The chart sets no requests on its own pods (manager, driver, UI, hook Jobs) nor on the instance and share
    # managers the manager starts: the namespace's LimitRange gives every container these when it has none.
    "medai_longhorn_default_requests": {"cpu": "100m", "memory": "128Mi"},
    "medai_longhorn_release_timeout": 900,
}


def values(v: dict) -> dict:
    n = v["medai_longhorn_replicas"]
    # GPU agents are storage nodes unless a host says medai_longhorn_storage: false: the manager, the CSI driver and
    # the components the manager starts (taintToleration) run there despite the GPU taint.
    gpu = f"{GPU_TOLERATION['key']}={GPU_TOLERATION['value']}:{GPU_TOLERATION['effect']}"
    return {"defaultSettings": {"defaultReplicaCount": n, "nodeDrainPolicy": v["medai_longhorn_node_drain_policy"],
                                "taintToleration": gpu},
            "persistence": {"defaultClass": v["medai_longhorn_default_class"], "defaultClassReplicaCount": n},
            "longhornManager": {"tolerations": [GPU_TOLERATION]}, "longhornDriver": {"tolerations": [GPU_TOLERATION]}}


def objects(v: dict, namespace: str) -> list[dict]:
    """The LimitRange giving Longhorn's containers requests (applied with the Namespace, before the release)."""
    req = v["medai_longhorn_default_requests"]
    return [{"apiVersion": "v1", "kind": "LimitRange",
             "metadata": {"name": "medai-default-requests", "namespace": namespace,
                          "labels": {"app.kubernetes.io/managed-by": "medai"}},
             "spec": {"limits": [{"type": "Container", "defaultRequest": dict(req)}]}}]


MANAGER = {"app": "longhorn-manager"}


def flows(v: dict, ns: dict) -> list[Flow]:
    """The manager's API and webhooks, its instance managers (engines and replicas on ports the manager
    allocates), iSCSI and NFS from the nodes' initiators and kubelets. Pods the manager starts (instance and
    share managers, CSI) carry no label the chart fixes: they are any pod of the namespace."""
    me = ns[NAME]
    return dns(me) + [
        api(me, why="the manager, driver deployer and CSI sidecars"),
        Flow(NODES, me, 9500, "TCP", {}, MANAGER, "the CSI plugin and kubelet reach the manager API", 9503),
        Flow(NODES, me, 3260, "TCP", {}, {}, "the node's iSCSI initiator logs in to the engine's target"),
        Flow(NODES, me, 2049, "TCP", {}, {}, "the kubelet mounts share-manager (RWX) volumes over NFS"),
        Flow(me, me, 9500, "TCP", {}, MANAGER, "UI, CSI and managers call the manager API and webhooks", 9503),
        Flow(me, me, 8500, "TCP", {}, {}, "managers drive the instance managers' process and proxy APIs", 8504),
        Flow(me, me, 10000, "TCP", {}, {}, "engines replicate to replicas on the ports the manager allocates", 30000),
    ]
