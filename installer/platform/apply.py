"""The one Helm applier: install, upgrade, rollback and uninstall of the platform releases from the control host.

Every flow goes through here with the same inputs: a SiteRender (installer.platform.render, exactly what `medai
render` shows for the bundle and site: the manifest's release name and namespace, the chart archive from the
verified private copy, the values), the one order (installer.platform.order), one wait policy (Vault is applied
without --wait, then its hook unseals it) and the same after-release hooks (wired by installer/deploy).

  install   apply_platform(render)                      each release installed or upgraded, in order
  upgrade   upgrade_platform(new render, installed one)  refused when a release moved namespace or name; then
                                                         the same apply, and a failed release rolled back to its
                                                         last good revision (helm history) before stopping
  rollback  rollback_platform(previous render)          reverse order, `helm rollback` to the newest good
                                                         revision whose chart version the previous bundle carries
  reset     uninstall_platform(installed render)        reverse order, `helm uninstall` of what is installed

Why Helm from the control host rather than K3s's HelmChart resources: the Helm CLI blocks until the release is
ready or the timeout passes, so the next release starts only on a ready one and a failure names its pod at
once; and Helm's revision history is what upgrade and rollback return to.

Idempotence: a release already deployed with the same chart, version and user-supplied values is left alone (no
new revision). A failed release is upgraded; one with an operation pending is refused.

The decisions are pure functions of Helm's and the API's JSON, tested from recorded responses; HelmCli and KubeApi
are the thin production adapters (pyhelm3 and the kubernetes client), exercised only by the K3s end-to-end test.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from installer.core.childenv import HELM, allow_listed_executable, child_env
from installer.core.errors import InstallError, MedaiError
from installer.core.helm import helm_command
from installer.platform.history import after_upgrade, rollback_target
from installer.platform.order import NO_WAIT, ordered

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


def owned_by(pod: dict, release: str) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return release in (labels.get("app.kubernetes.io/instance"), labels.get("release"),
                       labels.get("app.kubernetes.io/part-of"))


def pod_not_ready(pod: dict) -> str | None:
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
    ours = [p for p in pods if owned_by(p, release)] or pods
    failing = [(p, why) for p in ours if (why := pod_not_ready(p))]
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
    def upgrade_install(self, release: str, archive: Path, values: dict, namespace: str, timeout_s: int,
                        wait: bool = True) -> None: ...
    def history(self, release: str, namespace: str) -> list[dict]: ...
    def rollback(self, release: str, namespace: str, revision: int, timeout_s: int, wait: bool = True) -> None: ...
    def uninstall(self, release: str, namespace: str, timeout_s: int) -> None: ...


class Kube(Protocol):
    def pods(self, namespace: str) -> list[dict]: ...
    def events(self, namespace: str) -> list[dict]: ...
    def apply(self, obj: dict) -> None: ...


class HelmError(Exception):
    pass


class HelmCli:
    """pyhelm3 over helm (the verified bundle's tools/helm when it carries one) started with the allow-listed
    environment (installer.core.helm), on the kubeconfig the install fetched."""

    def __init__(self, kubeconfig: Path, bundle: Path | None = None):
        own = bundle / "tools" / "helm" if bundle is not None else None
        exe = allow_listed_executable(str(own), child_env(allow=HELM)) if own is not None and own.is_file() else None
        self._cmd = helm_command(exe, kubeconfig=kubeconfig)

    def _run(self, coro):
        try:
            return asyncio.run(coro)
        except Exception as e:  # pyhelm3.errors.Error carries helm's stderr
            raise HelmError(str(e)) from None

    def listed(self, release: str, namespace: str) -> dict | None:
        rows = self._run(self._cmd.list(all=True, namespace=namespace))
        return next((r for r in rows if r.get("name") == release), None)

    def values(self, release: str, namespace: str) -> dict:
        return self._run(self._cmd.get_values(release, namespace=namespace))

    def upgrade_install(self, release: str, archive: Path, values: dict, namespace: str, timeout_s: int,
                        wait: bool = True) -> None:
        self._run(self._cmd.install_or_upgrade(release, archive, values, namespace=namespace, wait=wait,
                                               timeout=f"{timeout_s}s", create_namespace=True))

    def history(self, release: str, namespace: str) -> list[dict]:
        return list(self._run(self._cmd.history(release, namespace=namespace, max_revisions=50)))

    def rollback(self, release: str, namespace: str, revision: int, timeout_s: int, wait: bool = True) -> None:
        self._run(self._cmd.rollback(release, revision, namespace=namespace, wait=wait, timeout=f"{timeout_s}s"))

    def uninstall(self, release: str, namespace: str, timeout_s: int) -> None:
        self._run(self._cmd.uninstall(release, namespace=namespace, wait=True, timeout=f"{timeout_s}s"))


class KubeApi:
    """The one Kubernetes client of the control host: the kubernetes client on the kubeconfig `medai install`
    fetched, answering raw JSON (the shapes the decisions read). Every flow, `medai status`, `medai certs` and the
    upgrade's preflight read and write the cluster through it (installer.deploy.platform_step.adapters). A call
    that fails is one InstallError line naming the call and the API's answer (or why the cluster did not answer)."""

    REQUEST_TIMEOUT_S = 30

    def __init__(self, kubeconfig: Path):
        if not kubeconfig.is_file():
            raise InstallError(f"{kubeconfig}: no admin kubeconfig (written by a successful medai install)")
        from kubernetes import client, config, dynamic

        self._api = config.new_client_from_config(config_file=str(kubeconfig))
        self._core = client.CoreV1Api(self._api)
        self._dyn = dynamic.DynamicClient(self._api)

    def pods(self, namespace: str) -> list[dict]:
        with _one_line(f"list pods in namespace {namespace}"):
            r = self._core.list_namespaced_pod(namespace, _preload_content=False, _request_timeout=self.REQUEST_TIMEOUT_S)
            return json.loads(r.data)["items"]

    def events(self, namespace: str) -> list[dict]:
        with _one_line(f"list events in namespace {namespace}"):
            r = self._core.list_namespaced_event(namespace, _preload_content=False,
                                                 _request_timeout=self.REQUEST_TIMEOUT_S)
            return json.loads(r.data)["items"]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        with _one_line(f"get {kind} {_where(namespace, name)}"):
            res = self._dyn.resources.get(api_version=api_version, kind=kind)
            try:
                return res.get(name=name, namespace=namespace, _request_timeout=self.REQUEST_TIMEOUT_S).to_dict()
            except NotFoundError:
                return None

    def list(self, api_version: str, kind: str, namespace: str | None = None, optional: bool = False) -> list[dict] | None:
        """Every object of a kind (cluster-wide when namespace is None): the items, as the API returns them.
        optional: None when the API does not serve the kind (a CRD not installed) rather than an error."""
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        where = f"list {api_version} {kind}" + (f" in namespace {namespace}" if namespace else "")
        with _one_line(where):
            try:
                res = self._dyn.resources.get(api_version=api_version, kind=kind)
                return res.get(namespace=namespace, _request_timeout=self.REQUEST_TIMEOUT_S).to_dict().get("items") or []
            except (ResourceNotFoundError, NotFoundError):
                if optional:
                    return None
                raise InstallError(f"{where}: the API does not serve it") from None

    def read(self, path: str) -> str:
        """The body of GET ``path`` (a health endpoint such as /readyz/etcd) whatever its status: a failing check
        answers 500 with its reasons, which the caller reads."""
        with _one_line(f"GET {path}"):
            req = self._api.param_serialize("GET", path, auth_settings=["BearerToken"])
            resp = self._api.call_api(*req, _request_timeout=self.REQUEST_TIMEOUT_S)
            resp.read()
            return resp.data.decode(errors="replace")

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        with _one_line(f"delete {kind} {_where(namespace, name)}"):
            res = self._dyn.resources.get(api_version=api_version, kind=kind)
            try:
                res.delete(name=name, namespace=namespace, _request_timeout=self.REQUEST_TIMEOUT_S)
            except NotFoundError:
                pass

    def apply(self, obj: dict) -> None:
        md = obj["metadata"]
        with _one_line(f"apply {obj['kind']} {_where(md.get('namespace'), md['name'])}"):
            res = self._dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            self._dyn.server_side_apply(res, body=obj, name=md["name"], namespace=md.get("namespace"),
                                        field_manager="medai", force_conflicts=True,
                                        _request_timeout=self.REQUEST_TIMEOUT_S)


def _where(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


@contextmanager
def _one_line(call: str) -> Iterator[None]:
    """A failed API call as one InstallError line: the call, then the HTTP status, reason and the API's message,
    else why the cluster did not answer. medai's own errors pass as they are."""
    try:
        yield
    except MedaiError:
        raise
    except Exception as e:  # noqa: BLE001 urllib3's and the client's exceptions vary: one line for all
        raise InstallError(f"{call}: {_api_error(e)}") from None


def _api_error(e: Exception) -> str:
    status = getattr(e, "status", None)
    if isinstance(status, int):
        message = ""
        try:
            message = str(json.loads(getattr(e, "body", None) or "{}").get("message") or "")
        except (ValueError, TypeError, AttributeError):
            pass
        line = f"HTTP {status} {getattr(e, 'reason', '') or ''}".rstrip()
        return f"{line}: {message.splitlines()[0][:300]}" if message.strip() else line
    first = (str(e).splitlines() or [""])[0][:200]
    return f"cluster unreachable ({type(e).__name__}: {first})"


# ----------------------------------------------------------------------------------------- the flows


@dataclass
class Outcome:
    release: str
    action: str  # install | upgrade | unchanged | rollback | uninstall | absent
    reason: str
    site_objects: int = 0


@dataclass
class ApplyOptions:
    timeouts: dict[str, int] = field(default_factory=dict)  # release -> seconds
    default_timeout: int = 600
    log: Callable[[str], None] = lambda line: None
    # release -> called with the Release once it is applied and its site objects are in (Vault's init/unseal)
    after: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    # release -> the values to apply instead of the rendered ones, decided from the cluster (Keycloak's values
    # without the bootstrap admin once it is removed), so a rerun compares against what was applied
    values_for: dict[str, Callable[[Any], dict]] = field(default_factory=dict)

    def timeout(self, release: str) -> int:
        return self.timeouts.get(release, self.default_timeout)


# Site objects applied before the release's chart: its Namespace (Pod Security labels), NetworkPolicies and
# LimitRange (admission reads all three when the release's pods are created).
BEFORE_RELEASE = ("Namespace", "NetworkPolicy", "LimitRange")


def _failed(r, helm_error: str, kube: Kube) -> InstallError:
    return InstallError(failure_line(r.name, r.namespace, helm_error, kube.pods(r.namespace), kube.events(r.namespace)))


def apply_release(r, helm: Helm, kube: Kube, opts: ApplyOptions, roll_back_failure: bool = False) -> Outcome:
    """One release, as every flow applies it: install or upgrade with the rendered values (unless unchanged),
    waited on unless NO_WAIT, then its site objects by server-side apply, then its after-release hook."""
    listed = helm.listed(r.name, r.namespace)
    current_values = helm.values(r.name, r.namespace) if listed is not None else None
    values = opts.values_for[r.name](r) if r.name in opts.values_for else r.values
    d = decide(r.name, r.chart.name, r.chart.version, values, listed, current_values)
    opts.log(f"{d.action}: {d.reason}")
    first = [o for o in r.site_objects if o.get("kind") in BEFORE_RELEASE]
    for obj in first:  # admission reads the namespace's labels when the pods are created; policies from the start
        kube.apply(obj)
    if d.action != "unchanged":
        before = helm.history(r.name, r.namespace) if roll_back_failure and listed is not None else []
        try:
            helm.upgrade_install(r.name, r.archive, values, r.namespace, opts.timeout(r.name),
                                 wait=r.name not in NO_WAIT)
        except HelmError as e:
            err = _failed(r, str(e), kube)
            if roll_back_failure and before:
                _roll_back_after_failure(r, before, helm, opts)
            raise err from None
    for obj in r.site_objects:
        if obj.get("kind") not in BEFORE_RELEASE:
            kube.apply(obj)
    if r.name in opts.after:
        opts.after[r.name](r)
    return Outcome(r.name, d.action, d.reason, len(r.site_objects))


def _roll_back_after_failure(r, before: list[dict], helm: Helm, opts: ApplyOptions) -> None:
    """Helm left the release failed or pending: back to the revision before the upgrade (history's decision)."""
    d = after_upgrade(r.name, before, helm.history(r.name, r.namespace), 1)
    opts.log(f"{d.action}: {d.reason}")
    if d.action == "rollback" and d.revision is not None:
        helm.rollback(r.name, r.namespace, d.revision, opts.timeout(r.name), wait=r.name not in NO_WAIT)


def apply_platform(rendered, helm: Helm, kube: Kube, opts: ApplyOptions | None = None,
                   roll_back_failure: bool = False) -> list[Outcome]:
    """rendered: a SiteRender (already validated and image-gated). Releases in the one order; the first failure
    raises InstallError with failure_line's text and nothing after it is applied."""
    opts = opts or ApplyOptions()
    return [apply_release(r, helm, kube, opts, roll_back_failure) for r in ordered(rendered.releases, _name)]


def _name(r) -> str:
    return r.name


def refuse_moved(installed, new) -> None:
    """Helm cannot move a release: a chart whose release name or namespace differs between the installed bundle's
    render and the new one is refused, naming both values, before any host is touched."""
    have = {r.chart.name: r for r in installed.releases}
    for r in new.releases:
        old = have.get(r.chart.name)
        if old is None:
            continue
        if old.namespace != r.namespace:
            raise InstallError(f"chart {r.chart.name}: release {r.name} moves from namespace {old.namespace} to "
                               f"{r.namespace}: Helm cannot move a release; keep namespace {old.namespace}")
        if old.name != r.name:
            raise InstallError(f"chart {r.chart.name}: release renamed from {old.name} to {r.name}: Helm cannot "
                               f"rename a release; keep releaseName {old.name}")


def upgrade_platform(new, installed, helm: Helm, kube: Kube, opts: ApplyOptions | None = None) -> list[Outcome]:
    """The install's apply with the new bundle's render; a release whose upgrade fails is rolled back to its last
    good revision before the upgrade stops there."""
    if installed is not None:
        refuse_moved(installed, new)
    return apply_platform(new, helm, kube, opts, roll_back_failure=True)


def rollback_platform(previous, helm: Helm, opts: ApplyOptions | None = None) -> list[Outcome]:
    """Each release of the previous bundle back to the newest good revision with that bundle's chart version, in
    the release's own namespace, in reverse order. A release without such a revision stops the rollback."""
    opts = opts or ApplyOptions()
    out = []
    for r in reversed(ordered(previous.releases, _name)):
        history = helm.history(r.name, r.namespace)
        current = max(history, key=lambda h: h["revision"], default=None)
        want = f"{r.chart.name}-{r.chart.version}"
        if current is not None and current.get("status") == "deployed" and current.get("chart") == want:
            opts.log(f"unchanged: release {r.name} runs {want} (revision {current['revision']})")
            out.append(Outcome(r.name, "unchanged", f"runs {want}"))
            continue
        rev = rollback_target(history, r.chart.version)
        if rev is None:
            raise InstallError(f"release {r.name} (namespace {r.namespace}): no good revision with chart {want} "
                               "in its history: roll back with the K3s snapshot instead")
        try:
            helm.rollback(r.name, r.namespace, rev, opts.timeout(r.name), wait=r.name not in NO_WAIT)
        except HelmError as e:
            raise InstallError(f"release {r.name} (namespace {r.namespace}): rollback to revision {rev}: "
                               f"{_last_line(e)}") from None
        opts.log(f"rollback: release {r.name} back to revision {rev} ({want})")
        out.append(Outcome(r.name, "rollback", f"revision {rev} ({want})"))
    return out


def _last_line(e: Exception) -> str:
    """helm's last stderr line (its error), without the `Error: ` prefix."""
    text = str(e).strip()
    return text.splitlines()[-1].removeprefix("Error: ") if text else "failed"


def uninstall_platform(installed, helm: Helm, opts: ApplyOptions | None = None) -> list[Outcome]:
    """Every release of the installed render uninstalled, in reverse order; one not installed is skipped."""
    opts = opts or ApplyOptions()
    out = []
    for r in reversed(ordered(installed.releases, _name)):
        if helm.listed(r.name, r.namespace) is None:
            out.append(Outcome(r.name, "absent", f"release {r.name} is not installed"))
            continue
        try:
            helm.uninstall(r.name, r.namespace, opts.timeout(r.name))
        except HelmError as e:
            raise InstallError(f"release {r.name} (namespace {r.namespace}): uninstall: {_last_line(e)}") from None
        opts.log(f"uninstall: release {r.name} (namespace {r.namespace})")
        out.append(Outcome(r.name, "uninstall", f"namespace {r.namespace}"))
    return out
