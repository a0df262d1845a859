"""`medai render --explain`: the rendered platform read as a cluster would read it, as tables beside the coherence
check's findings (installer.platform.coherence, which refuses the render; these tables show why).

  pods   every pod template the install applies (chart objects, hooks included, medai's site objects and what the
         releases' hooks apply), its namespace, the Pod Security level that namespace will enforce and every
         violation at that level (installer.platform.coherence.admission.pod_table);
  flows  for every pair of namespaces (and the nodes, and a client on the site's network), the connections the
         rendered NetworkPolicies allow from some pod of the first to some pod of the second
         (installer.platform.coherence.network.endpoints: each pod from its template's labels and named ports;
         kube-system stands in with K3s's CoreDNS, the nodes with their addresses and the API VIP);
  declared  each flow the site declares (installer.platform.site_flows.declared) and whether the policies allow it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.platform.coherence.admission import PodRow, pod_table
from installer.platform.coherence.network import declared_allowed, endpoints, flow_text, policies_of
from installer.platform.flows import NODES, SITE, Flow
from installer.render.netpol import Connections
from installer.render.podsecurity import AdmissionDefaults

__all__ = ["NODES", "SITE", "Explanation", "FlowRow", "PodRow", "explain", "lines"]


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
    declared: list[tuple[Flow, str]] = field(default_factory=list)  # each declared flow, "allowed" or why not

    def pod(self, namespace: str, name: str) -> PodRow:
        return next(r for r in self.pods if r.namespace == namespace and r.name == name)

    def flow(self, source: str, destination: str) -> Connections:
        return next((f.connections for f in self.flows if (f.source, f.destination) == (source, destination)),
                    Connections.none())


def explain(site, inv, flows: list[Flow] = ()) -> Explanation:
    """The tables for a site render, its inventory and the flows it declares."""
    admission, pods = pod_table(site, inv)
    out = Explanation(admission, pods)
    policies = policies_of(site)
    eps = endpoints(site, inv)
    for f in flows:
        bad = declared_allowed(eps, policies, [f])
        out.declared.append((f, bad[0].what if bad else "allowed"))
    out.isolated = [ns for ns, group in eps.items() if ns not in (NODES, SITE) and group and all(
        policies.selecting(p.endpoint, d) for p in group for d in ("Ingress", "Egress"))]
    for a, sources in eps.items():
        for b, destinations in eps.items():
            if a in (NODES, SITE) and b in (NODES, SITE):
                continue
            conns = Connections.none()
            for s in sources:
                for d in destinations:
                    conns = conns | policies.connections(s.endpoint, d.endpoint)
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
    out.append("Flows the rendered NetworkPolicies allow between namespaces (some pod to some pod)")
    out.append(f"namespaces whose every pod a policy selects for ingress and egress: {', '.join(e.isolated) or 'none'}")
    out += _table([("FROM", "TO", "CONNECTIONS")] + [(f.source, f.destination, str(f.connections)) for f in e.flows])
    if e.declared:
        out += ["", "Declared flows (installer/platform/flows.py) and the rendered NetworkPolicies"]
        out += _table([("FLOW", "PODS", "VERDICT")] + [
            (flow_text(f), f"{dict(f.src_pods) or 'any'} -> {dict(f.dst_pods) or 'any'}", verdict)
            for f, verdict in e.declared])
    return out
