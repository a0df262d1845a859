"""What every coherence check reads: the render as (release, namespace, object) rows, a finding's one line, the
platform namespaces, and the references a pod template makes."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from installer.render.podsecurity import PodTemplate, pod_template

# K3s's own namespace: CoreDNS, local-path and Cilium's host-network agents; the render does not own it, so the
# checks that ask something of every platform namespace (default deny, requests) leave it out.
K3S_NAMESPACE = "kube-system"


@dataclass(frozen=True, order=True)
class Finding:
    check: str  # references, tls, podsecurity, network, scheduling, resources
    release: str
    kind: str
    name: str  # NAMESPACE/NAME, or NAME for a cluster-scoped object
    field: str
    what: str

    def __str__(self) -> str:
        return f"{self.check}: release {self.release}: {self.kind} {self.name}: {self.field}: {self.what}"


@dataclass(frozen=True)
class Row:
    release: str
    namespace: str | None  # None: cluster-scoped
    obj: dict

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name", "?"))

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def template(self) -> PodTemplate | None:
        return pod_template(self.obj)

    def finding(self, check: str, field: str, what: str) -> Finding:
        return Finding(check, self.release, self.kind, self.ref, field, what)


CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
                  "StorageClass", "RuntimeClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
                  "PersistentVolume", "VolumeSnapshotClass", "APIService"}


def helm_test(obj: dict) -> bool:
    """A `helm test` hook: rendered, but never applied by install or upgrade."""
    hook = str(((obj.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", ""))
    return "test" in {h.strip() for h in hook.split(",")}


def rows(site) -> Iterator[Row]:
    """Every object the install applies (chart objects, hooks and CRDs included, then medai's site objects)."""
    for r in site.releases:
        for o in r.objects + r.site_objects:
            if not isinstance(o, dict) or helm_test(o):
                continue
            kind = o.get("kind")
            ns = None if kind in CLUSTER_SCOPED else ((o.get("metadata") or {}).get("namespace") or r.namespace)
            yield Row(r.name, ns, o)


def pod_rows(site) -> Iterator[Row]:
    return (r for r in rows(site) if r.template is not None)


def platform_namespaces(site) -> list[str]:
    """The namespaces the platform owns: every release's namespace and every Namespace the render carries, less
    K3s's kube-system."""
    out = {r.namespace for r in site.releases}
    out |= {row.name for row in rows(site) if row.kind == "Namespace"}
    return sorted(out - {K3S_NAMESPACE})


def namespace_labels(site) -> dict[str, dict]:
    """The labels of every Namespace the render carries (the ones Helm's --create-namespace makes carry none)."""
    return {row.name: dict((row.obj.get("metadata") or {}).get("labels") or {})
            for row in rows(site) if row.kind == "Namespace"}


def containers(spec: dict) -> Iterator[tuple[str, dict]]:
    """(field path inside the pod spec, container) for init and regular containers."""
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            yield f"{key}[{i}]", c


def walk(value, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path, string) for every string inside a value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value
