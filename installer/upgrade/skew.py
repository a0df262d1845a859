"""The version-skew planner: which nodes go to which K3s version in which order, or why not at all.

Kubernetes' rules as they apply to an in-place K3s upgrade: one minor version at a time (no minor skipped),
never a downgrade, every server (control plane) before any agent, and no agent newer than the servers.
Node versions come from the Node objects (status.nodeInfo.kubeletVersion), so a half-done rollout resumes
with only the nodes not yet at the target.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.core.errors import InstallError
from installer.upgrade.changes import K3S_VERSION


def parse(version: str) -> tuple[int, int, int, int]:
    m = K3S_VERSION.search(version or "")
    if not m:
        raise InstallError(f"version {version!r}: not a K3s version like v1.34.2+k3s1")
    return tuple(int(g or 0) for g in m.groups())  # type: ignore[return-value]


class SkewError(InstallError):
    pass


@dataclass
class NodeStep:
    node: str
    role: str  # server | agent
    from_version: str
    to_version: str


@dataclass
class RolloutPlan:
    target: str
    servers: list[NodeStep] = field(default_factory=list)
    agents: list[list[NodeStep]] = field(default_factory=list)  # batches
    done: list[str] = field(default_factory=list)  # already at the target

    @property
    def steps(self) -> list[str]:
        return [f"server:{s.node}" for s in self.servers] + [
            "agents:" + ",".join(s.node for s in batch) for batch in self.agents]


def node_versions(nodes: dict) -> dict[str, tuple[str, str]]:
    """NodeList JSON -> name -> (role, kubeletVersion). K3s labels servers node-role.kubernetes.io/control-plane."""
    out = {}
    for n in nodes.get("items", []):
        labels = n["metadata"].get("labels") or {}
        role = "server" if labels.get("node-role.kubernetes.io/control-plane") == "true" else "agent"
        out[n["metadata"]["name"]] = (role, n["status"]["nodeInfo"]["kubeletVersion"])
    return out


def plan_rollout(nodes: dict, target: str, batch: int = 1) -> RolloutPlan:
    """Refused (SkewError, with the reason) when the target breaks a skew rule for any node."""
    if batch < 1:
        raise SkewError(f"--batch {batch}: must be at least 1")
    t = parse(target)
    versions = node_versions(nodes)
    if not versions:
        raise SkewError("the cluster reports no nodes")
    plan = RolloutPlan(target)
    servers = {n: v for n, (r, v) in versions.items() if r == "server"}
    if not servers:
        raise SkewError("no server (control-plane) node found: cannot order the upgrade")
    for name, (_role, v) in sorted(versions.items()):
        c = parse(v)
        if c[:2] > t[:2] or (c[:2] == t[:2] and c > t):
            raise SkewError(f"node {name} runs {v}, newer than the bundle's {target}: a downgrade is refused "
                            "(use medai rollback, which restores the pre-upgrade etcd snapshot)")
        if c[0] != t[0] or t[1] - c[1] > 1:
            raise SkewError(f"node {name} runs {v}; {target} skips minor version(s) "
                            f"{', '.join(f'1.{m}' for m in range(c[1] + 1, t[1]))}: upgrade one minor at a time "
                            "(install each intermediate bundle in turn)")
    newest_server = max(parse(v) for v in servers.values())
    for name, (role, v) in versions.items():
        if role == "agent" and parse(v)[:2] > newest_server[:2]:
            raise SkewError(f"agent {name} runs {v}, newer than every server: the cluster is outside the skew policy")
    for name, (role, v) in sorted(versions.items()):
        if parse(v) == t:
            plan.done.append(name)
        elif role == "server":
            plan.servers.append(NodeStep(name, role, v, target))
    agents = [NodeStep(n, r, v, target) for n, (r, v) in sorted(versions.items()) if r == "agent" and parse(v) != t]
    plan.agents = [agents[i:i + batch] for i in range(0, len(agents), batch)]
    return plan
