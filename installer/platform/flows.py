"""The network flows the platform needs, declared per component (the source of truth the coherence check reads).

A flow is one allowed connection: from pods (or the nodes, or a site client outside the cluster) to pods on a
port. The coherence check proves every declared flow is allowed by the rendered NetworkPolicies and every
undeclared flow between platform namespaces is denied.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Not a namespace: the nodes' host network (the API server calling webhooks, kubelets probing, host-network pods).
NODES = "(nodes)"
# Not a namespace: clients outside the cluster reaching a load-balanced entry point.
SITE = "(site)"


@dataclass(frozen=True)
class Flow:
    src_namespace: str  # a namespace, NODES or SITE
    dst_namespace: str
    port: int | str  # a number, or a named container port of the destination pods
    protocol: str = "TCP"
    src_pods: Mapping[str, str] = field(default_factory=dict)  # labels the source pods carry; {}: any pod there
    dst_pods: Mapping[str, str] = field(default_factory=dict)
    why: str = ""
