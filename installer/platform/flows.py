"""The network flow type each component declares its flows with (installer.platform.site_flows gathers a site's),
and the NetworkPolicies rendered from them: one source, so policies and declarations cannot drift.

A flow is one allowed connection: from pods (or the nodes, or a site client outside the cluster) to pods on a
port. The coherence check proves every declared flow is allowed by the rendered NetworkPolicies and every
undeclared flow between platform namespaces is denied.

Every platform namespace (each release's namespace but kube-system, and the namespaces medai creates for the
database Clusters) gets `medai-default-deny` (ingress and egress, every pod) and, for each pod selector a flow
names, one ingress and one egress policy with a rule per flow. kube-system (Cilium, K3s's CoreDNS and
metrics-server) gets none: a flow into it (DNS) is an egress rule of the source namespace only. The nodes are
ipBlocks of their addresses and the API VIP (Cilium's policyCIDRMatchMode [nodes] lets ipBlocks select them);
the site is every address outside the cluster's pod and service CIDRs.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# Not a namespace: the nodes' host network (the API server calling webhooks, kubelets probing, host-network pods).
NODES = "(nodes)"
# Not a namespace: clients outside the cluster reaching a load-balanced entry point.
SITE = "(site)"
KUBE_SYSTEM = "kube-system"
DNS_PODS = {"k8s-app": "kube-dns"}
LABELS = {"app.kubernetes.io/managed-by": "medai"}
# GPU agents' taint (roles/k3s at registration): node-level DaemonSets that must run there tolerate it.
GPU_TOLERATION = {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Flow:
    src_namespace: str  # a namespace, NODES or SITE
    dst_namespace: str
    port: int | str  # a number, or a named container port of the destination pods
    protocol: str = "TCP"
    src_pods: Mapping[str, str] = field(default_factory=dict)  # labels the source pods carry; {}: any pod there
    dst_pods: Mapping[str, str] = field(default_factory=dict)
    why: str = ""
    end_port: int | None = None  # with a numeric port: the range port..end_port (Longhorn's data plane)


def dns(namespace: str, pods: Mapping[str, str] | None = None) -> list[Flow]:
    """Name lookups: every platform pod asks K3s's CoreDNS in kube-system."""
    return [Flow(namespace, KUBE_SYSTEM, 53, proto, dict(pods or {}), DNS_PODS, "DNS lookups")
            for proto in ("UDP", "TCP")]


def api(namespace: str, pods: Mapping[str, str] | None = None, why: str = "the Kubernetes API", port: int = 6443) -> Flow:
    """Pods that watch or write the Kubernetes API: the API servers on the nodes (the kubernetes Service's
    endpoints, which Cilium's kube-proxy replacement translates to before policy)."""
    return Flow(namespace, NODES, port, "TCP", dict(pods or {}), {}, why)


def url_port(url: str) -> int:
    """The port of an http(s) URL, its scheme's default when none is written."""
    host = url.split("://", 1)[-1].split("/", 1)[0]
    if ":" in host.rsplit("]", 1)[-1]:
        return int(host.rsplit(":", 1)[1])
    return 80 if url.startswith("http://") else 443


# --- the NetworkPolicies rendered from the flows --------------------------------------------------------------------

def _cidr(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"{ip}/{32 if ip.version == 4 else 128}"


def node_peers(inv) -> list[dict]:
    addrs = sorted({h.address for h in inv.hosts.values() if h.ip is not None}
                   | ({inv.site.medai_api_vip} if inv.site.medai_api_vip else set()))
    return [{"ipBlock": {"cidr": _cidr(a)}} for a in addrs]


def site_peers(inv) -> list[dict]:
    """Clients outside the cluster: any IPv4 address but the pod and service CIDRs and the nodes (the nodes are
    NODES, with flows of their own)."""
    site = inv.site.model_dump()
    inside = [site.get("medai_k3s_cluster_cidr") or "10.42.0.0/16", site.get("medai_k3s_service_cidr") or "10.43.0.0/16"]
    nodes = [p["ipBlock"]["cidr"] for p in node_peers(inv) if ipaddress.ip_network(p["ipBlock"]["cidr"]).version == 4]
    return [{"ipBlock": {"cidr": "0.0.0.0/0", "except": inside + nodes}}]


def _peers(namespace: str, pods: Mapping[str, str], own: str, inv) -> list[dict]:
    if namespace == NODES:
        return node_peers(inv)
    if namespace == SITE:
        return site_peers(inv)
    peer: dict = {"podSelector": {"matchLabels": dict(pods)} if pods else {}}
    if namespace != own:
        peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return [peer]


def _port(f: Flow) -> dict:
    out: dict = {"protocol": f.protocol, "port": f.port}
    if f.end_port is not None:
        out["endPort"] = f.end_port
    return out


def _selector_name(direction: str, pods: Mapping[str, str]) -> str:
    words = [re.sub(r"[^a-z0-9]+", "-", str(v).lower()).strip("-") for _, v in sorted(pods.items())]
    slug = "-".join(dict.fromkeys(w for w in words if w)) or "all"
    name = f"medai-{direction}-{slug}"
    if len(name) > 63:
        name = name[:54].rstrip("-") + "-" + hashlib.sha256(slug.encode()).hexdigest()[:8]
    return name


def _policy(name: str, namespace: str, pods: Mapping[str, str], spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS)},
            "spec": {"podSelector": {"matchLabels": dict(pods)} if pods else {}, **spec}}


def policies(flows: list[Flow], namespace: str, inv) -> list[dict]:
    """The namespace's default deny and, per pod selector, its ingress and egress allows: one rule per flow."""
    if namespace == KUBE_SYSTEM:
        return []
    out = [_policy("medai-default-deny", namespace, {}, {"policyTypes": ["Ingress", "Egress"]})]
    groups: dict[tuple[str, tuple], list[dict]] = {}
    for f in flows:
        if f.dst_namespace == namespace:
            rule = {"from": _peers(f.src_namespace, f.src_pods, namespace, inv), "ports": [_port(f)]}
            groups.setdefault(("ingress", tuple(sorted(f.dst_pods.items()))), []).append(rule)
        if f.src_namespace == namespace:
            rule = {"to": _peers(f.dst_namespace, f.dst_pods, namespace, inv), "ports": [_port(f)]}
            groups.setdefault(("egress", tuple(sorted(f.src_pods.items()))), []).append(rule)
    names: set[str] = set()
    for (direction, pods), rules in sorted(groups.items()):
        name = _selector_name(direction, dict(pods))
        if name in names:
            name = f"{name[:54]}-{hashlib.sha256(repr(pods).encode()).hexdigest()[:8]}"
        names.add(name)
        kind = "Ingress" if direction == "ingress" else "Egress"
        out.append(_policy(name, namespace, dict(pods), {"policyTypes": [kind], direction: rules}))
    return out
