"""Models swapped side by side: the new model's Deployment runs next to the old one; the Service's selector is
switched to it only once every new pod is Ready; the old Deployment is removed after. Decisions from the
apps/v1 Deployment and v1 Service JSON the API returns (executed only against a real cluster)."""
from __future__ import annotations

from dataclasses import dataclass

REVISION_LABEL = "medai.io/model-revision"


def deployment_ready(dep: dict) -> tuple[bool, str]:
    """Ready = the controller saw this generation and every desired replica is updated and Ready."""
    md, spec, st = dep["metadata"], dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    if int(st.get("observedGeneration", 0)) < int(md.get("generation", 1)):
        return False, "the controller has not seen the new spec yet"
    for c in st.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return False, f"progress deadline exceeded: {c.get('message', '')}"
    ready, updated = int(st.get("readyReplicas", 0)), int(st.get("updatedReplicas", 0))
    if ready >= want and updated >= want:
        return True, f"{ready}/{want} pods Ready"
    return False, f"{ready}/{want} pods Ready, {updated} updated"


@dataclass
class SwapDecision:
    action: str  # wait | switch | done | abort
    reason: str
    patch: dict | None = None  # strategic-merge patch for the Service


def swap_decision(service: dict, new_dep: dict, new_revision: str) -> SwapDecision:
    selector = (service.get("spec") or {}).get("selector") or {}
    if selector.get(REVISION_LABEL) == new_revision:
        return SwapDecision("done", f"service {service['metadata']['name']} already selects {new_revision}")
    ok, why = deployment_ready(new_dep)
    if not ok:
        if "deadline exceeded" in why:
            return SwapDecision("abort", f"model {new_revision}: {why}; the Service keeps the old model")
        return SwapDecision("wait", f"model {new_revision}: {why}")
    labels = ((new_dep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
    if labels.get(REVISION_LABEL) != new_revision:
        return SwapDecision("abort", f"deployment {new_dep['metadata']['name']} pods are not labelled {REVISION_LABEL}={new_revision}")
    return SwapDecision("switch", f"model {new_revision}: {why}: switching the Service",
                        {"spec": {"selector": {**selector, REVISION_LABEL: new_revision}}})
