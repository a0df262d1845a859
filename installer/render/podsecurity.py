"""The Kubernetes Pod Security Standards at Kubernetes 1.34, evaluated on a rendered pod or pod template.

Levels: `privileged` (nothing checked), `baseline`, `restricted` (every baseline check, less the ones a restricted
check replaces, plus the restricted checks). Check ids are upstream's (k8s.io/pod-security-admission); at policy
version 1.34 (what K3s 1.34 enforces with `enforce-version: latest`):

  baseline    windowsHostProcess, hostNamespaces, privileged, capabilities_baseline, hostPathVolumes, hostPorts,
              appArmorProfile, seLinuxOptions, procMount, seccompProfile_baseline, sysctls,
              hostProbesAndHostLifecycle
  restricted  restrictedVolumes (replaces hostPathVolumes), allowPrivilegeEscalation, runAsNonRoot, runAsUser,
              seccompProfile_restricted (replaces seccompProfile_baseline), capabilities_restricted (replaces
              capabilities_baseline)

At 1.34 a pod with `hostUsers: false` gets no relaxation (that came unconditionally with policy 1.35; in 1.34 it
sat behind an alpha gate, off by default). Pods with `spec.os.name: windows` skip the Linux-only restricted
checks (allowPrivilegeEscalation, seccompProfile_restricted, capabilities_restricted). A volume without a
source is an emptyDir (the API server's default). Every container kind is visited: init, regular, ephemeral.

The agreement with upstream is tested on its 144 generated cases (../shared/fixtures/pod-security).
`namespace_level` says which level a namespace enforces: its `pod-security.kubernetes.io/enforce` label, else the
cluster default of the admission configuration medai writes for K3s (roles/k3s/templates/psa.yaml.j2).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from installer.core.resources import ANSIBLE_DIR
from installer.render.errors import RenderError

LEVELS = ("privileged", "baseline", "restricted")
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
PSA_TEMPLATE = Path("roles") / "k3s" / "templates" / "psa.yaml.j2"
PSA_DEFAULTS = Path("roles") / "k3s" / "defaults" / "main.yml"

CAPABILITIES_BASELINE = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"})
RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                                "persistentVolumeClaim", "projected", "secret"})
APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_OK = ("RuntimeDefault", "Localhost")
# A pod template's place in each workload kind.
TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"), "StatefulSet": ("spec", "template"), "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"), "ReplicationController": ("spec", "template"), "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"), "PodTemplate": ("template",),
}


@dataclass(frozen=True)
class Violation:
    check: str  # upstream's check id
    path: str  # the field, from the object's root (spec.template.spec.containers[0].securityContext.privileged)
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.path}: {self.detail}"


@dataclass(frozen=True)
class PodTemplate:
    metadata: dict
    spec: dict
    path: str  # where the pod's metadata and spec sit: "" for a Pod, "spec.template." for a Deployment


def pod_template(obj: dict) -> PodTemplate | None:
    """The pod (or pod template) of a Pod or any workload object; None for other kinds."""
    kind = obj.get("kind")
    if kind == "Pod":
        return PodTemplate(obj.get("metadata") or {}, obj.get("spec") or {}, "")
    keys = TEMPLATE_PATHS.get(kind)
    if keys is None:
        return None
    node: Any = obj
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    return PodTemplate(node.get("metadata") or {}, node.get("spec") or {}, ".".join(keys) + ".")


# --- helpers over one pod spec ------------------------------------------------------------------------------------

def _containers(spec: dict) -> Iterator[tuple[str, dict]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(field) or []):
            yield f"{field}[{i}]", c


def _sc(d: dict) -> dict:
    return d.get("securityContext") or {}


def _windows(spec: dict) -> bool:
    return ((spec.get("os") or {}).get("name")) == "windows"


class _Pod:
    """One pod spec being checked: collects violations with full field paths."""

    def __init__(self, tpl: PodTemplate):
        self.meta, self.spec, self.root = tpl.metadata, tpl.spec, tpl.path
        self.found: list[Violation] = []

    def bad(self, check: str, path: str, detail: str) -> None:
        self.found.append(Violation(check, f"{self.root}{path}", detail))

    def each_sc(self) -> Iterator[tuple[str, dict]]:
        """(path of securityContext, securityContext) for the pod and each container."""
        yield "spec.securityContext", _sc(self.spec)
        for p, c in _containers(self.spec):
            yield f"spec.{p}.securityContext", _sc(c)


# --- baseline -----------------------------------------------------------------------------------------------------

def _windows_host_process(pod: _Pod) -> None:
    for p, sc in pod.each_sc():
        if (sc.get("windowsOptions") or {}).get("hostProcess") is True:
            pod.bad("windowsHostProcess", f"{p}.windowsOptions.hostProcess", "must not be true")


def _host_namespaces(pod: _Pod) -> None:
    for f in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.spec.get(f) is True:
            pod.bad("hostNamespaces", f"spec.{f}", "must not be true")


def _privileged(pod: _Pod) -> None:
    for p, c in _containers(pod.spec):
        if _sc(c).get("privileged") is True:
            pod.bad("privileged", f"spec.{p}.securityContext.privileged", "must not be true")


def _capabilities_baseline(pod: _Pod) -> None:
    for p, c in _containers(pod.spec):
        for i, cap in enumerate((_sc(c).get("capabilities") or {}).get("add") or []):
            if cap not in CAPABILITIES_BASELINE:
                pod.bad("capabilities_baseline", f"spec.{p}.securityContext.capabilities.add[{i}]",
                        f"{cap} is not in the baseline set")


def _volume_source(v: dict) -> str:
    return next((k for k in v if k != "name"), "emptyDir")  # no source: the API server defaults it to emptyDir


def _host_path_volumes(pod: _Pod) -> None:
    for i, v in enumerate(pod.spec.get("volumes") or []):
        if "hostPath" in v:
            pod.bad("hostPathVolumes", f"spec.volumes[{i}].hostPath", f"volume {v.get('name')} is a hostPath")


def _host_ports(pod: _Pod) -> None:
    for p, c in _containers(pod.spec):
        for i, port in enumerate(c.get("ports") or []):
            if port.get("hostPort"):
                pod.bad("hostPorts", f"spec.{p}.ports[{i}].hostPort", f"{port['hostPort']} must be unset or 0")


def _apparmor(pod: _Pod) -> None:
    for p, sc in pod.each_sc():
        prof = sc.get("appArmorProfile")
        if prof is not None and (prof or {}).get("type") not in SECCOMP_OK:
            pod.bad("appArmorProfile", f"{p}.appArmorProfile.type", f"{(prof or {}).get('type')} is not allowed")
    for k, v in (pod.meta.get("annotations") or {}).items():
        if k.startswith(APPARMOR_PREFIX) and not (v in ("", "runtime/default") or str(v).startswith("localhost/")):
            pod.bad("appArmorProfile", f"metadata.annotations[{k}]", f"{v} is not allowed")


def _selinux(pod: _Pod) -> None:
    for p, sc in pod.each_sc():
        opts = sc.get("seLinuxOptions")
        if not opts:
            continue
        if opts.get("type", "") not in SELINUX_TYPES:
            pod.bad("seLinuxOptions", f"{p}.seLinuxOptions.type", f"{opts['type']} is not allowed")
        for f in ("user", "role"):
            if opts.get(f):
                pod.bad("seLinuxOptions", f"{p}.seLinuxOptions.{f}", "must be unset")


def _proc_mount(pod: _Pod) -> None:
    for p, c in _containers(pod.spec):
        pm = _sc(c).get("procMount")
        if pm is not None and pm != "Default":
            pod.bad("procMount", f"spec.{p}.securityContext.procMount", f"{pm} is not allowed")


def _seccomp_baseline(pod: _Pod) -> None:
    for p, sc in pod.each_sc():
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            pod.bad("seccompProfile_baseline", f"{p}.seccompProfile.type", "must not be Unconfined")


def _sysctls(pod: _Pod) -> None:
    for i, s in enumerate(_sc(pod.spec).get("sysctls") or []):
        if s.get("name") not in SAFE_SYSCTLS:
            pod.bad("sysctls", f"spec.securityContext.sysctls[{i}].name", f"{s.get('name')} is not a safe sysctl")


def _host_probes(pod: _Pod) -> None:
    for p, c in _containers(pod.spec):
        handlers = [(f"{k}", c.get(k)) for k in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [(f"lifecycle.{k}", (c.get("lifecycle") or {}).get(k)) for k in ("postStart", "preStop")]
        for hp, h in handlers:
            for action in ("httpGet", "tcpSocket"):
                host = ((h or {}).get(action) or {}).get("host")
                if host:
                    pod.bad("hostProbesAndHostLifecycle", f"spec.{p}.{hp}.{action}.host", f"{host} must be unset")


# --- restricted ---------------------------------------------------------------------------------------------------

def _restricted_volumes(pod: _Pod) -> None:
    for i, v in enumerate(pod.spec.get("volumes") or []):
        src = _volume_source(v)
        if src not in RESTRICTED_VOLUMES:
            pod.bad("restrictedVolumes", f"spec.volumes[{i}].{src}", f"volume {v.get('name')} of type {src}")


def _allow_privilege_escalation(pod: _Pod) -> None:
    if _windows(pod.spec):
        return
    for p, c in _containers(pod.spec):
        if _sc(c).get("allowPrivilegeEscalation") is not False:
            pod.bad("allowPrivilegeEscalation", f"spec.{p}.securityContext.allowPrivilegeEscalation", "must be false")


def _run_as_non_root(pod: _Pod) -> None:
    pod_value = _sc(pod.spec).get("runAsNonRoot")
    if pod_value is False:
        pod.bad("runAsNonRoot", "spec.securityContext.runAsNonRoot", "must not be false")
    for p, c in _containers(pod.spec):
        value = _sc(c).get("runAsNonRoot")
        if value is False:
            pod.bad("runAsNonRoot", f"spec.{p}.securityContext.runAsNonRoot", "must not be false")
        elif value is None and pod_value is not True:
            pod.bad("runAsNonRoot", f"spec.{p}.securityContext.runAsNonRoot",
                    "must be true (here or in spec.securityContext)")


def _run_as_user(pod: _Pod) -> None:
    for p, sc in pod.each_sc():
        if sc.get("runAsUser") == 0:
            pod.bad("runAsUser", f"{p}.runAsUser", "must not be 0")


def _seccomp_restricted(pod: _Pod) -> None:
    if _windows(pod.spec):
        return
    pod_prof = _sc(pod.spec).get("seccompProfile")
    if pod_prof is not None and pod_prof.get("type") not in SECCOMP_OK:
        pod.bad("seccompProfile_restricted", "spec.securityContext.seccompProfile.type",
                f"{pod_prof.get('type')} must be RuntimeDefault or Localhost")
    for p, c in _containers(pod.spec):
        prof = _sc(c).get("seccompProfile")
        if prof is not None and prof.get("type") not in SECCOMP_OK:
            pod.bad("seccompProfile_restricted", f"spec.{p}.securityContext.seccompProfile.type",
                    f"{prof.get('type')} must be RuntimeDefault or Localhost")
        elif prof is None and pod_prof is None:
            pod.bad("seccompProfile_restricted", f"spec.{p}.securityContext.seccompProfile",
                    "must be RuntimeDefault or Localhost (here or in spec.securityContext)")


def _capabilities_restricted(pod: _Pod) -> None:
    if _windows(pod.spec):
        return
    for p, c in _containers(pod.spec):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            pod.bad("capabilities_restricted", f"spec.{p}.securityContext.capabilities.drop", "must include ALL")
        for i, cap in enumerate(caps.get("add") or []):
            if cap != "NET_BIND_SERVICE":
                pod.bad("capabilities_restricted", f"spec.{p}.securityContext.capabilities.add[{i}]",
                        f"{cap}: only NET_BIND_SERVICE may be added")


Check = Callable[[_Pod], None]
BASELINE: dict[str, Check] = {
    "windowsHostProcess": _windows_host_process, "hostNamespaces": _host_namespaces, "privileged": _privileged,
    "capabilities_baseline": _capabilities_baseline, "hostPathVolumes": _host_path_volumes, "hostPorts": _host_ports,
    "appArmorProfile": _apparmor, "seLinuxOptions": _selinux, "procMount": _proc_mount,
    "seccompProfile_baseline": _seccomp_baseline, "sysctls": _sysctls, "hostProbesAndHostLifecycle": _host_probes,
}
# restricted check id -> (its function, the baseline checks it replaces)
RESTRICTED: dict[str, tuple[Check, tuple[str, ...]]] = {
    "restrictedVolumes": (_restricted_volumes, ("hostPathVolumes",)),
    "allowPrivilegeEscalation": (_allow_privilege_escalation, ()),
    "runAsNonRoot": (_run_as_non_root, ()),
    "runAsUser": (_run_as_user, ()),
    "seccompProfile_restricted": (_seccomp_restricted, ("seccompProfile_baseline",)),
    "capabilities_restricted": (_capabilities_restricted, ("capabilities_baseline",)),
}


def checks(level: str) -> list[Check]:
    """The checks a level runs, in upstream's order (baseline's, then restricted's)."""
    if level not in LEVELS:
        raise RenderError(f"{level!r}: not a Pod Security level (one of {', '.join(LEVELS)})")
    if level == "privileged":
        return []
    if level == "baseline":
        return list(BASELINE.values())
    replaced = {b for _, over in RESTRICTED.values() for b in over}
    return [f for k, f in BASELINE.items() if k not in replaced] + [f for f, _ in RESTRICTED.values()]


def evaluate(obj: dict, level: str) -> list[Violation]:
    """Every violation of LEVEL by a Pod or workload object's pod template ([] for a kind without pods)."""
    tpl = pod_template(obj)
    if tpl is None:
        return []
    pod = _Pod(tpl)
    for check in checks(level):
        check(pod)
    return pod.found


def least_level(obj: dict) -> str:
    """The least level that admits the object."""
    return next(lv for lv in ("restricted", "baseline", "privileged") if not evaluate(obj, lv))


# --- which level a namespace enforces -----------------------------------------------------------------------------

@dataclass(frozen=True)
class AdmissionDefaults:
    """The PodSecurity plugin's configuration: the cluster-wide default level and the exempt namespaces."""
    enforce: str
    exempt_namespaces: frozenset[str]
    source: str


@dataclass(frozen=True)
class NamespaceLevel:
    level: str
    why: str  # "label", "cluster default" or "exempt"


def admission_defaults(text: str, source: str) -> AdmissionDefaults:
    """Read an AdmissionConfiguration (YAML) for its PodSecurity plugin's defaults.enforce and exempt namespaces."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RenderError(f"{source}: not YAML ({type(e).__name__})") from None
    plugins = (doc or {}).get("plugins") if isinstance(doc, dict) else None
    conf = next((p.get("configuration") for p in plugins or [] if isinstance(p, dict) and p.get("name") == "PodSecurity"),
                None)
    if not isinstance(conf, dict):
        raise RenderError(f"{source}: plugins: no PodSecurity plugin with a configuration")
    enforce = (conf.get("defaults") or {}).get("enforce", "privileged")
    if enforce not in LEVELS:
        raise RenderError(f"{source}: defaults.enforce: {enforce!r} is not a Pod Security level")
    exempt = (conf.get("exemptions") or {}).get("namespaces") or []
    return AdmissionDefaults(enforce, frozenset(exempt), source)


def k3s_admission(site_vars: dict | None = None, root: Path | None = None) -> AdmissionDefaults:
    """The admission configuration roles/k3s writes for this site: its template rendered with the role's defaults
    and the inventory's all.vars over them."""

    root = root or ANSIBLE_DIR
    template, defaults_file = root / PSA_TEMPLATE, root / PSA_DEFAULTS
    try:
        defaults = yaml.safe_load(defaults_file.read_text()) or {}
        source = template.read_text()
    except (OSError, yaml.YAMLError) as e:
        raise RenderError(f"{e.filename if isinstance(e, OSError) else defaults_file}: unreadable "
                          f"({type(e).__name__})") from None
    values = {**defaults, **{k: v for k, v in (site_vars or {}).items() if k.startswith("medai_k3s_psa_")}}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # YAML, not HTML
    env.filters["to_json"] = json.dumps
    try:
        text = env.from_string(source).render(**values)
    except jinja2.TemplateError as e:
        raise RenderError(f"{template}: cannot be rendered: {e}") from None
    return admission_defaults(text, str(template))


def namespace_level(namespace: str, labels: dict | None, admission: AdmissionDefaults) -> NamespaceLevel:
    """The level a namespace enforces: exempt (privileged), else its enforce label, else the cluster default."""
    if namespace in admission.exempt_namespaces:
        return NamespaceLevel("privileged", "exempt")
    label = (labels or {}).get(ENFORCE_LABEL)
    if label is not None:
        if label not in LEVELS:
            raise RenderError(f"namespace {namespace}: label {ENFORCE_LABEL}={label!r} is not a Pod Security level")
        return NamespaceLevel(label, "label")
    return NamespaceLevel(admission.enforce, "cluster default")
