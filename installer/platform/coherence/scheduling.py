"""Scheduling: every pod template can land on at least one inventory node given its nodeSelector, required node
affinity and tolerations against each node's labels and taints; a DaemonSet tolerates every node it selects;
replicas with a required anti-affinity on the host name fit the nodes they may use; Longhorn's storage nodes
(installer.platform.values.storage_nodes) are exactly the nodes its manager runs on.

The nodes are the inventory's hosts as roles/k3s registers them: kubernetes.io/hostname, os linux, arch amd64,
the control-plane/master/etcd role labels on servers, and the host's medai_k3s_node_labels/medai_k3s_node_taints
(the role's defaults: GPU hosts nvidia.com/gpu.present=true and gpu=true:NoSchedule). GPU nodes may carry any
label NVIDIA's feature discovery sets at run time (nvidia.com/*, feature.node.kubernetes.io/*)."""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.platform.coherence.model import Finding, Row, pod_rows, rows
from installer.platform.values import storage_nodes
from installer.render.labels import selector_matches

CHECK = "scheduling"
SERVER_LABELS = {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true",
                 "node-role.kubernetes.io/etcd": "true"}
GPU_LABELS = ["nvidia.com/gpu.present=true"]
GPU_TAINTS = ["gpu=true:NoSchedule"]
DISCOVERED = ("nvidia.com/", "feature.node.kubernetes.io/")
HOSTNAME = "kubernetes.io/hostname"
LONGHORN_MANAGER = "longhorn-manager"


@dataclass
class Node:
    name: str
    labels: dict[str, str]
    taints: list[dict] = field(default_factory=list)
    discovered: bool = False  # labels of DISCOVERED prefixes may appear at run time

    def has(self, key: str) -> bool:
        return key in self.labels or (self.discovered and key.startswith(DISCOVERED))

    def value_in(self, key: str, values) -> bool:
        if key in self.labels:
            return self.labels[key] in values
        return self.discovered and key.startswith(DISCOVERED)


def _taint(text: str) -> dict:
    kv, _, effect = text.partition(":")
    key, _, value = kv.partition("=")
    return {"key": key, "value": value, "effect": effect}


def nodes(inv) -> list[Node]:
    out = []
    for name, h in inv.hosts.items():
        gpu = name in inv.gpu
        labels = {HOSTNAME: name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "node.kubernetes.io/instance-type": "k3s"}
        if name in inv.servers:
            labels.update(SERVER_LABELS)
        for item in h.vars.get("medai_k3s_node_labels", GPU_LABELS if gpu else []):
            k, _, v = str(item).partition("=")
            labels[k] = v
        taints = [_taint(t) for t in h.vars.get("medai_k3s_node_taints", GPU_TAINTS if gpu else [])]
        out.append(Node(name, labels, taints, gpu))
    return out


def _expression(node: Node, e: dict) -> bool:
    key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
    if op == "In":
        return node.value_in(key, values)
    if op == "NotIn":
        return not (key in node.labels and node.labels[key] in values)
    if op == "Exists":
        return node.has(key)
    if op == "DoesNotExist":
        return key not in node.labels
    if op in ("Gt", "Lt") and key in node.labels and node.labels[key].lstrip("-").isdigit():
        a, b = int(node.labels[key]), int(values[0])
        return a > b if op == "Gt" else a < b
    return False


def _term(node: Node, term: dict) -> bool:
    fields = all((f.get("operator") == "In") == (node.name in (f.get("values") or []))
                 for f in term.get("matchFields") or [] if f.get("key") == "metadata.name")
    return fields and all(_expression(node, e) for e in term.get("matchExpressions") or [])


def selects(spec: dict, node: Node) -> str | None:
    """Why the pod may not use NODE by its selectors (None: it may)."""
    for k, v in (spec.get("nodeSelector") or {}).items():
        if not node.value_in(k, [v]):
            return f"nodeSelector {k}={v}"
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if terms and not any(_term(node, t) for t in terms):
        return "required node affinity"
    return None


def _tolerates(tol: dict, taint: dict) -> bool:
    if tol.get("effect") and tol["effect"] != taint["effect"]:
        return False
    if tol.get("operator") == "Exists":
        return not tol.get("key") or tol["key"] == taint["key"]
    return tol.get("key") == taint["key"] and str(tol.get("value") or "") == taint["value"]


def untolerated(spec: dict, node: Node) -> str | None:
    """The node's first taint the pod does not tolerate (None: it tolerates them all)."""
    for t in node.taints:
        if t["effect"] in ("NoSchedule", "NoExecute") and not any(_tolerates(x, t) for x in spec.get("tolerations") or []):
            return f"{t['key']}={t['value']}:{t['effect']}"
    return None


def _anti_affinity_on_hosts(row: Row) -> bool:
    tpl = row.template
    terms = (((tpl.spec.get("affinity") or {}).get("podAntiAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or [])
    own = tpl.metadata.get("labels") or {}
    return any(t.get("topologyKey") == HOSTNAME and selector_matches(t.get("labelSelector"), own) for t in terms)


def _pod(row: Row, all_nodes: list[Node]) -> tuple[list[Finding], list[str]]:
    spec, base = row.template.spec, f"{row.template.path}spec"
    out, fit, why = [], [], []
    for n in all_nodes:
        sel, taint = selects(spec, n), untolerated(spec, n)
        if sel is None and taint is None:
            fit.append(n.name)
        elif sel is None and row.kind == "DaemonSet":
            out.append(row.finding(CHECK, f"{base}.tolerations", f"selects node {n.name} but does not tolerate its "
                                   f"taint {taint}"))
        else:
            why.append(f"{n.name} ({sel or 'taint ' + taint + ' not tolerated'})")
    if not fit and row.kind != "DaemonSet":
        out.append(row.finding(CHECK, base, f"fits no node: {'; '.join(why)}"))
    replicas = (row.obj.get("spec") or {}).get("replicas", 1) if row.kind in ("Deployment", "StatefulSet") else 1
    if fit and isinstance(replicas, int) and replicas > len(fit) and _anti_affinity_on_hosts(row):
        out.append(row.finding(CHECK, "spec.replicas", f"{replicas} replicas with a required anti-affinity on "
                               f"{HOSTNAME}, but only {len(fit)} node(s) fit: {', '.join(fit)}"))
    return out, fit


def check(site, inv, outside) -> list[Finding]:
    all_nodes = nodes(inv)
    out: list[Finding] = []
    for row in pod_rows(site):
        found, fit = _pod(row, all_nodes)
        out += found
        if row.kind == "DaemonSet" and row.name == LONGHORN_MANAGER:
            want = sorted(storage_nodes(inv))
            if sorted(fit) != want:
                out.append(row.finding(CHECK, f"{row.template.path}spec", f"runs on {', '.join(sorted(fit)) or 'no node'}"
                                       f" but the storage nodes are {', '.join(want)} (replica count and volumes "
                                       "count on them)"))
    out += _clusters(site, all_nodes)
    return out


def _clusters(site, all_nodes: list[Node]) -> list[Finding]:
    """CloudNativePG Clusters: the instances' nodeSelector and tolerations, and a required anti-affinity."""
    out = []
    for row in rows(site):
        if row.kind != "Cluster" or not str(row.obj.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
            continue
        spec = row.obj.get("spec") or {}
        aff = spec.get("affinity") or {}
        pod = {"nodeSelector": aff.get("nodeSelector"), "tolerations": aff.get("tolerations")}
        fit = [n.name for n in all_nodes if selects(pod, n) is None and untolerated(pod, n) is None]
        instances = int(spec.get("instances") or 1)
        if not fit:
            out.append(row.finding(CHECK, "spec.affinity", "the instances fit no node"))
        elif aff.get("podAntiAffinityType") == "required" and aff.get("enablePodAntiAffinity", True) \
                and instances > len(fit):
            out.append(row.finding(CHECK, "spec.instances", f"{instances} instances with a required anti-affinity "
                                   f"but only {len(fit)} node(s) fit"))
    return out
