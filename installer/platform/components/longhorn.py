"""Longhorn: replicas across the storage nodes, a drain policy that never drops the last replica."""
from __future__ import annotations

NAME = "longhorn"
DRAIN_POLICIES = ("block-if-contains-last-replica", "allow-if-replica-is-stopped", "always-allow",
                  "block-for-eviction", "block-for-eviction-if-contains-last-replica")
DEFAULTS = {
    "medai_longhorn_replicas": None,  # None: min(3, storage nodes); more than the storage nodes is refused
    "medai_longhorn_node_drain_policy": "block-for-eviction-if-contains-last-replica",
    "medai_longhorn_default_class": True,
    "medai_longhorn_release_timeout": 900,
}


def values(v: dict) -> dict:
    n = v["medai_longhorn_replicas"]
    return {"defaultSettings": {"defaultReplicaCount": n, "nodeDrainPolicy": v["medai_longhorn_node_drain_policy"]},
            "persistence": {"defaultClass": v["medai_longhorn_default_class"], "defaultClassReplicaCount": n}}
