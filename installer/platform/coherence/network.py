"""Network flows: every platform namespace has a default deny (ingress and egress, every pod, no rule); every
declared flow (installer.platform.flows.Flow) is allowed by the rendered NetworkPolicies for every pod it names;
between any two namespaces (one of them a platform namespace; kube-system, the nodes and a site client besides)
nothing else is. Read with installer.render.netpol (standard NetworkPolicy semantics), each pod from its
template's labels and named ports; connections inside one namespace are not judged here."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from installer.platform.coherence.model import K3S_NAMESPACE, Finding, namespace_labels, platform_namespaces, pod_rows, rows
from installer.platform.coherence.outside import operator_made
from installer.platform.flows import NODES, SITE, Flow
from installer.render.netpol import MAX_PORT, Connections, Endpoint, NetworkPolicies

CHECK = "network"
# Pods every K3s cluster runs that the render does not carry, as NetworkPolicies see them.
K3S_PODS = ((K3S_NAMESPACE, {"k8s-app": "kube-dns"}, "coredns"),)
SITE_CLIENT = "192.0.2.10"  # TEST-NET-1: a client on the site's network, outside every cluster range


@dataclass(frozen=True)
class Pod:
    group: str  # a namespace, NODES or SITE
    release: str
    kind: str
    ref: str
    endpoint: Endpoint

    @property
    def labels(self):
        return self.endpoint.labels


def endpoints(site, inv) -> dict[str, list[Pod]]:
    """Namespace (or NODES, SITE) -> the pods standing for it: each pod template's, the pods operators make from
    rendered objects (CloudNativePG's instances, installer.platform.coherence.outside.operator_made), K3s's."""
    out: dict[str, list[Pod]] = {r.namespace: [] for r in site.releases}
    for row in pod_rows(site):
        tpl = row.template
        ep = Endpoint.pod(row.namespace, tpl.metadata.get("labels") or {}, None, tpl.spec.get("containers") or [])
        out.setdefault(row.namespace, []).append(Pod(row.namespace, row.release, row.kind, row.ref, ep))
    for release, ns, kind, ref, labels, spec_containers in operator_made(site).pods:
        out.setdefault(ns, []).append(Pod(ns, release, kind, ref, Endpoint.pod(ns, labels, None, spec_containers)))
    for ns, labels, name in K3S_PODS:
        out.setdefault(ns, []).append(Pod(ns, "(k3s)", "Pod", f"{ns}/{name}", Endpoint.pod(ns, labels)))
    addresses = sorted({h.address for h in inv.hosts.values() if h.ip is not None}
                       | ({inv.site.medai_api_vip} if inv.site.medai_api_vip else set()))
    out[NODES] = [Pod(NODES, "(nodes)", "Node", a, Endpoint.external(a)) for a in addresses]
    out[SITE] = [Pod(SITE, "(site)", "Client", SITE_CLIENT, Endpoint.external(SITE_CLIENT))]
    return out


def policies_of(site) -> NetworkPolicies:
    return NetworkPolicies((row.obj for row in rows(site)), namespace_labels(site))


def minus(a: Connections, b: Connections) -> Connections:
    """The connections of A that B does not hold."""
    pairs = []
    for proto, ranges in a.ports.items():
        held = sorted(b.ports.get(proto, ()))
        for lo, hi in ranges:
            start = lo
            for blo, bhi in held:
                if bhi < start or blo > hi:
                    continue
                if blo > start:
                    pairs.append((proto, start, blo - 1))
                start = max(start, bhi + 1)
            if start <= hi:
                pairs.append((proto, start, hi))
    return Connections.of(pairs)


def _subset(want, labels) -> bool:
    return all(labels.get(k) == v for k, v in (want or {}).items())


def flow_ports(flow: Flow, dst: Endpoint) -> Connections:
    """What the flow needs towards DST (a named port resolved against DST's containers; none when it lacks it)."""
    proto = flow.protocol.upper()
    if isinstance(flow.port, str):
        return Connections.of([(proto, n, n) for name, n, p in dst.named_ports if name == flow.port and p == proto])
    end = flow.end_port or flow.port
    return Connections.of([(proto, int(flow.port), int(end))])


def default_deny(site, eps: dict[str, list[Pod]]) -> list[Finding]:
    """Every platform namespace where pods run (a Namespace without pods, e.g. Cilium's cilium-secrets, needs none)."""
    out = []
    for ns in platform_namespaces(site):
        if not eps.get(ns):
            continue
        found = any(row.kind == "NetworkPolicy" and row.namespace == ns and _denies_all(row.obj) for row in rows(site))
        if not found:
            out.append(Finding(CHECK, ns, "Namespace", ns, "NetworkPolicy",
                               "no default deny: a policy with podSelector {}, policyTypes [Ingress, Egress] and no rule"))
    return out


def _denies_all(policy: dict) -> bool:
    spec = policy.get("spec") or {}
    sel = spec.get("podSelector") or {}
    return not sel.get("matchLabels") and not sel.get("matchExpressions") and \
        {"Ingress", "Egress"} <= set(spec.get("policyTypes") or []) and not spec.get("ingress") and not spec.get("egress")


def flow_text(f: Flow) -> str:
    end = f.end_port
    return f"{f.src_namespace} -> {f.dst_namespace} {f.protocol}/{f.port}{'-' + str(end) if end else ''}" + \
        (f" ({f.why})" if f.why else "")


def _blame(src: Pod, dst: Pod) -> Pod:
    return dst if dst.endpoint.namespace is not None else src


def declared_allowed(eps: dict[str, list[Pod]], policies: NetworkPolicies, flows: Iterable[Flow]) -> list[Finding]:
    out = []
    for f in flows:
        if f.src_namespace not in eps or f.dst_namespace not in eps:
            continue  # a component this render does not carry (its chart is not in the bundle)
        srcs = [p for p in eps.get(f.src_namespace, []) if _subset(f.src_pods, p.labels)]
        dsts = [p for p in eps.get(f.dst_namespace, []) if _subset(f.dst_pods, p.labels)]
        if not srcs or not dsts:
            side, pods = ("from", f.src_pods) if not srcs else ("to", f.dst_pods)
            out.append(Finding(CHECK, "(flows)", "Flow", flow_text(f), side,
                               f"no pod of {f.src_namespace if not srcs else f.dst_namespace} carries {dict(pods)}"))
            continue
        for d in dsts:
            need = flow_ports(f, d.endpoint)
            if not need:
                out.append(Finding(CHECK, d.release, d.kind, d.ref, "ports",
                                   f"declared flow {flow_text(f)}: the pod has no port named {f.port}"))
                continue
            bad = [s for s in srcs if minus(need, policies.connections(s.endpoint, d.endpoint))]
            if bad:
                b = _blame(bad[0], d)
                out.append(Finding(CHECK, b.release, b.kind, b.ref, "NetworkPolicy",
                                   f"declared flow {flow_text(f)} is denied from {bad[0].ref} to {d.ref} "
                                   f"(allowed there: {policies.connections(bad[0].endpoint, d.endpoint)})"))
    return out


def undeclared_denied(eps: dict[str, list[Pod]], policies: NetworkPolicies, flows: list[Flow],
                      platform: set[str]) -> list[Finding]:
    out = []
    for a, sources in eps.items():
        for b, destinations in eps.items():
            if a == b or not ({a, b} & platform):
                continue
            pair_flows = [f for f in flows if (f.src_namespace, f.dst_namespace) == (a, b)]
            extra: dict[str, tuple[Pod, Connections]] = {}
            for s in sources:
                for d in destinations:
                    allowed = policies.connections(s.endpoint, d.endpoint)
                    if not allowed:
                        continue
                    held = Connections.none()
                    for f in pair_flows:
                        if _subset(f.src_pods, s.labels) and _subset(f.dst_pods, d.labels):
                            held = held | flow_ports(f, d.endpoint)
                    left = minus(allowed, held)
                    if left:
                        blame = _blame(s, d)
                        prev = extra.get(blame.ref, (blame, Connections.none()))[1]
                        extra[blame.ref] = (blame, prev | left)
            for blame, conns in extra.values():
                direction = f"ingress from {a}" if blame.endpoint.namespace == b else f"egress to {b}"
                out.append(Finding(CHECK, blame.release, blame.kind, blame.ref, direction,
                                   f"undeclared connections allowed: {_short(conns)}"))
    return out


def _short(c: Connections) -> str:
    return "all" if c == Connections.all() or all(r == ((1, MAX_PORT),) for r in c.ports.values()) and c.ports else str(c)


def check(site, inv, outside, flows: list[Flow]) -> list[Finding]:
    policies = policies_of(site)
    eps = endpoints(site, inv)
    platform = set(platform_namespaces(site))
    return default_deny(site, eps) + declared_allowed(eps, policies, flows) + \
        undeclared_denied(eps, policies, list(flows), platform)
