"""The cluster concerns as pure functions of the API's JSON (recorded responses in the tests): nodes, Vault's
pods, Helm releases against the bundle's charts, Longhorn volumes."""
from __future__ import annotations

from installer.deploy.node_conditions import not_ready, pressures
from installer.status.probe import CRIT, OK, WARN, Line

SEALED_LABELS = ("vault-sealed", "openbao-sealed")
ACTIVE_LABELS = ("vault-active", "openbao-active")


def node_lines(nodes: list[dict], k3s_version: str | None) -> list[Line]:
    """Ready, kubelet (K3s) version against the bundle's (e.g. 1.34.2 in v1.34.2+k3s1), kernel, pressure."""
    if not nodes:
        return [Line("nodes", CRIT, "the API lists no nodes")]
    out = []
    for n in nodes:
        name = (n.get("metadata") or {}).get("name", "?")
        info = (n.get("status") or {}).get("nodeInfo") or {}
        kubelet, kernel = info.get("kubeletVersion", "?"), info.get("kernelVersion", "?")
        facts, level = [], OK
        why = not_ready(n)
        if why is not None:
            level = CRIT
            facts.append(f"NOT Ready ({why})")
        else:
            facts.append("Ready")
        for kind in pressures(n):
            level = CRIT if level == CRIT or kind == "DiskPressure" else WARN
            facts.append(kind)
        facts.append(f"K3s {kubelet}")
        if k3s_version and not kubelet.lstrip("v").startswith(f"{k3s_version}+"):
            level = CRIT if level == CRIT else WARN
            facts.append(f"(the installed bundle has {k3s_version})")
        facts.append(f"kernel {kernel}")
        out.append(Line("nodes", level, f"{name}: {', '.join(facts)}"))
    return out


def vault_pod_lines(pods: list[dict], namespace: str) -> list[Line]:
    """Sealed or unsealed per Vault pod, from the labels its Kubernetes service registration keeps current."""
    out, any_active = [], False
    for p in pods:
        labels = (p.get("metadata") or {}).get("labels") or {}
        sealed = next((labels[k] for k in SEALED_LABELS if k in labels), None)
        if sealed is None:
            continue
        name = (p.get("metadata") or {}).get("name", "?")
        active = next((labels[k] for k in ACTIVE_LABELS if k in labels), "false") == "true"
        any_active = any_active or (active and sealed != "true")
        if sealed == "true":
            out.append(Line("vault", CRIT, f"pod {namespace}/{name}: SEALED (medai vault unseal)"))
        else:
            out.append(Line("vault", OK, f"pod {namespace}/{name}: unsealed{', active' if active else ', standby'}"))
    if not out:
        return [Line("vault", CRIT, f"no Vault pod in namespace {namespace}")]
    if not any_active:
        out.append(Line("vault", CRIT, "no active (leader) Vault pod"))
    return out


def release_lines(wanted: list[tuple[str, str, str, str]], listed: dict[str, dict | None]) -> list[Line]:
    """wanted: (release, namespace, chart, version) from the installed bundle's manifest; listed: release -> its
    `helm list --all` entry (None: not installed)."""
    out = []
    for name, ns, chart, version in wanted:
        entry = listed.get(name)
        want = f"{chart}-{version}"
        if entry is None:
            out.append(Line("releases", CRIT, f"{ns}/{name}: not installed (the bundle has {want})"))
            continue
        status, have, rev = entry.get("status", "?"), entry.get("chart", "?"), entry.get("revision", "?")
        if status != "deployed":
            level = WARN if status.startswith("pending") else CRIT
            out.append(Line("releases", level, f"{ns}/{name}: {status} (revision {rev}, {have})"))
        elif have != want:
            out.append(Line("releases", WARN, f"{ns}/{name}: runs {have}, the installed bundle has {want}"))
        else:
            out.append(Line("releases", OK, f"{ns}/{name}: {have} deployed (revision {rev})"))
    return out


def storage_lines(volumes: list[dict]) -> list[Line]:
    """Longhorn volumes: faulted is crit, degraded (fewer healthy replicas than asked) warn, with replica counts."""
    out = []
    for v in volumes:
        name = (v.get("metadata") or {}).get("name", "?")
        st, spec = v.get("status") or {}, v.get("spec") or {}
        robust, state = st.get("robustness", "unknown"), st.get("state", "?")
        replicas = spec.get("numberOfReplicas", "?")
        if robust == "faulted":
            out.append(Line("storage", CRIT, f"volume {name}: FAULTED ({state}, {replicas} replicas asked)"))
        elif robust == "degraded":
            out.append(Line("storage", WARN, f"volume {name}: degraded ({state}, {replicas} replicas asked)"))
    healthy = len(volumes) - len(out)
    out.insert(0, Line("storage", OK, f"{healthy} of {len(volumes)} Longhorn volumes healthy"
                                      if volumes else "no Longhorn volumes"))
    return out
