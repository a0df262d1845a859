"""`medai render --explain`: the rendered platform read as a cluster would read it, report only (no gate yet).

Two tables for a site render (installer.platform.render.render_site):
  pods   every pod template the install applies (chart objects, hooks included, and medai's site objects), with
         its namespace, the Pod Security level that namespace will enforce (its
         pod-security.kubernetes.io/enforce label where the render gives the Namespace one, else the K3s
         admission configuration's default, roles/k3s/templates/psa.yaml.j2 with the site's variables; exempt
         namespaces are privileged) and every violation at that level (installer.render.podsecurity);
  flows  for every pair of platform namespaces (and the nodes), the connections the rendered NetworkPolicies
         allow from some pod of the first to some pod of the second (installer.render.netpol), each pod taken
         from its template's labels and named ports; kube-system stands in with K3s's CoreDNS
         (k8s-app=kube-dns), the nodes with their addresses and the API VIP (host network: the API server,
         kubelets).
Nothing here decides anything yet: the report only; the coherence gate is still to come.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from installer.render.netpol import Connections, Endpoint, NetworkPolicies
from installer.render.podsecurity import (
    AdmissionDefaults,
    NamespaceLevel,
    Violation,
    evaluate,
    k3s_admission,
    namespace_level,
    pod_template,
)

NODES = "(nodes)"
# Pods every K3s cluster runs that the render does not carry, as NetworkPolicies see them.
K3S_PODS = (("kube-system", {"k8s-app": "kube-dns"}, "coredns"),)


@dataclass(frozen=True)
class PodRow:
    release: str
    namespace: str
    kind: str
    name: str
    hook: bool
    level: NamespaceLevel
    violations: tuple[Violation, ...]


@dataclass(frozen=True)
class FlowRow:
    source: str
    destination: str
    connections: Connections


@dataclass
class Explanation:
    admission: AdmissionDefaults
    pods: list[PodRow] = field(default_factory=list)
    flows: list[FlowRow] = field(default_factory=list)
    isolated: list[str] = field(default_factory=list)  # namespaces whose every pod a policy selects both ways

    def pod(self, namespace: str, name: str) -> PodRow:
        return next(r for r in self.pods if r.namespace == namespace and r.name == name)

    def flow(self, source: str, destination: str) -> Connections:
        return next((f.connections for f in self.flows if (f.source, f.destination) == (source, destination)),
                    Connections.none())


def _objects(site) -> Iterable[tuple[str, str, dict]]:
    """(release, namespace, object) for everything the install applies."""
    for r in site.releases:
        for o in r.objects + r.site_objects:
            if isinstance(o, dict):
                yield r.name, (o.get("metadata") or {}).get("namespace") or r.namespace, o


def _endpoints(site, inv) -> dict[str, list[Endpoint]]:
    """Namespace (or NODES) -> the endpoints standing for it."""
    out: dict[str, list[Endpoint]] = {r.namespace: [] for r in site.releases}
    for _, ns, o in _objects(site):
        tpl = pod_template(o)
        if tpl is not None:
            out.setdefault(ns, []).append(Endpoint.pod(ns, tpl.metadata.get("labels") or {}, None,
                                                       tpl.spec.get("containers") or []))
    for ns, labels, _ in K3S_PODS:
        out.setdefault(ns, []).append(Endpoint.pod(ns, labels))
    addresses = sorted({h.address for h in inv.hosts.values() if h.ip is not None}
                       | ({inv.site.medai_api_vip} if inv.site.medai_api_vip else set()))
    out[NODES] = [Endpoint.external(a) for a in addresses]
    return out


def explain(site, inv) -> Explanation:
    """Both tables for a site render and its inventory."""
    admission = k3s_admission(inv.site.model_dump())
    ns_labels: dict[str, dict] = {}
    for _, _, o in _objects(site):
        if o.get("kind") == "Namespace":
            meta = o.get("metadata") or {}
            ns_labels[meta.get("name")] = meta.get("labels") or {}
    out = Explanation(admission)
    for release, ns, o in _objects(site):
        if pod_template(o) is None:
            continue
        meta = o.get("metadata") or {}
        level = namespace_level(ns, ns_labels.get(ns), admission)
        out.pods.append(PodRow(release, ns, o["kind"], meta.get("name", "?"),
                               "helm.sh/hook" in (meta.get("annotations") or {}), level,
                               tuple(evaluate(o, level.level))))
    policies = NetworkPolicies((o for _, _, o in _objects(site)), ns_labels)
    endpoints = _endpoints(site, inv)
    out.isolated = [ns for ns, eps in endpoints.items() if ns != NODES and eps and all(
        policies.selecting(e, d) for e in eps for d in ("Ingress", "Egress"))]
    for a, sources in endpoints.items():
        for b, destinations in endpoints.items():
            if a == NODES and b == NODES:
                continue
            conns = Connections.none()
            for s in sources:
                for d in destinations:
                    conns = conns | policies.connections(s, d)
            if conns:
                out.flows.append(FlowRow(a, b, conns))
    return out


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]


def lines(e: Explanation) -> list[str]:
    """The two tables as text, as `medai render --explain` prints them."""
    a = e.admission
    out = [f"Pod Security (Kubernetes 1.34; cluster default {a.enforce}, exempt: "
           f"{', '.join(sorted(a.exempt_namespaces)) or 'none'}; from {a.source})"]
    rows = [("NAMESPACE", "LEVEL", "RELEASE", "POD TEMPLATE", "VIOLATIONS")]
    for r in e.pods:
        checks = sorted({v.check for v in r.violations})
        rows.append((r.namespace, f"{r.level.level} ({r.level.why})", r.release,
                     f"{r.kind}/{r.name}{' (hook)' if r.hook else ''}", ", ".join(checks) or "admitted"))
    table = _table(rows)
    out.append(table[0])
    for r, line in zip(e.pods, table[1:]):
        out.append(line)
        out += [f"    {v}" for v in r.violations]
    refused = sum(1 for r in e.pods if r.violations)
    out.append(f"{refused} of {len(e.pods)} pod templates refused at the level their namespace enforces")
    out.append("")
    out.append("Flows the rendered NetworkPolicies allow between platform namespaces (some pod to some pod)")
    out.append(f"namespaces whose every pod a policy selects for ingress and egress: {', '.join(e.isolated) or 'none'}")
    out += _table([("FROM", "TO", "CONNECTIONS")] + [(f.source, f.destination, str(f.connections)) for f in e.flows])
    return out
