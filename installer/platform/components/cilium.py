"""Cilium: kube-proxy replacement on the API address K3s serves on every node, Pod CIDRs from K3s.

Without kube-proxy Cilium cannot use the kubernetes Service to find the API: it needs an address that answers
on every node before any Service works. K3s serves one on each node at 127.0.0.1:6444: on a server the
kube-apiserver itself listens there (K3s's supervisor fronts it on 6443), on an agent K3s's client-side load
balancer listens there and spreads over the servers it learnt, failing over by itself. No VIP is involved.
"""
from __future__ import annotations

from installer.platform.flows import Flow

NAME = "cilium"
NAMESPACE = "kube-system"
DEFAULTS = {
    "medai_cilium_kube_proxy_replacement": True,  # K3s runs with kube-proxy disabled
    "medai_cilium_k8s_service_host": "127.0.0.1",  # K3s's node-local API endpoint (servers and agents alike)
    "medai_cilium_k8s_service_port": 6444,
    "medai_cilium_operator_replicas": None,  # None: min(2, servers)
    "medai_cilium_hubble_relay": True,
    "medai_cilium_release_timeout": 600,
}


def values(v: dict) -> dict:
    return {
        "kubeProxyReplacement": v["medai_cilium_kube_proxy_replacement"],
        "k8sServiceHost": v["medai_cilium_k8s_service_host"],
        "k8sServicePort": v["medai_cilium_k8s_service_port"],
        # Pod CIDRs are the ones K3s allocates per node from its cluster-cidr: Cilium and K3s cannot disagree.
        "ipam": {"mode": "kubernetes"},
        "k8s": {"requireIPv4PodCIDR": True},
        "operator": {"replicas": v["medai_cilium_operator_replicas"]},
        "hubble": {"enabled": True, "relay": {"enabled": v["medai_cilium_hubble_relay"]}},
        # NetworkPolicy ipBlocks may select node addresses (the API server, kubelets): the platform policies need it.
        "policyCIDRMatchMode": ["nodes"],
    }


def flows(v: dict, ns: dict) -> list[Flow]:
    """None: Cilium runs in kube-system, which gets no platform NetworkPolicies (its agents and operator are on
    the host network; Hubble Relay reaches the agents there)."""
    return []
