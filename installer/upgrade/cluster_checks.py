"""Preflight and drain decisions, as pure functions of Kubernetes API responses (the JSON the API returns).

Inputs are the objects `kubectl get -o json` / the API give: v1 NodeList, v1 PodList, policy/v1
PodDisruptionBudgetList, longhorn.io/v1beta2 VolumeList, and the text of GET /readyz/etcd. The upgrade reads
them with the kubernetes client; the tests feed recorded responses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.deploy.node_conditions import not_ready, pressures
from installer.render.labels import selector_matches as label_selector_matches


def node_problems(nodes: dict) -> list[str]:
    out = []
    for n in nodes.get("items", []):
        name = n["metadata"]["name"]
        why = not_ready(n)
        if why is not None:
            out.append(f"node {name}: not Ready ({why})")
        if (n.get("spec") or {}).get("unschedulable"):
            out.append(f"node {name}: cordoned (unschedulable) before the upgrade began")
        out += [f"node {name}: {kind}" for kind in pressures(n)]
    return out


def etcd_problems(nodes: dict, readyz_etcd: str) -> list[str]:
    """Quorum: more than half of the etcd members (K3s labels them node-role.kubernetes.io/etcd=true) Ready,
    and the API server's own etcd check answering ok. An upgrade takes one member down at a time, so quorum
    must survive one more loss: with n members, at least floor(n/2)+2 healthy before starting (n >= 3)."""
    members = [n for n in nodes.get("items", [])
               if (n["metadata"].get("labels") or {}).get("node-role.kubernetes.io/etcd") == "true"]
    out = []
    if not readyz_etcd.strip().endswith("ok"):
        out.append(f"etcd: the API server's /readyz/etcd says {readyz_etcd.strip()!r}")
    if not members:
        return out  # K3s with its SQLite datastore: no etcd members
    healthy = [n["metadata"]["name"] for n in members if not_ready(n) is None]
    n = len(members)
    quorum = n // 2 + 1
    if len(healthy) < quorum:
        out.append(f"etcd: {len(healthy)} of {n} members healthy, quorum needs {quorum}: no quorum")
    elif n >= 3 and len(healthy) - 1 < quorum:
        out.append(f"etcd: {len(healthy)} of {n} members healthy; restarting one would lose quorum ({quorum})")
    return out


def longhorn_problems(volumes: dict | None) -> list[str]:
    if volumes is None:
        return []
    out = []
    for v in volumes.get("items", []):
        st = v.get("status") or {}
        state, robust = st.get("state"), st.get("robustness")
        if state == "attached" and robust != "healthy":
            out.append(f"longhorn volume {v['metadata']['name']}: {robust} (a drain would leave it without a replica)")
        elif robust == "faulted":
            out.append(f"longhorn volume {v['metadata']['name']}: faulted")
    return out


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A PodDisruptionBudget's selector: an empty one matches every pod (policy/v1), a null one none."""
    return selector is not None and label_selector_matches(selector, labels)


def evictable_pods(pods: dict, node: str) -> list[dict]:
    """What `kubectl drain --ignore-daemonsets` evicts: not DaemonSet pods, not mirror pods, not finished pods."""
    out = []
    for p in pods.get("items", []):
        if (p.get("spec") or {}).get("nodeName") != node:
            continue
        md = p["metadata"]
        if any(o.get("kind") == "DaemonSet" for o in md.get("ownerReferences") or []):
            continue
        if "kubernetes.io/config.mirror" in (md.get("annotations") or {}):
            continue
        if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        out.append(p)
    return out


@dataclass
class Blocker:
    node: str
    pdb: str
    pods: list[str]
    allowed: int

    def __str__(self) -> str:
        return (f"node {self.node}: PodDisruptionBudget {self.pdb} allows {self.allowed} disruption(s); "
                f"it covers {', '.join(self.pods)}: the drain would wait on it")


def blocking_pdbs(pdbs: dict, pods: dict, node: str) -> list[Blocker]:
    """PDBs that would block draining ``node``: they select a pod there and allow no disruption now."""
    out = []
    on_node = evictable_pods(pods, node)
    for b in pdbs.get("items", []):
        ns = b["metadata"]["namespace"]
        allowed = int((b.get("status") or {}).get("disruptionsAllowed", 0))
        if allowed > 0:
            continue
        hit = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in on_node
               if p["metadata"]["namespace"] == ns
               and selector_matches((b.get("spec") or {}).get("selector"), p["metadata"].get("labels") or {})]
        if hit:
            out.append(Blocker(node, f"{ns}/{b['metadata']['name']}", hit, allowed))
    return out


def uses_emptydir(pods: list[dict]) -> list[str]:
    return [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods
            if any("emptyDir" in v for v in (p.get("spec") or {}).get("volumes") or [])]


@dataclass
class DrainDecision:
    node: str
    argv: list[str]
    blockers: list[Blocker] = field(default_factory=list)
    emptydir_pods: list[str] = field(default_factory=list)
    disable_eviction: bool = False


def drain_decision(node: str, pdbs: dict, pods: dict, timeout_s: int, disable_eviction: bool = False) -> DrainDecision:
    """The drain command for ``node``: evictions (which honour PDBs) with a timeout; --disable-eviction (which
    bypasses PDBs by deleting pods) only when the operator asked for it, and then recorded."""
    argv = ["kubectl", "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", f"--timeout={timeout_s}s"]
    if disable_eviction:
        argv.append("--disable-eviction")
    evict = evictable_pods(pods, node)
    return DrainDecision(node, argv, blocking_pdbs(pdbs, pods, node), uses_emptydir(evict), disable_eviction)


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    blockers: list[Blocker] = field(default_factory=list)
    bypass_pdbs: bool = False  # --disable-eviction: blockers are reported and recorded, not waited on

    @property
    def ok(self) -> bool:
        return not self.problems and (self.bypass_pdbs or not self.blockers)


def preflight(nodes: dict, pods: dict, pdbs: dict, readyz_etcd: str, longhorn: dict | None,
              drain_nodes: list[str], disable_eviction: bool = False) -> Preflight:
    """Everything that must hold before the first node is touched; every blocking PDB listed, per node.
    With --disable-eviction the PDBs are reported but do not stop the upgrade (the operator chose to bypass them)."""
    res = Preflight(node_problems(nodes) + etcd_problems(nodes, readyz_etcd) + longhorn_problems(longhorn),
                    bypass_pdbs=disable_eviction)
    for n in drain_nodes:
        res.blockers += blocking_pdbs(pdbs, pods, n)
    return res
