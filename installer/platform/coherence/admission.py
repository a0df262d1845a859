"""Pod Security: every pod template the install applies is admitted at the level its namespace will enforce (the
Namespace's pod-security.kubernetes.io/enforce label the render carries, else the K3s admission configuration's
default, roles/k3s/templates/psa.yaml.j2 with the site's variables; exempt namespaces are privileged), by
installer.render.podsecurity's evaluator. `medai render --explain` prints the same table (pod_table)."""
from __future__ import annotations

from dataclasses import dataclass

from installer.platform.coherence.model import Finding, namespace_labels, pod_rows
from installer.render.podsecurity import AdmissionDefaults, NamespaceLevel, Violation, evaluate, k3s_admission, namespace_level

CHECK = "podsecurity"


@dataclass(frozen=True)
class PodRow:
    release: str
    namespace: str
    kind: str
    name: str
    hook: bool
    level: NamespaceLevel
    violations: tuple[Violation, ...]


def pod_table(site, inv) -> tuple[AdmissionDefaults, list[PodRow]]:
    """The admission defaults and, for every pod template, its namespace's level and its violations there."""
    admission = k3s_admission(inv.site.model_dump())
    labels = namespace_labels(site)
    table = []
    for row in pod_rows(site):
        level = namespace_level(row.namespace, labels.get(row.namespace), admission)
        meta = row.obj.get("metadata") or {}
        table.append(PodRow(row.release, row.namespace, row.kind, row.name,
                            "helm.sh/hook" in (meta.get("annotations") or {}), level,
                            tuple(evaluate(row.obj, level.level))))
    return admission, table


def check(site, inv, outside) -> list[Finding]:
    out = []
    for r in pod_table(site, inv)[1]:
        for v in r.violations:
            out.append(Finding(CHECK, r.release, r.kind, f"{r.namespace}/{r.name}", v.path,
                               f"{v.check}: {v.detail} (namespace {r.namespace} enforces {r.level.level}, "
                               f"{r.level.why})"))
    return out
