"""Switch the inference Service to another model version only once that version's pods are Ready.

Side-by-side versions: the chart renders one Deployment per model version (label ``medai.io/model-version``)
and one Service whose selector names the active version. ``switch_service`` waits until the new version's
Deployment has rolled out completely (observedGeneration current, every replica updated, ready and available)
and only then patches the Service selector; the old Deployment keeps serving until that moment, so clients see
no gap. The decision (``rollout_ready``) is a pure function of the Deployment object, unit-tested from recorded
API responses. `medai install` and `medai upgrade` run it as the medai-inference release's hook
(installer/deploy/platform_step.py), through the platform's Kubernetes adapter (not executed against K3s here).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from installer.core.errors import InstallError

VERSION_LABEL = "medai.io/model-version"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    final: bool = False  # waiting longer cannot make it ready (stalled rollout, scaled to 0)


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        if obj is None:
            return default
        obj = obj.get(key) if isinstance(obj, dict) else None
    return default if obj is None else obj


def rollout_ready(deployment: Any) -> Readiness:
    """True only when every desired replica of the Deployment's current generation is updated, ready, available."""
    name = _get(deployment, "metadata", "name", default="?")
    gen = _get(deployment, "metadata", "generation", default=0)
    observed = _get(deployment, "status", "observedGeneration", default=0)
    want = _get(deployment, "spec", "replicas", default=1)
    updated = _get(deployment, "status", "updatedReplicas", default=0)
    ready = _get(deployment, "status", "readyReplicas", default=0)
    available = _get(deployment, "status", "availableReplicas", default=0)
    total = _get(deployment, "status", "replicas", default=0)
    for cond in _get(deployment, "status", "conditions", default=[]) or []:
        if _get(cond, "type") == "Progressing" and _get(cond, "reason") == "ProgressDeadlineExceeded":
            return Readiness(False, f"deployment {name}: rollout stalled (ProgressDeadlineExceeded)", final=True)
    if want == 0:
        return Readiness(False, f"deployment {name}: scaled to 0 replicas, nothing to switch to", final=True)
    if observed < gen:
        return Readiness(False, f"deployment {name}: generation {gen} not yet observed ({observed})")
    if updated < want:
        return Readiness(False, f"deployment {name}: {updated}/{want} replicas updated")
    if total > updated:
        return Readiness(False, f"deployment {name}: {total - updated} old replicas still terminating")
    if ready < want or available < want:
        return Readiness(False, f"deployment {name}: {ready}/{want} ready, {available}/{want} available")
    return Readiness(True, f"deployment {name}: {ready}/{want} ready")


class Api(Protocol):
    def read_deployment(self, name: str, namespace: str) -> Any: ...
    def read_service(self, name: str, namespace: str) -> Any: ...
    def patch_service_selector(self, name: str, namespace: str, selector: dict[str, str]) -> Any: ...


def switch_service(api: Api, *, release: str, namespace: str, version: str, timeout_s: float = 1800,
                   poll_s: float = 10, sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] = lambda _m: None) -> str:
    """Point Service <release> at version; returns the previous version. Raises InstallError on timeout/stall."""
    deployment = f"{release}-{version}"
    svc = api.read_service(release, namespace)
    selector = dict(_get(svc, "spec", "selector", default={}) or {})
    previous = selector.get(VERSION_LABEL, "")
    if previous == version:
        log(f"service {namespace}/{release} already selects {version}")
        return previous
    deadline = clock() + timeout_s
    while True:
        state = rollout_ready(api.read_deployment(deployment, namespace))
        if state.ready:
            break
        if state.final or clock() >= deadline:
            raise InstallError(f"inference: not switching service {namespace}/{release} to {version}: {state.reason}"
                               f"; it still selects {previous or 'nothing'}")
        log(state.reason)
        sleep(poll_s)
    api.patch_service_selector(release, namespace, {**selector, VERSION_LABEL: version})
    log(f"service {namespace}/{release}: {previous or '-'} -> {version} ({state.reason})")
    return previous
