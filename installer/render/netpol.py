"""Standard NetworkPolicy semantics (networking.k8s.io/v1): which connections between two endpoints the policies
of a cluster allow.

The rules, as the Kubernetes documentation gives them:
  - a policy selects the pods of its own namespace that its podSelector matches ({} selects all of them);
  - policyTypes, when absent, is Ingress, plus Egress when the policy has egress rules;
  - a pod no policy selects for a direction is open in that direction; a selected pod admits the union of the
    rules of every policy that selects it (policies add, never subtract);
  - a connection needs both: the source's egress allows it and the destination's ingress allows it;
  - a rule with no from/to admits every peer, a rule with no ports every port of every protocol;
  - a peer is an ipBlock (cidr less its except), or pods: podSelector alone means the policy's namespace,
    namespaceSelector alone every pod of the matching namespaces, both in one peer the pods matching podSelector
    in the namespaces matching namespaceSelector (both in two peers: either);
  - a port entry's protocol defaults to TCP; port absent is every port of that protocol; a number with endPort a
    range; a name is resolved against the destination pod's container ports of that name and protocol;
  - every namespace carries the label kubernetes.io/metadata.name=NAME.
An endpoint outside the cluster (no namespace) is matched only by ipBlocks, and is never selected by a policy.
A pod's address is matched by ipBlocks only when given (the fixture cases leave it out, as their analyzer does).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from installer.render.labels import selector_matches

PROTOCOLS = ("TCP", "UDP", "SCTP")
MAX_PORT = 65535
NAME_LABEL = "kubernetes.io/metadata.name"

Ranges = tuple[tuple[int, int], ...]  # sorted, disjoint, inclusive port ranges


def _norm(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: list[list[int]] = []
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def _intersect(a: Ranges, b: Ranges) -> Ranges:
    return _norm((max(x[0], y[0]), min(x[1], y[1])) for x in a for y in b)


@dataclass(frozen=True)
class Connections:
    """A set of (protocol, port) pairs: for each protocol, its allowed port ranges."""
    ports: Mapping[str, Ranges] = field(default_factory=dict)

    @classmethod
    def all(cls) -> Connections:
        return cls(dict.fromkeys(PROTOCOLS, ((1, MAX_PORT),)))

    @classmethod
    def none(cls) -> Connections:
        return cls({})

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, int, int]]) -> Connections:
        by: dict[str, list[tuple[int, int]]] = {}
        for proto, lo, hi in pairs:
            by.setdefault(proto, []).append((lo, hi))
        return cls({p: _norm(r) for p, r in by.items() if _norm(r)})

    def __or__(self, other: Connections) -> Connections:
        return Connections.of([(p, lo, hi) for c in (self, other) for p, rs in c.ports.items() for lo, hi in rs])

    def __and__(self, other: Connections) -> Connections:
        return Connections({p: r for p in PROTOCOLS
                            if (r := _intersect(self.ports.get(p, ()), other.ports.get(p, ())))})

    def __bool__(self) -> bool:
        return any(self.ports.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connections) and {p: r for p, r in self.ports.items() if r} == \
            {p: r for p, r in other.ports.items() if r}

    def __hash__(self) -> int:
        return hash(tuple(sorted((p, r) for p, r in self.ports.items() if r)))

    def allows(self, port: int, protocol: str = "TCP") -> bool:
        return any(lo <= port <= hi for lo, hi in self.ports.get(protocol.upper(), ()))

    def __str__(self) -> str:
        if self == Connections.all():
            return "All Connections"
        if not self:
            return "No Connections"
        parts = []
        for p in PROTOCOLS:
            rs = self.ports.get(p)
            if rs:
                parts.append(f"{p} " + ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in rs))
        return ",".join(parts)


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (namespace, labels, its containers' named ports) or, with namespace None,
    an address outside the cluster."""
    namespace: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    named_ports: tuple[tuple[str, int, str], ...] = ()  # (name, containerPort, protocol)

    @classmethod
    def pod(cls, namespace: str, labels: Mapping[str, str] | None = None, ip: str | None = None,
            containers: Iterable[dict] = ()) -> Endpoint:
        """A pod from its namespace, labels and container specs (their named ports)."""
        named = tuple((p["name"], int(p["containerPort"]), str(p.get("protocol") or "TCP").upper())
                      for c in containers for p in c.get("ports") or [] if p.get("name") and "containerPort" in p)
        return cls(namespace, dict(labels or {}), ip, named)

    @classmethod
    def external(cls, ip: str) -> Endpoint:
        return cls(None, {}, ip)


def _in_block(block: Mapping, ip: str | None) -> bool:
    if ip is None:
        return False
    addr = ipaddress.ip_address(ip)
    net = ipaddress.ip_network(block["cidr"], strict=False)
    if addr.version != net.version or addr not in net:
        return False
    return not any(addr in ipaddress.ip_network(x, strict=False) for x in block.get("except") or []
                   if ipaddress.ip_network(x, strict=False).version == addr.version)


class NetworkPolicies:
    """The NetworkPolicies of a cluster and its namespaces' labels; answers what a connection may carry."""

    def __init__(self, policies: Iterable[dict], namespaces: Mapping[str, Mapping[str, str]] | None = None):
        self.policies = [p for p in policies if p.get("kind") == "NetworkPolicy"]
        self.namespaces = {n: dict(labels or {}) for n, labels in (namespaces or {}).items()}

    def namespace_labels(self, name: str) -> dict[str, str]:
        return {**self.namespaces.get(name, {}), NAME_LABEL: name}

    @staticmethod
    def policy_types(policy: dict) -> set[str]:
        spec = policy.get("spec") or {}
        if spec.get("policyTypes"):
            return set(spec["policyTypes"])
        return {"Ingress"} | ({"Egress"} if spec.get("egress") else set())

    @staticmethod
    def _namespace(policy: dict) -> str:
        return (policy.get("metadata") or {}).get("namespace") or "default"

    def selecting(self, pod: Endpoint, direction: str) -> list[dict]:
        """The policies that select POD for DIRECTION (Ingress or Egress)."""
        if pod.namespace is None:
            return []
        return [p for p in self.policies if self._namespace(p) == pod.namespace
                and direction in self.policy_types(p)
                and selector_matches((p.get("spec") or {}).get("podSelector"), pod.labels)]

    def peer_matches(self, peer: dict, policy_namespace: str, ep: Endpoint) -> bool:
        if "ipBlock" in peer:
            return _in_block(peer["ipBlock"], ep.ip)
        if ep.namespace is None:
            return False
        if "namespaceSelector" in peer:
            if not selector_matches(peer["namespaceSelector"], self.namespace_labels(ep.namespace)):
                return False
        elif ep.namespace != policy_namespace:
            return False
        return selector_matches(peer.get("podSelector"), ep.labels)

    @staticmethod
    def rule_ports(ports: list[dict] | None, dst: Endpoint) -> Connections:
        """What a rule's ports admit towards DST (named ports resolved against DST's containers)."""
        if not ports:
            return Connections.all()
        pairs: list[tuple[str, int, int]] = []
        for p in ports:
            proto = str(p.get("protocol") or "TCP").upper()
            port = p.get("port")
            if port is None:
                pairs.append((proto, 1, MAX_PORT))
            elif isinstance(port, int):
                pairs.append((proto, port, int(p.get("endPort") or port)))
            else:
                pairs += [(proto, n, n) for name, n, pr in dst.named_ports if name == port and pr == proto]
        return Connections.of(pairs)

    def _side(self, selected: Endpoint, peer: Endpoint, dst: Endpoint, direction: str) -> Connections:
        pols = self.selecting(selected, direction)
        if not pols:
            return Connections.all()
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        out = Connections.none()
        for pol in pols:
            ns = self._namespace(pol)
            for rule in (pol.get("spec") or {}).get(key) or []:
                peers = rule.get(peers_key)
                if peers and not any(self.peer_matches(x, ns, peer) for x in peers):
                    continue
                out = out | self.rule_ports(rule.get("ports"), dst)
        return out

    def connections(self, src: Endpoint, dst: Endpoint) -> Connections:
        """Every (protocol, port) on which SRC may open a connection to DST: its egress and DST's ingress."""
        return self._side(src, dst, dst, "Egress") & self._side(dst, src, dst, "Ingress")

    def allowed(self, src: Endpoint, dst: Endpoint, port: int | str, protocol: str = "TCP") -> bool:
        """May SRC connect to DST on PORT (a number, or the name of one of DST's container ports) over PROTOCOL?"""
        protocol = protocol.upper()
        if isinstance(port, str):
            numbers = [n for name, n, pr in dst.named_ports if name == port and pr == protocol]
            if not numbers:
                return False
            port = numbers[0]
        return self.connections(src, dst).allows(port, protocol)

    def ip_boundaries(self) -> list[int]:
        """Every IPv4 address where some ipBlock starts or stops: the external address space is cut there."""
        cuts = {0, 2 ** 32}
        for pol in self.policies:
            spec = pol.get("spec") or {}
            for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
                for peer in (rule.get("from") or []) + (rule.get("to") or []):
                    block = peer.get("ipBlock")
                    for c in ([block["cidr"], *(block.get("except") or [])] if block else []):
                        net = ipaddress.ip_network(c, strict=False)
                        if net.version == 4:
                            cuts |= {int(net.network_address), int(net.broadcast_address) + 1}
        return sorted(cuts)
