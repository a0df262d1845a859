"""The site's values for each platform release, from the inventory's all.vars, on top of the bundle's values.

Every variable a site may set, with its default (docs/platform.md lists the same):

  medai_api_vip / first server     Cilium's k8sServiceHost (port medai_k3s_api_port, 6443): the API before any
                                   Service exists, since Cilium replaces kube-proxy
  medai_cilium_kube_proxy_replacement  true: Cilium replaces kube-proxy (the k3s role then disables K3s's)
  medai_cluster_cidr               10.42.0.0/16 (K3s's default): pod CIDR; Cilium's IPAM reads the node podCIDRs
                                   K3s allocates from it (ipam.mode kubernetes), so the two cannot disagree
  medai_service_cidr               10.43.0.0/16 (K3s's default)
  medai_cilium_operator_replicas   min(2, number of servers)
  medai_cilium_hubble_relay        true
  medai_metallb_pool               required: an IPAddressPool (L2 only: speaker FRR and frr-k8s off)
  medai_longhorn_replicas          min(3, storage nodes); storage nodes are all hosts except those with the host
                                   var medai_longhorn_storage: false
  medai_longhorn_node_drain_policy block-for-eviction-if-contains-last-replica: a drain moves the last replica
                                   away instead of failing or losing it (what the upgrade's drain needs)

The exact values returned here are what `medai render` writes and what the Helm apply passes: one function.
"""
from __future__ import annotations

import copy
import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from installer.errors import InventoryError
from installer.yamldoc import field_path

DRAIN_POLICIES = ("block-if-contains-last-replica", "allow-if-replica-is-stopped", "always-allow",
                  "block-for-eviction", "block-for-eviction-if-contains-last-replica")
# The order releases are applied in: nodes stay NotReady until the CNI runs, MetalLB and Longhorn need pods.
PLATFORM_ORDER = ("cilium", "metallb", "longhorn")


class PlatformVars(BaseModel):
    model_config = ConfigDict(extra="ignore")

    medai_k3s_api_port: int = 6443
    medai_cilium_kube_proxy_replacement: bool = True
    medai_cluster_cidr: str = "10.42.0.0/16"
    medai_service_cidr: str = "10.43.0.0/16"
    medai_cilium_operator_replicas: int | None = Field(default=None, ge=1)
    medai_cilium_hubble_relay: bool = True
    medai_longhorn_replicas: int | None = Field(default=None, ge=1, le=3)
    medai_longhorn_node_drain_policy: Literal[DRAIN_POLICIES] = "block-for-eviction-if-contains-last-replica"  # type: ignore[valid-type]

    @field_validator("medai_cluster_cidr", "medai_service_cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        try:
            ipaddress.ip_network(v, strict=True)
        except ValueError as e:
            raise ValueError(f"{v!r} is not a network CIDR ({e})") from None
        return v


def platform_vars(inv) -> PlatformVars:
    data = inv.site.model_dump()
    try:
        return PlatformVars.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise InventoryError(f"{inv.path}: all.vars.{field_path(err['loc'])}: "
                             f"{err['msg'].removeprefix('Value error, ')}") from None


def storage_nodes(inv) -> list[str]:
    return [n for n, h in inv.hosts.items() if h.vars.get("medai_longhorn_storage", True) is not False]


def longhorn_replicas(inv, pv: PlatformVars) -> int:
    nodes = len(storage_nodes(inv))
    if pv.medai_longhorn_replicas is None:
        return max(1, min(3, nodes))
    if pv.medai_longhorn_replicas > nodes:
        raise InventoryError(f"{inv.path}: all.vars.medai_longhorn_replicas: {pv.medai_longhorn_replicas} replicas "
                             f"but only {nodes} storage node(s)")
    return pv.medai_longhorn_replicas


def site_values(chart: str, inv) -> dict[str, Any]:
    """The values the site adds for one chart ({} for charts without site settings)."""
    pv = platform_vars(inv)
    if chart == "cilium":
        return {
            "kubeProxyReplacement": pv.medai_cilium_kube_proxy_replacement,
            "k8sServiceHost": inv.api_address,
            "k8sServicePort": pv.medai_k3s_api_port,
            "ipam": {"mode": "kubernetes"},
            "k8s": {"requireIPv4PodCIDR": True},
            "operator": {"replicas": pv.medai_cilium_operator_replicas or min(2, len(inv.servers))},
            "hubble": {"enabled": True, "relay": {"enabled": pv.medai_cilium_hubble_relay}},
        }
    if chart == "metallb":
        return {"speaker": {"frr": {"enabled": False}}, "frrk8s": {"enabled": False}}
    if chart == "longhorn":
        n = longhorn_replicas(inv, pv)
        return {
            "defaultSettings": {"defaultReplicaCount": n, "nodeDrainPolicy": pv.medai_longhorn_node_drain_policy},
            "persistence": {"defaultClass": True, "defaultClassReplicaCount": n},
        }
    return {}


def merge(base: dict, over: dict) -> dict:
    """Deep merge as Helm merges values files: mappings merge, everything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def release_values(chart, inv) -> dict[str, Any]:
    """The bundle's values for the chart with the site's on top: exactly what render writes and apply passes."""
    return merge(chart.values or {}, site_values(chart.name, inv))


def site_objects(chart: str, inv, namespace: str) -> list[dict]:
    """Objects medai applies after a release is ready (they need its CRDs): MetalLB's pool and L2 advertisement."""
    if chart != "metallb":
        return []
    meta = {"namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "medai"}}
    return [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "medai-site", **meta}, "spec": {"addresses": [_pool_range(inv.site.medai_metallb_pool)]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
         "metadata": {"name": "medai-site", **meta}, "spec": {"ipAddressPools": ["medai-site"]}},
    ]


def _pool_range(text: str) -> str:
    """MetalLB accepts CIDRs and FIRST-LAST ranges; written without spaces."""
    return "-".join(p.strip() for p in text.split("-")) if "-" in text else text.strip()
