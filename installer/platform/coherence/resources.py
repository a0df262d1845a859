"""Resources: every container in a platform namespace (init containers included, hooks and site objects too)
requests CPU and memory, and so does every CloudNativePG Cluster's instances (spec.resources): without requests
a pod is BestEffort, the first evicted and placed without regard to what the node has left. A LimitRange of the
namespace with a Container defaultRequest gives the requests a container leaves out (as admission does)."""
from __future__ import annotations

from installer.platform.coherence.model import Finding, containers, platform_namespaces, rows

CHECK = "resources"
NEEDED = ("cpu", "memory")


def defaults(site) -> dict[str, set[str]]:
    """Namespace -> the resources its LimitRanges give a container by default (defaultRequest)."""
    out: dict[str, set[str]] = {}
    for row in rows(site):
        if row.kind == "LimitRange":
            for limit in (row.obj.get("spec") or {}).get("limits") or []:
                if limit.get("type") == "Container":
                    out.setdefault(row.namespace, set()).update((limit.get("defaultRequest") or {}).keys())
    return out


def check(site, inv, outside) -> list[Finding]:
    platform = set(platform_namespaces(site))
    given = defaults(site)
    out = []
    for row in rows(site):
        if row.namespace not in platform:
            continue
        if row.template is not None:
            for where, c in containers(row.template.spec):
                requests = (c.get("resources") or {}).get("requests") or {}
                missing = [r for r in NEEDED if r not in requests and r not in given.get(row.namespace, ())]
                if missing:
                    out.append(row.finding(CHECK, f"{row.template.path}spec.{where}.resources.requests",
                                           f"container {c.get('name')}: no {' and no '.join(missing)} request"))
        elif row.kind == "Cluster" and str(row.obj.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
            requests = ((row.obj.get("spec") or {}).get("resources") or {}).get("requests") or {}
            missing = [r for r in NEEDED if r not in requests]
            if missing:
                out.append(row.finding(CHECK, "spec.resources.requests",
                                       f"the instances have no {' and no '.join(missing)} request"))
    return out
