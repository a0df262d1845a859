"""Default-deny NetworkPolicies for every platform namespace, with the explicit allows each component needs.

Enforced by Cilium (K3s runs with disable-network-policy). Cilium's policyCIDRMatchMode [nodes] (roles/cilium)
lets ipBlocks select node addresses, which is how the API server (host network, :6443) and kubelets are allowed.
kube-system, where Cilium itself and K3s's CoreDNS and metrics-server run, gets none here: default-deny there is a
separate hardening step with its own allow list. What each namespace gets:

  all            medai-default-deny (ingress and egress), DNS to kube-system/kube-dns, the API servers on 6443,
                 any traffic between pods of the same namespace
  metallb-system the controller's webhook (9443) from the nodes (the API server calls webhooks from the host)
  longhorn-system from the nodes: the admission and conversion webhooks (9501, 9502), the manager API (9500),
                 iSCSI (3260: the node's initiator logs in to the instance-manager) and NFS (2049: share-manager
                 volumes mounted by the kubelet)
Backup targets (NFS, S3) are site-specific and not allowed by default.
"""
from __future__ import annotations

import ipaddress

NODE_INGRESS = {
    "metallb-system": [("TCP", 9443)],
    "longhorn-system": [("TCP", 9500), ("TCP", 9501), ("TCP", 9502), ("TCP", 3260), ("TCP", 2049)],
}
POLICY_NAMESPACES = {"metallb": "metallb-system", "longhorn": "longhorn-system"}


def _cidr(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"{ip}/{32 if ip.version == 4 else 128}"


def _node_blocks(inv) -> list[dict]:
    addrs = sorted({h.address for h in inv.hosts.values() if h.ip is not None}
                   | ({inv.site.medai_api_vip} if inv.site.medai_api_vip else set()))
    return [{"ipBlock": {"cidr": _cidr(a)}} for a in addrs]


def _policy(name: str, namespace: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "medai"}},
            "spec": {"podSelector": {}, **spec}}


def namespace_policies(chart: str, inv, namespace: str, api_port: int = 6443) -> list[dict]:
    if POLICY_NAMESPACES.get(chart) != namespace:
        return []
    servers = [inv.hosts[s] for s in inv.servers if inv.hosts[s].ip is not None]
    api_peers = [{"ipBlock": {"cidr": _cidr(h.address)}} for h in servers]
    if inv.site.medai_api_vip:
        api_peers.append({"ipBlock": {"cidr": _cidr(inv.site.medai_api_vip)}})
    out = [
        _policy("medai-default-deny", namespace, {"policyTypes": ["Ingress", "Egress"]}),
        _policy("medai-allow-dns", namespace, {"policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}),
        _policy("medai-allow-apiserver", namespace, {"policyTypes": ["Egress"], "egress": [{
            "to": api_peers, "ports": [{"protocol": "TCP", "port": api_port}]}]}),
        _policy("medai-allow-same-namespace", namespace, {
            "policyTypes": ["Ingress", "Egress"], "ingress": [{"from": [{"podSelector": {}}]}],
            "egress": [{"to": [{"podSelector": {}}]}]}),
    ]
    ports = NODE_INGRESS.get(namespace)
    if ports:
        out.append(_policy("medai-allow-from-nodes", namespace, {"policyTypes": ["Ingress"], "ingress": [{
            "from": _node_blocks(inv), "ports": [{"protocol": p, "port": n} for p, n in ports]}]}))
    return out
