"""Apply the platform releases from the control host: the bundle's chart archives, exactly the values
`medai render` shows, in order (Cilium, MetalLB, Longhorn, then the rest), each with `helm upgrade --install
--wait --wait-for-jobs --timeout`, then the objects medai adds once the release is ready (MetalLB's pool,
the namespace NetworkPolicies) by server-side apply.

Why Helm from the control host rather than K3s's HelmChart resources in the manifests directory: the Helm
CLI blocks until the release is ready or the timeout passes, so the install knows when to start the next
release and fails on the one that did not come up; its exit and the pods' state give the failure line at
once; and Helm's revision history is what the upgrade issue rolls back to (`helm rollback`), where the
helm-controller only re-runs a Job whose log must be fetched from the cluster.

Idempotence: a release already deployed with the same chart and version and the same user-supplied values
is left alone (no new revision). A failed release is upgraded; one with an operation pending is refused.

The decisions (:func:`decide`, :func:`failure_line`) are pure functions of the API's JSON, tested from
recorded responses; :class:`HelmCli` and :class:`KubeApi` are the thin production adapters (pyhelm3 and the
kubernetes client), exercised by the K3s end-to-end test.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from installer.core.errors import InstallError

ROLLOUT_STATES = ("pending-install", "pending-upgrade", "pending-rollback", "uninstalling")


@dataclass(frozen=True)
class Decision:
    action: str  # install | upgrade | unchanged
    reason: str


def decide(release: str, chart: str, version: str, values: dict, listed: dict | None,
           deployed_values: dict | None) -> Decision:
    """listed: the release's entry of `helm list --all -o json` (None: not installed);
    deployed_values: `helm get values -o json` of the current revision (user-supplied values)."""
    if listed is None:
        return Decision("install", f"release {release} is not installed")
    status = str(listed.get("status", ""))
    if status in ROLLOUT_STATES:
        raise InstallError(f"release {release} (namespace {listed.get('namespace')}): status {status}, another "
                           "Helm operation is in progress or was interrupted; finish or roll it back first")
    if status != "deployed":
        return Decision("upgrade", f"release {release} is {status} (revision {listed.get('revision')})")
    want = f"{chart}-{version}"
    if listed.get("chart") != want:
        return Decision("upgrade", f"release {release} runs {listed.get('chart')}, the bundle has {want}")
    if (deployed_values or {}) != (values or {}):
        return Decision("upgrade", f"release {release}: values differ from the rendered ones")
    return Decision("unchanged", f"release {release}: {want} deployed with the same values (revision "
                                 f"{listed.get('revision')})")


def _owned(pod: dict, release: str) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return release in (labels.get("app.kubernetes.io/instance"), labels.get("release"),
                       labels.get("app.kubernetes.io/part-of"))


def _not_ready(pod: dict) -> str | None:
    """Why a pod is not ready, from its status; None when it is Ready or Succeeded."""
    st = pod.get("status") or {}
    if st.get("phase") == "Succeeded":
        return None
    for c in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        state = c.get("state") or {}
        w = state.get("waiting")
        if w and w.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            msg = (w.get("message") or "").strip()
            return f"{w['reason']}" + (f": {msg}" if msg else "") + f" (container {c.get('name')})"
        t = state.get("terminated")
        if t and t.get("exitCode", 0) != 0:
            return f"{t.get('reason') or 'Error'} exit {t.get('exitCode')} (container {c.get('name')})"
    for cond in st.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"{cond.get('reason') or 'Unschedulable'}: {(cond.get('message') or '').strip()}".rstrip(": ")
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
    if ready:
        return None
    return f"phase {st.get('phase', 'Unknown')}, not Ready"


def _last_warning(events: list[dict], pod: str) -> dict | None:
    mine = [e for e in events if (e.get("involvedObject") or {}).get("kind") == "Pod"
            and (e.get("involvedObject") or {}).get("name") == pod and e.get("type") == "Warning"]
    key = lambda e: e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get("creationTimestamp") or ""
    return max(mine, key=key) if mine else None


def failure_line(release: str, namespace: str, helm_error: str, pods: list[dict], events: list[dict]) -> str:
    """One line: the release, the first failing pod and its reason from its status and its latest Warning event.
    pods / events: the items of the PodList / EventList of the release's namespace, as the API returns them."""
    ours = [p for p in pods if _owned(p, release)] or pods
    failing = [(p, why) for p in ours if (why := _not_ready(p))]
    detail = helm_error.strip().splitlines()[-1].removeprefix("Error: ") if helm_error.strip() else "failed"
    if not failing:
        return f"release {release} (namespace {namespace}): {detail}; no failing pod found"
    # a pod with a container-level reason says more than one still Pending behind it
    failing.sort(key=lambda pw: ("phase " in pw[1], (pw[0].get("metadata") or {}).get("name", "")))
    pod, why = failing[0]
    name = (pod.get("metadata") or {}).get("name", "?")
    line = f"release {release}: pod {namespace}/{name} {why}"
    ev = _last_warning(events, name)
    if ev:
        line += f"; event {ev.get('reason')}: {(ev.get('message') or '').strip()}"
    more = f" (+{len(failing) - 1} more pod(s) not ready)" if len(failing) > 1 else ""
    return f"{line}{more}; helm: {detail}"


# ----------------------------------------------------------------------------------------- adapters


class Helm(Protocol):
    def listed(self, release: str, namespace: str) -> dict | None: ...
    def values(self, release: str, namespace: str) -> dict: ...
    def upgrade_install(self, release: str, archive: Path, values: dict, namespace: str, timeout_s: int) -> None: ...


class Kube(Protocol):
    def pods(self, namespace: str) -> list[dict]: ...
    def events(self, namespace: str) -> list[dict]: ...
    def apply(self, obj: dict) -> None: ...


class HelmError(Exception):
    pass


class HelmCli:
    """pyhelm3 over the bundle's helm binary and the kubeconfig the install fetched."""

    def __init__(self, kubeconfig: Path, executable: str | None = None):
        from installer.core.helm import helm_command

        self._cmd = helm_command(executable, kubeconfig=kubeconfig)

    def listed(self, release: str, namespace: str) -> dict | None:
        rows = asyncio.run(self._cmd.list(all=True, namespace=namespace))
        return next((r for r in rows if r.get("name") == release), None)

    def values(self, release: str, namespace: str) -> dict:
        return asyncio.run(self._cmd.get_values(release, namespace=namespace))

    def upgrade_install(self, release: str, archive: Path, values: dict, namespace: str, timeout_s: int,
                        wait: bool = True) -> None:
        try:
            asyncio.run(self._cmd.install_or_upgrade(release, archive, values, namespace=namespace, wait=wait,
                                                     timeout=f"{timeout_s}s", create_namespace=True))
        except Exception as e:  # pyhelm3.errors.Error carries helm's stderr
            raise HelmError(str(e)) from None


class KubeApi:
    """The kubernetes client on the fetched kubeconfig; raw JSON, the shapes the decisions read."""

    def __init__(self, kubeconfig: Path):
        from kubernetes import client, config, dynamic

        self._api = config.new_client_from_config(config_file=str(kubeconfig))
        self._core = client.CoreV1Api(self._api)
        self._dyn = dynamic.DynamicClient(self._api)

    def pods(self, namespace: str) -> list[dict]:
        r = self._core.list_namespaced_pod(namespace, _preload_content=False)
        return json.loads(r.data)["items"]

    def events(self, namespace: str) -> list[dict]:
        r = self._core.list_namespaced_event(namespace, _preload_content=False)
        return json.loads(r.data)["items"]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self._dyn.resources.get(api_version=api_version, kind=kind)
        try:
            return res.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self._dyn.resources.get(api_version=api_version, kind=kind)
        try:
            res.delete(name=name, namespace=namespace)
        except NotFoundError:
            pass

    def apply(self, obj: dict) -> None:
        res = self._dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        self._dyn.server_side_apply(res, body=obj, name=obj["metadata"]["name"],
                                    namespace=obj["metadata"].get("namespace"), field_manager="medai",
                                    force_conflicts=True)


# ----------------------------------------------------------------------------------------- the apply


@dataclass
class Outcome:
    release: str
    action: str
    reason: str
    site_objects: int = 0


@dataclass
class ApplyOptions:
    timeouts: dict[str, int] = field(default_factory=dict)  # release -> seconds
    default_timeout: int = 600
    log: Callable[[str], None] = lambda line: None
    # releases applied without --wait (Vault: sealed, never Ready until the hook below unseals it)
    no_wait: frozenset[str] = frozenset()
    # release -> called with the Release once it is applied and its site objects are in (Vault's init/unseal)
    after: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    # release -> the values to apply instead of the rendered ones, decided from the cluster (Keycloak's values
    # without the bootstrap admin once it is removed), so a rerun compares against what was applied
    values_for: dict[str, Callable[[Any], dict]] = field(default_factory=dict)


def apply_platform(rendered, helm: Helm, kube: Kube, opts: ApplyOptions | None = None) -> list[Outcome]:
    """rendered: an installer.deploy.site_render.SiteRender (already validated and image-gated). Releases in its
    order; the first failure raises InstallError with failure_line's text and nothing after it is applied."""
    opts = opts or ApplyOptions()
    outcomes: list[Outcome] = []
    for r in rendered.releases:
        listed = helm.listed(r.name, r.namespace)
        current_values = helm.values(r.name, r.namespace) if listed is not None else None
        values = opts.values_for[r.name](r) if r.name in opts.values_for else r.values
        d = decide(r.name, r.chart.name, r.chart.version, values, listed, current_values)
        opts.log(f"{d.action}: {d.reason}")
        if d.action != "unchanged":
            timeout = opts.timeouts.get(r.name, opts.default_timeout)
            try:
                helm.upgrade_install(r.name, r.archive, values, r.namespace, timeout,
                                     **({"wait": False} if r.name in opts.no_wait else {}))
            except HelmError as e:
                raise InstallError(failure_line(r.name, r.namespace, str(e), kube.pods(r.namespace),
                                                kube.events(r.namespace))) from None
        for obj in r.site_objects:
            kube.apply(obj)
        if r.name in opts.after:
            opts.after[r.name](r)
        outcomes.append(Outcome(r.name, d.action, d.reason, len(r.site_objects)))
    return outcomes


def release_timeouts(inv) -> dict[str, int]:
    """medai_<role>_release_timeout for each platform role (role defaults, the inventory over them)."""
    from installer.deploy.site_values import CHART_ROLES, PLATFORM_ORDER, role_defaults, role_vars

    out = {}
    for chart in PLATFORM_ORDER:
        role = CHART_ROLES.get(chart, chart)
        if f"medai_{role}_release_timeout" not in role_defaults(role) and role != "vault":
            continue
        v = role_vars(role, inv).get(f"medai_{role}_release_timeout")
        if v is not None:
            out[chart] = int(v)
    return out
